// Atelier panel: tiny DOM helpers shared by the views (no framework, no ComfyUI import).

// h("button", {class: "x", onclick: fn, "aria-label": "…"}, "text", child, [children])
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let uid = 0;
export function nextId(prefix) {
  uid += 1;
  return `${prefix}-${uid}`;
}

// A labelled form control: <label for=id>text</label> + control (given an id).
export function field(label, control, hint) {
  control.id ||= nextId("atelier-field");
  const hintEl = hint ? h("small", { class: "atelier-hint", id: `${control.id}-hint` }, hint) : null;
  if (hintEl) control.setAttribute("aria-describedby", hintEl.id);
  return h("div", { class: "atelier-field" }, h("label", { for: control.id }, label), control, hintEl);
}

export function select(options, value, attrs = {}) {
  const el = h("select", attrs);
  for (const option of options) {
    const [val, text] = Array.isArray(option) ? option : [option, option];
    el.append(h("option", { value: val }, text));
  }
  if (value !== undefined) el.value = value;
  return el;
}

export function seconds(value) {
  if (value === undefined || value === null || Number.isNaN(value)) return "–";
  if (value >= 3600) return `${(value / 3600).toFixed(1)} h`;
  if (value >= 120) return `${(value / 60).toFixed(1)} min`;
  return `${value.toFixed(1)} s`;
}

export function money(value) {
  return value >= 0.01 ? `$${value.toFixed(2)}` : `$${value.toFixed(4)}`;
}

export function gigabytes(value) {
  return `${value.toFixed(1)} GB`;
}

export function when(epoch) {
  return epoch ? new Date(epoch * 1000).toLocaleString() : "–";
}

// One line for an estimate: "~3.6 s (1.8–7.2 s) · 2.9 GB · $0.0008 · prior"
export function estimateLine(estimate) {
  const t = estimate.time_s;
  return `~${seconds(t.expected)} (${seconds(t.min)}–${seconds(t.max)}) · ${gigabytes(estimate.vram_gb)} · ` +
    `${money(estimate.cost_usd)} · ${estimate.calibrated ? `calibrated (${estimate.samples} runs)` : "prior"}`;
}

// A status line (role=status) or an error (role=alert) under a form.
export function message(el, text, kind = "info") {
  el.className = `atelier-message atelier-${kind}`;
  el.setAttribute("role", kind === "error" ? "alert" : "status");
  el.textContent = text;
}

export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}
