// Atelier panel: what your feedback taught (GET /atelier/learning): the scorer weights of best-of-N with the reason,
// each LoRA's prior from your ratings, and the tier you prefer per pipeline. Nothing here overrides an explicit
// choice (your weights, your LoRAs, your tier).
import { h, message, replace } from "./dom.js";

const percent = (x) => `${Math.round(x * 100)}%`;

function weightsTable(weights) {
  const names = Object.keys(weights.weights);
  return h("table", { class: "atelier-table", "aria-label": "Scorer weights" },
    h("thead", {}, h("tr", {}, ["Scorer", "Weight used", "Your taste"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, names.map((n) => h("tr", { dataset: { scorer: n } }, h("td", {}, n),
      h("td", {}, percent(weights.weights[n])),
      h("td", {}, n in weights.learned ? percent(weights.learned[n]) : "–")))));
}

export function learningView(ctx) {
  const { client } = ctx;
  const status = h("div", { class: "atelier-message" });
  const body = h("div", { class: "atelier-output", "data-testid": "learning" });
  client.learning().then((view) => {
    const loras = Object.entries(view.loras);
    const tiers = Object.entries(view.tiers ?? {});
    replace(body,
      h("h4", {}, "Best-of-N scorer weights"), h("p", {}, view.weights.reason), weightsTable(view.weights),
      h("h4", {}, "LoRAs"), loras.length ? h("ul", { "aria-label": "LoRA priors" }, loras.map(([name, p]) =>
        h("li", {}, h("code", {}, name), `: ${p.reason}`))) : h("p", {}, "No LoRA rated often enough yet."),
      h("h4", {}, "Tiers"), tiers.length ? h("ul", { "aria-label": "Preferred tiers" }, tiers.map(([pipeline, t]) =>
        h("li", {}, `${pipeline}: ${t.tier} — ${t.reason}`))) : h("p", {}, "No pipeline rated often enough yet."));
    message(status, `From ${view.weights.ratings} rated image(s); rate images in Records, or keep one of a batch.`);
  }).catch((error) => message(status, `Learning unavailable: ${error.message}`, "error"));
  return h("section", { class: "atelier-view", "aria-label": "What your feedback taught" }, status, body);
}
