// Atelier panel: social context preview — relationship values → tier, intimacy band and the content
// rating after the world's and the user's maxima (POST /atelier/social-context/build), live.
import { debounce, field, h, replace, select } from "./dom.js";

const VALUES = ["affinity", "trust", "chemistry", "tension"];

export function socialView(ctx) {
  const { client } = ctx;
  const sliders = new Map();
  const world = select([["default", "Default world"]], "default", { name: "world_id" });
  const requested = select([["", "(none)"]], "", { name: "requested_rating" });
  const enforcement = select(["clamp", "reject"], "clamp", { name: "enforcement" });
  const output = h("div", { class: "atelier-output", "aria-live": "polite", "data-testid": "social-result" });
  let worlds = {};

  for (const name of VALUES) {
    const input = h("input", { type: "range", min: 0, max: 100, step: 1, value: name === "tension" ? 10 : 50, name });
    const shown = h("output", { for: "" }, input.value);
    input.addEventListener("input", () => { shown.textContent = input.value; });
    sliders.set(name, [input, shown]);
  }

  function fillRatings() {
    const ratings = worlds[world.value]?.ratings ?? [];
    const keep = requested.value;
    replace(requested, h("option", { value: "" }, "(none)"), ratings.map((r) => h("option", { value: r }, r)));
    requested.value = ratings.includes(keep) ? keep : "";
  }

  const update = debounce(async () => {
    const body = { world_id: world.value, enforcement: enforcement.value };
    for (const [name, [input]] of sliders) body[name] = Number(input.value);
    if (requested.value) body.requested_rating = requested.value;
    try {
      const c = await client.social(body);
      replace(output, h("dl", {},
        h("dt", {}, "Relationship"), h("dd", { "data-testid": "social-tier" }, c.tier),
        h("dt", {}, "Intimacy"), h("dd", {}, `level ${c.intimacy_level}, band ${c.band} (allows ${c.band_rating})`),
        h("dt", {}, "Content rating"), h("dd", { "data-testid": "social-rating" }, c.rating,
          c.clamped_by.length ? ` (clamped by ${c.clamped_by.join(", ")})` : ""),
        c.allowed_rating ? [h("dt", {}, "Requested → allowed"), h("dd", {}, `${c.requested_rating} → ${c.allowed_rating}`)]
          : null,
        h("dt", {}, "Adds to the prompt"), h("dd", {}, c.prompt_addition || "–"),
        h("dt", {}, "Adds to the negative"), h("dd", {}, c.negative_addition || "–")),
        c.warnings.map((w) => h("p", { class: "atelier-warning" }, w)));
    } catch (error) {
      replace(output, h("p", { class: "atelier-error", role: "alert" }, error.message));
    }
  }, 150);

  (async () => {
    try {
      worlds = (await client.worlds()).worlds;
      replace(world, Object.entries(worlds).map(([id, w]) => h("option", { value: id }, w.display_name ?? id)));
      world.value = "default" in worlds ? "default" : Object.keys(worlds)[0];
      fillRatings();
    } catch (error) {
      replace(output, h("p", { class: "atelier-error", role: "alert" }, error.message));
    }
    update();
  })();
  world.addEventListener("change", fillRatings);

  const form = h("form", { class: "atelier-form", oninput: update, onchange: update,
                           onsubmit: (e) => { e.preventDefault(); update(); } },
    h("div", { class: "atelier-grid" }, [...sliders].map(([name, [input, shown]]) =>
      h("div", { class: "atelier-field" }, h("label", { for: (input.id ||= `atelier-social-${name}`) },
        `${name[0].toUpperCase()}${name.slice(1)} `, shown), input))),
    h("div", { class: "atelier-grid" }, field("World", world), field("Requested rating", requested),
      field("If above the maximum", enforcement)));
  return h("section", { class: "atelier-view", "aria-label": "Social context" }, form, output);
}
