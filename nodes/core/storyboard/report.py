"""An HTML report of a storyboard run, self-contained next to the frames: the reference, then the frames in
order, each with its prompt, what it started from, and every variation of every attempt (its picture when the
run kept one, its overall and per-scorer scores), the kept one marked, warnings and failed clips, so a reader
sees why one was kept."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from ..base.files import atomic_write_text

STYLE = """body{font:14px system-ui,sans-serif;margin:24px;background:#15171a;color:#e6e6e6}
h1{font-size:20px}table{border-collapse:collapse}td,th{padding:6px 10px;border-bottom:1px solid #333;
vertical-align:top;text-align:left}img{border-radius:4px;display:block}.failed{color:#ff8a80}
.warn{color:#ffd180}.muted{color:#9e9e9e}.variations{display:flex;flex-wrap:wrap;gap:8px;margin:4px 0}
figure{margin:0;padding:4px;border:2px solid transparent;border-radius:6px;font-size:12px}
figure.chosen{border-color:#b9f6ca}figure.chosen figcaption b{color:#b9f6ca}figcaption{max-width:128px}"""


def _variation(attempt: dict[str, Any], index: int, chosen: bool) -> str:
    score = attempt["scores"][index] if index < len(attempt["scores"]) else None
    files = attempt.get("files") or []
    details = (attempt.get("details") or [])
    per_scorer = details[index] if index < len(details) else {}
    problems = attempt.get("problems") or []
    problem = problems[index] if index < len(problems) else None
    picture = f'<img src="{escape(files[index])}" width="96" alt="variation {index + 1}">' if index < len(files) else ""
    overall = "unusable" if score is None else f"{score:.1f}"
    lines = [f"<b>{'✓ kept · ' if chosen else ''}#{index + 1}: {escape(overall)}</b>"]
    lines += [f"{escape(name)} {value:.1f}" for name, value in per_scorer.items()]
    if problem:
        lines.append(f'<span class="failed">{escape(problem)}</span>')
    mark = ' class="chosen"' if chosen else ""
    return f"<figure{mark}>{picture}<figcaption>{'<br>'.join(lines)}</figcaption></figure>"


def _attempts(frame: dict[str, Any]) -> str:
    blocks = []
    for number, attempt in enumerate(frame["attempts"], 1):
        last = number == len(frame["attempts"])
        count = max(len(attempt["scores"]), len(attempt.get("files") or []))
        cells = "".join(_variation(attempt, i, last and i == frame["chosen"]) for i in range(count)) or "-"
        error = f' <span class="failed">{escape(attempt["error"])}</span>' if attempt.get("error") else ""
        blocks.append(f"<div>attempt {number} (seed {attempt['seed']}){error}"
                      f'<div class="variations">{cells}</div></div>')
    return "".join(blocks)


def write_report(folder: Path, manifest: dict[str, Any], title: str = "Atelier storyboard",
                 reference: str | None = None) -> Path:
    rows = []
    for frame in manifest["frames"]:
        image = (f'<img src="{escape(frame["file"])}" width="192" alt="{escape(frame["name"])}">'
                 if frame.get("file") else '<span class="failed">failed</span>')
        status = {"ok": "ok", "below_threshold": '<span class="warn">below threshold</span>',
                  "unscored": '<span class="warn">unscored: the first usable variation</span>'}.get(
            frame["status"], f'<span class="failed">failed: {escape(str(frame.get("error")))}</span>')
        best = f"{frame['best_score']:.1f}" if frame.get("best_score") is not None else "-"
        if frame.get("continuity") is not None:
            best += f"<br>continuity {frame['continuity']:.1f}"
        sources = ", ".join(frame["sources"]) or "text only"
        rows.append(f"<tr><td>{image}</td><td><b>{escape(frame['name'])}</b><br>{status}<br>best {best}"
                    f"<br><span class='muted'>from {escape(sources)}</span></td><td>{escape(frame['prompt'])}"
                    f"{_attempts(frame)}</td></tr>")
    warnings = "".join(f"<li>{escape(w)}</li>" for w in manifest["warnings"]) or "<li>none</li>"
    failed = ", ".join(str(c) for c in manifest["failed_clips"]) or "none"
    scoring = manifest.get("scoring") or {}
    skipped = "".join(f"<li>{escape(k)}: {escape(v)}</li>" for k, v in (scoring.get("skipped") or {}).items())
    figures = manifest.get("continuity") or {}
    continuity = ("<p>Continuity per clip: " + ", ".join(
        f"{escape(c)}: {'-' if v is None else f'{v:.1f}'}" for c, v in figures.items()) + "</p>") if figures else ""
    scored = continuity + (f"<p>Scored by {escape(', '.join(scoring.get('ran') or []) or 'no scorer')}"
              + (f"; skipped:</p><ul>{skipped}</ul>" if skipped else ".</p>"))
    shown_reference = (f'<h2>Reference</h2><img src="{escape(reference)}" width="192" alt="the reference">'
                       if reference else "")
    html = (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>"
            f"<p>{len(manifest['clips'])} clips, {len(manifest['frames'])} frames; tier {escape(manifest['tier'])}; "
            f"status {escape(manifest['status'])}; failed clips: {escape(failed)}</p>{scored}{shown_reference}"
            f"<table><thead><tr><th>frame</th><th>outcome</th><th>prompt, and every variation (overall and per-scorer "
            f"scores, the kept one marked)</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table><h2>Warnings</h2><ul>{warnings}</ul></body></html>")
    path = folder / "report.html"
    atomic_write_text(path, html)
    return path
