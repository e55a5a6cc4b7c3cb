"""The offline, deterministic ``rule`` backend: a rubric critic and a writer that fixes what it finds.

The critic checks a prompt against ``presets/prompt_rules.yaml`` and returns failed check ids with
fixes; the score is 100 minus the penalty of each failed check. The writer strips leftover meta
text and think blocks, balances brackets, clamps emphasis weights, drops duplicates and the later
side of contradictions, adds the aspects a prompt lacks (style/medium, lighting, composition,
detail; choices seeded through hashlib) and writes for the model family: comma-separated tags
within CLIP's 75-token chunk for SD1.5/SDXL (Pony and Illustrious prefixes), natural sentences
for T5/LLM text encoders (FLUX, SD3).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ..base.data import PRESETS_DIR, read_yaml

ASPECTS = ("style", "lighting", "composition", "detail")
WEIGHT_RE = re.compile(r"\(([^():]+):\s*([^()]*?)\)")
THINK_RE = re.compile(r"<think>.*?(</think>|$)", re.IGNORECASE | re.DOTALL)
TOKEN_RE = re.compile(r"[A-Za-z0-9]+|[^\sA-Za-z0-9]")
BRACKETS = {")": "(", "]": "[", "}": "{"}


@dataclass(frozen=True)
class Check:
    id: str
    message: str
    fix: str

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "message": self.message, "fix": self.fix}


@dataclass
class Critique:
    score: float
    checks: list[Check] = field(default_factory=list)
    source: str = "rule"

    @property
    def feedback(self) -> str:
        return "; ".join(f"{c.message} -> {c.fix}" for c in self.checks) or "no problems found"

    def to_dict(self) -> dict[str, Any]:
        return {"score": self.score, "checks": [c.to_dict() for c in self.checks], "feedback": self.feedback,
                "source": self.source}


@dataclass(frozen=True)
class Style:
    name: str
    format: str  # "tags" or "sentences"
    token_budget: int
    prefix: tuple[str, ...] = ()
    negative: tuple[str, ...] = ()


@lru_cache(maxsize=1)
def rules() -> dict[str, Any]:
    return read_yaml(PRESETS_DIR / "prompt_rules.yaml")


def style_for(model_family: str = "sd15", checkpoint: str | None = None) -> Style:
    """How the prompt should be written for a model family (and Pony/Illustrious by checkpoint name)."""
    table = rules()["families"]
    name_l = (checkpoint or "").lower()
    chosen = next((n for n, f in table.items() if any(c in name_l for c in f.get("name_cues", []))), None)
    chosen = chosen or next((n for n, f in table.items() if model_family in f.get("families", [])), "clip_tags")
    spec = table[chosen]
    return Style(chosen, spec["format"], int(spec["token_budget"]), tuple(spec.get("prefix", [])),
                 tuple(spec.get("negative", [])))


def count_tokens(text: str) -> int:
    """CLIP-like token estimate: words and punctuation marks (BPE splits long rare words further)."""
    return len(TOKEN_RE.findall(text))


def _has(text: str, cue: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(cue)}(?![\w-])", text, re.IGNORECASE) is not None


def missing_aspects(text: str) -> list[str]:
    return [a for a in ASPECTS if not any(_has(text, cue) for cue in rules()["aspects"][a]["cues"])]


def split_parts(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"[,\n]|(?<=[.!?])\s+", text) if p.strip().strip(".")]


def _norm(part: str) -> str:
    return re.sub(r"[()\[\]{}]|:\s*[\d.]+", "", part).strip().strip(".").lower()


def _unbalanced(text: str) -> int:
    stack: list[str] = []
    bad = 0
    for ch in text:
        if ch in "([{":
            stack.append(ch)
        elif ch in BRACKETS:
            if stack and stack[-1] == BRACKETS[ch]:
                stack.pop()
            else:
                bad += 1
    return bad + len(stack)


def critique(prompt: str, style: Style) -> Critique:
    """The rubric: every failed check with what was wrong and how to fix it."""
    table = rules()
    penalties = table["critic"]["penalties"]
    checks: list[Check] = []
    for pattern in table["meta_text"]:
        if re.search(pattern, prompt, re.IGNORECASE | re.MULTILINE):
            checks.append(Check("meta_text", "leftover meta text from a chat model", "keep only the prompt"))
            break
    if _unbalanced(prompt):
        checks.append(Check("brackets", "unbalanced brackets", "close or remove the stray brackets"))
    low, high = table["weights"]["min"], table["weights"]["max"]
    for term, raw in WEIGHT_RE.findall(prompt):
        try:
            weight = float(raw)
        except ValueError:
            checks.append(Check("weights", f"weight {raw!r} of {term.strip()!r} is not a number",
                                f"write ({term.strip()}:1.2)"))
            break
        if not low <= weight <= high:
            checks.append(Check("weights", f"weight {weight:g} of {term.strip()!r} is outside {low}-{high}",
                                f"use a weight between {low} and {high}"))
            break
    normed = [p for p in (_norm(part) for part in split_parts(prompt)) if p]
    dupes = sorted({p for p in normed if normed.count(p) > 1})
    if dupes:
        checks.append(Check("duplicate", f"repeated: {', '.join(dupes)}", "say each thing once"))
    for a, b in table["contradictions"]:
        if _has(prompt, a) and _has(prompt, b):
            checks.append(Check("contradiction", f"{a!r} contradicts {b!r}", f"keep one of {a!r} and {b!r}"))
    words = len(re.findall(r"[A-Za-z]+", prompt))
    tokens = count_tokens(prompt)
    if words < table["critic"]["min_words"]:
        checks.append(Check("length", f"only {words} words", "describe the subject, setting and look"))
    elif tokens > style.token_budget:
        checks.append(Check("length", f"about {tokens} tokens, over the {style.token_budget} the model reads well",
                            "drop the least important parts"))
    for aspect in missing_aspects(prompt):
        checks.append(Check(f"missing_{aspect}", f"no {aspect} is given", f"add a {aspect}"))
    score = max(0.0, 100.0 - sum(penalties.get(c.id, 5) for c in checks))
    return Critique(score, checks)


def strip_meta(text: str) -> str:
    text = THINK_RE.sub("", text)
    for pattern in rules()["meta_text"]:
        text = re.sub(pattern, "", text, flags=re.IGNORECASE | re.MULTILINE)
    return text.strip().strip('"').strip()


def _balance(text: str) -> str:
    out: list[str] = []
    stack: list[int] = []
    for ch in text:
        if ch in "([{":
            stack.append(len(out))
            out.append(ch)
        elif ch in BRACKETS:
            if stack and out[stack[-1]] == BRACKETS[ch]:
                stack.pop()
                out.append(ch)
        else:
            out.append(ch)
    for index in reversed(stack):
        del out[index]
    return "".join(out)


def _clamp_weights(text: str) -> str:
    low, high = rules()["weights"]["min"], rules()["weights"]["max"]

    def fix(match: re.Match[str]) -> str:
        try:
            weight = min(max(float(match.group(2)), low), high)
        except ValueError:
            return match.group(1).strip()
        return f"({match.group(1).strip()}:{weight:g})"

    return WEIGHT_RE.sub(fix, text)


def _choice(options: list[str], seed: int, key: str) -> str:
    digest = hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()
    return options[int(digest, 16) % len(options)]


def rewrite(prompt: str, style: Style, seed: int = 0) -> str:
    """The prompt with every rubric problem fixed and the missing aspects added, for ``style``."""
    text = _clamp_weights(_balance(strip_meta(prompt)))
    parts: list[str] = []
    seen: set[str] = set()
    for part in split_parts(text):
        key = _norm(part)
        if key and key not in seen and key not in {_norm(p) for p in style.prefix}:
            seen.add(key)
            parts.append(part.strip().rstrip("."))
    for a, b in rules()["contradictions"]:
        if any(_has(p, a) for p in parts) and any(_has(p, b) for p in parts):
            first_a = next(i for i, p in enumerate(parts) if _has(p, a))
            first_b = next(i for i, p in enumerate(parts) if _has(p, b))
            later = b if first_b > first_a else a
            parts = [p for p in parts if not _has(p, later)]
    joined = ", ".join(parts)
    additions = [_choice(rules()["aspects"][a]["additions"], seed, f"{a}:{joined}") for a in missing_aspects(joined)]
    if style.format == "sentences":
        return _sentences(parts, additions)
    return _tags(list(style.prefix), parts, additions, style.token_budget)


def _tags(prefix: list[str], parts: list[str], additions: list[str], budget: int) -> str:
    """Prefix, the user's tags, then additions, dropping additions (then trailing tags) past the budget."""
    tags = prefix + parts + additions
    while count_tokens(", ".join(tags)) > budget and len(tags) > len(prefix) + 1:
        tags.pop()
    return ", ".join(tags)


def _sentences(parts: list[str], additions: list[str]) -> str:
    subject = ", ".join(parts)
    subject = subject[:1].upper() + subject[1:]
    if not additions:
        return subject + "."
    return f"{subject}. {additions[0][:1].upper() + additions[0][1:]}" + "".join(f", {a}" for a in additions[1:]) + "."


def negative_prompt(user_negative: str, style: Style) -> str:
    """The user's negative prompt plus the family's usual negatives, each once."""
    out: list[str] = []
    seen: set[str] = set()
    for part in [*split_parts(strip_meta(user_negative)), *style.negative]:
        key = _norm(part)
        if key and key not in seen:
            seen.add(key)
            out.append(part)
    return ", ".join(out)
