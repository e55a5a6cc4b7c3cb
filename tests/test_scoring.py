"""Best-of-N without models: the technical scorer, combining scores, ranking, alignment, bad input."""

from __future__ import annotations

import math

import pytest
import torch
from atelier.nodes.core.base.errors import InvalidInput
from atelier.nodes.core.scoring import ranking
from atelier.nodes.core.scoring.builtin import builtin_scorers
from atelier.nodes.core.scoring.images import collect
from atelier.nodes.core.scoring.registry import ScorerSpec
from atelier.nodes.core.scoring.scores import score_variations
from atelier.nodes.core.scoring.select import take_latent, take_mask
from atelier.nodes.core.scoring.technical import score_image
from imagegen import noisy, scene, variants


@pytest.mark.parametrize("seed", [0, 3, 11])
def test_technical_ranks_the_sharp_well_exposed_image_first(seed: int) -> None:
    images = variants(scene(seed=seed))
    result = score_variations(collect(torch.stack(list(images.values()))))
    names = list(images)
    order = ranking.rank(result.overall)
    assert names[order[0]] == "sharp", dict(zip(names, result.overall, strict=True))
    sharp = result.overall[0]
    assert all(score < sharp - 5 for score in result.overall[1:])


def test_each_signal_notices_its_defect() -> None:
    base = scene()
    _, clean = score_image(base)
    defects = {name: score_image(image)[1] for name, image in variants(base).items()}
    assert defects["blurred"]["sharpness"] < clean["sharpness"] - 50
    assert defects["noisy"]["noise"] < clean["noise"] - 50
    assert defects["noisy"]["sharpness"] <= clean["sharpness"] + 1  # noise does not pass for detail
    assert defects["clipped"]["exposure"] < clean["exposure"] - 50
    assert defects["washed_out"]["colourfulness"] < clean["colourfulness"] - 50
    assert defects["noisy"]["noise_sigma"] > 5 * clean["noise_sigma"]
    assert 0.0 <= min(v for d in defects.values() for k, v in d.items() if k in ("sharpness", "noise"))


def test_noise_is_measured_at_native_resolution() -> None:
    big = noisy(scene(1024, 1024), sigma=0.03)
    _, details = score_image(big)
    assert 0.015 < details["noise_sigma"] < 0.04


def test_images_are_normalised_with_warnings() -> None:
    grey = torch.rand(1, 32, 32, 1)
    rgba = torch.rand(1, 32, 32, 4)
    nan = torch.rand(1, 32, 32, 3)
    nan[0, 0, 0, 0] = float("nan")
    image_set = collect([grey, rgba, nan, torch.rand(48, 40, 3)])  # a list; sizes may differ
    assert len(image_set) == 4 and all(i.shape[-1] == 3 for i in image_set.images)
    assert any("1 channel" in w for w in image_set.warnings)
    assert any("alpha" in w for w in image_set.warnings)
    assert any("NaN" in w for w in image_set.warnings)
    result = score_variations(image_set)
    assert all(math.isfinite(v) for v in result.overall) and len(result.overall) == 4


@pytest.mark.parametrize(("images", "field"), [
    (torch.zeros(0, 32, 32, 3), "images"),
    (torch.rand(1, 4, 32, 3), "images[0]"),
    (torch.rand(1, 32, 32, 5), "images[0]"),
    (torch.rand(32, 32), "images"),
])
def test_bad_images_are_clear_errors(images: torch.Tensor, field: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        collect(images)
    assert exc.value.field == field


def test_prompts_scorers_and_weights_are_validated() -> None:
    image_set = collect(torch.rand(3, 32, 32, 3))
    with pytest.raises(InvalidInput) as prompt:
        score_variations(image_set, ["a", "b"])
    assert prompt.value.field == "prompt" and "one per image (3)" in prompt.value.message
    with pytest.raises(InvalidInput) as scorer:
        score_variations(image_set, scorers="technical, vibes")
    assert scorer.value.field == "scorers" and "technical" in scorer.value.accepted
    for bad, field in [("technical=-1", "weights.technical"), ("nope=1", "weights"), ("technical", "weights"),
                       ("technical=abc", "weights.technical"), ('{"technical": 0}', "weights"), ("{oops", "weights")]:
        with pytest.raises(InvalidInput) as weight:
            score_variations(image_set, weights=bad)
        assert weight.value.field == field, bad
    assert score_variations(image_set, ["a", "b", "c"], weights='{"technical": 2}').weights == {"technical": 2.0}


@pytest.fixture
def brightness_scorer():
    """The registry with a second, prompt-free scorer (mean brightness x 100) to check how scores combine."""
    def score(images, prompts, memo, models):
        values = [float(i.mean()) * 100 for i in images]
        return values, [{} for _ in images]
    return builtin_scorers().with_scorer(ScorerSpec("brightness", score, lambda x: x, 1.0, needs_prompt=False))


def test_overall_is_the_weighted_mean_of_normalised_scores(brightness_scorer) -> None:
    image_set = collect(torch.stack([scene(seed=1), scene(seed=2) * 0.5]))
    result = score_variations(image_set, scorers="technical,brightness", weights="technical=3, brightness=1",
                              registry=brightness_scorer)
    for i in range(2):
        expected = (3 * result.normalised["technical"][i] + result.normalised["brightness"][i]) / 4
        assert result.overall[i] == pytest.approx(expected, abs=1e-2)
    assert set(result.metrics) == {"technical", "brightness"}


@pytest.mark.parametrize("error", [RuntimeError, AttributeError, KeyError, ImportError])
def test_a_failing_scorer_is_left_out_and_total_failure_falls_back(error: type[Exception]) -> None:
    def broken(images, prompts, memo, models):
        raise error("model exploded")
    registry = builtin_scorers().with_scorer(ScorerSpec("broken", broken, lambda x: x, 1.0, needs_prompt=False))
    image_set = collect(torch.rand(2, 32, 32, 3))
    partial = score_variations(image_set, scorers="technical,broken", registry=registry)
    assert not partial.failed and "broken" not in partial.metrics
    assert any("model exploded" in w for w in partial.warnings)
    total = score_variations(image_set, scorers="broken", registry=registry)
    assert total.failed and total.overall == []
    chosen = ranking.select(total.to_dict(), 2)
    assert chosen.chosen == [0] and any("kept the first image" in w for w in chosen.warnings)


def test_ranking_is_stable_and_thresholded() -> None:
    assert ranking.rank([50, 70, 50, 70, 10]) == [1, 3, 0, 2, 4]
    selection = ranking.select({"overall": [50, 70, 50, 70, 10]}, 5, top_k=3, threshold=30)
    assert selection.chosen == [1, 3, 0] and selection.best_index == 1 and not selection.below_threshold
    poor = ranking.select({"overall": [12.0, 25.5]}, 2, threshold=30)
    assert poor.below_threshold and poor.best_index == 1
    assert "below the threshold 30" in poor.report([12.0, 25.5])
    mismatched = ranking.select({"overall": [1.0]}, 3)
    assert mismatched.chosen == [0] and mismatched.best_score is None
    assert ranking.select({"overall": [5, 9]}, 2, top_k=10).chosen == [1, 0]
    with pytest.raises(InvalidInput):
        ranking.select({"overall": []}, 0)


def test_latents_and_masks_stay_aligned() -> None:
    latent = {"samples": torch.arange(4.0).view(4, 1, 1, 1).expand(4, 4, 8, 8), "noise_mask": torch.rand(4, 1, 8, 8)}
    chosen = take_latent(latent, [2, 0], 4)
    assert chosen["samples"][:, 0, 0, 0].tolist() == [2.0, 0.0] and chosen["noise_mask"].shape[0] == 2
    masks = torch.arange(4.0).view(4, 1, 1).expand(4, 16, 16)
    assert take_mask(masks, [3], 4)[:, 0, 0].tolist() == [3.0]
    assert take_mask(torch.ones(1, 16, 16), [3], 4).shape[0] == 1  # one mask for all
    with pytest.raises(InvalidInput) as bad_latent:
        take_latent(latent, [0], 3)
    assert bad_latent.value.field == "latent"
    with pytest.raises(InvalidInput) as bad_mask:
        take_mask(torch.ones(2, 16, 16), [0], 3)
    assert bad_mask.value.field == "mask"


def test_rank_select_keeps_the_best_aligned_and_blocks_only_when_asked() -> None:
    from atelier.nodes.core.scoring.select import rank_select

    images = torch.stack([torch.full((16, 16, 3), v) for v in (0.1, 0.9, 0.5)])
    latent = {"samples": torch.arange(3.0).view(3, 1, 1, 1)}
    scores = {"overall": [20.0, 25.0, 10.0], "warnings": []}
    warned = rank_select(images, scores, top_k=2, threshold=30.0, latent=latent)
    assert warned.selection.chosen == [1, 0] and warned.latent["samples"].flatten().tolist() == [1.0, 0.0]
    assert float(warned.images[0].mean()) == pytest.approx(0.9) and warned.mask.shape == (2, 16, 16)
    assert warned.mask.abs().sum() == 0 and warned.block is None  # ComfyUI's empty mask; a warning only
    assert warned.below_message and "25.00 < threshold 30" in warned.below_message
    blocked = rank_select(images, scores, threshold=30.0, below_threshold="block")
    assert blocked.block == blocked.below_message and blocked.outputs()[3] == 1
    assert rank_select(images, scores, threshold=5.0, below_threshold="block").block is None
    with pytest.raises(InvalidInput) as bad:
        rank_select(images, scores, below_threshold="stop")
    assert bad.value.field == "below_threshold"
