// Atelier: a read-only text box on a node (a DOM widget, so it works with the newer node renderer).
// Shared by Atelier's node extensions; registers no extension itself.

function wrappedLines(box) {
  const perLine = Math.max(20, Math.floor((box.clientWidth || 300) / 6.7)); // 11px monospace
  return box.textContent.split("\n").reduce((n, line) => n + Math.max(1, Math.ceil(line.length / perLine)), 0);
}

export function textBox(node, name, label) {
  let widget = node.widgets?.find((w) => w.name === name);
  if (!widget) {
    const box = document.createElement("div");
    box.className = `atelier-text ${name.replaceAll("_", "-")}`;
    box.setAttribute("role", "status");
    box.setAttribute("aria-live", "polite");
    box.setAttribute("aria-label", label);
    box.style.cssText = "font: 11px monospace; white-space: pre-wrap; opacity: 0.85; padding: 2px 4px;";
    widget = node.addDOMWidget(name, name, box, {
      serialize: false,
      getMinHeight: () => 14 * Math.max(3, wrappedLines(box)) + 8,
    });
  }
  return widget.element;
}

export function showText(node, name, label, text) {
  textBox(node, name, label).textContent = text;
  const [width, height] = node.computeSize();
  node.setSize([Math.max(node.size[0], width), Math.max(node.size[1], height)]);
  node.setDirtyCanvas(true, true);
}

// Show a node's executed `text` output in a text box (scores, ranking, enhancement…).
export function showExecutedText(nodeType, name, label) {
  const onExecuted = nodeType.prototype.onExecuted;
  nodeType.prototype.onExecuted = function (output) {
    onExecuted?.apply(this, arguments);
    const text = Array.isArray(output?.text) ? output.text.join("\n") : "";
    if (text) showText(this, name, label, text);
  };
}
