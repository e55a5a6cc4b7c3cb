"""Atelier's domain core: plain Python, one sub-package per capability.

Nothing under ``core`` imports ComfyUI, aiohttp or an adapter (``comfy``, ``server``, ``cli``,
``remote``, ``host``); ``tests/test_layers.py`` walks the package and enforces it.
"""
