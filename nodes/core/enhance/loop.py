"""The writer/critic loop: the writer rewrites, the critic scores 0-100 with concrete feedback, and the
loop repeats until the score reaches the threshold or the iteration limit, keeping the best candidate
and a trace of every step.

Any backend failure falls back along LLM -> rule -> original prompt, and the fallback is written into
the trace; the loop never raises for a backend's sake. Results are cached by everything that decides
them (prompt, negative, backends, model, endpoint, family, threshold, iterations, seed, temperature).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..base.files import atomic_write_text
from ..base.secrets import public_url, redact
from ..base.validation import parse_model
from . import rules
from .rules import Critique, Style

MAX_ITERATIONS = 4
DEFAULT_THRESHOLD = 85.0
DEFAULT_DEADLINE_S = 30.0   # one enhancement, every call and retry included
MAX_DEADLINE_S = 120.0
RELEASE_S = 5.0             # at most, to free an Ollama model after the loop
CACHE_SIZE = 256
LLM_BACKENDS = ("ollama", "openai", "transformers")
BACKENDS = ("rule", *LLM_BACKENDS)  # the one list: nodes, routes, CLI and the panel read it

WriterFn = Callable[[str, Critique, "EnhanceRequest", Style], Awaitable[str]]
CriticFn = Callable[[str, "EnhanceRequest", Style], Awaitable[Critique]]


class EnhanceRequest(BaseModel):
    """Everything that decides an enhancement (validated; the cache key is made from it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: Annotated[str, Field(min_length=1, max_length=20000)]
    negative: Annotated[str, Field(max_length=20000)] = ""
    backend: str = "rule"
    critic_backend: str | None = None  # None: the writer's backend
    model: Annotated[str, Field(max_length=500)] = ""
    endpoint: Annotated[str, Field(max_length=500)] = ""
    model_family: str = "sd15"
    checkpoint: str | None = None
    threshold: Annotated[float, Field(ge=0.0, le=100.0)] = DEFAULT_THRESHOLD
    iterations: Annotated[int, Field(ge=1, le=MAX_ITERATIONS)] = MAX_ITERATIONS
    seed: Annotated[int, Field(ge=0, le=2**64 - 1)] = 0
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] = 0.7
    timeout_s: Annotated[float, Field(gt=0.0, le=MAX_DEADLINE_S)] = DEFAULT_DEADLINE_S  # the whole enhancement's
    endpoint_name: Annotated[str, Field(max_length=128)] = ""  # the configured endpoint (its key); "": default
    keep_alive: Annotated[str, Field(max_length=20)] = "5m"  # Ollama keeps the model loaded during the loop
    release_after: bool = True  # then frees its VRAM for the diffusion model

    @field_validator("backend", "critic_backend")
    @classmethod
    def _known_backend(cls, value: str | None) -> str | None:
        if value is not None and value not in BACKENDS:
            raise ValueError(f"unknown backend {value!r}; accepted: {', '.join(BACKENDS)}")
        return value

    @classmethod
    def parse(cls, data: Any) -> EnhanceRequest:
        return parse_model(cls, data, "a JSON object with at least a prompt")

    def cache_key(self) -> str:
        return hashlib.sha256(json.dumps(self.model_dump(), sort_keys=True).encode()).hexdigest()


@dataclass
class Step:
    iteration: int
    role: str          # "writer" or "critic"
    backend: str
    text: str = ""
    score: float | None = None
    checks: list[dict[str, str]] = field(default_factory=list)
    feedback: str = ""
    note: str = ""     # a fallback and why
    elapsed_ms: float = 0.0


@dataclass
class EnhanceResult:
    prompt: str
    negative: str
    score: float
    iterations: int
    original: str
    trace: list[Step]
    summary: str
    fallbacks: list[str]
    cached: bool = False
    trace_file: str | None = None

    def to_dict(self) -> dict[str, Any]:
        body = asdict(self)
        body["trace"] = [asdict(s) for s in self.trace]
        return body


async def rule_writer(prompt: str, critique: Critique, request: EnhanceRequest, style: Style) -> str:
    return rules.rewrite(prompt, style, request.seed)


async def rule_critic(prompt: str, request: EnhanceRequest, style: Style) -> Critique:
    return rules.critique(prompt, style)


@dataclass
class Backends:
    """The writer and critic functions by backend name (LLM ones are added by the adapters)."""

    writers: dict[str, WriterFn] = field(default_factory=lambda: {"rule": rule_writer})
    critics: dict[str, CriticFn] = field(default_factory=lambda: {"rule": rule_critic})
    finish: Callable[[EnhanceRequest], Awaitable[None]] | None = None  # after the loop (free VRAM)
    chats: Any = None  # (backend, request) -> the Chat serving it (llm.ChatFactory); analysis refinement uses it


class _LiveTrace(list):  # type: ignore[type-arg]
    """A trace list that rewrites its file after every step, so a long loop can be followed."""

    def __init__(self, path: Path | None, request: EnhanceRequest) -> None:
        super().__init__()
        self.path = path
        self.request = request.model_dump()

    def append(self, step: Step) -> None:
        super().append(step)
        if self.path is not None:
            atomic_write_text(self.path, json.dumps({"request": self.request, "trace": [asdict(s) for s in self]},
                                                    indent=2))


class Enhancer:
    def __init__(self, backends: Backends | None = None, clock: Callable[[], float] = time.perf_counter) -> None:
        self.backends = backends or Backends()
        self.clock = clock
        self._cache: OrderedDict[str, EnhanceResult] = OrderedDict()

    async def _attempt(self, role: str, name: str, call: Callable[[], Awaitable[Any]], deadline: float,
                       request: EnhanceRequest) -> tuple[Any, str | None]:
        """One backend's call within what is left of the enhancement's deadline: (its result, None), or
        (None, why it failed) with anything credential-shaped taken out."""
        try:
            if name == "rule":  # offline and instant: always allowed, it is the fallback
                return await call(), None
            left = deadline - self.clock()
            if left <= 0:
                raise TimeoutError("no time left")
            return await asyncio.wait_for(call(), left), None
        except TimeoutError:
            where = f" at {public_url(request.endpoint)}" if request.endpoint else ""
            return None, (f"{name} {role}{where} gave no answer within the enhancement's deadline "
                          f"({request.timeout_s:g} s); falling back")
        except Exception as exc:  # noqa: BLE001 - any backend failure falls back, recorded in the trace
            return None, redact(f"{name} {role} failed ({type(exc).__name__}: {exc}); falling back")

    async def _write(self, prompt: str, critique: Critique, request: EnhanceRequest, style: Style,
                     iteration: int, trace: list[Step], fallbacks: list[str], deadline: float) -> str:
        for name in dict.fromkeys([request.backend, "rule"]):
            writer = self.backends.writers.get(name)
            start = self.clock()

            async def call(writer: WriterFn | None = writer, name: str = name) -> str:
                if writer is None:
                    raise RuntimeError(f"no {name} writer is configured")
                text = rules.strip_meta(await writer(prompt, critique, request, style))
                if not text:
                    raise ValueError("the writer returned an empty prompt")
                return text

            text, note = await self._attempt("writer", name, call, deadline, request)
            elapsed = (self.clock() - start) * 1000
            if note is not None:
                fallbacks.append(note)
                trace.append(Step(iteration, "writer", name, note=note, elapsed_ms=elapsed))
                continue
            trace.append(Step(iteration, "writer", name, text=text, elapsed_ms=elapsed))
            return str(text)
        fallbacks.append("every writer failed; keeping the prompt as it was")
        return prompt

    async def _critique(self, prompt: str, request: EnhanceRequest, style: Style, iteration: int,
                        trace: list[Step], fallbacks: list[str], deadline: float) -> Critique:
        for name in dict.fromkeys([request.critic_backend or request.backend, "rule"]):
            critic = self.backends.critics.get(name)
            start = self.clock()

            async def call(critic: CriticFn | None = critic, name: str = name) -> Critique:
                if critic is None:
                    raise RuntimeError(f"no {name} critic is configured")
                return await critic(prompt, request, style)

            result, note = await self._attempt("critic", name, call, deadline, request)
            elapsed = (self.clock() - start) * 1000
            if note is not None:
                fallbacks.append(note)
                trace.append(Step(iteration, "critic", name, note=note, elapsed_ms=elapsed))
                continue
            trace.append(Step(iteration, "critic", name, text=prompt, score=result.score,
                              checks=[c.to_dict() for c in result.checks], feedback=result.feedback,
                              elapsed_ms=elapsed))
            return result  # type: ignore[no-any-return]
        return Critique(0.0, source="none")

    async def run(self, request: EnhanceRequest, trace_file: Path | None = None,
                  keep_trace: bool = False) -> EnhanceResult:
        """``trace_file`` is rewritten after every step (to follow a long loop) and removed at the end
        unless ``keep_trace``."""
        key = request.cache_key()
        if key in self._cache:
            self._cache.move_to_end(key)
            cached = self._cache[key]
            return EnhanceResult(**{**cached.__dict__, "cached": True})
        style = rules.style_for(request.model_family, request.checkpoint)
        trace: list[Step] = _LiveTrace(trace_file, request)
        fallbacks: list[str] = []
        deadline = self.clock() + request.timeout_s  # one for the whole loop: calls, retries and all
        original = request.prompt.strip()
        current = await self._critique(original, request, style, 0, trace, fallbacks, deadline)
        best_text, best = original, current
        text, used = original, 0
        while best.score < request.threshold and used < request.iterations:
            used += 1
            text = await self._write(text, current, request, style, used, trace, fallbacks, deadline)
            current = await self._critique(text, request, style, used, trace, fallbacks, deadline)
            if current.score > best.score:
                best_text, best = text, current
        if self.backends.finish is not None:
            left = min(deadline - self.clock(), RELEASE_S)
            try:
                if left <= 0:
                    raise TimeoutError("no time left")
                await asyncio.wait_for(self.backends.finish(request), left)
            except Exception as exc:  # noqa: BLE001 - freeing memory is best effort; the result is made
                why = "the deadline passed" if isinstance(exc, TimeoutError) else str(exc)
                fallbacks.append(redact(f"releasing the model failed: {why}"))
        negative = rules.negative_prompt(request.negative, style)
        reached = "reached" if best.score >= request.threshold else "did not reach"
        summary = (f"{used} iteration(s); best score {best.score:.0f} {reached} the threshold "
                   f"{request.threshold:g}; {len(fallbacks)} fallback(s); written for {style.name}")
        result = EnhanceResult(best_text, negative, best.score, used, original, list(trace), summary, fallbacks)
        if trace_file is not None:
            if keep_trace:
                atomic_write_text(trace_file, json.dumps(result.to_dict(), indent=2))
                result.trace_file = str(trace_file)
            else:
                trace_file.unlink(missing_ok=True)
        self._cache[key] = result
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return result
