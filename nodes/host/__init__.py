"""The composition of a running Atelier: a host (ComfyUI, ``atelier serve`` or the command line) describes
where things live in ``Settings`` and builds one ``Atelier`` context from it; every service, the scorer
registry, the LLM backends and the ComfyUI client are made there, once, and handed to the adapters; ``wiring``
connects adapters (routes on a server, the ComfyUI client, the standalone server)."""

from . import wiring
from .context import Atelier
from .settings import Settings

__all__ = ["Atelier", "Settings", "wiring"]
