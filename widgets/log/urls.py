"""Where the log is: the configured log URL, opening a store from a URL, and URL parsing.

``parse_url`` is the one parser of log URLs (the guide's kernel and the dashboard use it);
``open_store`` opens what it describes. Only the standard library is imported here; platformdirs
when the default data folder is needed, psycopg when a PostgreSQL store is opened.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import parse_qs, unquote

from .store import DEFAULT_TIMEOUT

if TYPE_CHECKING:
    from .store import EventStore

__all__ = ["LogURL", "log_url", "open_store", "parse_url", "redact", "share_store"]

_DEFAULT_TIMEOUT = DEFAULT_TIMEOUT


#: Query parameters whose value is a secret (libpq's connection parameters).
_SECRET_PARAMETERS = re.compile(r"([?&](?:ssl)?password=)[^&#]*", re.IGNORECASE)


def redact(url: str) -> str:
    """The URL without its password, for messages: ``scheme://user:***@host/...``.

    The one redaction of log URLs (the guide, the dashboard, ``python -m widgets.log``,
    ``./manage cluster``). The user information ends at the last ``@`` before the query, so a
    password holding ``@``, ``:`` or ``/`` is hidden whole; when the part before the first ``?``
    has no ``@`` (a password holding ``?``), at the last ``@`` of the URL. A ``password=`` or
    ``sslpassword=`` in the query string is hidden too. Anything that is not a URL is returned
    as it is.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    before_query = rest.split("?", 1)[0]
    at = before_query.rfind("@")
    if at < 0:
        at = rest.rfind("@")
    if at >= 0 and ":" in rest[:at]:
        user = rest[:at].split(":", 1)[0]
        rest = f"{user}:***{rest[at:]}"
    return scheme + sep + _SECRET_PARAMETERS.sub(r"\1***", rest)


_redact = redact


class LogURL(NamedTuple):
    """A parsed log URL: ``dialect`` 'sqlite' (``path``, ``read_only``) or 'postgresql' (``url``)."""

    dialect: str
    url: str
    path: Path | None = None
    read_only: bool = False


def parse_url(url: str | os.PathLike[str]) -> LogURL:
    """Parse ``postgresql://...`` / ``postgres://...``, ``sqlite:///abs/path`` (optionally
    ``?mode=ro``) or a plain file path (str or Path). ValueError for anything else."""
    if isinstance(url, os.PathLike):
        return LogURL("sqlite", os.fspath(url), Path(url))
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("postgresql", "postgres"):
        return LogURL("postgresql", url)
    if scheme == "sqlite":
        rest = url[len("sqlite://"):]
        path, _, query = rest.partition("?")
        options = parse_qs(query)
        mode = options.pop("mode", ["rwc"])[-1]
        if options or mode not in ("ro", "rw", "rwc"):
            raise ValueError("sqlite log URLs accept only ?mode=ro")
        if not path:
            raise ValueError("sqlite log URL without a path")
        return LogURL("sqlite", url, Path(unquote(path)), mode == "ro")
    if scheme:
        raise ValueError(f"unsupported log URL scheme {scheme!r}: use sqlite:/// or postgresql://")
    return LogURL("sqlite", url, Path(url))


#: The application's name for the user's data folder.
APP_NAME = "amazon-contact-guide"


def default_data_dir() -> Path:
    """Where the log goes when ``$GUIDE_DATA_DIR`` is not set: the user's data folder, never
    beside the installed code (platformdirs: ``$XDG_DATA_HOME/amazon-contact-guide``, by default
    ``~/.local/share/amazon-contact-guide``, on Linux; ``~/Library/Application Support/…`` on
    macOS; ``%LOCALAPPDATA%\\amazon-contact-guide`` on Windows). ``./manage`` sets
    ``GUIDE_DATA_DIR`` to the project's ``data`` folder."""
    import platformdirs  # a dependency of jupyter_core; imported only when needed

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def _data_dir() -> Path:
    """``$GUIDE_DATA_DIR``, or ``default_data_dir()``."""
    env = os.environ.get("GUIDE_DATA_DIR")
    return Path(env).expanduser() if env else default_data_dir()


def log_url() -> str:
    """The configured store: ``$GUIDE_LOG_URL``, else ``sqlite:///$GUIDE_DATA_DIR/events.sqlite3``."""
    return os.environ.get("GUIDE_LOG_URL") or f"sqlite://{(_data_dir() / 'events.sqlite3').absolute()}"


#: What ``open_store()`` without arguments returns instead of a new store (``share_store``).
_shared: Callable[[], EventStore] | None = None


def share_store(opener: Callable[[], EventStore] | None) -> None:
    """Have ``open_store()`` without arguments (the configured store, as each visit's logger
    opens it) return ``opener()`` instead of a new store: a host that serves many visits in one
    process gives them one store (``widgets.hosts.solara.logstore``). None: a new store again."""
    global _shared
    _shared = opener


def open_store(url: str | os.PathLike[str] | None = None, *, timeout: float | None = None) -> EventStore:
    """Open the store at ``url`` (default: ``log_url()``; see ``parse_url``), or, without
    arguments in a process that shares one (``share_store``), return the shared store.

    ``timeout`` (seconds) bounds lock waits and connecting; default ``$GUIDE_LOG_TIMEOUT`` or 5 s.
    Raises StoreUnavailable (or a subclass) if the store cannot be used, and
    ValueError for an unsupported URL.
    """
    if url is None and timeout is None and _shared is not None:
        return _shared()
    if timeout is None:
        timeout = float(os.environ.get("GUIDE_LOG_TIMEOUT") or _DEFAULT_TIMEOUT)
    parsed = parse_url(url if isinstance(url, os.PathLike) else (url or log_url()))
    if parsed.dialect == "postgresql":
        from .postgres import PostgresStore

        return PostgresStore(parsed.url, timeout=timeout)
    from .sqlite import SQLiteStore

    assert parsed.path is not None
    return SQLiteStore(parsed.path, timeout=timeout, read_only=parsed.read_only)
