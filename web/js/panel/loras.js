// Atelier panel: the LoRA library — one card per file of ComfyUI's loras folders (GET /atelier/loras): family
// with its confidence and the evidence that decided it, triggers, tags, strength, kind; the files that could
// not be read with the reason (problems); your family for a file (PUT /atelier/loras/{id}/family; the file is
// never written); a full rescan.
import { field, h, message, replace, select } from "./dom.js";

const percent = (x) => `${Math.round(x * 100)}%`;

function chips(words, label) {
  if (!words?.length) return null;
  return h("ul", { class: "atelier-chips", "aria-label": label }, words.map((w) => h("li", {}, w)));
}

function card(ctx, lora, families, onChanged) {
  const { client } = ctx;
  const fam = lora.family;
  const status = h("div", { class: "atelier-message" });
  const familyName = families[fam.family] ?? fam.family;
  const choice = select([["auto", "detected (no override)"], ...Object.keys(families).filter((f) => f !== "unknown")
    .map((f) => [f, families[f]])], fam.source === "override" ? fam.family : "auto",
  { name: "family", "aria-label": `Family of ${lora.name}` });
  const save = h("button", { type: "submit" }, "Set family");
  const confidenceClass = fam.family === "unknown" ? "atelier-error" : fam.confidence < 0.7 ? "atelier-warning" : "";
  return h("li", { class: "atelier-card", dataset: { lora: lora.id } },
    h("article", { "aria-label": `LoRA ${lora.name}` },
      h("h4", {}, lora.title && lora.title !== lora.name ? `${lora.title} ` : "", h("code", {}, lora.name)),
      h("p", {},
        h("strong", { class: confidenceClass, "data-testid": "lora-family" },
          `${familyName}${fam.variant ? ` (${fam.variant})` : ""}`),
        ` · ${percent(fam.confidence)} from ${fam.source} · ${lora.kind} · strength ${lora.strength}`,
        h("span", { class: "atelier-sub" }, ` (${lora.strength_source})`),
        ` · ${lora.modules} modules${lora.rank ? `, rank ${lora.rank}` : ""}`),
      chips(lora.triggers, `Trigger words of ${lora.name}`),
      lora.tags?.length ? h("p", { class: "atelier-sub" }, `tags: ${lora.tags.slice(0, 16).join(", ")}`) : null,
      h("details", {}, h("summary", {}, "Evidence"),
        h("ul", { "aria-label": `Evidence for ${lora.name}` }, fam.evidence.map((e) => h("li", {}, e))),
        lora.sidecars?.length ? h("p", { class: "atelier-sub" }, `sidecars: ${lora.sidecars.join(", ")}`) : null,
        lora.notes?.map((n) => h("p", { class: "atelier-warning" }, n))),
      h("form", { class: "atelier-inline", onsubmit: async (event) => {
        event.preventDefault();
        try {
          const changed = await client.setLoraFamily(lora.id, choice.value);
          onChanged(changed, choice.value === "auto" ? "Your family removed; detected again."
            : `Family set to ${families[choice.value] ?? choice.value} (yours only).`);
        } catch (error) {
          message(status, `Family not saved: ${error.message}`, "error");
        }
      } }, choice, save),
      status));
}

export function lorasView(ctx) {
  const { client } = ctx;
  const family = select([["", "any"]], "", { name: "family" });
  const kind = select([["", "any"]], "", { name: "kind" });
  const text = h("input", { type: "search", name: "q", placeholder: "name, trigger or tag" });
  const status = h("div", { class: "atelier-message" });
  const list = h("ul", { class: "atelier-cards", "aria-label": "LoRAs" });
  const problems = h("section", { "aria-label": "Problems", hidden: true });
  let families = {};

  function render(listing) {
    families = listing.families ?? families;
    if (family.options.length === 1) {
      family.append(...Object.entries(families).map(([id, name]) => h("option", { value: id }, name)));
    }
    if (kind.options.length === 1) kind.append(...(listing.kinds ?? []).map((k) => h("option", { value: k }, k)));
    const swap = (lora, notice) => {
      const fresh = card(ctx, lora, families, swap);
      list.querySelector(`li[data-lora="${lora.id}"]`)?.replaceWith(fresh);
      message(fresh.querySelector(".atelier-message"), notice, "ok");
    };
    replace(list, listing.cards.map((lora) => card(ctx, lora, families, swap)));
    replace(problems, listing.problems.length ? [h("h4", {}, `Files that could not be read (${listing.problems.length})`),
      h("ul", { class: "atelier-list" }, listing.problems.map((p) => h("li", {},
        h("code", {}, p.name), `: ${p.reason}`)))] : []);
    problems.hidden = !listing.problems.length;
    message(status, listing.files === 0 ? "No LoRA files in the loras folders."
      : `${listing.matching} of ${listing.count} LoRA(s) shown · ${listing.problems.length} problem(s) · ` +
        `${listing.files} file(s) read in ${listing.seconds.toFixed(2)} s`);
  }

  async function load() {
    try {
      render(await client.loras({ family: family.value, kind: kind.value, q: text.value.trim() }));
    } catch (error) {
      message(status, `LoRAs unavailable: ${error.message}`, "error");
    }
  }
  load();

  return h("section", { class: "atelier-view", "aria-label": "LoRA library" },
    h("form", { class: "atelier-form", onsubmit: (e) => { e.preventDefault(); load(); } },
      h("div", { class: "atelier-grid" }, field("Family", family), field("Kind", kind), field("Search", text)),
      h("div", { class: "atelier-actions" },
        h("button", { type: "submit", class: "atelier-primary" }, "Filter"),
        h("button", { type: "button", onclick: async () => {
          try {
            const scan = await client.rescanLoras();
            message(status, `Rescanned ${scan.files} file(s) in ${scan.seconds.toFixed(2)} s.`);
            await load();
          } catch (error) {
            message(status, `Rescan failed: ${error.message}`, "error");
          }
        } }, "Rescan files"))),
    status, list, problems);
}
