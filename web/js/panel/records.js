// Atelier panel: generation records — filters, pages, details (parameters, reproducibility hash,
// timings, outputs) and feedback stars (GET/POST /atelier/generations…).
import { field, h, message, replace, select, seconds, when } from "./dom.js";

const STATUSES = ["", "pending", "queued", "running", "completed", "failed", "cancelled"];

// Five stars as a radio group: arrows move, Enter/Space or a click chooses.
function stars(initial, onChoose) {
  let value = initial;
  const group = h("div", { role: "radiogroup", "aria-label": "Rating", class: "atelier-stars" });
  const buttons = [1, 2, 3, 4, 5].map((n) => h("button", {
    type: "button", role: "radio", "aria-label": `${n} star${n > 1 ? "s" : ""}`, dataset: { rating: n },
    onclick: () => choose(n),
    onkeydown: (event) => {
      const step = { ArrowRight: 1, ArrowUp: 1, ArrowLeft: -1, ArrowDown: -1 }[event.key];
      if (!step) return;
      event.preventDefault();
      const next = Math.min(5, Math.max(1, (value || 0) + step));
      choose(next);
      buttons[next - 1].focus();
    },
  }, "★"));
  function paint() {
    buttons.forEach((b, i) => {
      b.setAttribute("aria-checked", String(i + 1 === value));
      b.tabIndex = (value ? i + 1 === value : i === 0) ? 0 : -1;
      b.classList.toggle("atelier-on", i < (value || 0));
    });
  }
  function choose(n) {
    value = n;
    paint();
    onChoose(n);
  }
  paint();
  group.append(...buttons);
  return group;
}

const fixed = (x, digits = 3) => (typeof x === "number" ? x.toFixed(digits) : "–");

// The prompt as given and as it ran, the added words marked <ins>, the removed ones <del>.
function promptDiff(prompt) {
  return h("section", { "aria-label": "Prompt" }, h("h4", {}, "Prompt"),
    prompt.changed_by ? h("p", { class: "atelier-sub" }, `changed by ${prompt.changed_by}`) : h("p", {}, "used as given"),
    h("dl", {}, h("dt", {}, "Given"), h("dd", {}, prompt.given), h("dt", {}, "Ran"), h("dd", {}, prompt.used)),
    prompt.added.length || prompt.removed.length ? h("p", { "data-testid": "prompt-diff" },
      prompt.added.map((w) => [h("ins", {}, `+ ${w}`), " "]), prompt.removed.map((w) => [h("del", {}, `− ${w}`), " "]))
      : null);
}

function planSection(plan) {
  const p = plan.parameters ?? {};
  const rows = Object.entries(p).map(([k, v]) => [h("dt", {}, k), h("dd", {}, String(v))]);
  const timing = [plan.estimated_s != null ? `estimated ~${seconds(plan.estimated_s)}` : null,
                  plan.measured_s != null ? `measured ${seconds(plan.measured_s)}` : null].filter(Boolean);
  return h("section", { "aria-label": "Plan" },
    h("h4", {}, `Plan (${plan.source}${plan.mode ? `, ${plan.mode}` : ""})`),
    rows.length ? h("dl", {}, rows) : null,
    plan.stages?.length ? h("ul", { class: "atelier-list" }, plan.stages.map((s) => h("li", {},
      `${s.id}: ${s.runs} run(s), ${s.passes.join(" → ")}${s.expected_s != null ? `, ~${seconds(s.expected_s)}` : ""}`)))
      : null,
    timing.length ? h("p", {}, timing.join(" · ")) : null,
    plan.reasons.length ? h("ul", { "aria-label": "Why these parameters" }, plan.reasons.map((r) => h("li", {}, r))) : null,
    plan.cuts.length ? h("ul", { "aria-label": "Cut to fit the budget" }, plan.cuts.map((c) => h("li", {}, c))) : null,
    plan.differences.length ? h("ul", { "aria-label": "Where you differed" },
      plan.differences.map((d) => h("li", {}, `you chose ${d}`))) : null);
}

function lorasSection(loras) {
  return h("section", { "aria-label": "LoRAs" }, h("h4", {}, "LoRAs"),
    loras.used.length ? h("ul", { "aria-label": "LoRAs used" }, loras.used.map((l) => h("li", {},
      h("code", {}, l.name), ` @${l.strength} — ${l.reason ?? ""}`,
      l.report ? h("span", { class: l.warning ? "atelier-warning" : "atelier-sub" }, ` [${l.report}]`) : null)))
      : h("p", {}, "No LoRA used."),
    loras.left_out.length ? h("details", {}, h("summary", {}, `Left out (${loras.left_out.length})`),
      h("ul", { "aria-label": "LoRAs left out" }, loras.left_out.map((l) => h("li", {}, h("code", {}, l.name),
        `: ${l.reason}`)))) : null);
}

function variationsSection(variations) {
  const metricNames = [...new Set(variations.items.flatMap((v) => Object.keys(v.metrics)))];
  return h("section", { "aria-label": "Variations" },
    h("h4", {}, `Variations (${variations.count}); chosen #${variations.chosen}`),
    h("table", { class: "atelier-table", "aria-label": "Variation scores" },
      h("thead", {}, h("tr", {}, ["#", "Overall", "Rank", ...metricNames].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, variations.items.map((v) => h("tr", { class: v.index === variations.chosen ? "atelier-chosen" : "",
                                                          dataset: { variation: v.index } },
        h("td", {}, v.index), h("td", {}, fixed(v.overall)), h("td", {}, v.rank ?? "–"),
        metricNames.map((m) => h("td", {}, fixed(v.metrics[m]))))))));
}

function ratingSection(rating) {
  const line = rating.requested
    ? `asked ${rating.requested}, applied ${rating.applied}` : `applied ${rating.applied}`;
  return h("section", { "aria-label": "Content rating" }, h("h4", {}, "Content rating"),
    h("p", { "data-testid": "rating-clamp", class: rating.clamped ? "atelier-warning" : "" },
      `${line}; the ${rating.band} band allows ${rating.band_rating}`,
      rating.clamped_by.length ? `, lowered to ${rating.ceiling} by the ${rating.clamped_by.join(" and ")} maximum` : "",
      ` (${rating.tier}${rating.npc ? ` with ${rating.npc}` : ""}, world ${rating.world})`));
}

// "Why this image": every decision behind the record (GET /atelier/generations/{id}/why).
function whyCard(ctx, card) {
  const hash = card.hash;
  return h("div", { class: "atelier-why", "data-testid": "why" },
    card.summary ? h("p", {}, card.summary) : null,
    card.images?.length ? h("div", { class: "atelier-thumbs" }, card.images.map((name) => {
      const src = ctx.client.outputImage(name);
      return src ? h("img", { src, alt: name, width: 96, height: 96, loading: "lazy" }) : null;
    })) : null,
    card.plan ? planSection(card.plan) : null,
    card.loras ? lorasSection(card.loras) : null,
    card.prompt ? promptDiff(card.prompt) : null,
    card.variations ? variationsSection(card.variations) : null,
    card.rating ? ratingSection(card.rating) : null,
    h("section", { "aria-label": "Reproducibility" }, h("h4", {}, "Reproducibility"),
      h("p", {}, hash.identical_count ? `${hash.identical_count} identical earlier run(s) of yours: ` +
        hash.identical_earlier.slice(0, 3).join(", ") : "No identical earlier run of yours.")));
}

function whySection(ctx, record) {
  const body = h("div", {}, h("p", { class: "atelier-sub" }, "loading…"));
  ctx.client.why(record.id).then((card) => replace(body, whyCard(ctx, card)))
    .catch((error) => replace(body, h("p", { class: "atelier-error", role: "alert" }, `Unavailable: ${error.message}`)));
  return h("details", { open: true }, h("summary", {}, "Why this image"), body);
}

function diffSection(diff) {
  const sections = ["parameters", "prompt", "prompt_versions", "models", "seeds", "graph", "outputs"];
  return h("section", { class: "atelier-diff", "data-testid": "record-diff", "aria-label": "Comparison" },
    h("h4", {}, `${diff.a.slice(0, 12)} vs ${diff.b.slice(0, 12)}: ${diff.same_hash ? "the same hash" : "different hashes"}`),
    sections.map((name) => h("div", { dataset: { section: name } }, h("strong", {}, `${name}: `),
      diff[name].length ? h("pre", {}, diff[name].join("\n")) : "same")));
}

// `tools`: the view's comparison pin (`pinned()`, `pin(id)`) and what to do with a replay (`replayed(record)`)
function details(ctx, record, onChanged, notice, tools) {
  const { client } = ctx;
  const status = h("div", { class: "atelier-message" });
  if (notice) message(status, notice);
  const comment = h("input", { type: "text", name: "comment", maxlength: 2000, placeholder: "optional" });
  let rating = record.feedback?.at(-1)?.rating ?? 0;
  const submit = h("button", { type: "submit", class: "atelier-primary", disabled: !rating }, "Send feedback");
  const starGroup = stars(rating, (n) => { rating = n; submit.disabled = false; });
  const copy = h("button", { type: "button", "aria-label": "Copy the reproducibility hash", onclick: async () => {
    try {
      await navigator.clipboard.writeText(record.repro_hash);
      message(status, "Hash copied.");
    } catch {
      message(status, `Hash: ${record.repro_hash}`);
    }
  } }, "Copy");
  const duration = record.started_at && record.finished_at ? seconds(record.finished_at - record.started_at) : "–";
  const feedbackList = (record.feedback ?? []).map((f) => h("li", {},
    `${"★".repeat(f.rating)}${"☆".repeat(5 - f.rating)} ${f.comment || ""} (${when(f.created_at)})`));

  return h("article", { class: "atelier-details", "aria-label": `Record ${record.id}`, "data-testid": "record-details",
                        tabindex: -1 },
    h("h3", {}, `${record.operation_type} · ${record.status}`),
    h("dl", {},
      h("dt", {}, "Id"), h("dd", {}, record.id),
      h("dt", {}, "Reproducibility hash"), h("dd", {}, h("code", { "data-testid": "repro-hash" }, record.repro_hash),
                                            " ", copy),
      h("dt", {}, "Prompt"), h("dd", {}, record.prompt_text || "–"),
      h("dt", {}, "Workspace / user"), h("dd", {}, `${record.workspace} / ${record.user}`),
      h("dt", {}, "Created"), h("dd", {}, when(record.created_at)),
      h("dt", {}, "Ran for"), h("dd", {}, duration),
      h("dt", {}, "ComfyUI prompt"), h("dd", {}, record.comfy_prompt_id ?? "–"),
      record.error ? [h("dt", {}, "Error"), h("dd", { class: "atelier-error" }, record.error)] : null),
    whySection(ctx, record),
    h("details", {}, h("summary", {}, "Parameters"), h("pre", {}, JSON.stringify(record.parameters, null, 2))),
    Object.keys(record.outputs ?? {}).length
      ? h("details", {}, h("summary", {}, "Outputs"), h("pre", {}, JSON.stringify(record.outputs, null, 2))) : null,
    Object.keys(record.scores ?? {}).length
      ? h("details", {}, h("summary", {}, "Scores"), h("pre", {}, JSON.stringify(record.scores, null, 2))) : null,
    h("form", { class: "atelier-form", onsubmit: async (event) => {
      event.preventDefault();
      try {
        const updated = await client.feedback(record.id, rating, comment.value);
        onChanged(updated, `Thanks: rated ${rating}/5.`);
      } catch (error) {
        message(status, `Feedback not saved: ${error.message}`, "error");
      }
    } },
      h("div", { class: "atelier-field" }, h("span", { class: "atelier-label" }, "Your rating"), starGroup),
      field("Comment", comment), h("div", { class: "atelier-actions" }, submit)),
    feedbackList.length ? h("ul", { class: "atelier-feedback", "aria-label": "Feedback given" }, feedbackList) : null,
    record.parameters?.batch?.batch_id ? h("div", { class: "atelier-actions" },
      h("button", { type: "button", onclick: async () => {
        try {
          await client.keep(record.id);
          message(status, `Kept: learning takes image ${record.parameters.batch.index + 1} of its batch of ` +
            `${record.parameters.batch.size} over the others.`);
        } catch (error) {
          message(status, `Not kept: ${error.message}`, "error");
        }
      } }, "I kept this one")) : null,
    h("div", { class: "atelier-actions" },
      h("button", { type: "button", "aria-label": `Replay record ${record.id}`, onclick: async () => {
        try {
          tools.replayed(await client.replay(record.id));
        } catch (error) {
          message(status, `Not replayed: ${error.message}`, "error");
        }
      } }, "Run again (replay)"),
      h("button", { type: "button", onclick: () => {
        tools.pin(record.id);
        message(status, "Pinned: open another record to compare it with this one.");
      } }, "Pin for comparison"),
      tools.pinned() && tools.pinned() !== record.id ? h("button", { type: "button", onclick: async () => {
        try {
          status.after(diffSection(await client.diff(tools.pinned(), record.id)));
        } catch (error) {
          message(status, `Comparison unavailable: ${error.message}`, "error");
        }
      } }, `Compare with ${tools.pinned().slice(0, 12)}`) : null),
    status);
}

export function recordsView(ctx) {
  const { client } = ctx;
  const statusFilter = select(STATUSES.map((s) => [s, s || "any"]), "", { name: "status" });
  const operation = h("input", { type: "text", name: "operation_type", placeholder: "any" });
  const workspace = h("input", { type: "text", name: "workspace", placeholder: "any" });
  const tbody = h("tbody");
  const more = h("button", { type: "button", hidden: true }, "Load more");
  const status = h("div", { class: "atelier-message" });
  const detail = h("div", { class: "atelier-output" });
  let cursor = null;
  let pinned = null;
  const tools = {
    pinned: () => pinned,
    pin: (id) => { pinned = id; },
    replayed: (again) => show(again.id, `Replayed as ${again.id.slice(0, 12)}: ${again.same_hash ? "the same hash" : "a different hash"}.`),
  };

  function filters() {
    return { status: statusFilter.value, operation_type: operation.value.trim(), workspace: workspace.value.trim() };
  }

  async function show(id, notice) {
    try {
      const render = (record, note) => {
        replace(detail, details(ctx, record, render, note, tools));
        detail.firstChild.focus();
      };
      render(await client.record(id), notice);
    } catch (error) {
      message(status, `Record unavailable: ${error.message}`, "error");
    }
  }

  function row(record) {
    const open = h("button", { type: "button", class: "atelier-link", onclick: () => show(record.id),
                               "aria-label": `Open record ${record.operation_type} ${record.id}` },
      record.prompt_text ? record.prompt_text.slice(0, 60) : record.id.slice(0, 12));
    return h("tr", { dataset: { record: record.id } }, h("td", {}, when(record.created_at)),
      h("td", {}, record.operation_type), h("td", { class: `atelier-status-${record.status}` }, record.status),
      h("td", {}, open));
  }

  async function load(append = false) {
    try {
      const page = await client.records(filters(), append ? cursor : undefined);
      if (!append) tbody.replaceChildren();
      tbody.append(...page.items.map(row));
      cursor = page.next_cursor;
      more.hidden = !cursor;
      message(status, tbody.children.length ? `${tbody.children.length} record(s)` : "No records match.");
    } catch (error) {
      message(status, `Records unavailable: ${error.message}`, "error");
    }
  }
  more.addEventListener("click", () => load(true));
  load();

  return h("section", { class: "atelier-view", "aria-label": "Generation records" },
    h("form", { class: "atelier-form", onsubmit: (e) => { e.preventDefault(); load(); } },
      h("div", { class: "atelier-grid" }, field("Status", statusFilter), field("Operation", operation),
        field("Workspace", workspace)),
      h("div", { class: "atelier-actions" }, h("button", { type: "submit", class: "atelier-primary" }, "Filter"))),
    status,
    h("div", { class: "atelier-scroll" }, h("table", { class: "atelier-table", "aria-label": "Records" },
      h("thead", {}, h("tr", {}, ["Created", "Operation", "Status", "Prompt"].map((t) => h("th", { scope: "col" }, t)))),
      tbody)),
    more, detail);
}
