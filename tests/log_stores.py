"""Empty interaction-log stores for the tests of the summary and the flow map (fixtures,
registered by ``conftest.py``):

* ``sqlite_url``: a fresh SQLite file in the test's temporary folder;
* ``pg_schema_url``: a fresh schema of the PostgreSQL test server (``pg_url``), dropped
  afterwards;
* ``store_url``: each of SQLite and PostgreSQL, as the log creates it or as log schema
  version 1 or 3 made it (the test's first open migrates it).

A module may define a fixture of the same name for stores of its own (the log's tests do).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pg_server import fresh_schema

import widgets.log as log
from widgets.log import open_store


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite://{tmp_path / 'events.sqlite3'}"


@pytest.fixture
def pg_schema_url(pg_url: str) -> Iterator[str]:
    """A fresh schema in the PostgreSQL test database, as a URL whose search_path selects it."""
    with fresh_schema(pg_url, "summary") as url:
        yield url


@pytest.fixture(params=["sqlite", "sqlite-v1", "sqlite-v3",
                        *(pytest.param(p, marks=pytest.mark.postgres)
                          for p in ("postgresql", "postgresql-v1", "postgresql-v3"))])
def store_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The URL of an empty store: SQLite, then PostgreSQL; each as the log creates it, or as
    log schema version 1 or 3 made it (the test's first open migrates it)."""
    backend, _, version = request.param.partition("-")
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_schema_url")
    with monkeypatch.context() as m:
        if version:
            m.setattr(log.migrations, "MIGRATIONS", log.MIGRATIONS[:int(version.lstrip("v"))])
        open_store(url).close()  # creates the schema
    return url
