// Atelier: on Quality Preset nodes, a tier picker (each tier's time, VRAM and cost, and how it differs
// from standard), the pipeline summary (stages, workflows, time per stage and in total) and the plan
// of the chosen tier, live while the widgets change. The tier chosen is remembered per pipeline.
// Public frontend API only; DOM widgets, so it works with the newer node renderer.
import { app } from "../../../scripts/app.js";
import { client, LISTS, settings } from "./atelier_panel.js";
import { showExecutedText, showText } from "./atelier_text.js";
import { pipelineTable } from "./panel/compare.js";
import { SETTINGS } from "./panel/client.js";
import { ensureStylesheet } from "./panel/panel.js";
import { gigabytes, h, money, replace, seconds } from "./panel/dom.js";

const NODE_ID = "AtelierQualityPreset";
const WATCHED = ["tier", "model_family", "checkpoint", "width", "height", "batch_size"];
const NO_CHECKPOINT = "(none)";
const PIPELINE_PROPERTY = "Atelier pipeline";
const SINGLE = "image"; // a single image (no pipeline): the key its remembered tier is kept under
const MAX_TIERS = 12; // what /atelier/compare accepts
const MIN_WIDTH = 380;

function value(node, name) {
  return node.widgets?.find((w) => w.name === name)?.value;
}

function template(node) {
  const out = { category: "image", model_family: value(node, "model_family") ?? "auto",
                width: value(node, "width") ?? 0, height: value(node, "height") ?? 0,
                batch_size: value(node, "batch_size") ?? 1 };
  const checkpoint = value(node, "checkpoint");
  if (checkpoint && checkpoint !== NO_CHECKPOINT) out.checkpoint = checkpoint;
  return out;
}

// The pipeline a node belongs to: its saved property, else the runnable pipeline (GET /atelier/lists) whose
// graph's node types the graph holds, the most specific first; else a single image.
function pipelineOf(node) {
  const saved = node.properties?.[PIPELINE_PROPERTY];
  if (saved) return saved;
  const types = new Set((app.graph?._nodes ?? app.graph?.nodes ?? []).map((n) => n.comfyClass ?? n.type));
  const matching = (LISTS?.pipelines ?? []).filter((p) => p.runnable && p.nodes.every((t) => types.has(t)));
  matching.sort((a, b) => b.nodes.length - a.nodes.length);
  return matching[0]?.name ?? SINGLE;
}

// A new node's tier: the one remembered for its pipeline, else the default tier (the user's, else the
// server's), else what the node's combo starts with.
function preferredTier(pipeline) {
  const remembered = settings.get(SETTINGS.preferredTiers) ?? {};
  return remembered[pipeline] || settings.get(SETTINGS.defaultTier) || LISTS?.default_tier;
}

async function rememberTier(pipeline, tier) {
  const remembered = { ...(settings.get(SETTINGS.preferredTiers) ?? {}), [pipeline]: tier };
  try {
    await settings.set(SETTINGS.preferredTiers, remembered);
  } catch (error) {
    console.warn("Atelier: could not remember the tier", error);
  }
}

class TierPicker {
  constructor(node) {
    this.node = node;
    this.pipelines = h("select", { "aria-label": "Pipeline (the preferred tier is remembered per pipeline)" });
    this.pipelines.addEventListener("change", () => this.setPipeline(this.pipelines.value));
    this.group = h("div", { role: "radiogroup", "aria-label": "Quality tier", class: "atelier-tiers" });
    this.group.addEventListener("keydown", (event) => this.onKey(event));
    this.summary = h("div", { class: "atelier-summary", "aria-live": "polite" });
    // The content's natural height sizes the widget (the outer element is what the frontend sizes).
    this.content = h("div", {}, h("label", {}, "Pipeline ", this.pipelines), this.group, this.summary);
    this.element = h("div", { class: "atelier-node atelier-tier-picker" }, this.content);
    node.addDOMWidget("atelier_tiers", "atelier_tiers", this.element, {
      serialize: false,
      getMinHeight: () => this.height(),
    });
    client.pipelines().then(({ pipelines }) => {
      replace(this.pipelines, h("option", { value: SINGLE }, "single image"),
        pipelines.map((p) => h("option", { value: p.name }, p.name.replace(/_generation$/, ""))));
      this.pipelines.value = pipelineOf(node);
      node.atelierRefresh?.();
    }).catch(() => {});
  }

  // The content's height when laid out; an estimate while the node is off-screen (hidden).
  height() {
    if (this.content.offsetHeight) return this.content.offsetHeight + 6;
    const tiers = this.group.querySelectorAll("[role=radio]").length || 4;
    const stages = this.summary.querySelectorAll("tr").length;
    return 30 + tiers * 36 + stages * 19 + 6;
  }

  tierWidget() {
    return this.node.widgets?.find((w) => w.name === "tier");
  }

  // Another pipeline: its remembered tier, if it has one; otherwise the current tier stays.
  setPipeline(pipeline) {
    this.node.properties ??= {};
    this.node.properties[PIPELINE_PROPERTY] = pipeline;
    const remembered = (settings.get(SETTINGS.preferredTiers) ?? {})[pipeline];
    if (remembered && remembered !== this.tierWidget()?.value) this.choose(remembered);
    else this.node.atelierRefresh?.();
  }

  // Sets the node's tier widget, as if the user had picked it in the combo (which remembers it).
  choose(tier) {
    const w = this.tierWidget();
    if (!w || !(w.options?.values ?? []).includes(tier)) return;
    w.value = tier;
    w.callback?.(tier);
    this.node.setDirtyCanvas(true, true);
  }

  onKey(event) {
    const step = { ArrowDown: 1, ArrowRight: 1, ArrowUp: -1, ArrowLeft: -1 }[event.key];
    if (!step) return;
    event.preventDefault();
    const buttons = [...this.group.querySelectorAll("[role=radio]")];
    const index = buttons.findIndex((b) => b.getAttribute("aria-checked") === "true");
    const next = buttons[(index + step + buttons.length) % buttons.length];
    if (next) {
      this.choose(next.dataset.tier);
      this.group.querySelector(`[data-tier="${CSS.escape(next.dataset.tier)}"]`)?.focus();
    }
  }

  async refresh() {
    const tiers = (this.tierWidget()?.options?.values ?? []).filter((t) => !t.includes("/")).slice(0, MAX_TIERS);
    const current = this.tierWidget()?.value;
    if (!tiers.length) return;
    try {
      const t = template(this.node);
      const [result, measured] = await Promise.all([client.compare(tiers, t), this.measured(t.checkpoint)]);
      const hadFocus = this.group.contains(document.activeElement);
      replace(this.group, result.presets.map((c) => {
        const e = c.estimate;
        const vram = c.vs_standard.vram_delta_gb;
        const diff = c.preset.id === result.reference ? "reference" : `${c.vs_standard.time_ratio}× ${result.reference}'s time, `
          + `${vram >= 0 ? "+" : ""}${vram} GB`;
        const on = c.preset.id === current;
        return h("button", { type: "button", role: "radio", "aria-checked": String(on), tabindex: on ? 0 : -1,
                             dataset: { tier: c.preset.id }, onclick: () => this.choose(c.preset.id),
                             title: c.vs_standard.summary },
          h("strong", {}, c.preset.display_name),
          h("span", {}, `~${seconds(e.time_s.expected)} · ${gigabytes(e.vram_gb)} · ${money(e.cost_usd)}`),
          h("span", { class: "atelier-diff" }, diff),
          this.seen(measured[c.preset.id], c.preset.display_name));
      }));
      if (hadFocus) this.group.querySelector("[aria-checked=true]")?.focus();
      await this.refreshPipeline(current);
    } catch (error) {
      replace(this.group, h("p", { class: "atelier-error" }, `Atelier: ${error.message}`));
    }
    this.fit();
  }

  // What the user's own runs of this checkpoint measured per tier (GET /atelier/generations/tiers), or {}.
  async measured(checkpoint) {
    if (!checkpoint || checkpoint === NO_CHECKPOINT) return {};
    try {
      const chart = await client.tierValue(checkpoint);
      return Object.fromEntries((chart.checkpoints[0]?.tiers ?? []).map((row) => [row.tier, row]));
    } catch {
      return {};
    }
  }

  // A tier's latest image and measured time and score, when the user has run it on this checkpoint.
  seen(row, name) {
    if (!row) return null;
    const src = row.images[0] ? client.outputImage(row.images[0]) : null;
    const score = row.mean_score == null ? "" : `, score ${row.mean_score.toFixed(1)}`;
    return [src ? h("img", { class: "atelier-seen-image", src, alt: `${name}: your latest image`, width: 28,
                             height: 28 }) : null,
            h("span", { class: "atelier-seen" }, `your runs: ${row.runs}, ${seconds(row.median_time_s)}${score}`)];
  }

  fit() {
    requestAnimationFrame(() => { // once the new content is laid out
      const [width, height] = this.node.computeSize();
      this.node.setSize([Math.max(this.node.size[0], width, MIN_WIDTH), Math.max(this.node.size[1], height)]);
      this.node.setDirtyCanvas(true, true);
    });
  }

  async refreshPipeline(tier) {
    const pipeline = this.pipelines.value;
    if (!pipeline || pipeline === SINGLE || !tier || tier.includes("/")) {
      replace(this.summary);
      return;
    }
    const t = template(this.node);
    const plan = await client.pipelineSummary(pipeline, tier, { model_family: t.model_family, checkpoint: t.checkpoint,
                                                                 width: t.width || undefined, height: t.height || undefined });
    replace(this.summary, pipelineTable(plan, true));
  }
}

async function refreshPlan(node) {
  const tier = value(node, "tier");
  if (!tier || tier.includes("/")) return; // another user's preset: shown once the node runs
  try {
    const body = await client.apply(tier, template(node));
    showText(node, "atelier_plan", "Atelier quality plan", body.parameters._quality_preset.summary); // the server's words
  } catch (error) {
    showText(node, "atelier_plan", "Atelier quality plan", `Atelier: ${error.message ?? error}`);
  }
  await node.atelierTiers?.refresh();
}

app.registerExtension({
  name: "atelier.quality",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData.name !== NODE_ID) return;
    ensureStylesheet();
    const onNodeCreated = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      onNodeCreated?.apply(this, arguments);
      let timer = null;
      const schedule = () => { clearTimeout(timer); timer = setTimeout(() => refreshPlan(this), 150); };
      this.atelierRefresh = schedule; // one debounced refresh for creation, configure and the picker
      const node = this;
      for (const widget of this.widgets ?? []) {
        if (!WATCHED.includes(widget.name)) continue;
        const callback = widget.callback;
        widget.callback = function () {
          const out = callback?.apply(this, arguments);
          if (widget.name === "tier") rememberTier(pipelineOf(node), widget.value); // a user's pick
          schedule();
          return out;
        };
      }
      // A new node starts at the tier remembered for its pipeline (a loaded one keeps its own).
      const tier = this.widgets?.find((w) => w.name === "tier");
      const preferred = preferredTier(pipelineOf(this));
      if (tier && (tier.options?.values ?? []).includes(preferred)) tier.value = preferred;
      this.atelierTiers = new TierPicker(this);
      schedule();
    };
    const onConfigure = nodeType.prototype.onConfigure;
    nodeType.prototype.onConfigure = function () {
      onConfigure?.apply(this, arguments);
      if (this.atelierTiers && this.properties?.[PIPELINE_PROPERTY]) {
        this.atelierTiers.pipelines.value = this.properties[PIPELINE_PROPERTY];
      }
      this.atelierRefresh?.(); // values loaded from a workflow
    };
    showExecutedText(nodeType, "atelier_plan", "Atelier quality plan");
  },
});
