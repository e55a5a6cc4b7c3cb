"""The command line: ``python -m atelier`` (see ``main``)."""

from .main import main

__all__ = ["main"]
