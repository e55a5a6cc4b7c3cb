"""Adapters that run generation engines for the Python API (diffusers here); core never imports them."""
