"""What a LoRA's header metadata and its sidecars say: title, description, triggers, tags, strength, kind
and content level.

Sidecars (names relative to ``<name>.safetensors``), merged in this order, the first that gives a field wins:

1. A1111's user metadata ``<name>.json``: ``sd version`` (overrides family detection), ``activation text``
   (triggers), ``preferred weight`` (0 = unset), ``description``, ``negative text``, ``notes``.
2. Lora-Manager's ``<name>.metadata.json``: ``model_name``, ``base_model``, ``usage_tips`` (a JSON string with
   ``strength``), ``tags``, ``modelDescription``, ``preview_nsfw_level`` and the Civitai version under
   ``civitai`` (``trainedWords``, ``model.tags``, ``nsfwLevel``).
3. Civitai Helper's ``<name>.civitai.info``: the Civitai version JSON (``baseModel``, ``trainedWords``,
   ``model.name/tags/type/nsfw``, ``nsfwLevel``). An empty file means "not on Civitai".
4. The header's own metadata: ``modelspec.*`` (title, description, trigger_phrase, tags,
   lora_default_weight) and kohya's ``ss_*`` (``ss_output_name``, ``ss_tag_frequency``,
   ``ss_datasets[].subsets[].class_tokens``).

Triggers: explicit trigger words first (A1111 activation text, Civitai trainedWords, modelspec.trigger_phrase,
kohya class tokens); tags: the dataset's most frequent caption tags (A1111's ``build_tags``: counts summed over
every dataset folder; captions averaging 16+ characters are sentences and are split into words of 3+
letters) plus Civitai/Lora-Manager/modelspec tags. No file is ever written here.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

from .tables import LoraTables

SIDECARS = (("a1111", ".json"), ("manager", ".metadata.json"), ("civitai", ".civitai.info"))
MAX_SIDECAR_BYTES = 4 * 1024 * 1024
MAX_TEXT = 2000
MAX_ITEMS = 64


def sidecar_paths(path: Path) -> dict[str, Path]:
    stem = path.with_suffix("")
    return {kind: stem.with_name(stem.name + suffix) for kind, suffix in SIDECARS}


def read_sidecar(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """A sidecar's JSON object, or a problem; a missing file is neither."""
    try:
        if not path.is_file():
            return None, None
        if path.stat().st_size > MAX_SIDECAR_BYTES:
            return None, f"{path.name}: over {MAX_SIDECAR_BYTES // (1024 * 1024)} MB, not read"
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError as exc:
        return None, f"{path.name}: cannot be read ({exc.strerror or type(exc).__name__})"
    if not text:
        return {}, None  # Civitai Helper: not found on Civitai
    try:
        data = json.loads(text)
    except ValueError:
        return None, f"{path.name}: not valid JSON"
    if not isinstance(data, dict):
        return None, f"{path.name}: not a JSON object"
    return data, None


def _text(value: Any, limit: int = MAX_TEXT) -> str:
    if isinstance(value, str):
        return re.sub(r"<[^>]+>", " ", value).strip()[:limit]
    return ""


def _words(value: Any) -> list[str]:
    """A list of strings, or one comma-separated string, as clean items."""
    items = value if isinstance(value, list) else (value.split(",") if isinstance(value, str) else [])
    out: list[str] = []
    for item in items:
        text = _text(item, 200).strip(" ,")
        if text and text.lower() not in (o.lower() for o in out):
            out.append(text)
    return out[:MAX_ITEMS]


def _json_field(metadata: dict[str, str], key: str) -> Any:
    raw = metadata.get(key)
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def dataset_tags(metadata: dict[str, str], top: int) -> list[str]:
    """A1111's build_tags: caption tags summed over every dataset folder, most frequent first."""
    frequency = _json_field(metadata, "ss_tag_frequency")
    if not isinstance(frequency, dict):
        return []
    counts: Counter[str] = Counter()
    for folder in frequency.values():
        if isinstance(folder, dict):
            for tag, count in folder.items():
                if isinstance(tag, str) and isinstance(count, (int, float)):
                    counts[tag.strip()] += int(count)
    if not counts:
        return []
    if sum(len(t) for t in counts) / len(counts) >= 16:  # captions are sentences: count their words
        words: Counter[str] = Counter()
        for sentence, count in counts.items():
            for word in re.findall(r"[A-Za-z][A-Za-z'-]{2,}", sentence):
                words[word.lower()] += count
        counts = words
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [tag for tag, _ in ranked if tag][:top]


def class_tokens(metadata: dict[str, str]) -> list[str]:
    datasets = _json_field(metadata, "ss_datasets")
    tokens: list[str] = []
    if isinstance(datasets, list):
        for dataset in datasets:
            for subset in (dataset.get("subsets") or []) if isinstance(dataset, dict) else []:
                if isinstance(subset, dict) and isinstance(subset.get("class_tokens"), str):
                    tokens.extend(_words(subset["class_tokens"]))
    return tokens


def _usage_strength(manager: dict[str, Any]) -> float | None:
    tips = manager.get("usage_tips")
    if isinstance(tips, str):
        try:
            tips = json.loads(tips)
        except ValueError:
            tips = None
    value = tips.get("strength") if isinstance(tips, dict) else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def describe(file_name: str, metadata: dict[str, str], sidecars: dict[str, dict[str, Any]],
             tables: LoraTables) -> dict[str, Any]:
    """The card fields that come from metadata and sidecars (the family is ``family.detect``'s)."""
    a1111 = sidecars.get("a1111") or {}
    manager = sidecars.get("manager") or {}
    civitai = sidecars.get("civitai") or manager.get("civitai") or {}
    if not isinstance(civitai, dict):
        civitai = {}
    model = civitai.get("model") if isinstance(civitai.get("model"), dict) else {}
    assert isinstance(model, dict)
    stem = Path(file_name).stem
    title = next((t for t in (_text(manager.get("model_name"), 200), _text(model.get("name"), 200),
                              _text(metadata.get("modelspec.title"), 200), _text(metadata.get("ss_output_name"), 200))
                  if t), stem)
    description = next((t for t in (_text(a1111.get("description")), _text(manager.get("modelDescription")),
                                    _text(model.get("description")), _text(metadata.get("modelspec.description")))
                        if t), "")
    triggers: list[str] = []
    for source in (_words(a1111.get("activation text")), _words(civitai.get("trainedWords")),
                   _words(metadata.get("modelspec.trigger_phrase")), class_tokens(metadata)):
        triggers.extend(t for t in source if t.lower() not in (x.lower() for x in triggers))
    top = int(tables.recommend["top_dataset_tags"])
    tags: list[str] = []
    for source in (_words(manager.get("tags")), _words(model.get("tags")), _words(metadata.get("modelspec.tags")),
                   dataset_tags(metadata, top)):
        tags.extend(t for t in source if t.lower() not in (x.lower() for x in tags))
    strength, strength_source = _strength(a1111, metadata, manager, tables, _kind(stem, title, tags, model, tables))
    return {
        "title": title, "description": description[:int(tables.recommend["description_chars"])],
        "triggers": triggers[:MAX_ITEMS], "tags": tags[:MAX_ITEMS], "kind": _kind(stem, title, tags, model, tables),
        "strength": strength, "strength_source": strength_source,
        "nsfw_level": _nsfw_level(manager, civitai, model, tags, tables),
        "negative": _text(a1111.get("negative text"), 500),
        "sd_version": _text(a1111.get("sd version"), 40),
        "civitai_base_model": _text(civitai.get("baseModel"), 60),
        "manager_base_model": _text(manager.get("base_model"), 60),
        "training_resolution": _text(metadata.get("ss_resolution"), 40),
    }


def _kind(stem: str, title: str, tags: list[str], model: dict[str, Any], tables: LoraTables) -> str:
    """style, character, concept or utility: from tags, then the title's and file name's words."""
    lowered = {t.lower() for t in tags}
    words = set(re.sub(r"[^a-z0-9]+", " ", f"{stem} {title}".lower()).split())
    for kind, cues in tables.raw["kinds"].items():
        if any(c in lowered for c in cues):
            return str(kind)
    for kind, cues in tables.raw["kinds"].items():
        if any(c in words for c in cues if " " not in c):
            return str(kind)
    return "concept"


def _strength(a1111: dict[str, Any], metadata: dict[str, str], manager: dict[str, Any], tables: LoraTables,
              kind: str) -> tuple[float, str]:
    rule = tables.raw["strength"]
    low, high = float(rule["min"]), float(rule["max"])
    for value, source in ((_number(a1111.get("preferred weight")), "A1111 preferred weight"),
                          (_number(metadata.get("modelspec.lora_default_weight")), "modelspec.lora_default_weight"),
                          (_usage_strength(manager), "Lora-Manager usage_tips.strength")):
        if value is not None and value != 0 and low <= value <= high:
            return round(value, 3), source
    if kind == "style":
        return float(rule["style_default"]), "default for a style LoRA (loras.yaml)"
    return float(rule["default"]), "default (loras.yaml)"


def _nsfw_level(manager: dict[str, Any], civitai: dict[str, Any], model: dict[str, Any], tags: list[str],
                tables: LoraTables) -> int | None:
    """Index into ``nsfw_levels`` (0 = PG): the highest bit of a bitmask, a nsfw flag or tag; None: not told."""
    levels = tables.raw["nsfw_levels"]
    for value in (manager.get("preview_nsfw_level"), civitai.get("nsfwLevel")):
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return min(value.bit_length() - 1, len(levels) - 1)
    if any(t.lower() in tables.raw["nsfw_words"] for t in tags) or model.get("nsfw") is True:
        return len(levels) - 1
    return None
