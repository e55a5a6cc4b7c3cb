"""LoRA recommendations for a prompt: a hard filter, then a ranking, then the caps.

1. **Filter** (each exclusion is answered with its reason): the family must be the checkpoint's base
   (``unknown`` only when the user overrides it), the content level within the social context's rating,
   the user's exclusions.
2. **Rank**: BM25 of the prompt's terms against each card's words (triggers x3, name x2, tags x1.5,
   description x0.5, ``loras.yaml``); the inverse document frequency over the whole library penalises
   words and triggers many LoRAs share. A trigger phrase found whole in the prompt adds a boost, unless more
   than ``common_trigger_fraction`` of the library has it. With a CLIP text model, the cosine of the prompt
   and the card's text is blended in (``clip_weight``).
3. **Select**: ``min_score``, ``min_confidence`` (family confidence x match certainty), at most one style
   LoRA unless ``allow_style_mixing``, at most ``max_loras``.

Content levels map onto a world's ratings by rank, rounded up (Civitai's PG, PG13, R, X, XXX onto
sfw, romantic, mature_implied, restricted: PG->sfw, PG13->romantic, R->mature_implied, X and XXX->restricted);
a LoRA without a level counts as PG, unless a tag says nsfw.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from ..base.validation import parse_model
from .family import UNKNOWN, compatible
from .library import LoraCard
from .tables import LoraTables, lora_tables

STOPWORDS = frozenset("a an and the of in on at with by for to from into over under is are be as it its this that "
                      "very very, some".split())
WORD_RE = re.compile(r"[a-z0-9]+")
LEXICAL_HALF = 1.5  # the BM25 sum that scores 0.5
Similarity = Callable[[str, Sequence[str]], Sequence[float]]  # prompt, card texts -> cosine per card


class Preferences(BaseModel):
    """What the user asks of the recommendation (validated: unknown fields are refused)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_loras: Annotated[int, Field(ge=0, le=8)] = 3
    min_confidence: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5
    allow_style_mixing: bool = True
    exclude: Annotated[tuple[str, ...], Field(max_length=256)] = ()  # card ids or names

    @classmethod
    def parse(cls, data: Any) -> Preferences:
        return parse_model(cls, data or {}, "max_loras (0-8), min_confidence (0-1), allow_style_mixing, exclude")


def words(text: str) -> list[str]:
    """Lowercase words, stop words dropped, a plural 's' folded (so 'cats' meets 'cat')."""
    out = []
    for word in WORD_RE.findall(text.lower()):
        if word in STOPWORDS:
            continue
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        out.append(word)
    return out


def _phrase_in(phrase: str, text: str) -> bool:
    phrase = phrase.strip().lower()
    return bool(phrase) and re.search(rf"(?<![\w]){re.escape(phrase)}(?![\w])", text) is not None


@dataclass
class Index:
    """BM25 postings over the library: term -> [(card, weighted term frequency)]; built once per scan."""

    cards: list[LoraCard]
    postings: dict[str, list[tuple[int, float]]]
    lengths: list[float]
    average: float
    trigger_df: Counter[str]

    @classmethod
    def build(cls, cards: list[LoraCard], tables: LoraTables) -> Index:
        weights = tables.recommend["field_weights"]
        postings: dict[str, list[tuple[int, float]]] = {}
        lengths: list[float] = []
        trigger_df: Counter[str] = Counter()
        for i, card in enumerate(cards):
            tf: dict[str, float] = {}
            fields = ((" ".join(card.triggers), weights["trigger"]), (f"{card.title} {card.name}", weights["name"]),
                      (" ".join(card.tags), weights["tag"]), (card.description, weights["description"]))
            for text, weight in fields:
                for word in words(text):
                    tf[word] = tf.get(word, 0.0) + float(weight)
            for term, value in tf.items():
                postings.setdefault(term, []).append((i, value))
            lengths.append(sum(tf.values()))
            trigger_df.update({t.strip().lower() for t in card.triggers})
        average = sum(lengths) / len(lengths) if lengths else 1.0
        return cls(cards, postings, lengths, average or 1.0, trigger_df)


@dataclass(frozen=True)
class Recommendation:
    card: LoraCard
    score: float
    confidence: float
    strength: float
    matched: list[str]
    triggers: list[str]  # added to the prompt
    reason: str
    similarity: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.card.id, "name": self.card.name, "title": self.card.title, "kind": self.card.kind,
                "family": self.card.family.to_dict(), "score": round(self.score, 3),
                "confidence": round(self.confidence, 3), "strength": self.strength,
                "strength_source": self.card.strength_source, "matched": self.matched, "triggers": self.triggers,
                "reason": self.reason, "similarity": None if self.similarity is None else round(self.similarity, 3)}


@dataclass
class Recommendations:
    chosen: list[Recommendation]
    filtered: list[dict[str, str]]  # {id, name, reason}: the hard filter's exclusions
    considered: int
    candidates: list[Recommendation] = field(default_factory=list)  # ranked, before the caps

    def to_dict(self) -> dict[str, Any]:
        return {"loras": [r.to_dict() for r in self.chosen], "filtered": self.filtered,
                "considered": self.considered,
                "runners_up": [r.to_dict() for r in self.candidates if r not in self.chosen][:5]}


def level_rating(level: int | None, ratings: Sequence[str], tables: LoraTables) -> int:
    """A content level's rank among a world's ratings (rounded up; no level: the lowest)."""
    levels = len(tables.raw["nsfw_levels"])
    if level is None or len(ratings) < 2:
        return 0
    return min(len(ratings) - 1, math.ceil(level * (len(ratings) - 1) / (levels - 1)))


def hard_filter(cards: list[LoraCard], checkpoint_base: str, preferences: Preferences,
                rating: tuple[str, Sequence[str]] | None, tables: LoraTables,
                family_names: dict[str, str]) -> tuple[list[LoraCard], list[dict[str, str]]]:
    """Cards that may be used, and each excluded one with the reason."""
    kept: list[LoraCard] = []
    out: list[dict[str, str]] = []
    excluded = set(preferences.exclude)
    shown = family_names.get(checkpoint_base, checkpoint_base)
    for card in cards:
        reason = ""
        if card.id in excluded or card.name in excluded:
            reason = "excluded by you"
        elif card.family.family == UNKNOWN:
            reason = "its family is unknown (set it on the card to use it)"
        elif not compatible(card.family.family, checkpoint_base):
            reason = (f"a {family_names.get(card.family.family, card.family.family)} LoRA "
                      f"({card.family.source}), the checkpoint is {shown}")
        elif rating is not None:
            ceiling, ratings = rating
            rank = level_rating(card.nsfw_level, ratings, tables)
            if ceiling in ratings and rank > list(ratings).index(ceiling):
                reason = f"content level {ratings[rank]} is above the social context's {ceiling}"
        if reason:
            out.append({"id": card.id, "name": card.name, "reason": reason})
        else:
            kept.append(card)
    return kept, out


def rank(index: Index, allowed: set[int], prompt: str, terms: list[str], tables: LoraTables,
         similarity: Similarity | None = None) -> list[Recommendation]:
    """Every allowed card with a positive score, best first (ties by name)."""
    settings = tables.recommend
    k1, b = float(settings["bm25"]["k1"]), float(settings["bm25"]["b"])
    total = len(index.cards)
    scores: dict[int, float] = {}
    matched: dict[int, list[str]] = {}
    for term in dict.fromkeys(terms):
        posting = index.postings.get(term)
        if not posting:
            continue
        idf = math.log(1.0 + total / len(posting))  # never negative, small for words many LoRAs share
        for i, tf in posting:
            if i not in allowed:
                continue
            norm = tf * (k1 + 1) / (tf + k1 * (1 - b + b * index.lengths[i] / index.average))
            scores[i] = scores.get(i, 0.0) + idf * norm
            matched.setdefault(i, []).append(term)
    lowered = prompt.lower()
    common = float(settings["common_trigger_fraction"]) * max(total, 1)
    phrases: dict[int, list[str]] = {}
    for i in allowed:
        for trigger in index.cards[i].triggers:
            if _phrase_in(trigger, lowered) and (index.trigger_df[trigger.strip().lower()] <= common or total < 5):
                phrases.setdefault(i, []).append(trigger)
    candidates = set(scores) | set(phrases)
    cosines: dict[int, float] = {}
    if similarity is not None and allowed:
        order = sorted(allowed)
        texts = [card_text(index.cards[i]) for i in order]
        cosines = {i: float(c) for i, c in zip(order, similarity(prompt, texts), strict=True)}
        candidates |= {i for i, c in cosines.items() if c > 0}
    out: list[Recommendation] = []
    weight = float(settings["clip_weight"]) if cosines else 0.0
    for i in candidates:
        lexical = scores.get(i, 0.0)
        lexical = lexical / (lexical + LEXICAL_HALF)
        if phrases.get(i):
            lexical = min(1.0, lexical + float(settings["trigger_phrase_boost"]))
        cos = cosines.get(i)
        score = (1 - weight) * lexical + weight * max(0.0, cos or 0.0)
        card = index.cards[i]
        certainty = 1.0 if phrases.get(i) else min(1.0, 0.4 + score)
        words_hit = list(dict.fromkeys([*(p.lower() for p in phrases.get(i, [])), *matched.get(i, [])]))
        triggers = [t for t in card.triggers[:3] if not _phrase_in(t, lowered)]
        out.append(Recommendation(card, score, card.family.confidence * certainty, card.strength, words_hit,
                                  triggers, reason(card, words_hit, phrases.get(i, []), cos), cos))
    out.sort(key=lambda r: (-r.score, r.card.name))
    return out


def card_text(card: LoraCard) -> str:
    return ", ".join([card.title, *card.triggers[:5], *card.tags[:10]])[:300]


def reason(card: LoraCard, matched: list[str], phrases: list[str], cosine: float | None) -> str:
    """One sentence: the matched words, the family and its evidence, the strength and where it came from."""
    parts = []
    if phrases:
        parts.append("trigger " + ", ".join(f"'{p}'" for p in phrases[:3]) + " is in the prompt")
    other = [w for w in matched if w not in {p.lower() for p in phrases}]
    if other:
        parts.append("matched " + ", ".join(f"'{w}'" for w in other[:5]) + " in its triggers, name or tags")
    if cosine is not None:
        parts.append(f"CLIP text similarity {cosine:.2f}")
    what = "; ".join(parts) or "no words matched"
    return (f"{card.title}: {what}; {card.family.family} by {card.family.source}; "
            f"strength {card.strength:g} from {card.strength_source}.")


def select(ranked: list[Recommendation], preferences: Preferences, tables: LoraTables) -> list[Recommendation]:
    floor = float(tables.recommend["min_score"])
    chosen: list[Recommendation] = []
    for rec in ranked:
        if len(chosen) >= preferences.max_loras:
            break
        if rec.score < floor or rec.confidence < preferences.min_confidence:
            continue
        if (not preferences.allow_style_mixing and rec.card.kind == "style"
                and any(c.card.kind == "style" for c in chosen)):
            continue
        chosen.append(rec)
    return chosen


def recommend(cards: list[LoraCard], prompt: str, terms: list[str], checkpoint_base: str,
              preferences: Preferences, rating: tuple[str, Sequence[str]] | None = None,
              similarity: Similarity | None = None, index: Index | None = None,
              family_names: dict[str, str] | None = None, tables: LoraTables | None = None,
              priors: dict[str, tuple[float, str]] | None = None) -> Recommendations:
    """``priors``: what the user's ratings taught, per LoRA name: (score shift, the sentence saying so); it
    moves LoRAs that already match the prompt, never brings in one that does not."""
    tables = tables or lora_tables()
    index = index or Index.build(cards, tables)
    kept, filtered = hard_filter(index.cards, checkpoint_base, preferences, rating, tables, family_names or {})
    allowed_ids = {c.id for c in kept}
    allowed = {i for i, c in enumerate(index.cards) if c.id in allowed_ids}
    ranked = rank(index, allowed, prompt, terms, tables, similarity)
    if priors:
        ranked = [dataclasses.replace(rec, score=max(0.0, rec.score + learned[0]),
                                      reason=f"{rec.reason} {learned[1][0].upper()}{learned[1][1:]}.")
                  if (learned := priors.get(rec.card.name)) else rec for rec in ranked]
        ranked.sort(key=lambda r: (-r.score, r.card.name))
    return Recommendations(select(ranked, preferences, tables), filtered, len(index.cards), ranked[:10])
