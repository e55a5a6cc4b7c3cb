// Atelier panel: presets — built-in tiers and custom presets with their estimates, and the editor
// (create from a base, override, live validation against /atelier/presets/validate, save, delete).
import { debounce, estimateLine, field, h, message, replace, select } from "./dom.js";

// Editor inputs: [label, path in the preset body, kind, hint]. Empty means "inherit from the base".
const OVERRIDES = [
  ["Steps", "image.steps", "number", "sampling steps"],
  ["CFG", "image.cfg", "number", "classifier-free guidance"],
  ["Sampler", "image.sampler", "text", "a ComfyUI sampler name, e.g. dpmpp_2m"],
  ["Scheduler", "image.scheduler", "text", "e.g. karras"],
  ["Resolution scale", "image.resolution_scale", "number", "× the family's native size"],
  ["Hires fix", "image.hires_fix.enabled", "bool", ""],
  ["Hires scale", "image.hires_fix.scale", "number", ""],
  ["Hires steps", "image.hires_fix.steps", "number", ""],
  ["Hires denoise", "image.hires_fix.denoise", "number", "0–1"],
  ["Video frames", "video.frames", "number", ""],
  ["Text max tokens", "text.max_tokens", "number", "for prompt enhancement"],
];

function getPath(obj, path) {
  return path.split(".").reduce((o, k) => (o == null ? undefined : o[k]), obj);
}

function setPath(obj, path, value) {
  const keys = path.split(".");
  let node = obj;
  for (const key of keys.slice(0, -1)) node = node[key] ??= {};
  node[keys.at(-1)] = value;
}

export function presetsView(ctx) {
  const { client } = ctx;
  const list = h("div", { class: "atelier-preset-list", "aria-live": "polite" });
  const status = h("div", { class: "atelier-message" });
  const preview = h("div", { class: "atelier-preview", "aria-live": "polite", "data-testid": "preset-preview" });
  let presets = [];
  let editing = null; // the id of the custom preset being edited, or null for a new one
  let revision = 0;

  const idInput = h("input", { type: "text", name: "id", required: true, autocomplete: "off",
                               pattern: "[a-z0-9][a-z0-9_\\-]{0,63}", placeholder: "my-preset" });
  const baseSelect = select([], undefined, { name: "extends" });
  const nameInput = h("input", { type: "text", name: "display_name", maxlength: 80 });
  const descInput = h("textarea", { name: "description", rows: 2, maxlength: 2000 });
  const overrideInputs = new Map();
  for (const [label, path, kind, hint] of OVERRIDES) {
    const input = kind === "bool"
      ? select([["", "inherit"], ["true", "on"], ["false", "off"]], "", { name: path })
      : h("input", { type: kind === "number" ? "number" : "text", name: path, step: "any", placeholder: "inherit" });
    overrideInputs.set(path, [input, kind, label, hint]);
  }
  const extraInput = h("textarea", { name: "extra", rows: 3, placeholder: '{"audio": {"sample_rate": 48000}}' });
  const saveButton = h("button", { type: "submit", class: "atelier-primary" }, "Create preset");
  const cancelButton = h("button", { type: "button", hidden: true, onclick: () => startNew() }, "Cancel edit");
  const heading = h("h3", {}, "New custom preset");

  function body() {
    const out = { id: idInput.value.trim(), extends: baseSelect.value };
    if (nameInput.value.trim()) out.display_name = nameInput.value.trim();
    if (descInput.value.trim()) out.description = descInput.value.trim();
    for (const [path, [input, kind]] of overrideInputs) {
      const raw = input.value.trim();
      if (raw === "") continue;
      setPath(out, path, kind === "number" ? Number(raw) : kind === "bool" ? raw === "true" : raw);
    }
    if (extraInput.value.trim()) {
      let extra;
      try {
        extra = JSON.parse(extraInput.value);
      } catch (error) {
        throw Object.assign(new Error(`extra overrides: not valid JSON (${error.message})`), { field: "extra" });
      }
      for (const [part, values] of Object.entries(extra ?? {})) out[part] = { ...(out[part] ?? {}), ...values };
    }
    if (editing) out.revision = revision;
    return out;
  }

  function markInvalid(fieldName) {
    for (const [path, [input]] of overrideInputs) input.toggleAttribute("aria-invalid", fieldName === path);
    idInput.toggleAttribute("aria-invalid", fieldName === "id");
    baseSelect.toggleAttribute("aria-invalid", fieldName === "extends");
    extraInput.toggleAttribute("aria-invalid", fieldName === "extra" || (fieldName && !overrideInputs.has(fieldName)
      && !["id", "extends", "display_name", "description"].includes(fieldName)));
  }

  let asked = 0; // answers to older questions are ignored
  const validate = debounce(async () => {
    const question = ++asked;
    if (!idInput.value.trim()) {
      markInvalid(null);
      replace(preview, "Give the preset an id to see what it resolves to.");
      saveButton.disabled = true;
      return;
    }
    try {
      const request = body();
      const answer = await client.validatePreset(request, editing ?? undefined);
      if (question !== asked) return;
      if (!answer.valid) throw Object.assign(new Error(answer.error), { field: answer.field });
      const resolved = answer.preset;
      markInvalid(null);
      saveButton.disabled = false;
      replace(preview, h("p", { class: "atelier-ok" }, `Valid: ${resolved.display_name} (level ${resolved.level}, `
        + `extends ${resolved.extends})`),
        h("p", {}, `Estimate: ${estimateLine(resolved.estimate)}`),
        h("p", {}, `${resolved.image.steps} steps, cfg ${resolved.image.cfg}, ${resolved.image.sampler}/`
          + `${resolved.image.scheduler}, ×${resolved.image.resolution_scale} resolution`
          + (resolved.image.hires_fix.enabled ? `, hires ×${resolved.image.hires_fix.scale}` : "")),
        resolved.overridden.length ? h("p", {}, `Overrides: ${resolved.overridden.join(", ")}`) : null);
    } catch (error) {
      if (question !== asked) return;
      markInvalid(error.field);
      saveButton.disabled = true;
      replace(preview, h("p", { class: "atelier-error", role: "alert" }, `Not valid: ${error.message}`));
    }
  }, 250);

  async function save(event) {
    event.preventDefault();
    try {
      const request = body();
      const saved = editing ? await client.updatePreset(editing, request) : await client.createPreset(request);
      message(status, `${editing ? "Saved" : "Created"} ${saved.id}: ${estimateLine(saved.estimate)}`);
      await load();
      edit(saved);
    } catch (error) {
      markInvalid(error.field);
      message(status, `Could not save: ${error.message}`, "error");
    }
  }

  function fillBase(selected) {
    replace(baseSelect, ...presets.filter((p) => p.id !== editing)
      .map((p) => h("option", { value: p.id }, `${p.display_name} (${p.id})`)));
    baseSelect.value = selected;
  }

  function startNew() {
    editing = null;
    revision = 0;
    heading.textContent = "New custom preset";
    saveButton.textContent = "Create preset";
    cancelButton.hidden = true;
    idInput.disabled = false;
    for (const input of [idInput, nameInput, descInput, extraInput]) input.value = "";
    for (const [input] of overrideInputs.values()) input.value = "";
    ctx.defaultTier().then((tier) => { if (!editing) fillBase(tier); validate(); }).catch(() => validate());
  }

  function edit(preset) {
    editing = preset.id;
    revision = preset.revision;
    heading.textContent = `Edit ${preset.display_name} (${preset.id})`;
    saveButton.textContent = "Save changes";
    cancelButton.hidden = false;
    idInput.value = preset.id;
    idInput.disabled = true;
    nameInput.value = preset.display_name ?? "";
    descInput.value = preset.description ?? "";
    fillBase(preset.extends);
    for (const [path, [input, kind]] of overrideInputs) {
      const own = preset.overridden.includes(path) || preset.overridden.some((p) => path.startsWith(`${p}.`));
      const value = own ? getPath(preset, path) : undefined;
      input.value = value === undefined ? "" : kind === "bool" ? String(value) : value;
    }
    extraInput.value = "";
    validate();
    idInput.closest("form")?.querySelector("select, input:not([disabled])")?.focus();
  }

  async function remove(preset, button) {
    if (button.dataset.confirm !== "yes") { // a second press confirms (keyboard friendly, no modal)
      button.dataset.confirm = "yes";
      button.textContent = `Confirm delete ${preset.id}`;
      return;
    }
    try {
      await client.deletePreset(preset.id);
      message(status, `Deleted ${preset.id}`);
      if (editing === preset.id) startNew();
      await load();
    } catch (error) {
      message(status, `Could not delete ${preset.id}: ${error.message}`, "error");
      button.dataset.confirm = "";
      button.textContent = "Delete";
    }
  }

  function card(preset) {
    const actions = preset.builtin ? null : h("div", { class: "atelier-actions" },
      h("button", { type: "button", onclick: () => edit(preset), "aria-label": `Edit ${preset.id}` }, "Edit"),
      h("button", { type: "button", class: "atelier-danger", "aria-label": `Delete ${preset.id}`,
                    onclick: (e) => remove(preset, e.currentTarget) }, "Delete"));
    return h("li", { class: "atelier-card", dataset: { preset: preset.id } },
      h("div", {}, h("strong", {}, preset.display_name), h("span", { class: "atelier-sub" },
        ` ${preset.id} · level ${preset.level} · ${preset.builtin ? "built-in" : `extends ${preset.extends}`}`)),
      h("div", { class: "atelier-estimate" }, estimateLine(preset.estimate)),
      actions);
  }

  async function load() {
    try {
      const data = await client.presets();
      presets = data.presets;
      replace(list, h("p", { class: "atelier-sub" }, "Estimates for one SD1.5 image at its native size."),
        h("ul", { class: "atelier-cards", "aria-label": "Presets" }, presets.map(card)),
        data.problems.map((p) => h("p", { class: "atelier-warning" }, `Skipped ${p.file}: ${p.error}`)));
      if (!editing) fillBase(baseSelect.value || await ctx.defaultTier());
    } catch (error) {
      message(status, `Presets unavailable: ${error.message}`, "error");
    }
  }

  const form = h("form", { class: "atelier-form", onsubmit: save, oninput: validate, onchange: validate,
                           "aria-labelledby": "atelier-preset-heading" },
    heading,
    field("Id", idInput, "lower case letters, digits, - and _"),
    field("Base preset", baseSelect, "every value not overridden comes from it"),
    field("Display name", nameInput),
    field("Description", descInput),
    h("fieldset", {}, h("legend", {}, "Overrides (empty: inherit)"),
      h("div", { class: "atelier-grid" }, [...overrideInputs.values()].map(([input, , label, hint]) =>
        field(label, input, hint)))),
    field("More overrides (JSON)", extraInput, "any image/video/audio/text/multipliers keys"),
    preview,
    h("div", { class: "atelier-actions" }, saveButton, cancelButton));
  heading.id = "atelier-preset-heading";

  const root = h("section", { class: "atelier-view", "aria-label": "Presets" }, list, status, form);
  load().then(startNew);
  return root;
}
