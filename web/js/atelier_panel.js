// Atelier: the "Atelier" sidebar tab (presets, tier comparison, records, storyboards, social context,
// settings), Atelier's settings in ComfyUI's settings dialog, and those defaults applied to new nodes.
// Public frontend API only: app.registerExtension, app.extensionManager, api.fetchApi.
import { app } from "../../../scripts/app.js";
import { api } from "../../../scripts/api.js";
import { createClient, SETTING_DEFAULTS, SETTINGS } from "./panel/client.js";
import { mountPanel } from "./panel/panel.js";

// A recorded image (`subfolder/file.png`, ` [temp]` for a preview) as a URL of ComfyUI's /view, which takes the
// subfolder apart from the file name.
function viewURL(name) {
  const cut = name.lastIndexOf("/");
  const query = new URLSearchParams({ filename: name.slice(cut + 1), type: "output" });
  if (cut > 0) query.set("subfolder", name.slice(0, cut));
  return api.apiURL(`/view?${query}`);
}

export const client = createClient({ fetchApi: (path, init) => api.fetchApi(path, init), url: (path) => api.apiURL(path),
                                    outputImage: viewURL });

// The server's lists (tiers, families, pipelines, scorers, backends, ratings): read before the settings are
// declared, so nothing here repeats them. Null when Atelier's routes are unavailable.
export const LISTS = await client.lists().catch((error) => {
  console.warn("Atelier: GET /atelier/lists failed", error);
  return null;
});

// ComfyUI's settings store (per user, on the server) behind the panel's get/set interface.
export const settings = {
  get: (id) => app.extensionManager?.setting?.get(id) ?? SETTING_DEFAULTS[id],
  set: (id, value) => app.extensionManager.setting.set(id, value),
};

function widget(node, name) {
  return node.widgets?.find((w) => w.name === name);
}

function setWidget(node, name, value) {
  const w = widget(node, name);
  if (!w || value === undefined || value === null || value === "") return;
  const options = w.options?.values;
  if (Array.isArray(options) && !options.includes(value)) return; // e.g. an endpoint this server lacks
  w.value = value;
}

// A record's node on the canvas: centred and selected when the open workflow has it (same id and class).
function showNode(id, classType) {
  const node = app.graph?.getNodeById(Number(id));
  if (!node || node.type !== classType) return false;
  app.canvas?.centerOnNode?.(node);
  app.canvas?.selectNode?.(node);
  return true;
}

// New nodes start from the user's defaults; nodes loaded from a workflow keep their saved values
// (ComfyUI configures them after this hook).
const NEW_NODE_DEFAULTS = {
  AtelierVariationScore: (node) => {
    setWidget(node, "scorers", settings.get(SETTINGS.scorers));
    setWidget(node, "weights", settings.get(SETTINGS.weights));
  },
  AtelierPromptEnhance: (node) => setWidget(node, "endpoint", settings.get(SETTINGS.endpoint)),
};

app.registerExtension({
  name: "atelier.panel",
  settings: [
    { id: SETTINGS.defaultTier, name: "Default tier of new Quality Preset nodes", type: "combo",
      options: () => [{ text: `server default (${LISTS?.default_tier ?? "?"})`, value: "" },
                      ...(LISTS?.tiers ?? []).map((t) => ({ text: t.display_name, value: t.id }))],
      defaultValue: SETTING_DEFAULTS[SETTINGS.defaultTier],
      category: ["Atelier", "Quality", "Default tier"],
      tooltip: "A pipeline's remembered tier (chosen on a Quality Preset node) wins over this." },
    { id: SETTINGS.preferredTiers, name: "Preferred tier per pipeline", type: "hidden",
      defaultValue: SETTING_DEFAULTS[SETTINGS.preferredTiers] },
    { id: SETTINGS.scorers, name: "Default scorers of new Variation Score nodes", type: "text",
      defaultValue: SETTING_DEFAULTS[SETTINGS.scorers], category: ["Atelier", "Scoring", "Scorers"],
      tooltip: `auto (technical and every model scorer whose weights are found), or comma separated: ${(LISTS?.scorers ?? []).join(", ")}` },
    { id: SETTINGS.weights, name: "Default scorer weights", type: "text", defaultValue: "",
      category: ["Atelier", "Scoring", "Weights"], tooltip: 'e.g. "technical=1, clip_score=2"; empty: equal' },
    { id: SETTINGS.endpoint, name: "LLM endpoint of new Prompt Enhance nodes", type: "text", defaultValue: "",
      category: ["Atelier", "Enhance", "Endpoint"],
      tooltip: "The name of an endpoint configured on the server (atelier/llm.json). API keys never go here." },
  ],
  async setup() {
    app.extensionManager.registerSidebarTab({
      id: "atelier", icon: "pi pi-sliders-h", title: "Atelier", type: "custom",
      tooltip: "Atelier: presets, tier comparison, records, storyboards, social context",
      render: (element) => mountPanel(element, { client, settings, showNode }),
    });
  },
  nodeCreated(node) {
    NEW_NODE_DEFAULTS[node.comfyClass]?.(node);
  },
});
