"""Shared pytest fixtures."""

import os
from pathlib import Path

import pytest

from pg_server import pg_url  # noqa: F401  (session-scoped PostgreSQL test server)
from voila_server import voila_guide  # noqa: F401  (session-scoped Voilà serving the guide)
from widgets.flow import FLOW_ENV, default_flow

#: The guide's flow as it was in 2024 (before the content was rewritten). The tests of the
#: log, the summary and the dashboard compute their expected numbers by hand from logs written
#: for this flow: they pin it (``flow_2024``), since what they test does not depend on the
#: content. The tests of the guide itself run on the packaged flow.yaml.
FLOW_2024 = Path(__file__).parent / "fixtures" / "flow-2024.yaml"


@pytest.fixture(scope="module")
def flow_2024():
    """Make the 2024 flow the process's default flow (``GUIDE_FLOW``) for a test module."""
    before = os.environ.get(FLOW_ENV)
    os.environ[FLOW_ENV] = str(FLOW_2024)
    default_flow.cache_clear()
    try:
        yield default_flow()
    finally:
        if before is None:
            os.environ.pop(FLOW_ENV, None)
        else:
            os.environ[FLOW_ENV] = before
        default_flow.cache_clear()
