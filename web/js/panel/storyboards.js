// Atelier panel: storyboard viewer — saved storyboards, each clip's start and end frames in order with
// the kept variation's score, every attempt's scores, warnings and failed clips (GET /atelier/storyboards…).
import { h, message, replace, when } from "./dom.js";

function score(value) {
  return value === null || value === undefined ? "–" : Number(value).toFixed(1);
}

function frameCard(ctx, board, frame) {
  const failed = frame.status === "failed";
  const attempts = frame.attempts.map((a, i) => h("li", {},
    `attempt ${i + 1} (seed ${a.seed}): `,
    a.scores.map((s, j) => h("span", { class: j === frame.chosen && i === frame.attempts.length - 1 && !failed
      ? "atelier-chosen" : "" }, `${score(s)} `)),
    a.error ? h("span", { class: "atelier-error" }, a.error) : null));
  return h("figure", { class: `atelier-frame${failed ? " atelier-failed" : ""}`, dataset: { frame: frame.name } },
    frame.file
      ? h("img", { src: ctx.client.storyboardFile(board.id, frame.file), loading: "lazy",
                   alt: `${frame.name}: ${frame.prompt}` })
      : h("div", { class: "atelier-missing", role: "img", "aria-label": `${frame.name}: no image` }, "no image"),
    h("figcaption", {},
      h("strong", {}, `${frame.role} · ${failed ? "failed" : `score ${score(frame.best_score)}`}`),
      h("div", { class: "atelier-sub" }, `from ${frame.sources.join(" + ") || "text"}`),
      failed && frame.error ? h("div", { class: "atelier-error", role: "note" }, frame.error) : null,
      frame.warnings.map((w) => h("div", { class: "atelier-warning" }, w)),
      h("details", {}, h("summary", {}, `${frame.attempts.length} attempt(s), prompt`),
        h("p", {}, frame.prompt), h("ol", { class: "atelier-attempts" }, attempts))));
}

function boardView(ctx, board) {
  const clips = new Map();
  for (const frame of board.frames) {
    if (!clips.has(frame.clip)) clips.set(frame.clip, []);
    clips.get(frame.clip).push(frame);
  }
  const failed = new Set(board.failed_clips);
  return h("article", { class: "atelier-storyboard", "aria-label": `Storyboard ${board.id}`,
                        "data-testid": "storyboard" },
    h("h3", {}, `${board.id} · ${board.status}`),
    h("p", { class: "atelier-sub" }, `${when(board.created_at)} · tier ${board.tier || "–"} · `
      + `${board.frames.filter((f) => f.status !== "failed").length}/${board.frames.length} frames kept`),
    failed.size ? h("p", { class: "atelier-error", role: "note" },
      `Failed clips: ${[...failed].join(", ")} (the storyboard went on without them)`) : null,
    h("ol", { class: "atelier-clips" }, [...clips].map(([number, frames]) => {
      const clip = board.clips[number - 1] ?? {};
      return h("li", { class: failed.has(number) ? "atelier-failed" : "", dataset: { clip: number } },
        h("h4", {}, `Clip ${number}${clip.name ? `: ${clip.name}` : ""}`),
        h("div", { class: "atelier-frames" }, frames.map((f) => frameCard(ctx, board, f))));
    })),
    board.warnings.length ? h("details", {}, h("summary", {}, `${board.warnings.length} warning(s)`),
      h("ul", {}, board.warnings.map((w) => h("li", {}, w)))) : null);
}

export function storyboardsView(ctx) {
  const { client } = ctx;
  const list = h("ul", { class: "atelier-list", "aria-label": "Storyboards" });
  const status = h("div", { class: "atelier-message" });
  const viewer = h("div", { class: "atelier-output" });
  const refresh = h("button", { type: "button", onclick: () => load() }, "Refresh");

  async function open(id) {
    try {
      replace(viewer, boardView(ctx, await client.storyboard(id)));
      for (const b of list.querySelectorAll("button")) b.setAttribute("aria-pressed", String(b.dataset.id === id));
    } catch (error) {
      message(status, `Storyboard unavailable: ${error.message}`, "error");
    }
  }

  async function load() {
    try {
      const { storyboards } = await client.storyboards();
      replace(list, storyboards.map((s) => h("li", {}, h("button", {
        type: "button", class: "atelier-link", dataset: { id: s.id }, "aria-pressed": "false", onclick: () => open(s.id),
      }, `${s.id}`, h("span", { class: "atelier-sub" }, ` ${s.status} · ${s.kept}/${s.frames} frames`
        + (s.failed_clips.length ? ` · failed clips ${s.failed_clips.join(", ")}` : ""))))));
      message(status, storyboards.length ? `${storyboards.length} storyboard(s)` : "No storyboards saved yet.");
    } catch (error) {
      message(status, `Storyboards unavailable: ${error.message}`, "error");
    }
  }
  load();
  return h("section", { class: "atelier-view", "aria-label": "Storyboards" }, refresh, status, list, viewer);
}
