// Atelier panel: the developer view, for operators. Recent generations (yours; everyone's for an operator) with
// filters; one drilled down: its graph (nodes, literal inputs, links), plan, per-node timings, cached nodes,
// outputs, scores, explanation and cost. And the app map: every route with what it does, where Atelier keeps
// things, and the health of each part (GET /atelier/app-map).
import { h, message, money, replace, seconds, select, when } from "./dom.js";

const STATUSES = ["", "pending", "queued", "running", "completed", "failed", "cancelled"];

function table(label, headers, rows) {
  return h("table", { class: "atelier-table", "aria-label": label },
    h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col" }, t)))), h("tbody", {}, rows));
}

function json(value) {
  return h("pre", {}, JSON.stringify(value, null, 2));
}

// `showNode(id, classType)`: inside ComfyUI, centre that node of the open workflow (false when it has none)
function drill(view, showNode) {
  const r = view.record;
  const t = view.telemetry;
  return h("article", { class: "atelier-details", "data-testid": "dev-details", "aria-label": `Generation ${r.id}` },
    h("h3", {}, `${r.operation_type} · ${r.status} · ${r.user}`),
    h("p", {}, `${when(r.created_at)} · device ${t.device} · ${t.device_s == null ? "not run" : seconds(t.device_s)}` +
      (t.cost_usd == null ? "" : ` · ${money(t.cost_usd)}`)),
    h("h4", {}, "Graph"),
    view.graph.length ? table(`Graph of ${r.id}`, ["Node", "Class", "Inputs", "Links"], view.graph.map((n) =>
      h("tr", { dataset: { node: n.id } }, h("td", {}, showNode ? h("button", { type: "button", class: "atelier-link",
        "aria-label": `Show node ${n.id} on the canvas`, onclick: () => showNode(n.id, n.class_type) }, n.id) : n.id),
        h("td", {}, n.class_type),
        h("td", {}, Object.entries(n.inputs).map(([k, v]) => `${k}=${JSON.stringify(v)}`.slice(0, 80)).join(", ")),
        h("td", {}, Object.entries(n.links).map(([k, v]) => `${k}←${v}`).join(", ")))))
      : h("p", {}, "No graph recorded."),
    view.timings ? [h("h4", {}, "Timings per node"), table("Timings per node", ["Node", "Class", "Seconds"],
      view.timings.map((x) => h("tr", { dataset: { node: x.node } }, h("td", {}, x.node), h("td", {}, x.class_type ?? "–"),
        h("td", {}, seconds(x.seconds)))))] : h("p", {}, "No per-node timings recorded for this run."),
    view.cached ? h("p", {}, `From ComfyUI's cache: ${view.cached.join(", ")}`) : null,
    view.plan ? [h("h4", {}, "Plan"), json(view.plan)] : null,
    h("h4", {}, "Outputs"), json(view.outputs),
    Object.keys(view.scores ?? {}).length ? [h("h4", {}, "Scores"), json(view.scores)] : null,
    view.explanation ? [h("h4", {}, "Explanation"), json(view.explanation)] : null);
}

function appMap(map) {
  return h("div", { "data-testid": "app-map" },
    h("h4", {}, "Health"), table("Health", ["Part", "Status", "Detail"], map.health.map((x) =>
      h("tr", { dataset: { part: x.part, status: x.status } }, h("td", {}, x.part), h("td", {}, x.status), h("td", {}, x.detail)))),
    h("h4", {}, "Storage"), table("Storage", ["Name", "Where", "What", "Status"], map.storage.map((x) =>
      h("tr", { dataset: { storage: x.name, status: x.status } }, h("td", {}, x.name), h("td", {}, h("code", {}, x.where)),
        h("td", {}, x.purpose), h("td", {}, `${x.status} (${x.detail})`)))),
    h("h4", {}, `Routes (${map.routes.length})`), table("Routes", ["Method", "Path", "What it does"], map.routes.map((x) =>
      h("tr", {}, h("td", {}, x.method), h("td", {}, h("code", {}, x.path)), h("td", {}, x.doc)))));
}

export function developerView(ctx) {
  const { client } = ctx;
  const status = select(STATUSES.map((s) => [s, s || "any"]), "", { name: "status", "aria-label": "Status" });
  const operation = h("input", { type: "text", name: "operation_type", placeholder: "operation", "aria-label": "Operation" });
  const user = h("input", { type: "text", name: "user", placeholder: "user (operators)", "aria-label": "User" });
  const nodeType = h("input", { type: "text", name: "node_type", placeholder: "node class", "aria-label": "Node class" });
  const nodeId = h("input", { type: "text", name: "node_id", placeholder: "node id", "aria-label": "Node id" });
  const note = h("div", { class: "atelier-message" });
  const list = h("div", { class: "atelier-output" });
  const detail = h("div", { class: "atelier-output" });
  const map = h("div", { class: "atelier-output" });

  async function show(id) {
    try {
      replace(detail, drill(await client.devGeneration(id), ctx.showNode));
    } catch (error) {
      message(note, `Generation unavailable: ${error.message}`, "error");
    }
  }
  async function load() {
    try {
      const page = await client.devGenerations({ status: status.value, operation_type: operation.value.trim(),
                                                 user: user.value.trim(), node_type: nodeType.value.trim(),
                                                 node_id: nodeId.value.trim() });
      replace(list, table("Recent generations", ["Created", "User", "Operation", "Status", "Device time", "Cost", ""],
        page.items.map((r) => h("tr", { dataset: { record: r.id } }, h("td", {}, when(r.created_at)), h("td", {}, r.user),
          h("td", {}, r.operation_type), h("td", {}, r.status),
          h("td", {}, r.telemetry.device_s == null ? "–" : seconds(r.telemetry.device_s)),
          h("td", {}, r.telemetry.cost_usd == null ? "–" : money(r.telemetry.cost_usd)),
          h("td", {}, h("button", { type: "button", "aria-label": `Drill into ${r.id}`, onclick: () => show(r.id) }, "Open"))))));
      message(note, `${page.items.length} generation(s)${page.everyone ? ", everyone's" : ""}.`);
    } catch (error) {
      message(note, `Generations unavailable: ${error.message}`, "error");
    }
  }
  // a node of the workflow asked for its records (the canvas's "Atelier: records of this node")
  function forNode(detail) {
    nodeType.value = detail.class_type;
    nodeId.value = String(detail.id);
    globalThis.atelierNodeRecords = null;
  }
  if (globalThis.atelierNodeRecords) forNode(globalThis.atelierNodeRecords);
  globalThis.addEventListener?.("atelier:node-records", (event) => {
    forNode(event.detail);
    load();
  });
  client.appMap().then((m) => replace(map, appMap(m))).catch((error) => message(note, `App map unavailable: ${error.message}`, "error"));
  load();
  return h("section", { class: "atelier-view", "aria-label": "Developer" },
    h("div", { class: "atelier-actions" }, status, operation, user, nodeType, nodeId,
      h("button", { type: "button", onclick: load }, "Filter")),
    note, list, detail, h("h3", {}, "App map"), map);
}
