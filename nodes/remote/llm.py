"""The HTTP LLM backends: Ollama (native ``/api/chat``) and any OpenAI-compatible ``/v1/chat/completions``
server (LM Studio, llama.cpp, vLLM, OpenAI).

Hard timeouts on every call and one deadline for the whole enhancement (``core/enhance/loop.py``); a call
that timed out is not repeated, connection errors and 5xx are, with backoff; a circuit breaker per endpoint
sends the calls after a failure straight to the fallback. Errors name the URL (without credentials) and what
failed, with keys and credentials redacted even when the server echoes them. API keys come from the
environment or the LLM config file, chosen by endpoint name (``keys``), never from a widget.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from ..core.base.secrets import public_url, redact, url_secrets
from ..core.enhance.llm import Chat, LLMError, llm_backends, local_chat
from ..core.enhance.loop import Backends, EnhanceRequest
from ..core.telemetry.llm import Call

RETRIES = 2            # dropped connections and 5xx only: a call that timed out or found no server is not repeated
BACKOFF_S = 0.5
COOLDOWN_S = 30.0      # after a failure, calls to that endpoint go straight to the fallback for this long
OLLAMA_URL = "http://127.0.0.1:11434"
OPENAI_URL = "http://127.0.0.1:1234"
Keys = Callable[[str], "str | None"]          # endpoint name -> its API key
Secrets = Callable[[str], "list[str]"]        # endpoint name -> what to redact from its answers


Observe = Callable[[Call], None]  # told of every call: endpoint, ok, latency, tokens, error (telemetry)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


class CircuitBreaker:
    """Per endpoint: after a call fails (no answer, unreachable, 5xx), the next calls within ``cooldown_s`` fail
    at once, so a dead server costs one deadline, not one per call; a success closes it again."""

    def __init__(self, cooldown_s: float = COOLDOWN_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.cooldown_s = cooldown_s
        self.clock = clock
        self._open_until: dict[str, float] = {}

    def check(self, endpoint: str, shown: str) -> None:
        until = self._open_until.get(endpoint)
        if until is not None and self.clock() < until:
            raise LLMError(f"{shown}: skipped: it failed less than {self.cooldown_s:g} s ago (circuit open for "
                           f"{until - self.clock():.0f} s more)")

    def failed(self, endpoint: str) -> None:
        self._open_until[endpoint] = self.clock() + self.cooldown_s

    def succeeded(self, endpoint: str) -> None:
        self._open_until.pop(endpoint, None)

    def open_for(self) -> dict[str, float]:
        """The endpoints whose circuit is open, with the seconds it stays open (by their shown URL)."""
        now = self.clock()
        return {public_url(e): until - now for e, until in self._open_until.items() if until > now}


class HTTPChat:
    """POSTs JSON with a hard timeout; retries connection errors and 5xx with backoff, never a call that timed
    out; an open circuit skips the call. Messages name the URL without credentials and carry no secret."""

    backend = "http"

    def __init__(self, endpoint: str, timeout_s: float, breaker: CircuitBreaker | None = None,
                 secrets: list[str] | None = None, observe: Observe | None = None) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.breaker = breaker or CircuitBreaker()
        self.secrets = [*(secrets or []), *url_secrets(endpoint)]
        self.shown = public_url(self.endpoint)
        self.observe = observe

    def _error(self, text: str) -> LLMError:
        return LLMError(redact(text, self.secrets))

    def _tokens(self, data: Any) -> tuple[int | None, int | None]:
        """(prompt tokens, completion tokens) where the backend's answer says them."""
        return None, None

    def _report(self, started: float, data: Any = None, error: str | None = None) -> None:
        if self.observe is None:
            return
        tokens = self._tokens(data) if error is None else (None, None)
        try:
            self.observe(Call(self.shown, self.backend, error is None, (time.monotonic() - started) * 1000.0,
                              *tokens, error=redact(error, self.secrets)[:500] if error else None))
        except Exception:  # telemetry never fails a call
            pass

    async def post(self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
        self.breaker.check(self.endpoint, f"{self.shown}{path}")  # skipped by an open circuit: not a call
        started = time.monotonic()
        try:
            data = await self._post(path, body, headers)
        except LLMError as exc:
            self._report(started, error=str(exc))
            raise
        except asyncio.CancelledError:
            self._report(started, error="cancelled (the enhancement's deadline, or its client left)")
            raise
        self._report(started, data)
        return data

    async def _post(self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
        url, shown = f"{self.endpoint}{path}", f"{self.shown}{path}"
        last = ""
        try:
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
                            self.breaker.succeeded(self.endpoint)  # it answers: a 4xx is our request's fault
                            if response.status >= 400:
                                raise self._error(f"{shown}: HTTP {response.status}: {text[:300]}")
                            try:
                                return json.loads(text)
                            except ValueError:
                                raise self._error(f"{shown}: the answer is not JSON: {text[:120]!r}") from None
                except asyncio.TimeoutError:
                    self.breaker.failed(self.endpoint)
                    raise self._error(f"{shown}: no answer within {self.timeout.total:g} s") from None
                except aiohttp.ClientConnectorError as exc:  # nothing listens there: trying again will not help
                    self.breaker.failed(self.endpoint)
                    raise self._error(f"{shown}: cannot connect ({exc.os_error or exc})") from None
                except aiohttp.ClientError as exc:  # e.g. the server dropped the connection: worth another try
                    last = f"{type(exc).__name__}: {exc}"
        except asyncio.CancelledError:  # the enhancement's deadline, or its client left: count it as a failure
            self.breaker.failed(self.endpoint)
            raise
        self.breaker.failed(self.endpoint)
        raise self._error(f"{shown}: {last} (after {RETRIES + 1} tries)")


class Ollama(HTTPChat):
    backend = "ollama"

    def _tokens(self, data: Any) -> tuple[int | None, int | None]:
        if not isinstance(data, dict):
            return None, None
        return _int(data.get("prompt_eval_count")), _int(data.get("eval_count"))

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
            raise self._error(f"{self.shown}/api/chat: no message.content in the answer") from None

    async def release(self, request: EnhanceRequest) -> None:
        """Unload the model now (keep_alive 0), so the diffusion model gets the VRAM."""
        await self.post("/api/chat", {"model": request.model, "messages": [], "keep_alive": 0})


class OpenAICompatible(HTTPChat):
    backend = "openai"

    def __init__(self, endpoint: str, timeout_s: float, key: str | None, breaker: CircuitBreaker | None = None,
                 secrets: list[str] | None = None, observe: Observe | None = None) -> None:
        super().__init__(endpoint, timeout_s, breaker, [*(secrets or []), *([key] if key else [])], observe)
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}

    def _tokens(self, data: Any) -> tuple[int | None, int | None]:
        usage = data.get("usage") if isinstance(data, dict) else None
        if not isinstance(usage, dict):
            return None, None
        return _int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens"))

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
            raise self._error(f"{self.shown}/v1/chat/completions: no choices[0].message.content") from None


def chat_factory(keys: Keys, secrets: Secrets = lambda name: [], breaker: CircuitBreaker | None = None,
                 observe: Observe | None = None) -> Callable[[str, EnhanceRequest], Chat]:
    """The Chat of each backend: Ollama and OpenAI-compatible over HTTP (keys chosen by endpoint name, one
    circuit breaker for all, every call told to ``observe``), transformers locally."""
    breaker = breaker or CircuitBreaker()

    def chats(backend: str, request: EnhanceRequest) -> Chat:
        hidden = secrets(request.endpoint_name)
        if backend == "ollama":
            return Ollama(request.endpoint or OLLAMA_URL, request.timeout_s, breaker, hidden, observe)
        if backend == "openai":
            return OpenAICompatible(request.endpoint or OPENAI_URL, request.timeout_s, keys(request.endpoint_name),
                                    breaker, hidden, observe)
        return local_chat(backend, request)

    return chats


def http_backends(keys: Keys, secrets: Secrets = lambda name: [], breaker: CircuitBreaker | None = None,
                  observe: Observe | None = None) -> Backends:
    """Writers and critics of every backend: rule, Ollama, OpenAI-compatible and transformers."""
    breaker = breaker or CircuitBreaker()
    chats = chat_factory(keys, secrets, breaker, observe)

    async def release(request: EnhanceRequest) -> None:
        """After the loop: unload the Ollama model (keep_alive 0) unless the user keeps it loaded."""
        if request.release_after and "ollama" in (request.backend, request.critic_backend):
            chat = chats("ollama", request)
            assert isinstance(chat, Ollama)
            await chat.release(request)

    return llm_backends(chats, finish=release)
