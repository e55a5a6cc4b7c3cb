"""Atelier's Python package.

``nodes.quality`` (and the other capability packages) are the domain core: plain Python,
no ComfyUI import. ``comfy_nodes``, ``routes`` and ``cli`` are thin adapters over it.
"""
