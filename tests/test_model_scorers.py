"""Model-based scorers on tiny random models, loaded through the loaders users hit, against plain
reference computations (open_clip's and Hugging Face's own preprocessing and forward passes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("open_clip")
pytest.importorskip("transformers")

import open_clip  # noqa: E402
from atelier.nodes.core.scoring.builtin import builtin_scorers  # noqa: E402
from atelier.nodes.core.scoring.clip import center_crop, letterbox  # noqa: E402
from atelier.nodes.core.scoring.images import collect  # noqa: E402
from atelier.nodes.core.scoring.models import ModelFolders, ModelManager, aesthetic_head  # noqa: E402
from atelier.nodes.core.scoring.scores import score_variations  # noqa: E402
from PIL import Image  # noqa: E402
from tiny_models import (  # noqa: E402
    aesthetic_state,
    open_clip_folder,
    open_clip_weights_file,
    transformers_clip_folder,
)

PROMPTS = ["a red fox in the snow", "a lighthouse at dusk"]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    from safetensors.torch import save_file

    paths = {
        "scorers": root / "scorers", "aesthetic": root / "aesthetic",
        "clip": open_clip_folder(root / "scorers" / "clip-vit-large-patch14"),
        "pickscore": transformers_clip_folder(root / "scorers" / "PickScore_v1"),
        "hpsv2": root / "scorers" / "HPS_v2.1_compressed.pt",
    }
    paths["arch"] = Path(open_clip_weights_file(paths["hpsv2"], root / "archs"))
    paths["aesthetic"].mkdir()
    save_file(aesthetic_state(), str(paths["aesthetic"] / "sac+logos+ava1-l14-linearMSE.safetensors"))
    return paths


@pytest.fixture
def manager(models: dict[str, Path]) -> ModelManager:
    folders = ModelFolders(folders={"scorers": [models["scorers"]], "aesthetic": [models["aesthetic"]]},
                           archs={"hpsv2": str(models["arch"])})
    return ModelManager(folders)


def images_8bit(seed: int = 0) -> list[torch.Tensor]:
    """Images with exact 8-bit values (so PIL sees the same pixels), to be downscaled and upscaled."""
    g = torch.Generator().manual_seed(seed)
    sizes = [(80, 64), (64, 96), (24, 20)]
    return [torch.randint(0, 256, (h, w, 3), generator=g).float() / 255 for h, w in sizes]


def to_pil(image: torch.Tensor) -> Image.Image:
    return Image.fromarray((image * 255).round().to(torch.uint8).numpy())


def reference_open_clip(folder: Path, images: list[torch.Tensor], prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """open_clip's own model, PIL transforms and tokenizer: normalised image and text embeddings."""
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{folder}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{folder}")
    with torch.no_grad():
        image = torch.cat([model.encode_image(preprocess(to_pil(i)).unsqueeze(0)) for i in images])
        text = model.encode_text(tokenizer(prompts))
    return torch.nn.functional.normalize(image, dim=-1), torch.nn.functional.normalize(text, dim=-1)


def test_clip_score_and_aesthetic_match_their_references(models, manager) -> None:
    images = images_8bit()
    prompts = [PROMPTS[0], PROMPTS[1], PROMPTS[0]]
    result = score_variations(collect(images), prompts, "clip_score,aesthetic", registry=builtin_scorers(manager))
    assert not result.warnings, result.warnings
    image, text = reference_open_clip(models["clip"], images, prompts)
    cos = (image * text).sum(-1)
    expected_clip = (100 * cos).clamp(min=0)
    assert result.metrics["clip_score"] == pytest.approx(expected_clip.tolist(), abs=1e-3)
    def mlp(x: torch.Tensor) -> list[float]:  # the v2 MLP: linear layers, no activations
        state = aesthetic_state()
        for index in (0, 2, 4, 6, 7):
            x = x @ state[f"layers.{index}.weight"].T + state[f"layers.{index}.bias"]
        return x.squeeze(-1).tolist()

    # the definition, exactly, on Atelier's own embeddings (L2-normalised, projected)
    backbone = manager.backbone("clip")
    ours = backbone.image_embeddings(backbone.preprocess(images, "round"))
    assert result.metrics["aesthetic"] == pytest.approx(mlp(ours), abs=1e-4)
    # and the whole pipeline against open_clip's PIL preprocessing (the same pixels)
    assert result.metrics["aesthetic"] == pytest.approx(mlp(image), abs=1e-4)


def test_clip_score_and_aesthetic_share_one_image_forward(manager) -> None:
    backbone = manager.backbone("clip")
    calls = {"image": 0, "text": 0}
    image_fn, text_fn = backbone.encode_image_fn, backbone.encode_text_fn

    def count_image(pixels):
        calls["image"] += 1
        return image_fn(pixels)

    def count_text(prompts):
        calls["text"] += 1
        return text_fn(prompts)

    backbone.encode_image_fn, backbone.encode_text_fn = count_image, count_text
    try:
        score_variations(collect(torch.rand(5, 40, 40, 3)), "an owl", "clip_score,aesthetic", registry=builtin_scorers(manager))
        assert calls["image"] == 1
        score_variations(collect(torch.rand(2, 40, 40, 3)), "an owl", "clip_score", registry=builtin_scorers(manager))
        assert calls["text"] <= 1  # the prompt's embedding is cached
    finally:
        backbone.encode_image_fn, backbone.encode_text_fn = image_fn, text_fn


def test_pickscore_matches_the_hugging_face_pipeline(models, manager) -> None:
    from transformers import CLIPModel, CLIPProcessor

    images = images_8bit(1)
    result = score_variations(collect(images), PROMPTS[0], "pickscore", registry=builtin_scorers(manager))
    model = CLIPModel.from_pretrained(models["pickscore"], local_files_only=True).eval()
    processor = CLIPProcessor.from_pretrained(models["pickscore"], local_files_only=True)
    with torch.no_grad():
        inputs = processor(images=[to_pil(i) for i in images], text=[PROMPTS[0]], return_tensors="pt", padding=True)
        expected = model(**inputs).logits_per_image.squeeze(-1)
    assert result.metrics["pickscore"] == pytest.approx(expected.tolist(), abs=1e-3)
    probabilities = [d["pickscore.probability"] for d in result.details]
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-4)


def test_hpsv2_letterboxes_and_matches_its_reference(models, manager) -> None:
    images = images_8bit(2)
    result = score_variations(collect(images), PROMPTS[1], "hpsv2", registry=builtin_scorers(manager))
    model = open_clip.create_model(str(models["arch"]), pretrained=str(models["hpsv2"]))
    tokenizer = open_clip.get_tokenizer(str(models["arch"]))
    pixels = []
    for image in images:
        pil = to_pil(image)
        scale = 32 / max(pil.size)
        resized = pil.resize((round(pil.size[0] * scale), round(pil.size[1] * scale)), Image.BICUBIC)
        canvas = Image.new("RGB", (32, 32))
        canvas.paste(resized, ((32 - resized.size[0]) // 2, (32 - resized.size[1]) // 2))
        x = torch.tensor(canvas.get_flattened_data(), dtype=torch.float32).view(32, 32, 3) / 255
        pixels.append(x)
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073])
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711])
    batch = ((torch.stack(pixels) - mean) / std).permute(0, 3, 1, 2)
    with torch.no_grad():
        image = torch.nn.functional.normalize(model.encode_image(batch), dim=-1)
        text = torch.nn.functional.normalize(model.encode_text(tokenizer([PROMPTS[1]])), dim=-1)
    assert result.metrics["hpsv2"] == pytest.approx((image * text).sum(-1).tolist(), abs=6e-5)  # kept to 4 places


def test_transformers_format_clip_serves_clip_score(models, tmp_path) -> None:
    """Both formats of CLIP ViT-L/14 load: here the Hugging Face one in ComfyUI's clip_vision folder."""
    import shutil

    clip_vision = tmp_path / "clip_vision"
    shutil.copytree(models["pickscore"], clip_vision / "clip-vit-large-patch14")
    registry = builtin_scorers(ModelManager(ModelFolders(folders={"clip_vision": [clip_vision]})))
    result = score_variations(collect(images_8bit(3)), PROMPTS[0], "clip_score", registry=registry)
    assert not result.warnings and len(result.metrics["clip_score"]) == 3
    assert all(0 <= v <= 100 for v in result.metrics["clip_score"])


def test_missing_models_name_folders_and_files_and_technical_goes_on(tmp_path) -> None:
    empty = tmp_path / "scorers"
    empty.mkdir()
    registry = builtin_scorers(ModelManager(ModelFolders(folders={"scorers": [empty]}, hf_cache=tmp_path / "hf")))
    result = score_variations(collect(torch.rand(2, 32, 32, 3)), "a cat", "technical,pickscore", registry=registry)
    assert len(result.overall) == 2 and "pickscore" not in result.metrics
    warning = " ".join(result.warnings)
    assert "PickScore_v1" in warning and str(empty) in warning and "nothing is downloaded" in warning


def test_auto_runs_technical_and_every_scorer_whose_weights_are_found(models, tmp_path) -> None:
    """The default set: clip_score and aesthetic when CLIP and the aesthetic head are in place, PickScore and
    HPSv2 skipped (and why) when theirs are not; every scorer with all the weights."""
    partial = ModelManager(ModelFolders(folders={"scorers": [tmp_path], "aesthetic": [models["aesthetic"]]},
                                        overrides={"clip": models["clip"]}))
    result = score_variations(collect(torch.rand(2, 32, 32, 3)), "a cat", registry=builtin_scorers(partial))
    assert list(result.metrics) == ["technical", "clip_score", "aesthetic"] and len(result.overall) == 2
    assert set(result.skipped) == {"pickscore", "hpsv2"}
    assert "PickScore_v1" in result.skipped["pickscore"] and "HPS_v2.1_compressed.pt" in result.skipped["hpsv2"]
    assert not result.warnings  # skipping a scorer the user has no weights for is not a problem
    assert result.to_dict()["ran"] == ["technical", "clip_score", "aesthetic"]
    assert "skipped pickscore" in result.summary()
    folders = ModelFolders(folders={"scorers": [models["scorers"]], "aesthetic": [models["aesthetic"]]},
                           archs={"hpsv2": str(models["arch"])})
    everything = builtin_scorers(ModelManager(folders)).resolve("auto")
    assert everything.names == ["technical", "clip_score", "aesthetic", "pickscore", "hpsv2"] and not everything.skipped
    none = builtin_scorers(None).resolve(None)
    assert none.names == ["technical"] and set(none.skipped) == {"clip_score", "aesthetic", "pickscore", "hpsv2"}
    assert builtin_scorers(None).resolve("auto, hpsv2").names == ["technical", "hpsv2"]  # asked for: it runs (or warns)


def test_prompt_scorers_without_a_prompt_are_left_out(manager) -> None:
    result = score_variations(collect(torch.rand(2, 32, 32, 3)), "", "technical,clip_score", registry=builtin_scorers(manager))
    assert "clip_score" not in result.metrics and any("needs a prompt" in w for w in result.warnings)


def test_aesthetic_head_variants() -> None:
    relu = aesthetic_head(aesthetic_state(relu=True))
    assert any(isinstance(m, torch.nn.ReLU) for m in relu)
    linear = aesthetic_head(aesthetic_state())
    assert not any(isinstance(m, torch.nn.ReLU) for m in linear)
    with pytest.raises(ValueError, match="not a LAION aesthetic MLP"):
        aesthetic_head({"layers.1.weight": torch.zeros(2, 2)})


def test_open_clip_folder_without_weights_is_refused(tmp_path, models) -> None:
    import shutil

    broken = tmp_path / "scorers" / "clip-vit-large-patch14"
    broken.mkdir(parents=True)
    shutil.copy(models["clip"] / "open_clip_config.json", broken)
    registry = builtin_scorers(ModelManager(ModelFolders(folders={"scorers": [tmp_path / "scorers"]})))
    result = score_variations(collect(torch.rand(1, 32, 32, 3)), "x", "technical,clip_score", registry=registry)
    assert any("no weights" in w for w in result.warnings)


SIZES = [(224, 224), (448, 448), (512, 384), (300, 700), (227, 224), (160, 120), (100, 100), (20, 30), (33, 97)]


@pytest.mark.parametrize(("height", "width"), SIZES)
def test_preprocessing_equals_the_references_pixel_for_pixel(height: int, width: int) -> None:
    """Down- and upscaling, square and not: open_clip's transforms (Pillow) and Hugging Face's processor
    (PyTorch's uint8 kernel, floor-centred crop) give exactly our pixels, noise and natural images alike."""
    from imagegen import scene
    from torchvision import transforms

    g = torch.Generator().manual_seed(height * 1000 + width)
    for image in (scene(height, width), torch.rand(height, width, 3, generator=g)):
        ours = center_crop([image], 224, "round", (0, 0, 0), (1, 1, 1))[0]
        reference = transforms.Compose([transforms.Resize(224, interpolation=transforms.InterpolationMode.BICUBIC),
                                        transforms.CenterCrop(224), transforms.ToTensor()])(to_pil(image))
        assert torch.equal(ours * 255, (reference * 255).round()), (height, width)
        hf = center_crop([image], 224, "floor", (0, 0, 0), (1, 1, 1), resampler="torch")[0]
        pixels = torch.from_numpy(np.array(to_pil(image))).permute(2, 0, 1).unsqueeze(0)
        short = min(height, width)
        size = (224, int(224 * width / height)) if height == short else (int(224 * height / width), 224)
        resized = torch.nn.functional.interpolate(pixels, size=size, mode="bicubic", antialias=True)[0]
        top, left = int((size[0] - 224) / 2.0), int((size[1] - 224) / 2.0)
        assert torch.equal(hf * 255, resized[:, top:top + 224, left:left + 224].float()), (height, width)
        boxed = letterbox([image], 224, (0, 0, 0), (1, 1, 1))[0]
        pil = to_pil(image)
        scale = 224 / max(pil.size)
        shrunk = pil.resize((round(pil.size[0] * scale), round(pil.size[1] * scale)), Image.BICUBIC)
        canvas = Image.new("RGB", (224, 224))
        canvas.paste(shrunk, ((224 - shrunk.size[0]) // 2, (224 - shrunk.size[1]) // 2))
        assert torch.equal(boxed * 255, torch.from_numpy(np.array(canvas)).permute(2, 0, 1).float())


@pytest.mark.parametrize("side", [224, 448])
def test_scores_equal_the_references_at_every_size(models, manager, side: int) -> None:
    """clip_score and aesthetic against open_clip's own pipeline, PickScore against Hugging Face's, to 1e-4."""
    from imagegen import scene
    from transformers import CLIPModel, CLIPProcessor

    images = [(scene(side, side) * 255).round() / 255, (scene(side, side + 64) * 255).round() / 255]
    result = score_variations(collect(images), PROMPTS[0], "clip_score,aesthetic,pickscore",
                              registry=builtin_scorers(manager))
    image, text = reference_open_clip(models["clip"], images, [PROMPTS[0]] * 2)
    expected = (100 * (image * text).sum(-1)).clamp(min=0)
    assert result.metrics["clip_score"] == pytest.approx(expected.tolist(), rel=1e-4, abs=1e-4)
    state = aesthetic_state()
    x = image
    for index in (0, 2, 4, 6, 7):
        x = x @ state[f"layers.{index}.weight"].T + state[f"layers.{index}.bias"]
    assert result.metrics["aesthetic"] == pytest.approx(x.squeeze(-1).tolist(), rel=1e-4, abs=1e-4)
    model = CLIPModel.from_pretrained(models["pickscore"], local_files_only=True).eval()
    processor = CLIPProcessor.from_pretrained(models["pickscore"], local_files_only=True)
    with torch.no_grad():
        inputs = processor(images=[to_pil(i) for i in images], text=[PROMPTS[0]], return_tensors="pt", padding=True)
        pick = model(**inputs).logits_per_image.squeeze(-1)
    assert result.metrics["pickscore"] == pytest.approx(pick.tolist(), rel=1e-4, abs=1e-4)


def test_letterbox_keeps_the_whole_image() -> None:
    wide = torch.ones(50, 200, 3)
    pixels = letterbox([wide], 224, (0, 0, 0), (1, 1, 1))[0]
    assert pixels.shape == (3, 224, 224)
    assert pixels[:, :80, :].abs().max() == 0 and pixels[:, 112, :].min() > 0.99  # black bars, image in the middle


def test_explicitly_chosen_models_override_the_default_names(models, tmp_path) -> None:
    """As the Scorer Models node does: a renamed folder, picked by one of its weights files."""
    import shutil

    renamed = tmp_path / "my-pickscore"
    shutil.copytree(models["pickscore"], renamed)
    base = ModelManager(ModelFolders(folders={"scorers": [tmp_path / "empty"]}))
    chosen = base.with_overrides({"pickscore": renamed / "model.safetensors"})
    image_set = collect(images_8bit(5))
    without = score_variations(image_set, "a fox", "pickscore", registry=builtin_scorers(base))
    assert "pickscore" not in without.metrics
    with_choice = score_variations(image_set, "a fox", "pickscore", registry=builtin_scorers(chosen))
    assert len(with_choice.metrics["pickscore"]) == 3 and not with_choice.warnings


def test_models_are_found_in_the_local_hugging_face_cache(models, tmp_path) -> None:
    """org/name entries are read from the hub cache layout (refs/main -> snapshots/<rev>), offline."""
    import shutil

    from atelier.nodes.core.scoring.models import locate

    repo = tmp_path / "hub" / "models--yuvalkirstain--PickScore_v1"
    shutil.copytree(models["pickscore"], repo / "snapshots" / "abc123")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    folders = ModelFolders(folders={"scorers": [tmp_path / "empty"]}, hf_cache=tmp_path / "hub")
    assert locate("pickscore", folders) == repo / "snapshots" / "abc123"
    result = score_variations(collect(images_8bit(6)), "a fox", "pickscore",
                              registry=builtin_scorers(ModelManager(folders)))
    assert len(result.metrics["pickscore"]) == 3 and not result.warnings


def test_continuity_uses_clip_image_embeddings_when_clip_is_in_place(manager, tmp_path) -> None:
    from atelier.nodes.core.scoring.continuity import continuity

    images = images_8bit(3)
    same = continuity([images[0], images[1]], [images[0]], manager)
    assert same.method == "clip" and same.scores[0] == 100.0 and same.scores[1] < 100.0  # itself: cosine 1
    without = continuity([images[0], images[1]], [images[0]], ModelManager(ModelFolders(folders={"scorers": [tmp_path]})))
    assert without.method == "structure+palette" and "clip" in without.note and without.scores[0] == 100.0
