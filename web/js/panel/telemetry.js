// Atelier panel: telemetry (GET /atelier/telemetry, /atelier/telemetry/providers): device time and cost per tier
// per day and the best-score distribution per tier as bar charts (SVG, each bar titled with its numbers), totals
// per day and workspace, and each LLM endpoint's health (success rate, p50/p95 latency, last error, circuit).
import { h, message, money, replace, seconds } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  el.append(...children.flat().filter((c) => c != null));
  return el;
}

// bars: [{label, value, title}] → a horizontal bar chart, labelled, scaled to the largest value
function barChart(label, bars, format) {
  const width = 520, row = 20, left = 170;
  const top = Math.max(...bars.map((b) => b.value), 0) || 1;
  const chart = svg("svg", { width, height: row * bars.length + 8, role: "img", "aria-label": label },
    bars.map((b, i) => svg("g", { "data-bar": b.label },
      svg("title", {}, b.title ?? `${b.label}: ${format(b.value)}`),
      svg("text", { x: 0, y: i * row + 14, fill: "currentColor", "font-size": 12 }, b.label),
      svg("rect", { x: left, y: i * row + 3, height: row - 6, width: Math.max(1, (width - left - 90) * b.value / top),
                    fill: "#4c8bf5" }),
      svg("text", { x: width - 85, y: i * row + 14, fill: "currentColor", "font-size": 12 }, format(b.value)))));
  return h("figure", { class: "atelier-chart" }, h("figcaption", {}, label), chart);
}

function providersTable(providers) {
  return h("table", { class: "atelier-table", "aria-label": "LLM providers" },
    h("thead", {}, h("tr", {}, ["Endpoint", "Calls", "Success", "p50", "p95", "Circuit", "Last error"]
      .map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, providers.map((p) => h("tr", { dataset: { endpoint: p.endpoint, circuit: p.circuit } },
      h("td", {}, h("code", {}, p.endpoint)), h("td", {}, String(p.calls)),
      h("td", {}, p.success_rate == null ? "–" : `${Math.round(p.success_rate * 100)}%`),
      h("td", {}, p.p50_ms == null ? "–" : `${Math.round(p.p50_ms)} ms`),
      h("td", {}, p.p95_ms == null ? "–" : `${Math.round(p.p95_ms)} ms`),
      h("td", {}, p.circuit === "open" ? `open (${seconds(p.circuit_open_s)})` : "closed"),
      h("td", {}, p.last_error ?? "–")))));
}

// rows: [[key, totals]] → runs, device time, cost and the LLM calls (count, failures, tokens, mean latency)
function totalsTable(label, keyName, rows) {
  return h("table", { class: "atelier-table", "aria-label": label },
    h("thead", {}, h("tr", {}, [keyName, "Runs", "Device time", "Cost", "LLM calls", "Tokens", "LLM latency"]
      .map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows.map(([key, d]) => h("tr", { dataset: { key } }, h("td", {}, key),
      h("td", {}, String(d.runs)), h("td", {}, seconds(d.device_s)), h("td", {}, money(d.cost_usd)),
      h("td", {}, `${d.llm_calls}${d.llm_failures ? ` (${d.llm_failures} failed)` : ""}`),
      h("td", {}, String(d.llm_tokens)),
      h("td", {}, d.llm_mean_latency_ms == null ? "–" : `${Math.round(d.llm_mean_latency_ms)} ms`)))));
}

export function telemetryView(ctx) {
  const { client } = ctx;
  const status = h("div", { class: "atelier-message" });
  const body = h("div", { class: "atelier-output", "data-testid": "telemetry" });
  async function load() {
    try {
      const [view, health] = await Promise.all([client.telemetry(), client.providers()]);
      const series = view.tiers.map((t) => ({ label: `${t.day} ${t.tier}`, time: t.device_s, cost: t.cost_usd, runs: t.runs }));
      const scores = Object.entries(view.scores);
      replace(body,
        series.length ? [
          barChart("Device time per tier per day", series.map((s) => ({ label: s.label, value: s.time,
            title: `${s.label}: ${seconds(s.time)} over ${s.runs} run(s)` })), seconds),
          barChart("Cost per tier per day", series.map((s) => ({ label: s.label, value: s.cost })), money),
        ] : h("p", {}, "No completed run yet."),
        scores.map(([tier, dist]) => barChart(`Best scores at ${tier} (${dist.runs} runs, mean ${dist.mean})`,
          dist.counts.map((n, i) => ({ label: `${dist.buckets[i]}–${dist.buckets[i + 1]}`, value: n })), (n) => String(n))),
        h("h4", {}, "Per day"),
        totalsTable("Totals per day", "Day", view.days.map((d) => [d.day, d])),
        h("h4", {}, "Per workspace"),
        totalsTable("Totals per workspace", "Workspace", view.workspaces.map((w) => [w.workspace, w])),
        h("h4", {}, "LLM providers"),
        health.providers.length ? providersTable(health.providers) : h("p", {}, "No LLM call yet."));
      message(status, `${view.days.length} day(s); cost at ${money(view.rates.default_usd_per_hour)} an hour unless the device is named in presets/telemetry.yaml.`);
    } catch (error) {
      message(status, `Telemetry unavailable: ${error.message}`, "error");
    }
  }
  load();
  return h("section", { class: "atelier-view", "aria-label": "Telemetry" },
    h("div", { class: "atelier-actions" }, h("button", { type: "button", onclick: load }, "Refresh")), status, body);
}
