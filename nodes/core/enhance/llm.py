"""LLM backends for the writer and the critic: Ollama (native ``/api/chat``), any OpenAI-compatible
``/v1/chat/completions`` server, and a local transformers model folder.

Hard timeouts on every call (a stalled server never hangs ComfyUI); retries with backoff on timeouts,
connection errors and 5xx; the seed is sent; ``<think>`` blocks and preambles are stripped; the
critic's JSON is parsed defensively. Errors name the URL and what failed. API keys come from the
environment or a config file, never from a widget.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from .config import key_for
from .loop import Backends, EnhanceRequest
from .rules import Check, Critique, Style, strip_meta

RETRIES = 2
BACKOFF_S = 0.5
CRITIQUE_SCHEMA = {
    "type": "object",
    "properties": {
        "score": {"type": "number", "minimum": 0, "maximum": 100},
        "feedback": {"type": "string"},
        "checks": {"type": "array", "items": {"type": "object", "properties": {
            "id": {"type": "string"}, "message": {"type": "string"}, "fix": {"type": "string"}},
            "required": ["id", "message", "fix"]}},
    },
    "required": ["score", "feedback", "checks"],
}


class LLMError(RuntimeError):
    """A backend call failed; the message names the URL and what went wrong."""


def writer_messages(prompt: str, critique: Critique, style: Style) -> list[dict[str, str]]:
    form = ("comma-separated tags, most important first, at most 75 CLIP tokens" if style.format == "tags"
            else "one or two natural, descriptive sentences")
    prefix = f" Start with: {', '.join(style.prefix)}." if style.prefix else ""
    return [
        {"role": "system", "content": (
            "You rewrite prompts for an image generation model. Keep the user's subject and intent; add what "
            f"is missing (medium or style, lighting, composition, detail). Write {form}.{prefix} "
            "Reply with the prompt only: no preamble, no quotes, no explanation.")},
        {"role": "user", "content": f"Prompt: {prompt}\nCritic's feedback: {critique.feedback}"},
    ]


def critic_messages(prompt: str, style: Style) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": (
            "You are a strict critic of prompts for an image generation model. Score the prompt from 0 to 100 "
            "and list concrete problems: contradictions, duplicates, bad emphasis weights, unbalanced brackets, "
            "leftover meta text, wrong length, and missing style, lighting, composition or detail. "
            f"The model reads {'tags' if style.format == 'tags' else 'natural sentences'}. Answer with JSON only: "
            '{"score": <0-100>, "feedback": "<one line>", "checks": [{"id": "...", "message": "...", "fix": "..."}]}')},
        {"role": "user", "content": prompt},
    ]


def parse_critique(text: str, source: str) -> Critique:
    """The critic's JSON, tolerating think blocks, code fences and prose around it."""
    cleaned = strip_meta(text)
    match = re.search(r"\{.*\}", cleaned, re.DOTALL)
    if not match:
        raise ValueError(f"no JSON object in the critic's answer: {cleaned[:120]!r}")
    try:
        data = json.loads(match.group(0))
    except ValueError as exc:
        raise ValueError(f"malformed JSON from the critic: {exc}") from None
    if not isinstance(data, dict) or "score" not in data:
        raise ValueError("the critic's JSON has no score")
    try:
        score = min(100.0, max(0.0, float(data["score"])))
    except (TypeError, ValueError):
        raise ValueError(f"the critic's score {data['score']!r} is not a number") from None
    checks = [Check(str(c.get("id", "issue")), str(c.get("message", "")), str(c.get("fix", "")))
              for c in data.get("checks") or [] if isinstance(c, dict)]
    if not checks and data.get("feedback"):
        checks = [Check("feedback", str(data["feedback"]), "")]
    return Critique(score, checks, source=source)


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


class LocalTransformers:
    """A causal LM from a local folder (offline), generating in a worker thread."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self._model: Any = None

    def _load(self) -> tuple[Any, Any]:
        if self._model is None:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            if not Path(self.folder).is_dir():
                raise LLMError(f"{self.folder}: no such model folder")
            tokenizer = AutoTokenizer.from_pretrained(self.folder, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(self.folder, local_files_only=True).eval()
            self._model = (tokenizer, model)
        return self._model

    def _generate(self, request: EnhanceRequest, messages: Sequence[dict[str, str]]) -> str:
        import torch

        tokenizer, model = self._load()
        if getattr(tokenizer, "chat_template", None):
            text = tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
        else:
            text = "\n".join(f"{m['role']}: {m['content']}" for m in messages) + "\nassistant:"
        inputs = tokenizer(text, return_tensors="pt")
        torch.manual_seed(request.seed)
        with torch.inference_mode():
            output = model.generate(**inputs, max_new_tokens=96, do_sample=request.temperature > 0,
                                    temperature=max(request.temperature, 1e-3), pad_token_id=tokenizer.eos_token_id)
        return tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)

    async def chat(self, request: EnhanceRequest, messages: list[dict[str, str]], schema: dict | None = None,
                   keep_alive: str | int | None = None) -> str:
        return await asyncio.wait_for(asyncio.to_thread(self._generate, request, messages), request.timeout_s)


KEY_DATA_DIR: list[Path | None] = [None]  # where llm.json lives; set by the adapters


def client(backend: str, request: EnhanceRequest) -> Any:
    if backend == "ollama":
        return Ollama(request.endpoint or "http://127.0.0.1:11434", request.timeout_s)
    if backend == "openai":
        url = request.endpoint or "http://127.0.0.1:1234"
        return OpenAICompatible(url, request.timeout_s, key_for(url, KEY_DATA_DIR[0]))
    if backend == "transformers":
        if not request.model:
            raise LLMError("the transformers backend needs model: a local model folder")
        return LocalTransformers(request.model)
    raise LLMError(f"unknown LLM backend {backend!r}")


_local: dict[str, LocalTransformers] = {}


def _client(backend: str, request: EnhanceRequest) -> Any:
    if backend == "transformers":  # keep a loaded local model between calls
        return _local.setdefault(request.model, client(backend, request))
    return client(backend, request)


def llm_backends() -> Backends:
    """Writers and critics for every backend, rule included."""
    backends = Backends()

    def make(backend: str) -> None:
        async def write(prompt: str, critique: Critique, request: EnhanceRequest, style: Style) -> str:
            answer = await _client(backend, request).chat(request, writer_messages(prompt, critique, style))
            return strip_meta(answer).splitlines()[0] if strip_meta(answer) else ""

        async def judge(prompt: str, request: EnhanceRequest, style: Style) -> Critique:
            answer = await _client(backend, request).chat(request, critic_messages(prompt, style), CRITIQUE_SCHEMA)
            return parse_critique(answer, backend)

        backends.writers[backend] = write
        backends.critics[backend] = judge

    for name in ("ollama", "openai", "transformers"):
        make(name)
    backends.finish = release
    return backends


async def release(request: EnhanceRequest) -> None:
    """After the loop: unload the Ollama model (keep_alive 0) unless the user keeps it loaded."""
    if request.release_after and "ollama" in (request.backend, request.critic_backend):
        await Ollama(request.endpoint or "http://127.0.0.1:11434", request.timeout_s).release(request)
