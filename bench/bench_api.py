"""The Python API's overhead per image over a bare diffusers call, on the tiny random Stable Diffusion pipeline
built at run time (tests/tiny_diffusers.py), on this machine's CPU.

    python bench/bench_api.py [--size 128] [--steps 20] [--repeat 5]

Reference, measured in the same run: the loaded diffusers pipeline called directly (same prompt, size, steps,
sampler and seed, no LoRA). Measured: ``IntelligentGenerationPipeline.generate`` in MANUAL mode with the same
parameters (analysis, decision, explanation, the record and the image), and ``generate_batch`` of 8 seeds (one
decision per batch). Target (issue 16): overhead <= 5% per image.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
import torchvision_shim  # noqa: E402

torchvision_shim.install()  # this machine's CUDA-linked torchvision (a CPU torch): see tests/torchvision_shim.py

import torch  # noqa: E402
from atelier.api import (  # noqa: E402
    BatchConfig,
    GenerationParams,
    IntelligentGenerationPipeline,
    OperationMode,
    PipelineConfig,
)
from tiny_diffusers import tiny_pipeline  # noqa: E402

PROMPT = "a lighthouse on a cliff at dusk, oil painting"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    with tempfile.TemporaryDirectory(prefix="atelier-bench-api-") as tmp:
        home = Path(tmp)
        model = tiny_pipeline(home / "models" / "diffusers" / "tiny-sd")
        params = GenerationParams(num_steps=args.steps, guidance_scale=7.0, width=args.size, height=args.size,
                                  sampler="euler", scheduler="normal", tier="bench")
        api = IntelligentGenerationPipeline(PipelineConfig(base_model=str(model), mode=OperationMode.MANUAL),
                                            home=home)
        api.generate(PROMPT, seed=0, params=params)  # load, warm up
        pipe = api.backend.pipe

        def bare(seed: int) -> None:
            pipe(PROMPT, num_inference_steps=args.steps, width=args.size, height=args.size, guidance_scale=7.0,
                 generator=torch.Generator("cpu").manual_seed(seed))

        def ours(seed: int) -> None:
            api.generate(PROMPT, seed=seed, params=params)

        bare(0)
        reference, measured = [], []
        for i in range(args.repeat):  # interleaved, so drift of the machine hits both alike
            started = time.perf_counter()
            bare(i)
            reference.append(time.perf_counter() - started)
            started = time.perf_counter()
            ours(i)
            measured.append(time.perf_counter() - started)
        ref, mine = statistics.median(reference), statistics.median(measured)
        print(f"tiny SD pipeline, {args.size}x{args.size}, {args.steps} steps, CPU, median of {args.repeat}")
        print(f"reference: bare diffusers call           {ref * 1000:8.1f} ms / image")
        print(f"generate (MANUAL, same parameters)       {mine * 1000:8.1f} ms / image  "
              f"overhead {100 * (mine - ref) / ref:+.1f}% (target <= 5%)")
        batch = 8
        started = time.perf_counter()
        api.generate_batch(PROMPT, BatchConfig(num_images=batch, base_seed=1), params=params)
        per_image = (time.perf_counter() - started) / batch
        bare_batch = []
        for i in range(batch):
            started = time.perf_counter()
            bare(i)
            bare_batch.append(time.perf_counter() - started)
        ref_batch = statistics.mean(bare_batch)
        print(f"generate_batch of {batch} (one decision)     {per_image * 1000:8.1f} ms / image  "
              f"overhead {100 * (per_image - ref_batch) / ref_batch:+.1f}% against {ref_batch * 1000:.1f} ms bare")
        api.close()


if __name__ == "__main__":
    main()
