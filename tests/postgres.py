"""A throwaway PostgreSQL server for the record tests, started from Debian's packages.

``ATELIER_TEST_POSTGRES_URL`` (an admin SQLAlchemy URL) uses a server you already run instead.
Without either, the PostgreSQL variants are skipped, unless ``ATELIER_REQUIRE_POSTGRES=1`` (CI)
makes that a failure.
"""

from __future__ import annotations

import getpass
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_owner(argv: list[str], owner: str) -> list[str]:
    """PostgreSQL refuses to run as root: run its programs as the ``postgres`` user then."""
    return ["runuser", "-u", owner, "--", *argv] if os.geteuid() == 0 else argv


@contextmanager
def postgres_server() -> Iterator[str | None]:
    """Yields an admin URL (``postgresql+psycopg://user@127.0.0.1:port/postgres``), or None if none can run."""
    if os.environ.get("ATELIER_TEST_POSTGRES_URL"):
        yield os.environ["ATELIER_TEST_POSTGRES_URL"]
        return
    binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not binaries:
        yield None
        return
    bindir = Path(binaries[-1]).parent
    owner = "postgres" if os.geteuid() == 0 else getpass.getuser()
    root = Path(tempfile.mkdtemp(prefix="atelier-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, owner)
    port = _free_port()
    subprocess.run(_as_owner([str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", owner, "-E", "UTF8"],
                             owner), check=True, capture_output=True)
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(_as_owner([str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"),
                              "-w", "start"], owner), check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://{owner}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_owner([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], owner),
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def fresh_database(admin_url: str) -> str:
    """A new empty database on that server; its URL."""
    import sqlalchemy

    name = f"atelier_{uuid.uuid4().hex[:12]}"
    engine = sqlalchemy.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return admin_url.rsplit("/", 1)[0] + f"/{name}"
