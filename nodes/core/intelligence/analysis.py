"""Prompt analysis: subjects, artistic style, content type, lighting and mood, and a complexity category with
the features that decided it. Deterministic (``presets/analysis.yaml`` and the prompt enhancer's lexicon,
``prompt_rules.yaml``); an LLM may refine it (``refine``), within the request's deadline, falling back to this.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

from ..base.data import PRESETS_DIR, read_yaml
from ..enhance.rules import rules as prompt_rules
from ..enhance.rules import split_parts, strip_meta
from ..loras.recommend import words

MAX_PROMPT = 20_000
COMPLEXITY = ("simple", "moderate", "complex", "very_complex")


@lru_cache(maxsize=1)
def lexicon() -> dict[str, Any]:
    return read_yaml(PRESETS_DIR / "analysis.yaml")


def _find(text: str, cues: list[str]) -> list[str]:
    """Cues present as whole words, plurals too (case-insensitive), in the order they appear in the text."""
    found = []
    for cue in cues:
        match = re.search(rf"(?<![\w-]){re.escape(cue)}(?:s|es)?(?![\w-])", text, re.IGNORECASE)
        if match:
            found.append((match.start(), cue))
    return [cue for _, cue in sorted(found)]


@dataclass
class Analysis:
    prompt: str
    negative: str
    subjects: list[str]
    style: str
    style_terms: list[str]
    content_type: str
    content_terms: list[str]
    lighting: list[str]
    mood: list[str]
    composition: list[str]
    complexity: str
    complexity_points: int
    complexity_features: list[str]
    negative_terms: list[str]
    source: str = "rule"
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def terms(self) -> list[str]:
        """The words recommendations match against: everything the prompt says, subjects and style first."""
        ordered = [*self.subjects, *self.style_terms, self.style, *self.content_terms, *self.lighting, *self.mood,
                   self.prompt]
        negative = set(words(" ".join(self.negative_terms)))
        return [w for w in dict.fromkeys(words(" ".join(ordered))) if w not in negative]

    def summary(self) -> str:
        subjects = ", ".join(self.subjects) or "no named subject"
        extra = "; ".join(x for x in (", ".join(self.lighting), ", ".join(self.mood)) if x)
        return (f"{subjects} — {self.style} {self.content_type.replace('_', ' ')}"
                + (f" ({extra})" if extra else "") + f"; {self.complexity.replace('_', ' ')} "
                f"({', '.join(self.complexity_features) or 'one plain subject'})")


def analyse(prompt: str, negative: str = "") -> Analysis:
    """The rule analysis of a prompt (bounded: the first 20,000 characters)."""
    prompt, negative = strip_meta(prompt or "")[:MAX_PROMPT], (negative or "")[:MAX_PROMPT]
    table = lexicon()
    aspects = prompt_rules()["aspects"]
    style_hits = {name: _find(prompt, cues) for name, cues in table["styles"].items()}
    style = max(style_hits, key=lambda n: (len(style_hits[n]), -list(style_hits).index(n)))
    if not style_hits[style]:
        style = table["default_style"]
    content_hits = {name: _find(prompt, cues) for name, cues in table["content_types"].items()}
    content = max(content_hits, key=lambda n: (len(content_hits[n]), -list(content_hits).index(n)))
    if not content_hits[content]:
        content = table["default_content"]
    subjects = _subjects(prompt, table, aspects)
    lighting = _find(prompt, aspects["lighting"]["cues"])
    composition = _find(prompt, aspects["composition"]["cues"])
    mood = _find(prompt, table["moods"])
    points, features = _complexity(prompt, subjects, table["complexity"])
    category = [name for name, minimum in table["complexity"]["categories"] if points >= minimum][-1]
    return Analysis(prompt, negative, subjects, style, style_hits.get(style, []), content,
                    content_hits.get(content, []), lighting, mood, composition, category, points, features,
                    [p for p in split_parts(negative)][:40])


JOINERS = frozenset("a an the of with and or to next behind beside between above below under on in at holding riding "
                    "facing fighting hugging by near from into over is are wearing while".split())


def _subjects(prompt: str, table: dict[str, Any], aspects: dict[str, Any]) -> list[str]:
    """Named subjects (the lexicon's nouns with the adjectives just before them), in prompt order; when none
    is named, the first phrase left once style, lighting, composition, detail and mood words are removed."""
    lexicon_words = set(table["subjects"])
    cues = [c for a in aspects.values() for c in a["cues"]] + [c for s in table["styles"].values() for c in s]
    cue_words = {c for c in cues if " " not in c} | set(table["moods"])
    found: list[str] = []
    for part in split_parts(prompt):
        tokens = re.findall(r"[A-Za-z][A-Za-z'-]*", part.lower())
        for i, token in enumerate(tokens):
            singular = token[:-1] if token.endswith("s") and token[:-1] in lexicon_words else token
            if singular not in lexicon_words:
                continue
            start = i
            while start > 0 and i - start < 2 and tokens[start - 1] not in JOINERS | cue_words:
                start -= 1
            phrase = " ".join(tokens[start:i + 1])
            if phrase not in found:
                found.append(phrase)
    if found:
        return found[:8]
    for part in split_parts(prompt):
        tokens = [t for t in re.findall(r"[A-Za-z][A-Za-z'-]*", part.lower()) if t not in cue_words]
        while tokens and tokens[0] in JOINERS:
            tokens.pop(0)
        while tokens and tokens[-1] in JOINERS:
            tokens.pop()
        if tokens:
            return [" ".join(tokens)[:80]]
    return []


def _complexity(prompt: str, subjects: list[str], rules: dict[str, Any]) -> tuple[int, list[str]]:
    pts = rules["points"]
    points = 0
    features: list[str] = []
    extra = min(len(subjects), int(pts["max_subjects"])) - 1
    if extra > 0:
        points += extra * int(pts["extra_subject"])
        features.append(f"{len(subjects)} subjects")
    relations = _find(prompt, rules["relations"])
    if relations:
        points += min(len(relations), int(pts["max_relations"])) * int(pts["relation"])
        features.append("relations: " + ", ".join(relations[:4]))
    counts = _find(prompt, rules["counts"])
    if counts:
        points += int(pts["count"])
        features.append("counting: " + ", ".join(counts[:3]))
    if any(cue in prompt.lower() for cue in rules["text"] if not cue.isalpha()) or _find(
            prompt, [c for c in rules["text"] if c != '"']):
        points += int(pts["text"])
        features.append("text to render")
    n_words = len(prompt.split())
    if n_words > int(pts["very_long_words"]):
        points += int(pts["very_long"])
        features.append(f"{n_words} words")
    elif n_words > int(pts["long_words"]):
        points += int(pts["long"])
        features.append(f"{n_words} words")
    return points, features


ANALYSIS_SCHEMA = {
    "type": "object",
    "properties": {"subjects": {"type": "array", "items": {"type": "string"}}, "style": {"type": "string"},
                   "content_type": {"type": "string"}, "lighting": {"type": "array", "items": {"type": "string"}},
                   "mood": {"type": "array", "items": {"type": "string"}}, "complexity": {"type": "string"}},
    "required": ["subjects", "style", "content_type"],
}


def llm_messages(analysis: Analysis) -> list[dict[str, str]]:
    table = lexicon()
    system = ("You analyse prompts for an image generator. Answer with JSON only: subjects (short noun phrases), "
              f"style (one of {', '.join(table['styles'])}, {table['default_style']}), content_type (one of "
              f"{', '.join(table['content_types'])}), lighting and mood (words from the prompt), complexity (one of "
              f"{', '.join(COMPLEXITY)}).")
    return [{"role": "system", "content": system},
            {"role": "user", "content": f"Prompt: {analysis.prompt}\nNegative: {analysis.negative}"}]


def merge_llm(analysis: Analysis, answer: str) -> Analysis:
    """The LLM's answer where it is valid (known categories, words of the prompt); the rules' elsewhere."""
    table = lexicon()
    text = strip_meta(answer)
    match = re.search(r"\{.*\}", text, re.DOTALL)
    data = json.loads(match.group(0)) if match else None
    if not isinstance(data, dict):
        raise ValueError("the answer is not a JSON object")
    merged = Analysis(**{**analysis.to_dict(), "source": "llm", "notes": list(analysis.notes)})
    lowered = analysis.prompt.lower()
    subjects = [str(s)[:80] for s in data.get("subjects") or [] if isinstance(s, str) and s.strip()]
    if subjects:
        merged.subjects = subjects[:8]
    if data.get("style") in (*table["styles"], table["default_style"]):
        merged.style = data["style"]
    if data.get("content_type") in table["content_types"]:
        merged.content_type = data["content_type"]
    for name in ("lighting", "mood"):
        values = [str(v) for v in data.get(name) or [] if isinstance(v, str) and str(v).lower() in lowered]
        if values:
            setattr(merged, name, values[:8])
    if data.get("complexity") in COMPLEXITY:
        merged.complexity = data["complexity"]
    return merged


async def refine(analysis: Analysis, chat: Any, request: Any, deadline_s: float) -> Analysis:
    """An LLM's refinement of the rule analysis; on any failure or past the deadline, the rule analysis with a
    note saying why."""
    try:
        answer = await asyncio.wait_for(chat.chat(request, llm_messages(analysis), ANALYSIS_SCHEMA), deadline_s)
        return merge_llm(analysis, answer)
    except asyncio.TimeoutError:
        why = f"no answer within {deadline_s:g} s"
    except Exception as exc:  # the backend's error text is already redacted by its client
        why = str(exc)[:200] or type(exc).__name__
    analysis.notes.append(f"LLM refinement failed ({why}); the rule analysis is used")
    return analysis
