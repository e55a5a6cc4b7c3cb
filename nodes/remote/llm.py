"""The HTTP LLM backends: Ollama (native ``/api/chat``) and any OpenAI-compatible ``/v1/chat/completions``
server (LM Studio, llama.cpp, vLLM, OpenAI).

Hard timeouts on every call (a stalled server never hangs ComfyUI); retries with backoff on timeouts,
connection errors and 5xx; the seed is sent. Errors name the URL and what failed. API keys come from
the environment or the LLM config file (``keys``), never from a widget.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import aiohttp

from ..core.enhance.llm import Chat, LLMError, llm_backends, local_chat
from ..core.enhance.loop import Backends, EnhanceRequest

RETRIES = 2
BACKOFF_S = 0.5
OLLAMA_URL = "http://127.0.0.1:11434"
OPENAI_URL = "http://127.0.0.1:1234"
Keys = Callable[[str], "str | None"]  # endpoint URL -> its API key


class HTTPChat:
    """POSTs JSON with a hard timeout, retrying timeouts, connection errors and 5xx with backoff."""

    def __init__(self, endpoint: str, timeout_s: float) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def post(self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
        url = f"{self.endpoint}{path}"
        last = ""
        for attempt in range(RETRIES + 1):
            if attempt:
                await asyncio.sleep(BACKOFF_S * 2 ** (attempt - 1))
            try:
                async with aiohttp.ClientSession(timeout=self.timeout) as session:
                    async with session.post(url, json=body, headers=headers) as response:
                        text = await response.text()
                        if response.status >= 500:
                            last = f"HTTP {response.status}: {text[:200]}"
                            continue
                        if response.status >= 400:
                            raise LLMError(f"{url}: HTTP {response.status}: {text[:300]}")
                        try:
                            return json.loads(text)
                        except ValueError:
                            raise LLMError(f"{url}: the answer is not JSON: {text[:120]!r}") from None
            except asyncio.TimeoutError:
                last = f"no answer within {self.timeout.total:g} s"
            except aiohttp.ClientError as exc:
                last = f"{type(exc).__name__}: {exc}"
        raise LLMError(f"{url}: {last} (after {RETRIES + 1} tries)")


class Ollama(HTTPChat):
    async def chat(self, request: EnhanceRequest, messages: list[dict[str, str]], schema: dict | None = None,
                   keep_alive: str | int | None = None) -> str:
        body: dict[str, Any] = {
            "model": request.model, "messages": messages, "stream": False,
            "options": {"temperature": request.temperature, "seed": request.seed % 2**31, "num_predict": 512},
            "keep_alive": request.keep_alive if keep_alive is None else keep_alive,
        }
        if schema is not None:
            body["format"] = schema
        data = await self.post("/api/chat", body)
        try:
            return str(data["message"]["content"])
        except (KeyError, TypeError):
            raise LLMError(f"{self.endpoint}/api/chat: no message.content in the answer") from None

    async def release(self, request: EnhanceRequest) -> None:
        """Unload the model now (keep_alive 0), so the diffusion model gets the VRAM."""
        await self.post("/api/chat", {"model": request.model, "messages": [], "keep_alive": 0})


class OpenAICompatible(HTTPChat):
    def __init__(self, endpoint: str, timeout_s: float, key: str | None) -> None:
        super().__init__(endpoint, timeout_s)
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}

    async def chat(self, request: EnhanceRequest, messages: list[dict[str, str]], schema: dict | None = None,
                   keep_alive: str | int | None = None) -> str:
        body: dict[str, Any] = {"model": request.model, "messages": messages, "temperature": request.temperature,
                                "seed": request.seed % 2**31, "max_tokens": 512}
        if schema is not None:
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": "critique", "schema": schema}}
        try:
            data = await self.post("/v1/chat/completions", body, self.headers)
        except LLMError as exc:
            if schema is None or "HTTP 400" not in str(exc):
                raise
            body.pop("response_format")  # e.g. LM Studio: parse the JSON out of plain text instead
            data = await self.post("/v1/chat/completions", body, self.headers)
        try:
            return str(data["choices"][0]["message"]["content"])
        except (KeyError, IndexError, TypeError):
            raise LLMError(f"{self.endpoint}/v1/chat/completions: no choices[0].message.content") from None


def chat_factory(keys: Keys) -> Callable[[str, EnhanceRequest], Chat]:
    """The Chat of each backend: Ollama and OpenAI-compatible over HTTP, transformers locally."""
    def chats(backend: str, request: EnhanceRequest) -> Chat:
        if backend == "ollama":
            return Ollama(request.endpoint or OLLAMA_URL, request.timeout_s)
        if backend == "openai":
            url = request.endpoint or OPENAI_URL
            return OpenAICompatible(url, request.timeout_s, keys(url))
        return local_chat(backend, request)

    return chats


async def release(request: EnhanceRequest) -> None:
    """After the loop: unload the Ollama model (keep_alive 0) unless the user keeps it loaded."""
    if request.release_after and "ollama" in (request.backend, request.critic_backend):
        await Ollama(request.endpoint or OLLAMA_URL, request.timeout_s).release(request)


def http_backends(keys: Keys) -> Backends:
    """Writers and critics of every backend: rule, Ollama, OpenAI-compatible and transformers."""
    return llm_backends(chat_factory(keys), finish=release)
