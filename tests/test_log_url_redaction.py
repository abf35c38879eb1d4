"""Log URLs in messages: one redaction (widgets.log.urls.redact), used by the log, its command
line and ./manage cluster, which hides the whole password and password parameters."""

from __future__ import annotations

import pytest

from widgets.log.urls import redact

SECRET = "s3cr3t"


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://guide:p@ss@host/db", "postgresql://guide:***@host/db"),
    ("postgresql://guide:p@ss@host:5432/db", "postgresql://guide:***@host:5432/db"),
    ("postgresql://guide:a:b@c@host/db", "postgresql://guide:***@host/db"),
    ("postgresql://guide:pa/ss@host/db", "postgresql://guide:***@host/db"),
    ("postgresql://guide:p/a@s:s@host/db?sslmode=require",
     "postgresql://guide:***@host/db?sslmode=require"),
    ("postgresql://guide:p?a@ss@host/db", "postgresql://guide:***@host/db"),
    ("postgresql://host/db?password=secret", "postgresql://host/db?password=***"),
    ("postgresql://guide@host/db?sslmode=require&PASSWORD=secret&connect_timeout=3",
     "postgresql://guide@host/db?sslmode=require&PASSWORD=***&connect_timeout=3"),
    ("postgresql://guide@host/db?sslpassword=secret", "postgresql://guide@host/db?sslpassword=***"),
])
def test_redact(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_what_is_not_a_password_is_kept() -> None:
    kept = ["postgresql://guide@host/db", "postgresql://host/db?application_name=a@b",
            "sqlite:///srv/data/events.sqlite3?mode=ro", "/srv/data/events.sqlite3"]
    assert [redact(url) for url in kept] == kept
    assert redact("postgresql://guide:secret@host/db") == "postgresql://guide:***@host/db"
    assert redact("postgres://:secret@host/db") == "postgres://:***@host/db"
    # and the query's password along with the user information's
    assert redact("postgresql://guide:secret@host/db?password=secret") == \
        "postgresql://guide:***@host/db?password=***"


@pytest.mark.parametrize("password", ["pwA@pwB", "pwA:pwB", "pwA/pwB", "pwA@/:pwB@pwC", SECRET])
def test_no_part_of_the_password_is_shown(password: str) -> None:
    url = f"postgresql://guide:{password}@db.example.org:5432/guide?password={password}"
    shown = redact(url)
    assert shown.startswith("postgresql://guide:***@db.example.org:5432/guide?password=***")
    for part in ("pwA", "pwB", "pwC", SECRET):
        assert part not in shown, shown


def test_the_cluster_uses_the_same_redaction() -> None:
    import deploy.cluster

    assert deploy.cluster._redact is redact


def test_a_store_error_hides_the_password() -> None:
    pytest.importorskip("psycopg")
    from widgets.log import StoreUnavailable, open_store

    with pytest.raises(StoreUnavailable) as error:
        open_store(f"postgresql://guide:{SECRET}@x@127.0.0.1:1/guide?password={SECRET}", timeout=1)
    assert SECRET not in str(error.value)
    assert "guide:***@" in str(error.value)
