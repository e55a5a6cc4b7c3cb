"""Tiny random CLIP-family models built at test time, in the formats users put in ComfyUI's folders.

Nothing is downloaded: open_clip models from a small custom config, transformers' CLIPModel from a
small CLIPConfig, and a CLIP tokenizer built from the BPE vocabulary that open_clip ships.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import torch

EMBED = 16
IMAGE = 32
OPENCLIP_CFG = {
    "embed_dim": EMBED, "quick_gelu": True,
    "vision_cfg": {"image_size": IMAGE, "layers": 2, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}
OPENAI_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_STD = [0.26862954, 0.26130258, 0.27577711]


def open_clip_folder(path: Path, seed: int = 0) -> Path:
    """A folder like an open_clip Hub repo: open_clip_config.json + open_clip_model.safetensors."""
    import open_clip
    from safetensors.torch import save_file

    path.mkdir(parents=True, exist_ok=True)
    (path / "open_clip_config.json").write_text(json.dumps({
        "model_cfg": OPENCLIP_CFG, "preprocess_cfg": {"mean": OPENAI_MEAN, "std": OPENAI_STD}}))
    torch.manual_seed(seed)
    model = open_clip.CLIP(**OPENCLIP_CFG)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path / "open_clip_model.safetensors"))
    return path


def open_clip_weights_file(path: Path, arch_dir: Path, arch: str = "atelier-tiny", seed: int = 1) -> str:
    """A bare weights file plus an architecture registered with open_clip (as ViT-H-14 is)."""
    import open_clip

    arch_dir.mkdir(parents=True, exist_ok=True)
    (arch_dir / f"{arch}.json").write_text(json.dumps(OPENCLIP_CFG))
    open_clip.add_model_config(arch_dir)
    torch.manual_seed(seed)
    model = open_clip.CLIP(**OPENCLIP_CFG)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return arch


def _bytes_to_unicode() -> dict[int, str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs), strict=True))


def clip_tokenizer(path: Path) -> None:
    """CLIP's BPE tokenizer files (vocab.json, merges.txt) from open_clip's bundled vocabulary."""
    import open_clip
    from transformers import CLIPTokenizer

    bpe = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    merges = gzip.open(bpe).read().decode("utf-8").split("\n")[1:49152 - 256 - 2 + 1]
    pairs = [tuple(m.split()) for m in merges]
    vocab = list(_bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab] + ["".join(p) for p in pairs] + ["<|startoftext|>", "<|endoftext|>"]
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.json").write_text(json.dumps({v: i for i, v in enumerate(vocab)}))
    (path / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(p) for p in pairs) + "\n")
    tokenizer = CLIPTokenizer(str(path / "vocab.json"), str(path / "merges.txt"))
    tokenizer.save_pretrained(path)


def transformers_clip_folder(path: Path, seed: int = 2) -> Path:
    """A Hugging Face CLIPModel folder (PickScore_v1's format) with tokenizer and image processor."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config={"hidden_size": 32, "intermediate_size": 37, "num_attention_heads": 4, "num_hidden_layers": 2,
                     "vocab_size": 49408, "max_position_embeddings": 77},
        vision_config={"hidden_size": 32, "intermediate_size": 37, "num_attention_heads": 4, "num_hidden_layers": 2,
                       "image_size": IMAGE, "patch_size": 8},
        projection_dim=EMBED)
    model = CLIPModel(config)
    model.save_pretrained(path)
    clip_tokenizer(path)
    CLIPImageProcessor(size={"shortest_edge": IMAGE}, crop_size={"height": IMAGE, "width": IMAGE},
                       image_mean=OPENAI_MEAN, image_std=OPENAI_STD).save_pretrained(path)
    return path


def aesthetic_state(seed: int = 3, relu: bool = False) -> dict[str, torch.Tensor]:
    """LAION's aesthetic MLP layout at tiny sizes (EMBED -> 24 -> 12 -> 8 -> 4 -> 1)."""
    torch.manual_seed(seed)
    sizes = [EMBED, 24, 12, 8, 4, 1]
    indices = [0, 3, 6, 9, 11] if relu else [0, 2, 4, 6, 7]
    state = {}
    for index, (fan_in, fan_out) in zip(indices, zip(sizes, sizes[1:], strict=False), strict=True):
        state[f"layers.{index}.weight"] = torch.randn(fan_out, fan_in) * 0.5
        state[f"layers.{index}.bias"] = torch.randn(fan_out) * 0.1 + (5.0 if fan_out == 1 else 0.0)
    return state


def tiny_causal_lm(path: Path, seed: int = 4) -> Path:
    """A random GPT-2 with a word-level tokenizer trained offline on a few prompt words."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    words = ("a red fox in the snow oil painting watercolor soft golden hour light dramatic rim lighting wide "
             "shot close-up portrait highly detailed sharp focus castle lighthouse cliff dusk forest moonlight , .")
    tokenizer = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator([words] * 4, trainers.WordLevelTrainer(special_tokens=["<unk>", "<pad>", "<eos>"]))
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="<unk>", pad_token="<pad>", eos_token="<eos>")
    fast.save_pretrained(path)
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=fast.vocab_size, n_positions=1024, n_embd=32, n_layer=2, n_head=2,
                        eos_token_id=fast.eos_token_id, bos_token_id=fast.eos_token_id)
    GPT2LMHeadModel(config).save_pretrained(path)
    return path
