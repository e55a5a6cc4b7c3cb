// Atelier: shows a Quality Preset node's plan (parameters and time/VRAM/cost estimate) on the node,
// live while its widgets change (from Atelier's apply route) and as executed (from the node's output).
// Public frontend API only; a DOM widget, so it works with the newer node renderer.
import { app } from "../../../scripts/app.js";
import { api } from "../../../scripts/api.js";
import { showExecutedText, showText } from "./atelier_text.js";

const NODE_ID = "AtelierQualityPreset";
const WATCHED = ["tier", "model_family", "checkpoint", "width", "height", "batch_size"];
const NO_CHECKPOINT = "(none)";

function show(node, text) {
  showText(node, "atelier_plan", "Atelier quality plan", text);
}

function seconds(value) {
  return value >= 120 ? `${(value / 60).toFixed(1)} min` : `${value.toFixed(1)} s`;
}

export function summarise(parameters) {
  const meta = parameters._quality_preset;
  const p = parameters;
  const t = meta.estimate.time_s;
  const hires = p.hires_enabled ? ` -> hires ${p.hires_width}x${p.hires_height} (${p.hires_steps} steps)` : "";
  return [
    `${meta.display_name} (level ${meta.level}) on ${meta.family.family} [${meta.family.source}]`,
    `${p.steps} steps, cfg ${p.cfg}, ${p.sampler_name}/${p.scheduler}, ${p.width}x${p.height} x${p.batch_size}${hires}`,
    `~${seconds(t.expected)} (${seconds(t.min)}-${seconds(t.max)}), ${meta.estimate.vram_gb.toFixed(1)} GB VRAM, ` +
      `$${meta.estimate.cost_usd.toFixed(4)} [${meta.estimate.calibrated ? "calibrated" : "prior"}]`,
    ...meta.warnings.map((w) => `warning: ${w}`),
  ].join("\n");
}

async function refresh(node) {
  const value = (name) => node.widgets?.find((w) => w.name === name)?.value;
  const tier = value("tier");
  if (!tier || tier.includes("/")) return; // another user's preset: shown once the node runs
  const template = { category: "image", model_family: value("model_family") ?? "auto",
                     width: value("width") ?? 0, height: value("height") ?? 0, batch_size: value("batch_size") ?? 1 };
  const checkpoint = value("checkpoint");
  if (checkpoint && checkpoint !== NO_CHECKPOINT) template.checkpoint = checkpoint;
  try {
    const response = await api.fetchApi(`/atelier/presets/${encodeURIComponent(tier)}/apply`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ template }),
    });
    const body = await response.json();
    show(node, response.ok ? summarise(body.parameters) : `Atelier: ${body.error}`);
  } catch (error) {
    show(node, `Atelier: estimate unavailable (${error.message ?? error})`);
  }
}

app.registerExtension({
  name: "atelier.quality",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData.name !== NODE_ID) return;
    const onNodeCreated = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      onNodeCreated?.apply(this, arguments);
      let timer = null;
      const schedule = () => { clearTimeout(timer); timer = setTimeout(() => refresh(this), 150); };
      for (const widget of this.widgets ?? []) {
        if (!WATCHED.includes(widget.name)) continue;
        const callback = widget.callback;
        widget.callback = function () { const out = callback?.apply(this, arguments); schedule(); return out; };
      }
      schedule();
    };
    const onConfigure = nodeType.prototype.onConfigure;
    nodeType.prototype.onConfigure = function () {
      onConfigure?.apply(this, arguments);
      setTimeout(() => refresh(this), 0); // values loaded from a workflow
    };
    showExecutedText(nodeType, "atelier_plan", "Atelier quality plan");
  },
});
