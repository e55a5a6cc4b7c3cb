"""Named LLM endpoints, from a JSON file outside the graph (so API keys never reach widgets,
workflow JSON or PNG metadata):

    {"endpoints": {"local-ollama": {"backend": "ollama", "url": "http://127.0.0.1:11434", "model": "qwen3:8b"},
                   "lmstudio": {"backend": "openai", "url": "http://127.0.0.1:1234", "model": "qwen3-8b",
                                "api_key_env": "LMSTUDIO_API_KEY"}}}

The host names the file (``ATELIER_LLM_CONFIG``, else ``llm.json`` in Atelier's data folder). A key is read
from the endpoint's ``api_key_env`` variable, its ``api_key`` entry, or ATELIER_OPENAI_API_KEY / OPENAI_API_KEY.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..base.errors import invalid
from ..base.secrets import public_url, redact, url_secrets
from .loop import LLM_BACKENDS

DEFAULT_ENDPOINT = "(backend default)"


@dataclass(frozen=True)
class Endpoint:
    name: str
    backend: str
    url: str
    model: str
    api_key_env: str | None = None
    api_key: str | None = None

    def key(self) -> str | None:
        if self.api_key_env and os.environ.get(self.api_key_env):
            return os.environ[self.api_key_env]
        return self.api_key or os.environ.get("ATELIER_OPENAI_API_KEY") or os.environ.get("OPENAI_API_KEY")

    def public(self) -> dict[str, Any]:
        """What may be shown: never a key, and the URL without credentials."""
        return {"name": self.name, "backend": self.backend, "url": public_url(self.url), "model": self.model}

    def secrets(self) -> list[str]:
        """Everything to redact from what this endpoint's server answers: its key and URL credentials."""
        return [s for s in (self.key(), *url_secrets(self.url)) if s]


def load_endpoints(path: Path | None) -> dict[str, Endpoint]:
    """The endpoints named in the LLM config file ``path`` (none when there is no file)."""
    if path is None or not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8")).get("endpoints", {})
    except (OSError, ValueError, AttributeError) as exc:
        raise invalid("llm config", path.name, 'a JSON file {"endpoints": {name: {...}}}',
                      redact(str(exc))[:200]) from None
    out: dict[str, Endpoint] = {}
    for name, spec in raw.items():
        if not isinstance(spec, dict) or spec.get("backend") not in LLM_BACKENDS:
            raise invalid(f"llm config endpoints.{name}.backend", (spec or {}).get("backend"), list(LLM_BACKENDS))
        out[name] = Endpoint(name, spec["backend"], str(spec.get("url", "")), str(spec.get("model", "")),
                             spec.get("api_key_env"), spec.get("api_key"))
    return out


def key_for(name: str, path: Path | None) -> str | None:
    """The API key of the endpoint configured under ``name`` (by name, never by URL: two endpoints may share
    one), or the environment's for the backend default (""); never from a request."""
    endpoint = load_endpoints(path).get(name) if name else None
    if endpoint is not None:
        return endpoint.key()
    return os.environ.get("ATELIER_OPENAI_API_KEY") or os.environ.get("OPENAI_API_KEY")


def secrets_for(name: str, path: Path | None) -> list[str]:
    """What to redact from the answers of the endpoint ``name`` (or the backend default's)."""
    endpoint = load_endpoints(path).get(name) if name else None
    if endpoint is not None:
        return endpoint.secrets()
    return [k for k in (os.environ.get("ATELIER_OPENAI_API_KEY"), os.environ.get("OPENAI_API_KEY")) if k]
