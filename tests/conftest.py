"""Shared pytest fixtures."""

from pg_server import pg_url  # noqa: F401  (session-scoped PostgreSQL test server)
from voila_server import voila_guide  # noqa: F401  (session-scoped Voilà serving the guide)

