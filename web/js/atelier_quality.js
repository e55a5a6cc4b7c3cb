// Atelier: shows a Quality Preset node's plan (parameters, time/VRAM/cost estimate) on the node
// after it runs. Public frontend API only; a DOM widget, so it works with the newer node renderer.
import { app } from "../../scripts/app.js";

const NODE_IDS = new Set(["AtelierQualityPreset"]);

function planWidget(node) {
  let widget = node.widgets?.find((w) => w.name === "atelier_plan");
  if (!widget) {
    const box = document.createElement("div");
    box.className = "atelier-plan";
    box.setAttribute("role", "status");
    box.setAttribute("aria-label", "Atelier quality plan");
    box.style.cssText = "font: 11px monospace; white-space: pre-wrap; opacity: 0.85; padding: 2px 4px;";
    widget = node.addDOMWidget("atelier_plan", "atelier_plan", box, { serialize: false });
  }
  return widget;
}

app.registerExtension({
  name: "atelier.quality",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!NODE_IDS.has(nodeData.name)) return;
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (output) {
      onExecuted?.apply(this, arguments);
      const text = Array.isArray(output?.text) ? output.text.join("\n") : "";
      if (text) planWidget(this).element.textContent = text;
    };
  },
});
