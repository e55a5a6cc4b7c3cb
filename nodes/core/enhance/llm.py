"""LLM writers and critics: the messages they are sent, the critic's JSON parsed defensively, ``<think>``
blocks and preambles stripped, and a local transformers model folder as a backend.

The HTTP backends (Ollama's ``/api/chat``, OpenAI-compatible ``/v1/chat/completions``) live in
``nodes/remote/llm.py``; a host hands their ``ChatFactory`` to ``llm_backends``.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from .loop import LLM_BACKENDS, Backends, EnhanceRequest
from .rules import Check, Critique, Style, strip_meta

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


class Chat(Protocol):
    """One LLM to talk to: the messages in, the answer's text out (within the request's timeout)."""

    async def chat(self, request: EnhanceRequest, messages: list[dict[str, str]], schema: dict | None = None,
                   keep_alive: str | int | None = None) -> str: ...


# (backend, request) -> the Chat that serves it; raises LLMError when it cannot.
ChatFactory = Callable[[str, EnhanceRequest], Chat]


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


_local: dict[str, LocalTransformers] = {}


def local_chat(backend: str, request: EnhanceRequest) -> Chat:
    """The LLMs that need no server: a transformers model folder (kept loaded between calls)."""
    if backend != "transformers":
        raise LLMError(f"the {backend} backend needs an HTTP client; none is configured here")
    if not request.model:
        raise LLMError("the transformers backend needs model: a local model folder")
    return _local.setdefault(request.model, LocalTransformers(request.model))


def llm_backends(chats: ChatFactory = local_chat,
                 finish: Callable[[EnhanceRequest], Awaitable[None]] | None = None) -> Backends:
    """Writers and critics for every LLM backend (and rule), each talking to the Chat ``chats`` gives."""
    backends = Backends()

    def make(backend: str) -> None:
        async def write(prompt: str, critique: Critique, request: EnhanceRequest, style: Style) -> str:
            answer = await chats(backend, request).chat(request, writer_messages(prompt, critique, style))
            return strip_meta(answer).splitlines()[0] if strip_meta(answer) else ""

        async def judge(prompt: str, request: EnhanceRequest, style: Style) -> Critique:
            answer = await chats(backend, request).chat(request, critic_messages(prompt, style), CRITIQUE_SCHEMA)
            return parse_critique(answer, backend)

        backends.writers[backend] = write
        backends.critics[backend] = judge

    for name in LLM_BACKENDS:
        make(name)
    backends.finish = finish
    backends.chats = chats
    return backends
