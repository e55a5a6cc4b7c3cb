"""Scoring throughput: Atelier against a naive reference, on the same random-weight models, in one run.

    python bench/bench_scoring.py [--arch ViT-B-32-quickgelu] [--size 512] [--batches 1 4 8 16]

Atelier: one batched image forward shared by clip_score and aesthetic, preprocessing in torch on the
IMAGE tensor, text embeddings cached. Reference (what a straightforward node does): a PIL round-trip
per image, open_clip's PIL transforms, one image at a time, and a separate forward per metric (text
encoded each time). Prints images/s and the ratio; on a GPU also the fraction of its peak FLOP/s.
The models are random (no weights can be downloaded here) but have the real architecture.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import torchvision_shim  # noqa: E402  (a CUDA-linked torchvision on a CPU torch, as in CI)

torchvision_shim.install()

import open_clip  # noqa: E402
from atelier.nodes.core.scoring.builtin import builtin_scorers  # noqa: E402
from atelier.nodes.core.scoring.images import collect  # noqa: E402
from atelier.nodes.core.scoring.models import ModelFolders, ModelManager  # noqa: E402
from atelier.nodes.core.scoring.scores import score_variations  # noqa: E402
from PIL import Image  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

PROMPT = "a lighthouse on a cliff at dusk, oil painting, warm rim light"
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "RTX 4090": 165.0}  # dense bf16/fp16


def build_models(root: Path, arch: str) -> tuple[Path, Path]:
    """A random-weight open_clip model of ``arch`` as a local folder, and an aesthetic MLP for it."""
    folder = root / "scorers" / "clip-vit-large-patch14"
    folder.mkdir(parents=True)
    config = open_clip.get_model_config(arch)
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": config}))
    torch.manual_seed(0)
    model = open_clip.create_model(arch)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "open_clip_model.safetensors"))
    dim = config["embed_dim"]
    sizes = [dim, 1024, 128, 64, 16, 1]
    state = {}
    for index, (fan_in, fan_out) in zip([0, 2, 4, 6, 7], zip(sizes, sizes[1:], strict=False), strict=True):
        state[f"layers.{index}.weight"] = torch.randn(fan_out, fan_in) * 0.02
        state[f"layers.{index}.bias"] = torch.zeros(fan_out)
    (root / "aesthetic").mkdir()
    save_file(state, str(root / "aesthetic" / "sac+logos+ava1-l14-linearMSE.safetensors"))
    return folder, root / "aesthetic" / "sac+logos+ava1-l14-linearMSE.safetensors"


class Naive:
    """The reference: PIL round-trip, one image at a time, one forward per metric."""

    def __init__(self, folder: Path, head_path: Path, device: torch.device) -> None:
        from atelier.nodes.core.scoring.models import aesthetic_head, load_state_dict

        self.model, _, self.preprocess = open_clip.create_model_and_transforms(f"local-dir:{folder}", device=device)
        self.model.eval()
        self.tokenizer = open_clip.get_tokenizer(f"local-dir:{folder}")
        self.head = aesthetic_head(load_state_dict(head_path)).to(device)
        self.device = device

    @torch.no_grad()
    def score(self, images: torch.Tensor) -> list[tuple[float, float]]:
        out = []
        for image in images:
            pil = Image.fromarray((image * 255).round().to(torch.uint8).cpu().numpy())
            pixels = self.preprocess(pil).unsqueeze(0).to(self.device)
            text = torch.nn.functional.normalize(self.model.encode_text(self.tokenizer([PROMPT]).to(self.device)), dim=-1)
            clip = torch.nn.functional.normalize(self.model.encode_image(pixels), dim=-1)
            clip_score = float((100 * (clip * text).sum()).clamp(min=0))
            pixels = self.preprocess(pil).unsqueeze(0).to(self.device)  # its own forward for the aesthetic
            embedding = torch.nn.functional.normalize(self.model.encode_image(pixels), dim=-1)
            out.append((clip_score, float(self.head(embedding))))
        return out


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def image_forward_flops(model: torch.nn.Module, device: torch.device, size: int) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model.encode_image(torch.zeros(1, 3, size, size, device=device))
    return float(counter.get_total_flops())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--arch", default="ViT-B-32-quickgelu", help="ViT-L-14-quickgelu is clip_score's own")
    parser.add_argument("--size", type=int, default=512, help="side of the generated images")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.set_grad_enabled(False)

    root = Path(tempfile.mkdtemp(prefix="atelier-bench-scoring-"))
    folder, head = build_models(root, args.arch)
    manager = ModelManager(ModelFolders(folders={"scorers": [root / "scorers"], "aesthetic": [root / "aesthetic"]}))
    registry = builtin_scorers(manager)
    backbone = manager.backbone("clip")
    backbone.model.to(device)
    manager.head("aesthetic").to(device)
    naive = Naive(folder, head, device)

    generator = torch.Generator().manual_seed(0)
    print(f"scoring benchmark: {args.arch} (random weights), {args.size}x{args.size} images, device {device}"
          f"{' ' + torch.cuda.get_device_name() if device.type == 'cuda' else f', {torch.get_num_threads()} threads'}")
    print(f"{'batch':>5} {'Atelier img/s':>14} {'reference img/s':>16} {'ratio':>7}")
    flops = image_forward_flops(backbone.model, device, backbone.image_size) if device.type == "cuda" else 0.0
    for batch in args.batches:
        images = torch.rand(batch, args.size, args.size, 3, generator=generator).to(device)

        def ours(batch_images: torch.Tensor = images) -> None:
            score_variations(collect(batch_images), PROMPT, "clip_score,aesthetic", registry=registry)

        ours_s = timed(ours, args.repeats)
        ref_s = timed(lambda batch_images=images: naive.score(batch_images), max(1, args.repeats // 2))
        line = f"{batch:>5} {batch / ours_s:>14.2f} {batch / ref_s:>16.2f} {ref_s / ours_s:>6.2f}x"
        if flops:
            name = torch.cuda.get_device_name()
            peak = next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
            achieved = flops * batch / ours_s / 1e12
            line += f"   {achieved:.2f} TFLOP/s" + (f" = {achieved / peak:.1%} of peak" if peak else "")
        print(line)


if __name__ == "__main__":
    main()
