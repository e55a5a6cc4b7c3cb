// Atelier: Variation Score and Rank Select show their images with scores after a run: each image's
// overall score and rank, the chosen one marked, below-threshold and scorer warnings visible.
// A DOM widget (not canvas drawing); the same data is in the prompt's /history entry.
import { app } from "../../../scripts/app.js";
import { api } from "../../../scripts/api.js";
import { ensureStylesheet } from "./panel/panel.js";
import { h, replace } from "./panel/dom.js";

const NODES = {
  AtelierVariationScore: (output) => {
    const scores = output.atelier_scores?.[0];
    if (!scores) return null;
    return { overall: scores.overall, chosen: [], order: scores.order ?? [], warnings: scores.warnings,
             failed: scores.failed, detail: scores.normalised };
  },
  AtelierRankSelect: (output) => {
    const selection = output.atelier_selection?.[0];
    if (!selection) return null;
    const warnings = [...selection.warnings];
    if (selection.below_threshold) {
      warnings.unshift(`best score ${Number(selection.best_score).toFixed(1)} is below the threshold ${selection.threshold}`);
    }
    return { overall: selection.overall ?? [], chosen: selection.chosen, order: selection.order, warnings };
  },
};

const THUMB = 80; // px, as in atelier.css

function imageUrl(image) {
  const query = new URLSearchParams({ filename: image.filename, subfolder: image.subfolder ?? "", type: image.type ?? "temp" });
  return api.apiURL(`/view?${query}`);
}

function gallery(node) {
  let widget = node.widgets?.find((w) => w.name === "atelier_gallery");
  if (!widget) {
    // The content's natural height sizes the widget (the outer element is what the frontend sizes).
    const content = h("div", { role: "group", "aria-label": "Scored images" });
    const element = h("div", { class: "atelier-node atelier-scored" }, content);
    widget = node.addDOMWidget("atelier_gallery", "atelier_gallery", element, {
      serialize: false,
      getMinHeight: () => content.atelierHeight ?? 40,
    });
  }
  return widget.element.firstChild;
}

function render(node, images, view) {
  const element = gallery(node);
  const ranks = new Map(view.order.map((index, rank) => [index, rank + 1]));
  const chosen = new Set(view.chosen);
  const figures = images.map((image, i) => {
    const score = view.overall[i];
    const detail = view.detail ? Object.entries(view.detail).map(([k, v]) => `${k} ${Number(v[i]).toFixed(1)}`).join(", ") : "";
    const label = `image ${i}: ${score === undefined ? "no score" : `score ${Number(score).toFixed(1)}`}, rank ${ranks.get(i) ?? "–"}`
      + (chosen.has(i) ? ", chosen" : "");
    return h("figure", { class: chosen.has(i) ? "atelier-chosen" : "", dataset: { index: i } },
      h("img", { src: imageUrl(image), alt: label, title: detail || label }),
      h("span", { class: "atelier-badge", "aria-hidden": "true" }, score === undefined ? "–" : Number(score).toFixed(1)),
      h("figcaption", {}, `#${ranks.get(i) ?? "–"}${chosen.has(i) ? " ✓ chosen" : ""}`));
  });
  const warnings = view.warnings.map((w) => h("div", { class: "atelier-alert", role: "alert" }, `⚠ ${w}`));
  if (view.failed) warnings.push(h("div", { class: "atelier-alert", role: "alert" }, "⚠ scoring failed: the first image is kept"));
  replace(element, warnings, h("div", { class: "atelier-gallery" }, figures));
  // Thumbnails have a fixed size (CSS), so the height is known even while the node is off-screen.
  const columns = Math.max(1, Math.floor((node.size[0] - 30) / (THUMB + 4)));
  element.atelierHeight = 34 * warnings.length + Math.ceil(figures.length / columns) * (THUMB + 20) + 8;
  const [width, height] = node.computeSize();
  node.setSize([Math.max(node.size[0], width), Math.max(node.size[1], height)]);
  node.setDirtyCanvas(true, true);
}

app.registerExtension({
  name: "atelier.scores",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    const read = NODES[nodeData.name];
    if (!read) return;
    ensureStylesheet();
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (output) {
      onExecuted?.apply(this, arguments);
      const view = read(output ?? {});
      if (view) render(this, output.atelier_images ?? [], view);
    };
  },
});
