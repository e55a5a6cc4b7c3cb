"""An HTML report of a storyboard run: the frames in order with thumbnails, prompts, every variation's
score (the kept one marked), warnings and failed clips. Self-contained next to the frames."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from ..base.files import atomic_write_text

STYLE = """body{font:14px system-ui,sans-serif;margin:24px;background:#15171a;color:#e6e6e6}
h1{font-size:20px}table{border-collapse:collapse}td,th{padding:6px 10px;border-bottom:1px solid #333;
vertical-align:top;text-align:left}img{border-radius:4px;display:block}.failed{color:#ff8a80}
.warn{color:#ffd180}.chosen{font-weight:700;color:#b9f6ca}.muted{color:#9e9e9e}"""


def _scores(frame: dict[str, Any]) -> str:
    rows = []
    for number, attempt in enumerate(frame["attempts"], 1):
        cells = []
        last = number == len(frame["attempts"])
        for index, score in enumerate(attempt["scores"]):
            text = "failed" if score is None else f"{score:.1f}"
            mark = ' class="chosen"' if last and index == frame["chosen"] else ""
            cells.append(f"<span{mark}>{escape(text)}</span>")
        error = f' <span class="failed">{escape(attempt["error"])}</span>' if attempt.get("error") else ""
        rows.append(f"attempt {number} (seed {attempt['seed']}): {' · '.join(cells) or '-'}{error}")
    return "<br>".join(rows)


def write_report(folder: Path, manifest: dict[str, Any], title: str = "Atelier storyboard") -> Path:
    rows = []
    for frame in manifest["frames"]:
        image = (f'<img src="{escape(frame["file"])}" width="192" alt="{escape(frame["name"])}">'
                 if frame.get("file") else '<span class="failed">failed</span>')
        status = {"ok": "ok", "below_threshold": '<span class="warn">below threshold</span>'}.get(
            frame["status"], f'<span class="failed">failed: {escape(str(frame.get("error")))}</span>')
        best = f"{frame['best_score']:.1f}" if frame.get("best_score") is not None else "-"
        sources = ", ".join(frame["sources"]) or "text only"
        rows.append(f"<tr><td>{image}</td><td><b>{escape(frame['name'])}</b><br>{status}<br>best {best}"
                    f"<br><span class='muted'>from {escape(sources)}</span></td><td>{escape(frame['prompt'])}"
                    f"<br><br>{_scores(frame)}</td></tr>")
    warnings = "".join(f"<li>{escape(w)}</li>" for w in manifest["warnings"]) or "<li>none</li>"
    failed = ", ".join(str(c) for c in manifest["failed_clips"]) or "none"
    html = (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>"
            f"<p>{len(manifest['clips'])} clips, {len(manifest['frames'])} frames; tier {escape(manifest['tier'])}; "
            f"status {escape(manifest['status'])}; failed clips: {escape(failed)}</p>"
            f"<table><thead><tr><th>frame</th><th>outcome</th><th>prompt and variation scores</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table><h2>Warnings</h2><ul>{warnings}</ul></body></html>")
    path = folder / "report.html"
    atomic_write_text(path, html)
    return path
