// Atelier panel: the tabbed views of the ComfyUI sidebar tab and of the standalone page /atelier/ui/.
// mountPanel(element, {client, settings}) renders into `element`; no ComfyUI import here.
import { compareView } from "./compare.js";
import { defaultTier, SETTINGS } from "./client.js";
import { field, h, message, select } from "./dom.js";
import { learningView } from "./learning.js";
import { developerView } from "./developer.js";
import { safetyView } from "./safety.js";
import { telemetryView } from "./telemetry.js";
import { workersView } from "./workers.js";
import { lorasView } from "./loras.js";
import { presetsView } from "./presets.js";
import { recordsView } from "./records.js";
import { socialView } from "./social.js";
import { storyboardsView } from "./storyboards.js";

export const STYLESHEET = new URL("../../ui/atelier.css", import.meta.url).href;

// Defaults used by new nodes and by the views; in ComfyUI they are also in its settings dialog.
function settingsView(ctx) {
  const { client, settings } = ctx;
  const tier = select([[settings.get(SETTINGS.defaultTier) ?? "", "server default"]],
                      settings.get(SETTINGS.defaultTier) ?? "", { name: "tier" });
  const scorers = h("input", { type: "text", name: "scorers", value: settings.get(SETTINGS.scorers) ?? "" });
  const weights = h("input", { type: "text", name: "weights", value: settings.get(SETTINGS.weights) ?? "",
                               placeholder: "technical=1, clip_score=2" });
  const endpoint = select([["", "(node default)"]], "", { name: "endpoint" });
  const status = h("div", { class: "atelier-message" });
  const scorersHint = h("small", { class: "atelier-hint" });
  Promise.all([client.presets(), client.lists()]).then(([{ presets }, lists]) => {
    tier.replaceChildren(h("option", { value: "" }, `server default (${lists.default_tier})`),
      ...presets.map((p) => h("option", { value: p.id }, p.display_name)));
    tier.value = settings.get(SETTINGS.defaultTier) ?? "";
    scorersHint.textContent = lists.scorers.join(", ");
  }).catch(() => {});
  client.endpoints().then(({ endpoints }) => {
    endpoint.append(...endpoints.map((e) => h("option", { value: e.name }, `${e.name} (${e.backend})`)));
    endpoint.value = settings.get(SETTINGS.endpoint) ?? "";
  }).catch(() => {});
  return h("section", { class: "atelier-view", "aria-label": "Settings" },
    h("form", { class: "atelier-form", onsubmit: async (event) => {
      event.preventDefault();
      try {
        await settings.set(SETTINGS.defaultTier, tier.value);
        await settings.set(SETTINGS.scorers, scorers.value.trim());
        await settings.set(SETTINGS.weights, weights.value.trim());
        await settings.set(SETTINGS.endpoint, endpoint.value);
        message(status, "Settings saved; new nodes use them.");
      } catch (error) {
        message(status, `Settings not saved: ${error.message}`, "error");
      }
    } },
      field("Default tier", tier, "for new Quality Preset nodes and the panel"),
      field("Default scorers", scorers, "comma separated"), scorersHint,
      field("Default weights", weights, "empty: equal weights"),
      field("LLM endpoint", endpoint, "a configured endpoint name; keys stay in the server's config file"),
      h("div", { class: "atelier-actions" }, h("button", { type: "submit", class: "atelier-primary" }, "Save settings"))),
    status);
}

const VIEWS = [
  ["presets", "Presets", presetsView],
  ["compare", "Compare tiers", compareView],
  ["records", "Records", recordsView],
  ["loras", "LoRAs", lorasView],
  ["learning", "Learning", learningView],
  ["storyboards", "Storyboards", storyboardsView],
  ["workers", "Workers", workersView],
  ["social", "Social context", socialView],
  ["telemetry", "Telemetry", telemetryView],
  ["safety", "Safety", safetyView],
  ["developer", "Developer", developerView],
  ["settings", "Settings", settingsView],
];

export function ensureStylesheet(doc = document) {
  if ([...doc.querySelectorAll("link[rel=stylesheet]")].some((link) => link.href === STYLESHEET)) return;
  doc.head.append(h("link", { rel: "stylesheet", href: STYLESHEET }));
}

export function mountPanel(element, ctx, initial = "presets") {
  ensureStylesheet(element.ownerDocument);
  if (globalThis.atelierNodeRecords) initial = "developer"; // opened to show a node's records
  const context = { ...ctx, SETTINGS, defaultTier: () => defaultTier(ctx) };
  const tabs = h("div", { role: "tablist", "aria-label": "Atelier", class: "atelier-tabs" });
  const panels = h("div", { class: "atelier-panels" });
  const made = new Map();

  function activate(id, focus = false) {
    for (const tab of tabs.children) {
      const on = tab.dataset.view === id;
      tab.setAttribute("aria-selected", String(on));
      tab.tabIndex = on ? 0 : -1;
      if (on && focus) tab.focus();
    }
    for (const [viewId, panel] of made) panel.hidden = viewId !== id;
    if (!made.has(id)) {
      const [, label, build] = VIEWS.find(([v]) => v === id);
      const panel = h("div", { role: "tabpanel", id: `atelier-panel-${id}`, "aria-labelledby": `atelier-tab-${id}`,
                               tabindex: 0 }, build(context));
      panel.dataset.view = id;
      panel.setAttribute("aria-label", label);
      made.set(id, panel);
      panels.append(panel);
    }
  }

  // the canvas asked for a node's records: the Developer view shows them
  element.ownerDocument.defaultView?.addEventListener("atelier:node-records", (event) => {
    globalThis.atelierNodeRecords = event.detail; // a Developer view made now reads it
    activate("developer");
  });
  for (const [id, label] of VIEWS) {
    tabs.append(h("button", { type: "button", role: "tab", id: `atelier-tab-${id}`, dataset: { view: id },
                              "aria-controls": `atelier-panel-${id}`, onclick: () => activate(id) }, label));
  }
  tabs.addEventListener("keydown", (event) => {
    const order = VIEWS.map(([v]) => v);
    const current = order.indexOf(document.activeElement?.dataset.view);
    const step = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 }[event.key];
    let next = null;
    if (step) next = order[(current + step + order.length) % order.length];
    if (event.key === "Home") next = order[0];
    if (event.key === "End") next = order.at(-1);
    if (next) {
      event.preventDefault();
      activate(next, true);
    }
  });

  element.replaceChildren(h("div", { class: "atelier-panel" }, tabs, panels));
  const known = VIEWS.some(([v]) => v === initial); // ?view=<unknown> opens the first view, and says so
  activate(known ? initial : VIEWS[0][0]);
  if (!known) {
    const note = h("p", { class: "atelier-message atelier-info", role: "status" });
    note.textContent = `No view "${initial}"; the views are ${VIEWS.map(([v]) => v).join(", ")}.`;
    panels.prepend(note);
  }
  return { activate: (id, focus) => VIEWS.some(([v]) => v === id) && activate(id, focus) };
}
