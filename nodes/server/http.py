"""What every route module shares: the services it may ask, the user of a request, JSON bodies within
bounds, and domain errors turned into 4xx answers naming the field, the value and what is accepted."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from aiohttp import web

from ..core.base import jsonsafe
from ..core.base.errors import AtelierError, InvalidInput, TooLarge, Unauthenticated, invalid
from ..core.base.ids import user_id

if TYPE_CHECKING:
    from ..core.enhance.service import EnhanceService
    from ..core.intelligence.service import IntelligenceService
    from ..core.learning.service import LearningService
    from ..core.quality.service import QualityService
    from ..core.records.service import RecordService
    from ..core.safety.log import ViolationLog
    from ..core.scaleout.service import DistributedSubmitter
    from ..core.scoring.registry import Scorers
    from ..core.social.service import SocialService
    from ..core.storyboard.batches import BatchService
    from ..core.storyboard.library import StoryboardLibrary
    from ..core.storyboard.service import PipelineService
    from ..core.validation.rules import Rules

log = logging.getLogger("atelier")
PREFIX = "/atelier"
MAX_BODY_BYTES = 1024 * 1024

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
UserResolver = Callable[[web.Request], str]


class Services(Protocol):
    """The services the routes ask (the host's ``Atelier`` context); each is made on first use."""

    @property
    def quality(self) -> QualityService: ...
    @property
    def enhance(self) -> EnhanceService: ...
    @property
    def social(self) -> SocialService: ...
    @property
    def records(self) -> RecordService: ...
    @property
    def pipelines(self) -> PipelineService: ...
    @property
    def batches(self) -> BatchService: ...
    @property
    def storyboards(self) -> StoryboardLibrary: ...
    @property
    def intelligence(self) -> IntelligenceService: ...
    @property
    def learning(self) -> LearningService: ...
    @property
    def scorers(self) -> Scorers: ...
    @property
    def distributed(self) -> DistributedSubmitter: ...
    @property
    def rules(self) -> Rules: ...
    @property
    def violations(self) -> ViolationLog: ...
    def operator(self, user: str) -> bool: ...
    def telemetry(self, user: str | None, since: float | None = None, until: float | None = None) -> dict[str, Any]: ...
    def provider_health(self) -> list[dict[str, Any]]: ...
    def run_telemetry(self, record: Any) -> dict[str, Any]: ...
    def app_health(self) -> dict[str, Any]: ...


def header_user(request: web.Request) -> str:
    """The user of a standalone server: ComfyUI's ``comfy-user`` header, else ``default``."""
    return request.headers.get("comfy-user") or "default"


def guarded(handler: Handler) -> Handler:
    """Domain errors become their 4xx answer; a bug is logged and answered without a traceback."""
    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except AtelierError as exc:
            return answer(exc.to_dict(), status=exc.status)
        except web.HTTPException:
            raise
        except Exception:  # a bug: log it, answer without leaking a traceback
            log.exception("Atelier route %s %s failed", request.method, request.path)
            return answer({"error": "internal error in Atelier; see the server's log", "field": "server"}, status=500)

    wrapper.__name__ = handler.__name__
    wrapper.__doc__ = handler.__doc__
    return wrapper


def trusted_header(name: str) -> UserResolver:
    """The user a trusted reverse proxy names in header ``name``; a request without it is refused (401)."""
    def resolve(request: web.Request) -> str:
        user = request.headers.get(name)
        if not user:
            raise Unauthenticated(f"no user: the header {name!r} set by the trusted proxy is missing",
                                  field=name)
        return user
    return resolve


class Mount:
    """Routes under one prefix (``/atelier`` or ``/api/atelier``) of one route table, for one user resolver.
    ``authenticated``: the resolver's users are named by a trusted proxy (not merely claimed)."""

    def __init__(self, routes: web.RouteTableDef, prefix: str, user_of: UserResolver,
                 authenticated: bool = False) -> None:
        self.routes = routes
        self.prefix = prefix
        self.user_of = user_of
        self.authenticated = authenticated
        self.table: list[dict[str, str]] = []  # every route mounted: method, path, what it does (the app map)

    def user(self, request: web.Request) -> str:
        try:
            return user_id(self.user_of(request))
        except KeyError as exc:
            raise AtelierError(f"unknown user: {exc}", field="comfy-user") from None

    def _add(self, method: str, path: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.routes.route(method, f"{self.prefix}{path}")(guarded(handler))
            if path != "/{path:.*}":
                summary = " ".join((handler.__doc__ or "").split())[:240]
                self.table.append({"method": method, "path": f"{PREFIX}{path}", "doc": summary})
            return handler
        return register

    def get(self, path: str) -> Callable[[Handler], Handler]:
        return self._add("GET", path)

    def post(self, path: str) -> Callable[[Handler], Handler]:
        return self._add("POST", path)

    def put(self, path: str) -> Callable[[Handler], Handler]:
        return self._add("PUT", path)

    def delete(self, path: str) -> Callable[[Handler], Handler]:
        return self._add("DELETE", path)


async def blocking(function: Callable[..., T], *args: Any) -> T:
    """Run a blocking call (database, files, hashing large graphs) in a worker thread, off the event loop."""
    return await asyncio.to_thread(function, *args)


async def while_connected(request: web.Request, work: Awaitable[T], poll_s: float = 0.25) -> T | None:
    """``work`` while the client is still there: when it leaves, the work is cancelled (None)."""
    task = asyncio.ensure_future(work)
    while True:
        done, _ = await asyncio.wait({task}, timeout=poll_s)
        if done:
            return task.result()
        transport = request.transport
        if transport is None or transport.is_closing():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            log.info("Atelier: %s %s stopped: the client left", request.method, request.path)
            return None


def answer(body: Any, status: int = 200) -> web.Response:
    """Strict JSON (NaN and infinities written as null)."""
    return web.json_response(body, status=status, dumps=jsonsafe.dumps)


def too_large(size: int | str) -> TooLarge:
    return TooLarge(f"the body is {size} bytes; at most {MAX_BODY_BYTES} bytes are accepted", field="body",
                    value=size, accepted=f"at most {MAX_BODY_BYTES} bytes")


async def json_body(request: web.Request, required: bool = True) -> Any:
    """The request's JSON, read up to the limit (413 beyond it, whatever the server's own limit), strict and
    checked (nesting, NUL, lone surrogates: a 400 naming the field)."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise too_large(request.content_length)
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(64 * 1024):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise too_large(f"more than {MAX_BODY_BYTES}")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        if required:
            raise InvalidInput("the request needs a JSON body", field="body")
        return {}
    return jsonsafe.loads(raw)


def query_template(request: web.Request) -> dict[str, Any]:
    """A function template from query parameters (category, model_family, checkpoint, sizes)."""
    template: dict[str, Any] = {}
    for key in ("category", "model_family", "checkpoint"):
        if key in request.query:
            template[key] = request.query[key]
    for key in ("width", "height", "batch_size"):
        if key in request.query:
            raw = request.query[key]
            try:
                template[key] = int(raw)
            except ValueError:
                raise invalid(key, raw, "a whole number") from None
    return template
