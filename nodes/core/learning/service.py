"""Learning per user from the records store: the rated images' scores and LoRAs, read when asked (a user's
newest ``max_samples`` ratings), so a new rating counts at once and nothing is kept apart from the records."""

from __future__ import annotations

from typing import Any

from ..records.record import GenerationRecord
from ..records.store import RecordStore
from .model import (
    LearnedWeights,
    LoraPriors,
    PreferredTier,
    Sample,
    learn_lora_priors,
    learn_preferred_tier,
    learn_use_case_tier,
    learn_weights,
    learning_tables,
    use_case_key,
)


def best_scores(record: GenerationRecord) -> dict[str, float] | None:
    """The normalised scores of the record's kept image: the best overall of its variations."""
    scores = record.scores if isinstance(record.scores, dict) else {}
    normalised, overall = scores.get("normalised"), scores.get("overall")
    if not isinstance(normalised, dict) or not normalised or not isinstance(overall, list) or not overall:
        return None
    try:
        best = max(range(len(overall)), key=lambda i: (float(overall[i]), -i))
        return {name: float(values[best]) for name, values in normalised.items()}
    except (TypeError, ValueError, IndexError):
        return None


def loras_of(record: GenerationRecord) -> list[str]:
    parameters = record.parameters if isinstance(record.parameters, dict) else {}
    generation = parameters.get("generation")
    if isinstance(generation, dict) and isinstance(generation.get("loras_used"), list):
        return [str(x.get("name")) for x in generation["loras_used"] if isinstance(x, dict)]
    explanation = parameters.get("explanation")
    if isinstance(explanation, dict) and isinstance(explanation.get("loras"), list):
        return [str(x.get("name")) for x in explanation["loras"] if isinstance(x, dict)]
    return []


class LearningService:
    def __init__(self, store: RecordStore) -> None:
        self.store = store
        self._cache: dict[str, tuple[tuple[int, int], list[tuple[GenerationRecord, int]]]] = {}

    def _rated(self, user: str) -> list[tuple[GenerationRecord, int]]:
        """The user's rated records, read again only when a rating or a choice was added (one cheap query)."""
        version = self.store.feedback_version()
        cached = self._cache.get(user)
        if cached is not None and cached[0] == version:
            return cached[1]
        rated = self.store.rated(user, int(learning_tables()["weights"]["max_samples"]))
        if len(self._cache) > 256:
            self._cache.clear()
        self._cache[user] = (version, rated)
        return rated

    def weights(self, user: str, defaults: dict[str, float]) -> LearnedWeights:
        """From the ratings, and from the choices: a kept variation counts as a rating of ``kept_rating`` and
        each other variation of its batch as ``passed_rating`` (presets/learning.yaml)."""
        table = learning_tables()["choices"]
        samples: list[Sample] = []  # choices first: the newest max_samples kept are the explicit ratings
        for kept, others in reversed(self.store.choices(user, int(table["max_choices"]))):
            for record, rating in ((kept, int(table["kept_rating"])),
                                   *((o, int(table["passed_rating"])) for o in others)):
                scores = best_scores(record)
                if scores is not None:
                    samples.append(Sample(scores, rating))
        samples += [Sample(scores, rating) for record, rating in reversed(self._rated(user))
                    if (scores := best_scores(record)) is not None]
        return learn_weights(samples, defaults)

    def lora_priors(self, user: str) -> LoraPriors:
        return learn_lora_priors([(names, rating) for record, rating in self._rated(user)
                                  if (names := loras_of(record))])

    def scorers_seen(self, user: str) -> list[str]:
        """The scorers of the user's newest rated or kept image that has scores (what to learn weights for when
        none are named)."""
        for record, _ in self._rated(user):
            scores = best_scores(record)
            if scores:
                return sorted(scores)
        for kept, _ in self.store.choices(user, 1):
            scores = best_scores(kept)
            if scores:
                return sorted(scores)
        return []

    def preferred_tiers(self, user: str, order: list[str]) -> dict[str, PreferredTier]:
        """Per pipeline (operation type), the tier the user's ratings prefer, where they tell one."""
        by_pipeline: dict[str, list[tuple[str, int]]] = {}
        for record, rating in self._rated(user):
            quality = record.parameters.get("quality") if isinstance(record.parameters, dict) else None
            tier = quality.get("preset") if isinstance(quality, dict) else None
            if isinstance(tier, str) and tier:
                by_pipeline.setdefault(record.operation_type, []).append((tier, rating))
        out = {}
        for pipeline, rated in by_pipeline.items():
            found = learn_preferred_tier(rated, order)
            if found is not None:
                out[pipeline] = found
        return out

    def use_case_tier(self, user: str, use_case: str) -> tuple[str, str] | None:
        """The tier the user's runs for this use case settled on (records naming ``use_case``), or None."""
        key = use_case_key(use_case)
        tiers = []
        for record in self.store.with_use_case(user, key):
            quality = record.parameters.get("quality") if isinstance(record.parameters, dict) else None
            tier = quality.get("preset") if isinstance(quality, dict) else None
            if isinstance(tier, str) and tier:
                tiers.append(tier)
        return learn_use_case_tier(tiers, key)

    def view(self, user: str, defaults: dict[str, float], order: list[str] | None = None) -> dict[str, Any]:
        return {"weights": self.weights(user, defaults).to_dict(), "loras": self.lora_priors(user).to_dict(),
                "tiers": {k: v.to_dict() for k, v in self.preferred_tiers(user, order or []).items()}}
