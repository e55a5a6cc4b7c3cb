// Atelier panel: scale-out (GET /atelier/workers, GET /atelier/jobs): every worker with its ComfyUI, state,
// last heartbeat, current job, jobs done and failures; the queue's counts; and your jobs with their worker,
// attempts and progress, each open one with a Cancel button (its worker interrupts it in its ComfyUI).
import { h, message, replace, seconds, when } from "./dom.js";

const OPEN = new Set(["queued", "running"]);

function workersTable(workers) {
  return h("table", { class: "atelier-table", "aria-label": "Workers" },
    h("thead", {}, h("tr", {}, ["Worker", "State", "ComfyUI", "Heartbeat", "Current job", "Done", "Failed"]
      .map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, workers.map((w) => h("tr", { dataset: { worker: w.name, state: w.state }, title: w.message || "" },
      h("td", {}, w.name), h("td", {}, w.state), h("td", {}, h("code", {}, w.comfy_url)),
      h("td", {}, `${seconds(w.seconds_since_heartbeat)} ago`), h("td", {}, w.current_job ? h("code", {}, w.current_job) : "–"),
      h("td", {}, String(w.jobs_done)), h("td", {}, String(w.failures))))));
}

function jobsTable(jobs, cancel) {
  return h("table", { class: "atelier-table", "aria-label": "Your jobs" },
    h("thead", {}, h("tr", {}, ["Job (record)", "Group", "State", "Worker", "Tries", "Progress", "Queued", "Took", ""]
      .map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, jobs.map((j) => h("tr", { dataset: { job: j.id, state: j.state }, title: j.error || "" },
      h("td", {}, h("code", {}, j.id.slice(0, 12))), h("td", {}, j.group_id ? `${j.group_id.slice(0, 8)} #${j.position}` : "–"),
      h("td", {}, j.state), h("td", {}, j.worker ?? "–"), h("td", {}, String(j.attempts)),
      h("td", {}, j.progress == null ? "–" : `${Math.round(j.progress * 100)}%`), h("td", {}, when(j.enqueued_at)),
      h("td", {}, j.started_at && j.finished_at ? seconds(j.finished_at - j.started_at) : "–"),
      h("td", {}, OPEN.has(j.state) ? h("button", { type: "button", "aria-label": `Cancel job ${j.id}`,
        onclick: () => cancel(j.id) }, "Cancel") : "")))));
}

export function workersView(ctx) {
  const { client } = ctx;
  const status = h("div", { class: "atelier-message" });
  const body = h("div", { class: "atelier-output", "data-testid": "workers" });
  // `note`: what to say once loaded (after a cancel), instead of how many workers take jobs
  async function load(note) {
    try {
      const [view, mine] = await Promise.all([client.workers(), client.jobs()]);
      if (!view.available) {
        replace(body, h("p", {}, `No job queue on this server: ${view.why}`));
        message(status, "Scale-out runs many ComfyUI workers behind a job queue in PostgreSQL (README: Many GPUs).");
        return;
      }
      const queue = Object.entries(view.queue).map(([k, v]) => `${k} ${v}`).join(", ") || "empty";
      replace(body,
        h("h4", {}, "Workers"), view.workers.length ? workersTable(view.workers) : h("p", {}, "No worker has started yet."),
        h("p", { "aria-label": "Queue" }, `Queue: ${queue}. A worker silent for ${seconds(view.stale_after_s)} is lost; its jobs run elsewhere.`),
        h("h4", {}, "Your jobs"), mine.jobs.length ? jobsTable(mine.jobs, cancel) : h("p", {}, "No job yet."));
      message(status, note ?? `${view.workers.filter((w) => w.state === "ready").length} of ${view.workers.length} worker(s) taking jobs.`);
    } catch (error) {
      message(status, `Workers unavailable: ${error.message}`, "error");
    }
  }
  async function cancel(id) {
    try {
      await client.cancelJob(id);
    } catch (error) {
      message(status, `Cancel failed: ${error.message}`, "error");
      return;
    }
    await load(`Job ${id.slice(0, 12)} cancelled.`);
  }
  load();
  const refresh = h("button", { type: "button", onclick: () => load() }, "Refresh");
  return h("section", { class: "atelier-view", "aria-label": "Workers and jobs" }, h("div", { class: "atelier-actions" }, refresh), status, body);
}
