"""What Atelier needs from a running ComfyUI, as the core sees it: its queue and its history.

``nodes/remote/comfyui.py`` implements it over ComfyUI's HTTP API (one client for the routes, the
follower and the CLI); tests may give any object with these methods.
"""

from __future__ import annotations

from typing import Any, Protocol


class ComfyUI(Protocol):
    async def queue(self, graph: dict[str, Any], client_id: str | None = None,
                    prompt_id: str | None = None) -> str:
        """Put an API-format graph on the queue; returns its prompt id (QueueError when refused)."""
        ...

    async def cancel(self, prompt_id: str) -> None:
        """Interrupt the prompt when it runs, else take it off the queue."""
        ...

    async def history(self, prompt_id: str) -> dict[str, Any] | None:
        """The history entry of one prompt, or None."""
        ...

    async def recent_history(self, max_items: int) -> dict[str, dict[str, Any]]:
        """The most recent prompts of the history, by prompt id."""
        ...

    async def queue_ids(self) -> tuple[list[str], list[str]]:
        """(running prompt ids, pending prompt ids)."""
        ...
