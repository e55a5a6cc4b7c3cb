// Atelier panel: the HTTP client of Atelier's routes (/atelier/...), for ComfyUI and the standalone page.
//
// `fetchApi(path, init)` does the transport: ComfyUI's api.fetchApi (adds /api and the comfy-user
// header) inside ComfyUI, plain fetch on the standalone page. `url(path)` makes a URL for <img>.

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error ?? `HTTP ${status}`);
    this.status = status;
    this.field = body?.field;
    this.body = body;
  }
}

const enc = encodeURIComponent;

// `outputImage(name)`: a URL of an image in ComfyUI's output folder (ComfyUI's /view), or null on a server
// without ComfyUI (the standalone page).
export function createClient({ fetchApi, url, outputImage = () => null }) {
  let lists = null; // fetched once: the server's tiers, families, pipelines, scorers, backends, ratings

  async function call(path, { method = "GET", body, query } = {}) {
    const qs = query ? `?${new URLSearchParams(Object.entries(query).filter(([, v]) => v !== "" && v != null))}` : "";
    const init = { method, headers: {} };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetchApi(`/atelier${path}${qs}`, init);
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = { error: text.slice(0, 200) };
    }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  return {
    url: (path) => url(`/atelier${path}`),
    lists: () => (lists ??= call("/lists").catch((error) => { lists = null; throw error; })),
    presets: () => call("/presets"),
    validatePreset: (body, editing) => call("/presets/validate", { method: "POST", body, query: { preset: editing } }),
    createPreset: (body) => call("/presets", { method: "POST", body }),
    updatePreset: (id, body) => call(`/presets/${enc(id)}`, { method: "PUT", body }),
    deletePreset: (id) => call(`/presets/${enc(id)}`, { method: "DELETE" }),
    compare: (presets, template) => call("/compare", { method: "POST", body: { presets, template } }),
    families: () => call("/families"),
    pipelines: () => call("/pipelines"),
    pipelineSummary: (name, tier, query) => call(`/pipelines/${enc(name)}/summary/${enc(tier)}`, { query }),
    apply: (tier, template) => call(`/presets/${enc(tier)}/apply`, { method: "POST", body: { template } }),
    records: (filters, cursor) => call("/generations", { query: { ...filters, cursor } }),
    record: (id) => call(`/generations/${enc(id)}`),
    why: (id) => call(`/generations/${enc(id)}/why`),
    loras: (filters) => call("/loras", { query: filters }),
    rescanLoras: () => call("/loras/rescan", { method: "POST" }),
    setLoraFamily: (id, family) => call(`/loras/${enc(id)}/family`, { method: "PUT", body: { family } }),
    decide: (body) => call("/intelligence/decide", { method: "POST", body }),
    keep: (id) => call(`/generations/${enc(id)}/keep`, { method: "POST" }),
    replay: (id) => call(`/generations/${enc(id)}/replay`, { method: "POST" }),
    diff: (a, b) => call("/generations/diff", { query: { a, b } }),
    validateGraph: (graph) => call("/graph/validate", { method: "POST", body: { graph } }),
    violations: (query) => call("/violations", { query }),
    telemetry: (query) => call("/telemetry", { query }),
    providers: () => call("/telemetry/providers"),
    appMap: () => call("/app-map"),
    devGenerations: (query) => call("/dev/generations", { query }),
    devGeneration: (id) => call(`/dev/generations/${enc(id)}`),
    learning: () => call("/learning"),
    workers: () => call("/workers"),
    jobs: (query) => call("/jobs", { query }),
    cancelJob: (id) => call(`/jobs/${enc(id)}/cancel`, { method: "POST" }),
    feedback: (id, rating, comment) => call(`/generations/${enc(id)}/feedback`, { method: "POST", body: { rating, comment } }),
    social: (body) => call("/social-context/build", { method: "POST", body }),
    worlds: () => call("/social-context/worlds"),
    storyboards: () => call("/storyboards"),
    storyboard: (id) => call(`/storyboards/${enc(id)}`),
    storyboardFile: (id, name) => url(`/atelier/storyboards/${enc(id)}/files/${enc(name)}`),
    endpoints: () => call("/enhance/endpoints"),
    tierValue: (checkpoint) => call("/generations/tiers", { query: { checkpoint } }),
    renderComparison: (body) => call("/comparisons", { method: "POST", body }),
    outputImage,
  };
}

// The tier new nodes and the panel start from: the user's setting, else the server's default.
export async function defaultTier(ctx) {
  return ctx.settings.get(SETTINGS.defaultTier) || (await ctx.client.lists()).default_tier;
}

// Settings without ComfyUI: the same ids as ComfyUI's settings, kept in localStorage.
export function localSettings(defaults, storage = globalThis.localStorage) {
  return {
    get: (id) => {
      const raw = storage?.getItem(`atelier:${id}`);
      if (raw === null || raw === undefined) return defaults[id];
      try { return JSON.parse(raw); } catch { return defaults[id]; }
    },
    set: async (id, value) => storage?.setItem(`atelier:${id}`, JSON.stringify(value)),
  };
}

// The setting ids, shared by the ComfyUI extension (settings API) and the standalone page.
export const SETTINGS = {
  defaultTier: "Atelier.Quality.DefaultTier",
  preferredTiers: "Atelier.Quality.PreferredTiers",
  scorers: "Atelier.Scoring.DefaultScorers",
  weights: "Atelier.Scoring.DefaultWeights",
  endpoint: "Atelier.Enhance.Endpoint",
};

export const SETTING_DEFAULTS = {
  [SETTINGS.defaultTier]: "", // empty: the server's default tier (GET /atelier/lists)
  [SETTINGS.preferredTiers]: {},
  [SETTINGS.scorers]: "auto", // technical and every model scorer whose weights the server finds
  [SETTINGS.weights]: "",
  [SETTINGS.endpoint]: "",
};
