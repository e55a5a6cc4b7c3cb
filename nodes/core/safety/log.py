"""The violation log, in the records' database: every content rating clamped or rejected (Social Context node,
``POST /social-context/build``, ``POST /generations`` with a social context), every refused prompt-variable value,
and every request refused because what it named is another user's. Entries are their user's; an operator
(``ATELIER_OPERATORS``) may read everyone's.

Writing an entry never fails the request that caused it: a log that cannot be written is itself logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ..base.errors import invalid
from ..records.models import Violation

log = logging.getLogger("atelier")
KINDS = ("rating_clamped", "rating_rejected", "variable_refused", "isolation_refused")
MAX_TEXT = 2000
MAX_LIST = 500

# (user, kind, source, asked, applied, why)
Report = Callable[[str, str, str, str, str, str], None]


class ViolationLog:
    def __init__(self, session: sessionmaker[Session]) -> None:
        self.session = session

    def add(self, user: str, kind: str, source: str, asked: str, applied: str, why: str) -> None:
        if kind not in KINDS:
            raise invalid("kind", kind, list(KINDS))
        try:
            with self.session.begin() as s:
                s.add(Violation(user=str(user)[:128], created_at=time.time(), kind=kind, source=str(source)[:64],
                                asked=str(asked)[:MAX_TEXT], applied=str(applied)[:MAX_TEXT], why=str(why)[:MAX_TEXT]))
        except Exception:  # the request goes on; the operator sees this in the server's log
            log.exception("Atelier: a %s violation of %s could not be logged", kind, user)

    def entries(self, user: str | None, kind: str | None = None, since: float | None = None,
                limit: int = 100) -> list[dict[str, Any]]:
        """Newest first; ``user`` None: everyone's (operators only: the route decides)."""
        if kind is not None and kind not in KINDS:
            raise invalid("kind", kind, list(KINDS))
        query = select(Violation)
        if user is not None:
            query = query.where(Violation.user == user)
        if kind is not None:
            query = query.where(Violation.kind == kind)
        if since is not None:
            query = query.where(Violation.created_at >= since)
        with self.session() as s:
            rows = s.scalars(query.order_by(Violation.created_at.desc(), Violation.id.desc())
                             .limit(min(max(1, limit), MAX_LIST))).all()
            return [{"id": r.id, "user": r.user, "created_at": r.created_at, "kind": r.kind, "source": r.source,
                     "asked": r.asked, "applied": r.applied, "why": r.why} for r in rows]
