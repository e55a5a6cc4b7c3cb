"""Atelier's Python package, in layers (ARCHITECTURE.md): ``core`` (plain Python, one package per capability),
the adapters ``server`` (HTTP routes) and ``remote`` (clients of ComfyUI and LLM servers), ``host`` (settings
and the one context a host builds), and the hosts' entry points ``comfy`` (ComfyUI's nodes and runtime) and
``cli`` (the command line). ``python tools/layers.py`` shows the imports and checks the rule.
"""
