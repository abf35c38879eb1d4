"""The test lanes: which tests need a browser, a server, PostgreSQL or the nginx cluster.

A test's markers come from the fixtures it uses (directly or through other fixtures): the
fixture that brings a browser or a server declares it with :func:`needs` (each kind's fixture
factory does), and ``conftest.py`` adds the markers of every fixture in a test's closure at
collection (:func:`markers_of`), so a new test that asks for ``page_factory`` is a browser
test without saying so. ``pytest --quick`` (``./manage test
--quick``) runs only the tests with none of :data:`HEAVY`.

A test that starts something heavy without its fixture (a direct call of ``start_voila``,
``start_solara``, ``start_lab``, ``start_postgres``, ``start_cluster`` or
``launch_chromium``) is not marked, so the starters refuse to run in the quick lane (:func:`refuse_in_quick_lane`): the test
fails there with a message naming the fixture to use, instead of passing for a quick test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

F = TypeVar("F", bound=Callable)

#: The markers the quick lane leaves out. ``slow`` is set by hand on tests that need none of
#: the above but take long (a fresh virtual environment, a notebook run by nbval).
HEAVY = ("browser", "server", "postgres", "cluster", "slow")

#: The fixture each kind of thing a quick test must not start comes from.
FIXTURE_OF = {
    "Chromium": "browser (or page_factory)",
    "a Voilà server": "voila_servers (or voila_guide, guide_server)",
    "a Solara server": "solara_servers (or solara_default_guide, guide_server)",
    "JupyterLab": "lab_servers",
    "PostgreSQL": "pg_url (or pg_servers)",
    "the nginx cluster": "cluster_servers",
}

#: Set by conftest.py for a ``--quick`` run; the benchmarks never set it.
QUICK = False


class QuickLaneError(RuntimeError):
    """A test in the quick lane tried to start a browser or a server."""


def needs(*markers: str) -> Callable[[F], F]:
    """Declare on a fixture function (below ``@pytest.fixture``) the lane markers of every
    test that uses it: ``"browser"``, ``"server"``, ``"postgres"``, ``"cluster"``."""
    unknown = set(markers) - set(HEAVY)
    if unknown:
        raise ValueError(f"unknown lane markers {sorted(unknown)} (known: {HEAVY})")

    def declare(function: F) -> F:
        function.lane_markers = frozenset(markers)  # type: ignore[attr-defined]
        return function

    return declare


def markers_of(fixture_functions: Iterable[Callable]) -> set[str]:
    """The lane markers declared by any of ``fixture_functions``."""
    found: set[str] = set()
    for function in fixture_functions:
        found |= getattr(function, "lane_markers", frozenset())
    return found


def refuse_in_quick_lane(what: str) -> None:
    """Called by every starter: in the quick lane, starting ``what`` is an error (the test
    starts it without the fixture that would have kept it out of that lane)."""
    if QUICK:
        raise QuickLaneError(
            f"this test starts {what} in the quick lane: ask for it through the fixture "
            f"{FIXTURE_OF.get(what, '')} (tests/conftest.py), which marks the test")
