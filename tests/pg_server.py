"""A throw-away PostgreSQL server for the tests: the starter :func:`start_postgres`, the
session-scoped fixture ``pg_url`` and the fixture factory ``pg_servers`` (a server of one
test's own: ``with pg_servers.serve() as url: ...``), registered by ``conftest.py``; either
fixture marks a test ``postgres``.

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
from lanes import needs, refuse_in_quick_lane

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from deploy.postgres import LocalPostgres, ServerError  # noqa: E402

__all__ = ["ServerError", "TemporaryServer", "pg_servers", "pg_url", "start_postgres"]


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


class PostgresStartError(RuntimeError):
    """The PostgreSQL test server did not start (the message holds its log)."""


@contextlib.contextmanager
def start_postgres() -> Iterator[str]:
    """A new :class:`TemporaryServer`, started; yields its postgresql:// URL (an empty
    database) and removes the server on exit."""
    refuse_in_quick_lane("PostgreSQL")
    server = TemporaryServer()
    try:
        server.start()
    except (ServerError, OSError, subprocess.SubprocessError) as exc:
        log = server.server_log()
        server.stop()
        raise PostgresStartError(f"{exc}\n--- server log ---\n{log}") from exc
    try:
        yield server.url
    finally:
        server.stop()


class PostgresServers:
    """The fixture factory of PostgreSQL servers (fixture ``pg_servers``)."""

    @contextlib.contextmanager
    def serve(self) -> Iterator[str]:
        """:func:`start_postgres`; a server that does not start fails the test."""
        stack = contextlib.ExitStack()
        try:
            url = stack.enter_context(start_postgres())
        except PostgresStartError as error:
            stack.close()
            pytest.fail(f"cannot start the PostgreSQL test server: {error}", pytrace=False)
        with stack:
            yield url


@pytest.fixture(scope="session")
@needs("postgres")
def pg_servers() -> PostgresServers:
    """The factory: a PostgreSQL server of a test's own (e.g. one it pauses)."""
    return PostgresServers()


@pytest.fixture(scope="session")
@needs("postgres")
def pg_url(pg_servers: PostgresServers) -> Iterator[str]:
    """A postgresql:// URL of an empty database, for the whole test session
    (``GUIDE_TEST_POSTGRES_URL`` when set, else a server of the session's own)."""
    configured = os.environ.get("GUIDE_TEST_POSTGRES_URL")
    if configured:
        yield configured
        return
    with pg_servers.serve() as url:
        yield url


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
