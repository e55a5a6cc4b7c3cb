// Atelier: ASSISTED mode on the canvas. The Smart Plan node shows what Atelier recommends for its prompt and
// constraints (POST /atelier/intelligence/decide: tier, size, LoRAs with their strengths and reasons, what was
// left out and why); the user edits it and accepts. Accepting writes the node's `accepted` widget (JSON, saved
// with the workflow) and sets the mode to ASSISTED; LoRA Recommend downstream applies the accepted LoRAs.
// Smart Plan, LoRA Recommend and Save With Explanation show their explanation after a run.
// Public frontend API only; DOM widgets, so it works with the newer node renderer.
import { app } from "../../../scripts/app.js";
import { client } from "./atelier_panel.js";
import { showExecutedText } from "./atelier_text.js";
import { ensureStylesheet } from "./panel/panel.js";
import { h, replace, seconds } from "./panel/dom.js";

const NODE_ID = "AtelierSmartPlan";
const EXPLAINED = { AtelierSmartPlan: "Atelier plan", AtelierLoraRecommend: "Atelier LoRAs",
                    AtelierSaveWithExplanation: "Atelier explanation" };
const WATCHED = ["prompt", "negative", "checkpoint", "model_family", "priority", "max_time_s", "max_vram_gb",
                 "width", "height", "batch_size"];
const NO_CHECKPOINT = "(none)";
const MIN_WIDTH = 400;

function widget(node, name) {
  return node.widgets?.find((w) => w.name === name);
}

function value(node, name) {
  return widget(node, name)?.value;
}

function setValue(node, name, next) {
  const w = widget(node, name);
  if (!w) return;
  w.value = next;
  w.callback?.(next);
}

// The node's widgets as a decide request: what AUTO would choose for them.
function request(node) {
  const family = value(node, "model_family");
  const checkpoint = value(node, "checkpoint");
  return {
    prompt: value(node, "prompt") ?? "", negative: value(node, "negative") ?? "", mode: "AUTO",
    family: family && family !== "auto" ? family : null,
    checkpoint: checkpoint && checkpoint !== NO_CHECKPOINT ? checkpoint : null,
    constraints: { priority: value(node, "priority") ?? "balanced", max_time_s: value(node, "max_time_s") || null,
                   max_vram_gb: value(node, "max_vram_gb") || null },
    width: value(node, "width") ?? 0, height: value(node, "height") ?? 0, batch_size: value(node, "batch_size") ?? 1,
  };
}

function accepted(node) {
  const text = value(node, "accepted");
  if (!text?.trim()) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

class Assistant {
  constructor(node) {
    this.node = node;
    this.summary = h("p", { class: "atelier-summary" });
    this.tier = h("select", { "aria-label": "Tier to accept" });
    this.width = h("input", { type: "number", min: 64, max: 16384, step: 8, "aria-label": "Width to accept" });
    this.height = h("input", { type: "number", min: 64, max: 16384, step: 8, "aria-label": "Height to accept" });
    this.loras = h("div", { role: "group", "aria-label": "LoRAs to accept", class: "atelier-assist-loras" });
    this.reasons = h("div");
    this.left = h("div");
    this.status = h("div", { role: "status", class: "atelier-message" });
    this.content = h("div", {},
      h("div", { class: "atelier-actions" },
        h("button", { type: "button", onclick: () => this.refresh() }, "Recommend"),
        h("button", { type: "button", onclick: () => this.accept() }, "Accept"),
        h("button", { type: "button", onclick: () => this.clear() }, "Use the recommendation")),
      this.summary,
      h("div", { class: "atelier-inline" }, h("label", {}, "Tier ", this.tier), h("label", {}, "W ", this.width),
        h("label", {}, "H ", this.height)),
      this.reasons, this.loras, this.left, this.status);
    this.element = h("div", { class: "atelier-node atelier-assist", "aria-label": "Smart Plan recommendations" },
                     this.content);
    node.addDOMWidget("atelier_assist", "atelier_assist", this.element, {
      serialize: false,
      getMinHeight: () => (this.content.offsetHeight || 90) + 6,
    });
    this.decision = null;
  }

  async refresh() {
    const body = request(this.node);
    if (!body.prompt.trim()) {
      this.say("Write a prompt: the recommendations follow it.");
      return;
    }
    this.say("Recommending…");
    try {
      this.decision = await client.decide(body);
      this.render(accepted(this.node));
      this.say(accepted(this.node) ? "Your accepted values are shown; Accept again after editing."
        : "Edit and Accept to use your choice (mode ASSISTED).");
    } catch (error) {
      this.say(`Atelier: ${error.message}`, true);
    }
    this.fit();
  }

  render(mine) {
    const { explanation, recommendations, plan } = this.decision;
    const p = explanation.parameters;
    this.summary.textContent = `${explanation.summary}`;
    const cuts = plan.cuts ?? [];
    replace(this.reasons, h("details", {}, h("summary", {}, "Why these parameters"),
      h("ul", { "aria-label": "Why these parameters" },
        [...explanation.parameter_reasons, ...cuts.map((c) => `to fit your limits: ${c}`)].map((r) => h("li", {}, r)))));
    const tiers = widget(this.node, "tier")?.options?.values ?? [p.tier];
    replace(this.tier, tiers.map((t) => h("option", { value: t }, t === p.tier ? `${t} (recommended)` : t)));
    this.tier.value = mine?.tier ?? p.tier;
    this.width.value = mine?.width ?? p.width;
    this.height.value = mine?.height ?? p.height;
    const chosen = new Map((mine?.loras ?? []).map(([name, strength]) => [name, strength]));
    const rows = recommendations.loras.map((r) => ({ name: r.name, strength: r.strength, reason: r.reason, on: true }));
    for (const r of recommendations.runners_up ?? []) { // offered, not chosen
      rows.push({ name: r.name, strength: r.strength, reason: `runner-up: ${r.reason}`, on: false });
    }
    for (const [name, strength] of chosen) {
      if (!rows.some((r) => r.name === name)) rows.push({ name, strength, reason: "chosen by you", on: true });
    }
    replace(this.loras, rows.length ? rows.map((r) => {
      const use = h("input", { type: "checkbox", "aria-label": `Use ${r.name}`, checked: mine ? chosen.has(r.name) : r.on,
                               dataset: { lora: r.name } });
      const strength = h("input", { type: "number", min: -4, max: 4, step: 0.05, value: chosen.get(r.name) ?? r.strength,
                                    "aria-label": `Strength of ${r.name}`, class: "atelier-strength" });
      return h("div", { class: "atelier-assist-lora", title: r.reason },
        h("label", { class: "atelier-check" }, use, h("code", {}, r.name)), strength,
        h("small", { class: "atelier-sub" }, r.reason));
    }) : h("p", { class: "atelier-sub" }, "No LoRA of your library fits this prompt and checkpoint."));
    const filtered = recommendations.filtered ?? [];
    replace(this.left, filtered.length ? h("details", {}, h("summary", {}, `${filtered.length} left out`),
      h("ul", {}, filtered.slice(0, 10).map((f) => h("li", {}, `${f.name}: ${f.reason}`)))) : null,
    h("p", { class: "atelier-sub" }, `estimate ~${seconds(plan.estimate.time_s.expected)}, ` +
      `${plan.estimate.vram_gb.toFixed(1)} GB`));
  }

  accept() {
    if (!this.decision) {
      this.say("Recommend first.", true);
      return;
    }
    const loras = [...this.loras.querySelectorAll("input[type=checkbox]")].filter((c) => c.checked).map((c) => {
      const strength = c.closest(".atelier-assist-lora").querySelector(".atelier-strength");
      return [c.dataset.lora, Number(strength.value)];
    });
    const value = { tier: this.tier.value, width: Number(this.width.value), height: Number(this.height.value), loras };
    setValue(this.node, "accepted", JSON.stringify(value));
    setValue(this.node, "mode", "ASSISTED");
    this.node.setDirtyCanvas(true, true);
    this.say(`Accepted: ${value.tier}, ${value.width}x${value.height}, ` +
      `${loras.length ? loras.map(([n, s]) => `${n} @${s}`).join(", ") : "no LoRA"}.`);
  }

  clear() {
    setValue(this.node, "accepted", "");
    if (this.decision) this.render(null);
    this.say("The recommendation will be used.");
  }

  say(text, error = false) {
    this.status.className = `atelier-message ${error ? "atelier-error" : ""}`;
    this.status.textContent = text;
    this.fit();
  }

  fit() {
    requestAnimationFrame(() => {
      const [width, height] = this.node.computeSize();
      this.node.setSize([Math.max(this.node.size[0], width, MIN_WIDTH), Math.max(this.node.size[1], height)]);
      this.node.setDirtyCanvas(true, true);
    });
  }
}

app.registerExtension({
  name: "atelier.intelligence",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (EXPLAINED[nodeData.name]) showExecutedText(nodeType, "atelier_explanation_text", EXPLAINED[nodeData.name]);
    if (nodeData.name !== NODE_ID) return;
    ensureStylesheet();
    const onNodeCreated = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      onNodeCreated?.apply(this, arguments);
      this.atelierAssistant = new Assistant(this);
      let timer = null;
      const node = this;
      for (const w of this.widgets ?? []) {
        if (!WATCHED.includes(w.name)) continue;
        const callback = w.callback;
        w.callback = function () { // in ASSISTED mode, the recommendations follow the widgets
          const out = callback?.apply(this, arguments);
          if (value(node, "mode") === "ASSISTED") {
            clearTimeout(timer);
            timer = setTimeout(() => node.atelierAssistant.refresh(), 400);
          }
          return out;
        };
      }
    };
    const onConfigure = nodeType.prototype.onConfigure;
    nodeType.prototype.onConfigure = function () {
      onConfigure?.apply(this, arguments);
      if (value(this, "mode") === "ASSISTED") this.atelierAssistant?.refresh(); // a loaded workflow's choice
    };
  },
});
