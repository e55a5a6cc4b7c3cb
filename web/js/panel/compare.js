// Atelier panel: tier comparison — parameters and estimates of several presets side by side, with
// each one's difference from standard (POST /atelier/compare), the pipeline summary per tier, and what each
// tier measured on the user's own runs.
import { field, gigabytes, h, message, money, replace, select, seconds } from "./dom.js";

const ROWS = [
  ["Steps", (c) => c.parameters.steps],
  ["CFG", (c) => c.parameters.cfg],
  ["Sampler", (c) => `${c.parameters.sampler_name} / ${c.parameters.scheduler}`],
  ["Size", (c) => `${c.parameters.width}×${c.parameters.height}`],
  ["Hires fix", (c) => (c.parameters.hires_enabled ? `${c.parameters.hires_width}×${c.parameters.hires_height}, `
    + `${c.parameters.hires_steps} steps` : "off")],
  ["Time (expected)", (c) => seconds(c.estimate.time_s.expected)],
  ["Time (range)", (c) => `${seconds(c.estimate.time_s.min)}–${seconds(c.estimate.time_s.max)}`],
  ["VRAM", (c) => gigabytes(c.estimate.vram_gb)],
  ["Cost", (c) => money(c.estimate.cost_usd)],
  ["vs standard", (c) => c.vs_standard.summary],
];

export function comparisonTable(result) {
  const columns = result.presets;
  return h("table", { class: "atelier-table atelier-compare", "aria-label": "Tier comparison" },
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Parameter"),
      columns.map((c) => h("th", { scope: "col", dataset: { preset: c.preset.id } }, c.preset.display_name)))),
    h("tbody", {}, ROWS.map(([label, value]) => h("tr", {}, h("th", { scope: "row" }, label),
      columns.map((c) => h("td", {}, String(value(c))))))),
    h("caption", {}, `Model family ${columns[0]?.family.family ?? "?"} (${columns[0]?.family.source ?? ""}); `
      + "estimates learn from finished runs"));
}

// Stages, the workflow each uses, time per stage and in total, for one pipeline at one tier.
// `compact` (on a node): stage, workflow and expected time only.
export function pipelineTable(plan, compact = false) {
  const range = (t) => `${seconds(t.min)}–${seconds(t.max)}`;
  const columns = compact ? ["Stage", "Workflow", "Expected"] : ["Stage", "Workflow", "Expected", "Range", "VRAM"];
  return h("table", { class: "atelier-table atelier-pipeline", "aria-label": `${plan.pipeline} at ${plan.tier}` },
    h("thead", {}, h("tr", {}, columns.map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, plan.stages.map((s) => h("tr", { dataset: { stage: s.id } },
      h("th", { scope: "row" }, s.id, compact ? null : h("div", { class: "atelier-sub" }, s.task_type)),
      h("td", {}, s.workflow),
      h("td", {}, seconds(s.estimate.time_s.expected)),
      compact ? null : [h("td", {}, range(s.estimate.time_s)), h("td", {}, gigabytes(s.estimate.vram_gb))]))),
    h("tfoot", {}, h("tr", {}, h("th", { scope: "row" }, "Total"), h("td", {}, plan.preset.display_name),
      h("td", {}, seconds(plan.totals.time_s.expected)),
      compact ? null : [h("td", {}, range(plan.totals.time_s)),
        h("td", {}, `${gigabytes(plan.totals.vram_gb)} peak · ${money(plan.totals.cost_usd)}`)])));
}

// What each tier is worth here, from the user's own runs (GET /atelier/generations/tiers): per checkpoint and
// tier the runs, median time and mean best score as bars, the latest images (inside ComfyUI), and each tier
// against the reference ("ultra costs 5.6x standard's time for +3.0 points here").
export function tierValueChart(result, client) {
  if (!result.checkpoints.length) {
    return h("p", { class: "atelier-hint" }, "No finished runs with a tier yet: run a batch or a pipeline at a few "
      + "tiers and their measured time and score show here.");
  }
  return result.checkpoints.map((c) => {
    const slowest = Math.max(...c.tiers.map((t) => t.median_time_s ?? 0), 0.001);
    const bar = (value, max, label) => h("div", { class: "atelier-bar", role: "img", "aria-label": label },
      h("span", { style: `width:${Math.round(100 * (value ?? 0) / max)}%` }), ` ${label}`);
    return h("table", { class: "atelier-table atelier-value", "aria-label": `Tier value for ${c.checkpoint}`,
                        dataset: { checkpoint: c.checkpoint } },
      h("caption", {}, `${c.checkpoint}: ${c.summary.join("; ") || `no ${result.reference} runs to compare with`}`),
      h("thead", {}, h("tr", {}, ["Tier", "Runs", "Median time", "Mean best score", "vs " + result.reference,
        "Latest images"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, c.tiers.map((t) => h("tr", { dataset: { tier: t.tier } },
        h("th", { scope: "row" }, t.tier),
        h("td", {}, String(t.runs)),
        h("td", {}, bar(t.median_time_s, slowest, t.median_time_s == null ? "–" : seconds(t.median_time_s))),
        h("td", {}, bar(t.mean_score, 100, t.mean_score == null ? "–" : t.mean_score.toFixed(1))),
        h("td", {}, t.against_reference ?? (t.tier === result.reference ? "reference" : "–")),
        h("td", { class: "atelier-thumbs" }, t.images.map((name) => {
          const src = client.outputImage(name);
          return src ? h("img", { src, alt: `${t.tier}: ${name}`, loading: "lazy", width: 64 })
            : h("span", { class: "atelier-sub" }, name);
        }))))));
  });
}

export function compareView(ctx) {
  const { client } = ctx;
  const boxes = h("fieldset", { class: "atelier-checks" }, h("legend", {}, "Presets to compare"));
  const family = select([["auto", "auto (SD1.5)"]], "auto", { name: "model_family" });
  const width = h("input", { type: "number", name: "width", min: 0, step: 8, value: 0 });
  const height = h("input", { type: "number", name: "height", min: 0, step: 8, value: 0 });
  const output = h("div", { class: "atelier-output", "aria-live": "polite", "data-testid": "comparison" });
  const status = h("div", { class: "atelier-message" });

  const value = h("div", { class: "atelier-output", "aria-live": "polite", "data-testid": "tier-value" });
  const prompt = h("input", { type: "text", name: "prompt", value: "a lighthouse on a cliff at dusk" });
  const checkpoint = h("input", { type: "text", name: "checkpoint", placeholder: "a checkpoint in models/checkpoints" });
  const render = h("div", { class: "atelier-output", "aria-live": "polite", "data-testid": "render" });

  // The four tiers rendered for this prompt and checkpoint (the comparison workflow, queued on ComfyUI; the same
  // request again shows the earlier render).
  async function renderComparison(event) {
    event?.preventDefault();
    try {
      let job = await client.renderComparison({ prompt: prompt.value, checkpoint: checkpoint.value,
                                                model_family: family.value, width: Number(width.value) || 0,
                                                height: Number(height.value) || 0 });
      replace(render, h("p", { role: "status" }, job.cached ? `Rendered before: ${job.status}.` : "Queued on ComfyUI…"));
      while (["queued", "running", "pending"].includes(job.status)) {
        await new Promise((resolve) => setTimeout(resolve, 2000));
        const record = await client.record(job.record_id);
        const images = Object.values(record.outputs ?? {}).flat();
        job = { ...job, status: record.status, image: images[0] ?? null, error: record.error };
        replace(render, h("p", { role: "status" }, `Rendering: ${job.status}…`));
      }
      const src = job.image ? client.outputImage(job.image) : null;
      replace(render, job.status === "completed" && src
        ? h("figure", {}, h("img", { src, alt: `The four tiers for "${prompt.value}"`, class: "atelier-grid-image" }),
          h("figcaption", {}, job.cached ? "rendered earlier for this prompt and checkpoint" : "rendered now"))
        : h("p", { class: "atelier-error", role: "alert" }, `The render ${job.status}${job.error ? `: ${job.error}` : ""}`));
    } catch (error) {
      replace(render, h("p", { class: "atelier-error", role: "alert" }, error.message));
    }
  }
  const pipeline = select([], undefined, { name: "pipeline" });
  const tier = select([], undefined, { name: "tier" });
  const plan = h("div", { class: "atelier-output", "aria-live": "polite", "data-testid": "pipeline-summary" });

  async function compare(event) {
    event?.preventDefault();
    const ids = [...boxes.querySelectorAll("input:checked")].map((b) => b.value);
    if (!ids.length) return message(status, "Choose at least one preset.", "error");
    const template = { model_family: family.value, width: Number(width.value) || 0, height: Number(height.value) || 0 };
    try {
      replace(output, h("div", { class: "atelier-scroll" }, comparisonTable(await client.compare(ids, template))));
      message(status, `Compared ${ids.length} preset(s).`);
    } catch (error) {
      message(status, `Comparison failed: ${error.message}`, "error");
    }
  }

  async function summarise() {
    if (!pipeline.value || !tier.value) return;
    try {
      const query = { model_family: family.value, width: Number(width.value) || undefined,
                      height: Number(height.value) || undefined };
      replace(plan, h("div", { class: "atelier-scroll" },
        pipelineTable(await client.pipelineSummary(pipeline.value, tier.value, query))));
    } catch (error) {
      replace(plan, h("p", { class: "atelier-error", role: "alert" }, error.message));
    }
  }
  pipeline.addEventListener("change", summarise);
  tier.addEventListener("change", summarise);

  (async () => {
    try {
      const [presets, families, pipelines] = await Promise.all([client.presets(), client.families(),
                                                                client.pipelines()]);
      for (const p of presets.presets) {
        const box = h("input", { type: "checkbox", value: p.id, id: `atelier-compare-${p.id}` });
        box.checked = p.builtin; // the built-in tiers, compared by default
        boxes.append(h("label", { class: "atelier-check", for: box.id }, box, ` ${p.display_name}`));
      }
      for (const name of Object.keys(families.families)) family.append(h("option", { value: name }, name));
      replace(pipeline, pipelines.pipelines.map((p) => h("option", { value: p.name }, p.name)));
      replace(tier, presets.presets.map((p) => h("option", { value: p.id }, p.display_name)));
      tier.value = await ctx.defaultTier();
      await compare();
      await summarise();
      replace(value, h("div", { class: "atelier-scroll" }, tierValueChart(await client.tierValue(), client)));
    } catch (error) {
      message(status, `Unavailable: ${error.message}`, "error");
    }
  })();

  return h("section", { class: "atelier-view", "aria-label": "Compare tiers" },
    h("form", { class: "atelier-form", onsubmit: compare },
      boxes,
      h("div", { class: "atelier-grid" }, field("Model family", family), field("Width", width, "0: native"),
        field("Height", height, "0: native")),
      h("div", { class: "atelier-actions" }, h("button", { type: "submit", class: "atelier-primary" }, "Compare"))),
    status, output,
    h("h3", {}, "Pipeline summary"),
    h("div", { class: "atelier-grid" }, field("Pipeline", pipeline), field("Tier", tier)),
    plan,
    h("h3", {}, "What each tier is worth here (your runs)"),
    value,
    h("h3", {}, "See the tiers"),
    h("form", { class: "atelier-form", onsubmit: renderComparison },
      h("div", { class: "atelier-grid" }, field("Prompt", prompt), field("Checkpoint", checkpoint)),
      h("div", { class: "atelier-actions" }, h("button", { type: "submit" }, "Render comparison"))),
    render);
}
