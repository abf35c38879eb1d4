"""The lanes of the suite (tests/lanes.py, tests/conftest.py): a test's markers come from the
fixtures it uses, and the quick lane (``pytest --quick``) leaves out every test that needs a
browser, a server, PostgreSQL or the cluster, or is marked slow.

The scratch suites run in a separate pytest process with this project's conftest.py; they
only collect, or start nothing (a starter called in the quick lane refuses before it
starts anything).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
PROJECT_ROOT = TESTS.parent

SCRATCH_TESTS = '''
import pytest


def test_plain():
    pass


def test_in_a_page(page_factory):
    pass


@pytest.fixture
def own_server(voila_servers):
    yield None


def test_through_a_fixture_of_its_own(own_server):
    pass


def test_on_the_guide_of_every_host(guide_server):
    pass


def test_on_postgres(pg_url):
    pass


def test_on_the_cluster(cluster_servers):
    pass


def test_in_lab(lab_servers):
    pass


@pytest.mark.slow
def test_marked_slow():
    pass


def test_starting_voila_without_its_fixture():
    from voila_server import start_voila

    with start_voila("notebooks/guide.ipynb"):
        pass
'''


#: Added to the scratch conftest.py: every collected test's markers, to markers.json.
MARKERS_REPORT = '''

def pytest_collection_finish(session):
    import json
    markers = {item.name: sorted({m.name for m in item.iter_markers()}) for item in session.items}
    (session.config.rootpath / "markers.json").write_text(json.dumps(markers))
'''


@pytest.fixture
def scratch(pytester: pytest.Pytester) -> pytest.Pytester:
    """A scratch suite with this project's conftest.py and markers."""
    conftest = (TESTS / "conftest.py").read_text(encoding="utf-8")
    pytester.makeconftest(f"import sys\nsys.path.insert(0, {str(TESTS)!r})\n{conftest}"
                          + MARKERS_REPORT)
    settings = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    markers = settings["tool"]["pytest"]["ini_options"]["markers"]
    pytester.makeini("[pytest]\naddopts = --strict-markers\nmarkers =\n"
                     + "".join(f"    {marker}\n" for marker in markers))
    pytester.makepyfile(test_scratch=SCRATCH_TESTS)
    return pytester


def test_markers_follow_the_fixtures_a_test_uses(scratch):
    scratch.runpytest_subprocess("--collect-only", "-q").assert_outcomes()
    markers = json.loads((scratch.path / "markers.json").read_text())
    assert markers == {
        "test_plain": [],
        "test_in_a_page": ["browser"],
        "test_through_a_fixture_of_its_own": ["server"],
        "test_on_the_guide_of_every_host[voila]": ["server"],
        "test_on_the_guide_of_every_host[solara]": ["server"],
        "test_on_postgres": ["postgres"],
        "test_on_the_cluster": ["cluster", "postgres", "server"],
        "test_in_lab": ["server"],
        "test_marked_slow": ["slow"],
        "test_starting_voila_without_its_fixture": [],
    }


def test_the_quick_lane_runs_only_unmarked_tests_and_refuses_to_start_servers(scratch):
    """The quick lane runs the two tests without a lane marker. One of them starts Voilà
    without its fixture: it fails, naming the fixture to use, instead of passing for a quick
    test (and nothing is started)."""
    result = scratch.runpytest_subprocess("--quick", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1, deselected=8)
    result.stdout.fnmatch_lines(["*QuickLaneError*voila_servers*",
                                 "FAILED test_scratch.py::test_starting_voila_without_its_fixture*"])


@pytest.mark.slow
def test_the_quick_lane_of_this_suite_leaves_the_browser_walks_out():
    """On the real suite: every walk in Chromium is left out, every widget test kept."""
    def ids(*args: str) -> set[str]:
        proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                               "-p", "no:cacheprovider", *args,
                               "tests/test_guide_walks.py", "tests/test_panels.py"],
                              cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return {line for line in proc.stdout.splitlines() if "::" in line}

    everything, quick = ids(), ids("--quick")
    walks = {test for test in everything if test.startswith("tests/test_guide_walks.py::")}
    panels = {test for test in everything if test.startswith("tests/test_panels.py::")}
    assert walks and panels
    assert quick == panels
