"""Shared pytest fixtures, the lanes of the suite, and where each kind of server comes from.

Fixtures (no test module imports one: ask for it by name)
-----------------------------------------------------------

Defined in the modules of ``pytest_plugins`` below, one starter function and one fixture
factory per kind of server, used by the tests and the benchmarks alike:

=================  ===========================  =========================================
kind               starter (context manager)    fixtures
=================  ===========================  =========================================
Voilà: the guide,  ``voila_server.start_voila``  ``voila_servers`` (factory: ``.guide()``,
the dashboard                                   ``.dashboard(log_url)``, ``.serve(nb)``),
                                                ``voila_guide``, ``guide_server``
Solara: the guide  ``solara_server.              ``solara_servers`` (factory:
                   start_solara``                ``.guide(*options)``),
                                                ``solara_default_guide``
JupyterLab         ``lab_server.start_lab``      ``lab_servers`` (factory: ``.serve(env)``)
PostgreSQL         ``pg_server.start_postgres``  ``pg_url`` (session), ``pg_servers``
nginx cluster      ``cluster_server.             ``cluster_servers`` (factory:
                   start_cluster``               ``.serve(2)``)
Chromium           ``browser.launch_chromium``   ``playwright_instance``, ``browser``,
                                                ``page_factory``
=================  ===========================  =========================================

A factory's ``serve`` (or ``guide``, ``dashboard``) is a context manager: a module that
needs a server of its own writes a module-scoped fixture ``with voila_servers.guide(...) as
server: yield server``; a test that starts one itself asks for the factory. A server that
does not start fails the tests that use it (never a skip).

The guide's host: ``guide_server`` is the guide served by each host of
``voila_server.GUIDE_HOSTS``, a session-scoped parameter ``guide_host`` (``"voila"`` and
``"solara"``): a test asking for ``guide_server`` runs once per host (pytest runs all of
one host's tests, then the other's), on one server per host for the whole session
(``voila_guide``, ``solara_default_guide``). A module that needs a server of its own per host
(other limits) writes a module-scoped fixture on ``guide_host`` that asks ``voila_servers``
or ``solara_servers`` for it. Where a test checks what only one host has (Voilà's kernel
processes, its template's page), it says so and runs on that host only
(``server.host``). Tests of Voilà itself (its kernels, paths and log) ask for
``voila_guide``; those of the Solara host itself (its gate) are in ``test_solara_host.py``.

``log_stores``: ``sqlite_url``, ``pg_schema_url`` and ``store_url``, empty log stores for
the summary's and the flow map's tests. Here: ``flow_2024`` (the guide's 2024 flow as the process's default, for the tests whose
numbers were worked out by hand on it).

Lanes
-----

The markers ``browser``, ``server``, ``postgres`` and ``cluster`` are added at collection
from the fixtures a test uses, directly or through other fixtures: a fixture that brings one
declares it with ``@lanes.needs("server")`` under its ``@pytest.fixture`` (every fixture
factory above does), so a new test cannot leave a lane by forgetting a marker. ``slow`` is
set by hand on the few tests that need none of those but take long. ``pytest --quick``
(``./manage test --quick``) deselects every test with one of them; in that run the starters
refuse to start anything (``lanes.refuse_in_quick_lane``), so a test that starts a server
without its fixture fails there instead of passing for a quick test.
"""

import os
from pathlib import Path

import lanes
import pytest

from widgets.flow import FLOW_ENV, default_flow

pytest_plugins = ["browser", "voila_server", "solara_server", "lab_server", "pg_server",
                  "cluster_server", "log_stores", "pytester"]

#: The guide's flow as it was in 2024 (before the content was rewritten). The tests of the
#: log, the summary and the dashboard compute their expected numbers by hand from logs written
#: for this flow: they pin it (``flow_2024``), since what they test does not depend on the
#: content. The tests of the guide itself run on the packaged flow.yaml.
FLOW_2024 = Path(__file__).parent / "fixtures" / "flow-2024.yaml"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--quick", action="store_true",
        help="run only the tests that need no browser, Voilà or Lab server, PostgreSQL or "
             "nginx cluster, and are not marked slow (the edit loop; CI runs everything)")


def pytest_configure(config: pytest.Config) -> None:
    lanes.QUICK = bool(config.getoption("quick"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for marker in sorted(lanes.markers_of(_fixture_functions(item))):
            item.add_marker(marker)
    if not config.getoption("quick"):
        return
    quick, heavy = [], []
    for item in items:
        (heavy if any(item.get_closest_marker(m) for m in lanes.HEAVY) else quick).append(item)
    if heavy:
        config.hook.pytest_deselected(items=heavy)
        items[:] = quick


def _fixture_functions(item: pytest.Item) -> list:
    """The functions of every fixture in ``item``'s closure (the fixtures it asks for and
    those they ask for)."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:  # not a Python test function (e.g. a notebook cell of nbval)
        return []
    return [definition.func for definitions in info.name2fixturedefs.values()
            for definition in definitions]


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
