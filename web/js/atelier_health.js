// Atelier: health badges on Atelier's nodes. Each Atelier node shows a dot in its title bar: green (ok), amber
// (warning) or red (error), from the last validation (POST /atelier/graph/validate, whenever an Atelier node's
// inputs change) or the last run (ComfyUI's `executed` / `execution_error` events), whichever came last. Hovering
// the dot shows the reasons; a summary in the corner lists every node with a warning or an error (a click centres
// the node). Public frontend API only: app.registerExtension, app.graphToPrompt, api events.
import { app } from "../../../scripts/app.js";
import { api } from "../../../scripts/api.js";
import { client } from "./atelier_panel.js";

const COLORS = { ok: "#3fb950", warning: "#d29922", error: "#f85149" };
const RADIUS = 5;
const POLL_MS = 1500;
const health = new Map(); // node id (string) -> { status, reasons: [string], source: "validation" | "run" }
let lastSignature = "";
let validating = false;

function isAtelier(node) {
  return String(node?.type ?? node?.comfyClass ?? "").startsWith("Atelier");
}

function atelierNodes() {
  return (app.graph?._nodes ?? []).filter(isAtelier);
}

// What a validation depends on: the Atelier nodes' inputs and links (and the checkpoints feeding them).
function signature() {
  return JSON.stringify((app.graph?._nodes ?? []).filter((n) => isAtelier(n) || n.type === "CheckpointLoaderSimple")
    .map((n) => [n.id, (n.widgets ?? []).map((w) => w.value), n.mode, (n.inputs ?? []).map((i) => i.link)]));
}

function set(nodeId, status, reasons, source) {
  health.set(String(nodeId), { status, reasons, source });
  const node = app.graph?.getNodeById(Number(nodeId));
  if (node) node.atelierHealth = health.get(String(nodeId));
}

async function validate() {
  if (validating || !app.graph) return;
  const nodes = atelierNodes();
  if (!nodes.length) {
    health.clear();
    renderSummary();
    return;
  }
  validating = true;
  try {
    const { output } = await app.graphToPrompt();
    const report = await client.validateGraph(output);
    for (const node of nodes) {
      const entry = report.nodes[String(node.id)];
      if (!entry) continue; // not in the prompt (bypassed, muted)
      set(node.id, entry.status, entry.issues.map((i) => `${i.severity} ${i.code}: ${i.message}`), "validation");
    }
  } catch (error) {
    console.warn("Atelier: graph validation failed", error);
  } finally {
    validating = false;
    renderSummary();
    app.graph?.setDirtyCanvas(true, false);
  }
}

function poll() {
  const now = signature();
  if (now !== lastSignature) {
    lastSignature = now;
    validate();
  }
}

// --- the summary in the corner -----------------------------------------------------------------------------
let summary = null;

function renderSummary() {
  if (!summary) {
    summary = document.createElement("div");
    summary.id = "atelier-health-summary";
    summary.setAttribute("role", "status");
    summary.setAttribute("aria-label", "Atelier node health");
    Object.assign(summary.style, { position: "fixed", left: "12px", bottom: "56px", zIndex: 1000, maxWidth: "420px",
      font: "12px sans-serif", color: "#ddd", background: "rgba(20,20,20,0.85)", border: "1px solid #444",
      borderRadius: "6px", padding: "6px 8px", pointerEvents: "auto" });
    document.body.append(summary);
  }
  const entries = [...health.entries()].filter(([, h]) => h.status !== "ok");
  const count = (s) => entries.filter(([, h]) => h.status === s).length;
  summary.hidden = health.size === 0;
  summary.replaceChildren();
  const head = document.createElement("div");
  head.textContent = entries.length
    ? `Atelier health: ${count("error")} error(s), ${count("warning")} warning(s)`
    : `Atelier health: ${health.size} node(s) ok`;
  summary.append(head);
  for (const [id, h] of entries) {
    const node = app.graph?.getNodeById(Number(id));
    const line = document.createElement("button");
    line.type = "button";
    line.dataset.node = id;
    line.dataset.status = h.status;
    Object.assign(line.style, { display: "block", textAlign: "left", background: "none", border: "none",
      color: COLORS[h.status], cursor: "pointer", padding: "2px 0", font: "inherit" });
    const first = h.reasons[0] ?? h.status;
    line.textContent = `#${id} ${node?.title ?? "?"}: ${first.length > 140 ? `${first.slice(0, 139)}…` : first}`;
    line.title = h.reasons.join("\n");
    line.onclick = () => node && app.canvas?.centerOnNode?.(node);
    summary.append(line);
  }
}

// --- the badge on each node ------------------------------------------------------------------------------
function badgeCentre(node) {
  const title = globalThis.LiteGraph?.NODE_TITLE_HEIGHT ?? 30;
  return [node.size[0] - 12, -title / 2];
}

function decorate(nodeType) {
  const draw = nodeType.prototype.onDrawForeground;
  nodeType.prototype.onDrawForeground = function (ctx) {
    const out = draw?.apply(this, arguments);
    const h = health.get(String(this.id));
    if (h && !this.flags?.collapsed) {
      const [x, y] = badgeCentre(this);
      ctx.save();
      ctx.beginPath();
      ctx.arc(x, y, RADIUS, 0, Math.PI * 2);
      ctx.fillStyle = COLORS[h.status];
      ctx.fill();
      ctx.restore();
    }
    return out;
  };
  const menu = nodeType.prototype.getExtraMenuOptions;
  nodeType.prototype.getExtraMenuOptions = function (canvas, options) {
    const out = menu?.apply(this, arguments);
    options?.push({ content: "Atelier: records of this node", callback: () => showRecords(this) });
    return out;
  };
  const move = nodeType.prototype.onMouseMove;
  nodeType.prototype.onMouseMove = function (event, pos) {
    const out = move?.apply(this, arguments);
    const h = health.get(String(this.id));
    const canvas = app.canvas?.canvas;
    if (h && canvas && pos) {
      const [x, y] = badgeCentre(this);
      const over = Math.hypot(pos[0] - x, pos[1] - y) <= RADIUS + 3;
      if (over) canvas.title = `Atelier: ${h.status}\n${h.reasons.join("\n") || "no issue"}`;
      else if (canvas.title.startsWith("Atelier:")) canvas.title = "";
    }
    return out;
  };
}

// The records this node produced: the Atelier sidebar's Developer view, filtered by the node's class and id.
function showRecords(node) {
  const detail = { class_type: node.type, id: node.id };
  globalThis.atelierNodeRecords = detail; // read by a panel mounted from now on
  try {
    const tabs = app.extensionManager?.sidebarTab;
    if (tabs?.activeSidebarTabId !== "atelier") tabs?.toggleSidebarTab?.("atelier");
  } catch (error) {
    console.warn("Atelier: could not open the sidebar tab", error);
  }
  globalThis.dispatchEvent(new CustomEvent("atelier:node-records", { detail })); // and by one already there
}

app.registerExtension({
  name: "atelier.health",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (String(nodeData.name).startsWith("Atelier")) decorate(nodeType);
  },
  async setup() {
    api.addEventListener("execution_error", ({ detail }) => {
      if (detail?.node_id != null && health.has(String(detail.node_id))) {
        set(detail.node_id, "error", [`run: ${detail.exception_message ?? "failed"}`], "run");
        renderSummary();
        app.graph?.setDirtyCanvas(true, false);
      }
    });
    const ran = new Set(); // Atelier nodes that executed in the current run
    api.addEventListener("execution_start", () => ran.clear());
    api.addEventListener("executing", ({ detail }) => {
      const id = typeof detail === "object" && detail !== null ? detail.node : detail;
      if (id != null && health.has(String(id))) ran.add(String(id));
    });
    api.addEventListener("execution_success", () => {
      for (const id of ran) set(id, "ok", [`ran fine at ${new Date().toLocaleTimeString()}`], "run");
      ran.clear();
      renderSummary();
      app.graph?.setDirtyCanvas(true, false);
    });
    setInterval(poll, POLL_MS);
  },
});
