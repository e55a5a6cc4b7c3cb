// Atelier panel: the safety log (GET /atelier/violations): every content rating clamped or rejected, prompt-
// variable value refused and request refused for isolation reasons: who, when, what was asked, what applied, why.
// Your entries; an operator (ATELIER_OPERATORS) can show everyone's.
import { h, message, replace, select, when } from "./dom.js";

const KINDS = ["", "rating_clamped", "rating_rejected", "variable_refused", "isolation_refused"];

export function safetyView(ctx) {
  const { client } = ctx;
  const kind = select(KINDS.map((k) => [k, k || "any"]), "", { name: "kind", "aria-label": "Kind" });
  const everyone = h("input", { type: "checkbox", name: "all", "aria-label": "Everyone's entries (operators)" });
  const everyoneLabel = h("label", { hidden: true }, everyone, " everyone's (operator)");
  const status = h("div", { class: "atelier-message" });
  const body = h("div", { class: "atelier-output", "data-testid": "safety" });
  async function load() {
    try {
      const view = await client.violations({ kind: kind.value, all: everyone.checked ? "1" : "" });
      everyoneLabel.hidden = !view.operator;
      replace(body, view.entries.length ? h("table", { class: "atelier-table", "aria-label": "Safety log" },
        h("thead", {}, h("tr", {}, ["When", "User", "Kind", "Asked", "Applied", "Why", "Where"]
          .map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, view.entries.map((e) => h("tr", { dataset: { kind: e.kind } },
          h("td", {}, when(e.created_at)), h("td", {}, e.user), h("td", {}, e.kind), h("td", {}, e.asked),
          h("td", {}, e.applied), h("td", {}, e.why), h("td", {}, e.source)))))
        : h("p", {}, "Nothing refused or clamped."));
      message(status, `${view.entries.length} entr${view.entries.length === 1 ? "y" : "ies"}${view.all ? " (everyone's)" : ""}.`);
    } catch (error) {
      message(status, `Safety log unavailable: ${error.message}`, "error");
    }
  }
  kind.addEventListener("change", load);
  everyone.addEventListener("change", load);
  load();
  return h("section", { class: "atelier-view", "aria-label": "Safety log" },
    h("div", { class: "atelier-actions" }, kind, everyoneLabel, h("button", { type: "button", onclick: load }, "Refresh")),
    status, body);
}
