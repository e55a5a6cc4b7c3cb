"""Atelier: a ComfyUI custom-node pack (this folder is the pack; clone it into custom_nodes/).

ComfyUI imports this file as a package named after the folder and calls
``comfy_entrypoint()`` for the V3 nodes. Nothing here needs ComfyUI to import: routes are
registered only when ComfyUI's server exists, so tests and the CLI import the pack freely.
Do not define NODE_CLASS_MAPPINGS here: ComfyUI would then ignore ``comfy_entrypoint``.
"""

from __future__ import annotations

import logging
import sys

WEB_DIRECTORY = "./web"
__all__ = ["WEB_DIRECTORY", "comfy_entrypoint"]

log = logging.getLogger("atelier")


async def comfy_entrypoint():  # noqa: ANN201 - returns comfy_api.latest.ComfyExtension
    """ComfyUI's V3 entry point: the extension that lists Atelier's nodes."""
    from .nodes.comfy.catalogue import AtelierExtension

    return AtelierExtension()


def _register_routes() -> None:
    server = sys.modules.get("server")
    prompt_server = getattr(getattr(server, "PromptServer", None), "instance", None)
    if prompt_server is None:
        return
    from .nodes.comfy.runtime import register_server

    try:
        register_server(prompt_server)
    except Exception:  # never stop ComfyUI from starting because of Atelier
        log.exception("Atelier: could not register its routes")


_register_routes()
