"""The LoRA library: one card per file in the LoRA folders, built from its header and sidecars without
loading a tensor, cached by file stamp and keyed by content hash; per-user family overrides.

The content hash (``hash``; ``id`` is its first 12 hex digits) is SHA-256 over the file size, the whole
header (every tensor's name, shape and offsets, and the training metadata) and three 64 KiB samples of the
tensor data (start, middle, end): it tells apart epochs of one training run and is computed from about
200 KiB of a file of any size. The cache (``loras/cache.json`` in Atelier's data folder) keeps each file's
card under its stamp (size, mtime, and its sidecars' stamps); a changed stamp rebuilds that card only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..base.errors import NotFound, invalid
from ..base.files import atomic_write_text
from ..base.ids import user_id
from ..base.safetensors import Header, NotSafetensors, read_header
from .family import UNKNOWN, FamilyGuess, detect
from .metadata import describe, read_sidecar, sidecar_paths
from .tables import LoraTables, lora_tables

log = logging.getLogger("atelier")
CACHE_VERSION = 1
SAMPLE_BYTES = 64 * 1024
MAX_FILES = 50_000
LORA_ID = re.compile(r"^[0-9a-f]{12}$")
ID_RULE = "12 lowercase hex digits (a card's id)"
OTHER_WEIGHTS = (".ckpt", ".pt", ".pt2", ".bin", ".pth", ".pkl", ".sft", ".gguf")
MODULE_RE = re.compile(r"^(.*?)\.(lora_(?:down|up|mid|A|B)|lora\.(?:down|up)|hada_\w+|lokr_\w+|alpha|dora_scale|"
                       r"diff|diff_b|on_input|w_norm|b_norm)(?:\..*)?$")


def module_names(tensor_names: list[str] | dict[str, Any]) -> list[str]:
    """The modules a LoRA patches: its tensor names without the LoRA parts (``.lora_down.weight``,
    ``.alpha``, ``.lora_A.weight`` ...), sorted."""
    return sorted({m.group(1) for name in tensor_names if (m := MODULE_RE.match(name))})


@dataclass(frozen=True)
class LoraCard:
    id: str
    hash: str
    name: str  # relative to its LoRA folder, '/'-separated (ComfyUI's name for it)
    folder: int  # which LoRA folder (index into the library's folders)
    size: int
    family: FamilyGuess
    title: str
    description: str
    triggers: list[str]
    tags: list[str]
    kind: str
    strength: float
    strength_source: str
    nsfw_level: int | None
    modules: int
    rank: int | None
    sidecars: list[str]
    negative: str = ""
    training_resolution: str = ""
    notes: list[str] = field(default_factory=list)  # sidecar problems (the card is still usable)

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "family"}
        data["family"] = self.family.to_dict()
        return data

    @classmethod
    def of(cls, data: dict[str, Any]) -> LoraCard:
        values = dict(data)
        values["family"] = FamilyGuess.of(values["family"])
        return cls(**values)

    def with_family(self, guess: FamilyGuess) -> LoraCard:
        values = dict(self.__dict__)
        values["family"] = guess
        return LoraCard(**values)


@dataclass
class Scan:
    cards: list[LoraCard]
    problems: list[dict[str, str]]
    files: int
    rebuilt: int
    seconds: float

    def to_dict(self, with_cards: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"files": self.files, "rebuilt": self.rebuilt, "seconds": round(self.seconds, 4),
                               "problems": self.problems, "count": len(self.cards)}
        if with_cards:
            out["cards"] = [c.to_dict() for c in self.cards]
        return out


def content_hash(path: Path, header: Header) -> str:
    digest = hashlib.sha256(b"atelier-lora-v1\0")
    digest.update(str(header.size).encode() + b"\0")
    digest.update(header.header_bytes)
    data = header.size - header.data_start
    with open(path, "rb") as handle:
        for offset in sorted({0, max(0, data // 2 - SAMPLE_BYTES // 2), max(0, data - SAMPLE_BYTES)}):
            handle.seek(header.data_start + offset)
            digest.update(handle.read(SAMPLE_BYTES))
    return digest.hexdigest()


def _stamp(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def _walk(root: Path) -> Iterator[tuple[str, Path]]:
    """(relative name, path) of every regular file under ``root``, links followed once, loops skipped."""
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.is_file():  # not a FIFO, socket or dangling link
                yield path.relative_to(root).as_posix(), path


class LoraLibrary:
    """``folders``: the LoRA folders (ComfyUI's ``loras``, extra_model_paths included; or one given);
    ``data_dir``: where the cache lives; ``users_dir``: per-user overrides (``<user>/loras/overrides.json``)."""

    def __init__(self, folders: Callable[[], list[Path]], data_dir: Path, users_dir: Path,
                 families_by_name: Callable[[], dict[str, str]], tables: LoraTables | None = None) -> None:
        self.folders = folders
        self.cache_file = data_dir / "loras" / "cache.json"
        self.users_dir = users_dir
        self.families_by_name = families_by_name
        self._tables = tables
        self._lock = threading.RLock()
        self._cache: dict[str, Any] | None = None
        self._last: Scan | None = None

    @property
    def tables(self) -> LoraTables:
        return self._tables or lora_tables()

    # ---- cache -------------------------------------------------------------------------------------------
    def _load_cache(self) -> dict[str, Any]:
        if self._cache is None:
            try:
                data = json.loads(self.cache_file.read_text())
                ok = isinstance(data, dict) and data.get("version") == CACHE_VERSION
                self._cache = data["entries"] if ok and isinstance(data.get("entries"), dict) else {}
            except (OSError, ValueError):
                self._cache = {}
        return self._cache

    def _save_cache(self, entries: dict[str, Any]) -> None:
        try:
            atomic_write_text(self.cache_file, json.dumps({"version": CACHE_VERSION, "entries": entries},
                                                          separators=(",", ":")), "loras/cache.json")
        except OSError as exc:  # a read-only data folder: the scan still answers, the next one reads again
            log.warning("Atelier: the LoRA cache could not be written (%s)", exc)

    # ---- scanning ----------------------------------------------------------------------------------------
    def scan(self, user: str | None = None, force: bool = False) -> Scan:
        """Every LoRA of every folder (a changed file or sidecar rebuilds its card), overrides applied."""
        started = time.perf_counter()
        with self._lock:
            cache = {} if force else self._load_cache()
            entries: dict[str, Any] = {}
            cards: list[LoraCard] = []
            problems: list[dict[str, str]] = []
            seen_names: set[str] = set()
            files = rebuilt = 0
            families_by_name = self.families_by_name()
            for index, root in enumerate(self.folders()):
                for name, path in _walk(root) if root.is_dir() else iter(()):
                    lower = name.lower()
                    if lower.endswith(OTHER_WEIGHTS):
                        problems.append({"name": name, "reason": "a pickle-based or non-safetensors weight file: "
                                         "not inspected (convert it to .safetensors to see its card)"})
                        continue
                    if not lower.endswith(".safetensors") or name in seen_names:
                        continue
                    files += 1
                    if files > MAX_FILES:
                        problems.append({"name": name, "reason": f"over {MAX_FILES} LoRA files: the rest not read"})
                        break
                    seen_names.add(name)
                    stamp = [_stamp(path), *(_stamp(p) for p in sidecar_paths(path).values())]
                    key = f"{index}:{name}"
                    entry = cache.get(key)
                    if not entry or entry.get("stamp") != stamp:
                        entry = self._build(index, name, path, stamp, families_by_name)
                        rebuilt += 1
                    entries[key] = entry
                    if entry.get("problem"):
                        problems.append({"name": name, "reason": entry["problem"]})
                    else:
                        cards.append(LoraCard.of(entry["card"]))
            if entries != cache or force:
                self._save_cache(entries)
            self._cache = entries
            overrides = self.overrides(user) if user is not None else {}
            cards = [self._overridden(c, overrides.get(c.hash)) for c in cards]
            scan = Scan(cards, problems, files, rebuilt, time.perf_counter() - started)
            self._last = scan
            return scan

    def _build(self, index: int, name: str, path: Path, stamp: list[Any],
               families_by_name: dict[str, str]) -> dict[str, Any]:
        try:
            header = read_header(path)
        except NotSafetensors as exc:
            return {"stamp": stamp, "problem": str(exc)}
        notes: list[str] = []
        sidecars: dict[str, dict[str, Any]] = {}
        for kind, sidecar in sidecar_paths(path).items():
            data, problem = read_sidecar(sidecar)
            if problem:
                notes.append(problem)
            if data is not None:
                sidecars[kind] = data
        tables = self.tables
        try:
            digest = content_hash(path, header)
        except OSError as exc:
            return {"stamp": stamp, "problem": f"cannot read the file: {exc.strerror or type(exc).__name__}"}
        described = describe(name, header.metadata, sidecars, tables)
        guess = detect(header, name, described, families_by_name, None, tables)
        modules = module_names(list(header.tensors))
        rank = next((s[0] for n in header.tensors if n.endswith(("lora_down.weight", "lora_A.weight"))
                     and (s := header.shape(n))), None)
        card = LoraCard(id=digest[:12], hash=digest, name=name, folder=index, size=header.size, family=guess,
                        title=described["title"], description=described["description"],
                        triggers=described["triggers"], tags=described["tags"], kind=described["kind"],
                        strength=described["strength"], strength_source=described["strength_source"],
                        nsfw_level=described["nsfw_level"], modules=len(modules), rank=rank,
                        sidecars=sorted(sidecars), negative=described["negative"],
                        training_resolution=described["training_resolution"], notes=notes)
        if not modules:
            card.notes.append("no LoRA tensors (lora_down/lora_A/...) in the header: not a LoRA?")
        return {"stamp": stamp, "card": card.to_dict()}

    def _overridden(self, card: LoraCard, family: str | None) -> LoraCard:
        if not family:
            return card
        evidence = [e for e in card.family.evidence if not e.startswith("override:")]
        return card.with_family(FamilyGuess(family, card.family.variant, self.tables.confidence("override"),
                                            "override", [f"override: set by the user -> {family}", *evidence]))

    # ---- lookups -----------------------------------------------------------------------------------------
    def cards(self, user: str | None = None) -> list[LoraCard]:
        return self.scan(user).cards

    def card(self, user: str | None, card_id: str) -> LoraCard:
        if not isinstance(card_id, str) or not LORA_ID.match(card_id):
            raise invalid("id", card_id, ID_RULE)
        found = next((c for c in self.cards(user) if c.id == card_id), None)
        if found is None:
            raise NotFound(f"no LoRA with id {card_id!r} in the library", field="id", value=card_id)
        return found

    def by_name(self, user: str | None, name: str) -> LoraCard:
        found = next((c for c in self.cards(user) if c.name == name), None)
        if found is None:
            raise NotFound(f"no LoRA named {name!r} in the LoRA folders", field="name", value=name)
        return found

    def path_of(self, card: LoraCard) -> Path:
        """The file behind a card (server side only: never answered to a client)."""
        folders = self.folders()
        return folders[card.folder] / card.name

    # ---- overrides ---------------------------------------------------------------------------------------
    def _overrides_file(self, user: str) -> Path:
        return self.users_dir / user_id(user) / "loras" / "overrides.json"

    def overrides(self, user: str) -> dict[str, str]:
        try:
            data = json.loads(self._overrides_file(user).read_text())
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def set_override(self, user: str, card_id: str, family: Any) -> LoraCard:
        """Set (or with ``auto``, remove) this user's family for a LoRA; the LoRA file is never written."""
        card = self.card(user, card_id)
        accepted = [*self.tables.families, UNKNOWN, "auto"]
        if family not in accepted:
            raise invalid("family", family, accepted)
        with self._lock:
            overrides = self.overrides(user)
            if family == "auto":
                overrides.pop(card.hash, None)
            else:
                overrides[card.hash] = str(family)
            atomic_write_text(self._overrides_file(user), json.dumps(overrides, indent=1, sort_keys=True),
                              "loras/overrides.json")
        return self.card(user, card_id)
