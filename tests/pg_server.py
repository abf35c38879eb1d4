"""A throw-away PostgreSQL server for the tests (session-scoped fixture ``pg_url``).

``GUIDE_TEST_POSTGRES_URL`` set: that server is used as it is. Otherwise a
temporary cluster is created with the installed server binaries
(``/usr/lib/postgresql/*/bin`` or ``PATH``), listening only on 127.0.0.1 on a
free port with its unix socket in the temporary folder, and removed afterwards.
When running as root the cluster belongs to the ``postgres`` OS user (the
server refuses to run as root) and its commands run through ``runuser``.
The server itself is ``deploy/postgres.py``'s :class:`LocalPostgres`, the one
``./manage cluster`` starts.

A server that cannot be started fails the tests that need it; it never skips them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from deploy.postgres import LocalPostgres, ServerError  # noqa: E402

__all__ = ["ServerError", "TemporaryServer", "pg_url"]


class TemporaryServer(LocalPostgres):
    """A :class:`LocalPostgres` in a fresh temporary folder (database ``guide_test``, no
    fsync); ``stop()`` removes everything."""

    def __init__(self) -> None:
        super().__init__(Path(tempfile.mkdtemp(prefix="guide-pg-")), database="guide_test",
                         fsync=False)

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A postgresql:// URL of an empty database, for the whole test session."""
    configured = os.environ.get("GUIDE_TEST_POSTGRES_URL")
    if configured:
        yield configured
        return
    server: TemporaryServer | None = None
    try:
        server = TemporaryServer()
        server.start()
    except (ServerError, OSError, subprocess.SubprocessError) as exc:
        log = server.server_log() if server else ""
        if server:
            server.stop()
        pytest.fail(f"cannot start the PostgreSQL test server: {exc}\n--- server log ---\n{log}", pytrace=False)
    try:
        yield server.url
    finally:
        server.stop()


def schema_url(pg_url: str, name: str) -> str:
    """A URL of the test server with schema ``name`` (created now, empty) first on the
    search_path. The caller drops it (or uses :func:`fresh_schema`)."""
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    sep = "&" if "?" in pg_url else "?"
    return f"{pg_url}{sep}options=-c%20search_path%3D{name}"


@contextlib.contextmanager
def fresh_schema(pg_url: str, prefix: str = "t") -> Iterator[str]:
    """A fresh, empty schema of the test server as a URL whose search_path selects it (isolates
    a test); dropped afterwards."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    url = schema_url(pg_url, name)
    try:
        yield url
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{name}" CASCADE')
