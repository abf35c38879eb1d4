"""The notebooks in JupyterLab, as a maintainer uses them (``./manage lab``), in Chromium.

One JupyterLab server runs for the module, started by the ``lab_servers`` fixture (the
project root as working directory, a random token, temporary per-user Jupyter folders, no
news or update checks, no autosave, checkpoints outside the project: see ``lab_server``).
Its kernels log to a temporary SQLite store filled with demo events (``GUIDE_LOG_URL``).
The page's ``beforeunload`` prompt (Lab asks before leaving a page with an unsaved, run
notebook) is accepted when a page closes: the tests leave without saving.

The guide test drives the widgets in the notebook's output the way a maintainer would (the
dropdown, Continue, the language switch, Back), replaying every action on a
:class:`widgets.engine.Engine` that predicts the headings and the events the kernel must log.
The summary test checks the dashboard's numbers against :func:`widgets.summary.summarize` of
the same store (including the guide test's visit). The content test checks that the editors'
notebook shows the flow map (an SVG) and every screen in Korean and English. The last test checks that using the
notebooks in Lab left the project tree as it was, and that no page made a request beyond
127.0.0.1 or raised a JavaScript error; it needs the others to have run first (pytest runs a
module's tests in file order).

Screenshots go to ``test-artifacts/`` (gitignored).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from browser import PageFactory, artifact_path, full_page_screenshot
from lab_server import LabServer, _tail
from playwright.sync_api import Page, expect
from voila_server import PROJECT_ROOT

from widgets import demo
from widgets.engine import Engine, Interaction
from widgets.eventlog import EventStamper
from widgets.flow import default_flow
from widgets.log import SQLiteStore
from widgets.summary import summarize


FLOW = default_flow()
NOTEBOOKS = PROJECT_ROOT / "notebooks"
DEMO_EVENTS = 3000

#: Paths (relative to the project root) Lab or a kernel could create; none may appear.
STRAY_PATHS = (".ipynb_checkpoints", "notebooks/.ipynb_checkpoints", ".virtual_documents",
               "notebooks/.virtual_documents", "notebooks/__pycache__")


# --------------------------------------------------------------------------- fixtures


@dataclass
class Snapshot:
    """The project tree parts Lab could change: the notebooks' bytes and git's view."""

    notebooks: dict[Path, bytes]
    git_status: str
    stray: set[str]

    @classmethod
    def take(cls) -> "Snapshot":
        return cls({path: path.read_bytes() for path in sorted(NOTEBOOKS.glob("*.ipynb"))},
                   _git_status(), {p for p in STRAY_PATHS if (PROJECT_ROOT / p).exists()})


def _git_status() -> str:
    return subprocess.run(
        # --no-optional-locks: never take the index lock (others may be committing meanwhile)
        ["git", "--no-optional-locks", "status", "--porcelain", "--ignored",
         "--untracked-files=all", "--", "notebooks"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, check=True).stdout


def _saved_by_lab(content: bytes) -> bool:
    """True if a notebook file holds what only a run could put there (outputs, counts)."""
    try:
        cells = json.loads(content)["cells"]
    except (ValueError, KeyError, TypeError):
        return False
    return any(cell.get("outputs") or cell.get("execution_count") is not None
               for cell in cells if cell.get("cell_type") == "code")


@pytest.fixture(scope="module")
def before() -> Iterator[Snapshot]:
    """The notebooks as they were before Lab ran. After the module, a notebook that Lab saved
    run (outputs or execution counts in the file) is put back as it was, and a checkpoint or
    cache folder Lab created is removed; the last test reports either. (Other changes to the
    notebooks, e.g. someone editing them meanwhile, are left alone.)"""
    snapshot = Snapshot.take()
    yield snapshot
    for path, content in snapshot.notebooks.items():
        now = path.read_bytes() if path.exists() else content
        if now != content and _saved_by_lab(now):
            path.write_bytes(content)
    for stray in {p for p in STRAY_PATHS if (PROJECT_ROOT / p).exists()} - snapshot.stray:
        shutil.rmtree(PROJECT_ROOT / stray, ignore_errors=True)


@pytest.fixture(scope="module")
def log_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("lab-data") / "events.sqlite3"
    # the last 30 days, so the guide test's visit today extends the charts by a day at most
    start = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=30)
    with SQLiteStore(path) as store:
        assert demo.fill(store, DEMO_EVENTS, seed=7, start=start, days=30) == DEMO_EVENTS
    return path


@pytest.fixture(scope="module")
def lab(lab_servers, before: Snapshot, log_path: Path) -> Iterator[LabServer]:
    """JupyterLab over the project, its kernels logging to the demo store."""
    env = {"GUIDE_LOG_URL": f"sqlite://{log_path}", "GUIDE_DATA_DIR": str(log_path.parent)}
    with lab_servers.serve(env) as server:
        yield server


@pytest.fixture(scope="module", autouse=True)
def patient_expect() -> Iterator[None]:
    """Assertions wait up to 30 s: a kernel starts, imports the project and draws charts."""
    expect.set_options(timeout=30_000)
    yield
    expect.set_options(timeout=5_000)


# --------------------------------------------------------------------------- driving Lab


def open_and_run(page_factory: PageFactory, lab: LabServer, notebook: str,
                 name: str) -> tuple[Page, object]:
    """Open ``notebook`` in Lab, wait for its kernel, then Run → Run All Cells."""
    page, guard = page_factory.new_page(name)
    # Leaving a run, unsaved notebook makes Lab ask first; the tests leave without saving.
    page.on("dialog", lambda dialog: dialog.accept() if dialog.type == "beforeunload"
            else dialog.dismiss())
    page.goto(lab.page_url(notebook, workspace=name.replace(" ", "-")), wait_until="commit")
    # the notebook's tab is the current one, and its kernel has started (the status bar
    # speaks of the current tab's notebook and kernel)
    filename = notebook.rsplit("/", 1)[-1]
    expect(page.locator(".jp-NotebookPanel .jp-Notebook")).to_be_visible(timeout=90_000)
    expect(page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current")
           ).to_have_text(filename, timeout=90_000)
    expect(page.locator(".jp-StatusBar-TextItem", has_text=filename)).to_have_count(1)
    expect(kernel_status(page)).to_have_text(re.compile(r"\| Idle$"), timeout=90_000)
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    return page, guard


def kernel_status(page: Page):
    """The status bar's kernel item: "Python 3 (ipykernel) | Idle"."""
    return page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"^Python 3.*\|"))


def expect_ran_cleanly(page: Page) -> None:
    """The code cell ran to the end (kernel idle, an execution count) without any error
    output or stderr (a traceback, or a warning logged by the project)."""
    expect(kernel_status(page)).to_have_text(re.compile(r"\| Idle$"))
    expect(page.locator(".jp-CodeCell .jp-InputPrompt").first).to_have_text(re.compile(r"\[1\]"))
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'],"
                          " .jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']")
    expect(errors).to_have_count(0)


def screenshot(page: Page, name: str) -> Path:
    """A full-page screenshot with the notebook scrolled to its top (Lab scrolls the notebook
    inside its panel; clicks in the output scroll it down)."""
    page.locator(".jp-NotebookPanel .jp-WindowedPanel-outer").evaluate("(el) => el.scrollTo(0, 0)")
    return full_page_screenshot(page, artifact_path(name))


def logged_sessions(path: Path) -> set[str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return {row[0] for row in conn.execute("SELECT DISTINCT session FROM events")}
    finally:
        conn.close()


def logged_rows(path: Path, session: str) -> list[tuple]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute("SELECT node, action, option, lang FROM events WHERE session = ? "
                            "ORDER BY id", (session,)).fetchall()
    finally:
        conn.close()


# --------------------------------------------------------------------------- the tests


def test_guide_notebook_runs_and_is_driven_in_lab(page_factory: PageFactory, lab: LabServer,
                                                  log_path: Path) -> None:
    """guide.ipynb in Lab: run, choose in the dropdown, Continue, English, Back; every heading
    is the one the engine predicts, and the kernel logged exactly these interactions."""
    events: list[Interaction] = []
    engine = Engine(FLOW, lang="ko", on_transition=EventStamper(on_event=events.append))
    sessions_before = logged_sessions(log_path)
    page, guard = open_and_run(page_factory, lab, "notebooks/guide.ipynb", "lab guide")
    try:
        guide = page.locator(".jp-OutputArea-output .guide")
        heading = guide.locator(".guide-body h2")

        def expect_step() -> None:
            progress = engine.progress()
            expect(heading).to_have_text(engine.node.title(engine.lang))
            expect(guide.get_by_text(engine.ui("progress", step=progress.step,
                                               total=progress.total), exact=True)).to_be_visible()

        engine.start()
        expect(heading).to_have_text(FLOW[FLOW.start].title("ko"), timeout=90_000)
        expect_step()
        expect_ran_cleanly(page)
        # the guide's page styles (a centred 46rem column in Voilà) leave Lab's cells alone
        widths = page.locator(".jp-Cell").evaluate_all(
            "(cells) => cells.map((c) => getComputedStyle(c).maxWidth)")
        assert widths and set(widths) == {"none"}, widths

        # the first question's dropdown: pick "refund", then Continue
        node = engine.node
        assert node.widget == "dropdown", node
        label = node.option("refund").label("ko")
        select = guide.get_by_label(node.prompt("ko"), exact=True)
        select.select_option(label=label)
        go = guide.get_by_role("button", name=FLOW.ui["continue"]("ko"), exact=True)
        expect(go).to_be_enabled()
        go.click()
        assert engine.choose("refund").id != FLOW.start
        expect_step()
        screenshot(page, "lab-guide.png")

        # the same step in English
        guide.get_by_role("button", name="English", exact=True).click()
        engine.set_language("en")
        expect_step()

        # Back: the first question again, in English, with the choice made shown
        guide.get_by_role("button", name=FLOW.ui["back"]("en"), exact=True).click()
        engine.back()
        expect_step()
        expect(guide.get_by_label(node.prompt("en"), exact=True).locator("option:checked")
               ).to_have_text(node.option("refund").label("en"))

        # the kernel logged this visit, and only it, to GUIDE_LOG_URL
        expected = [(e.node, e.action, e.option, e.lang) for e in events]
        deadline = time.monotonic() + 15
        while True:
            new = logged_sessions(log_path) - sessions_before
            rows = logged_rows(log_path, next(iter(new))) if len(new) == 1 else []
            if (len(new) == 1 and rows == expected) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert len(new) == 1, f"expected one new log session, found {sorted(new)}"
        assert rows == expected, f"logged {rows}, clicked {expected}"
        assert guard.clean, guard.report()
    finally:
        page_factory.close_page(page)


def test_summary_notebook_runs_in_lab(page_factory: PageFactory, lab: LabServer,
                                      log_path: Path) -> None:
    """summary.ipynb in Lab shows the summary of the store (the demo events plus the guide
    test's visit): the sessions count, and four charts that decode as images."""
    with SQLiteStore(log_path) as store:
        summary = summarize(store)
    assert summary.sessions > 10
    page, guard = open_and_run(page_factory, lab, "notebooks/summary.ipynb", "lab summary")
    try:
        dash = page.locator(".jp-OutputArea-output .guide-dash")
        sessions = dash.locator(".dash-kpi", has_text="sessions · 세션").locator("b")
        expect(sessions).to_have_text(f"{summary.sessions:,}", timeout=90_000)
        charts = dash.locator("img")
        expect(charts).to_have_count(4)
        page.wait_for_function(
            "(imgs) => imgs.every((i) => i.complete)", arg=charts.element_handles())
        sizes = charts.evaluate_all("(imgs) => imgs.map((i) => [i.naturalWidth, i.naturalHeight])")
        assert all(w > 0 and h > 0 for w, h in sizes), sizes
        expect_ran_cleanly(page)
        screenshot(page, "lab-summary.png")
        assert guard.clean, guard.report()
    finally:
        page_factory.close_page(page)


def test_content_notebook_runs_in_lab(page_factory: PageFactory, lab: LabServer) -> None:
    """content.ipynb in Lab, as an editor of flow.yaml uses it: the flow map as an SVG with a box
    per step, and every screen in Korean and English side by side, the first screen's Korean
    title among them."""
    page, guard = open_and_run(page_factory, lab, "notebooks/content.ipynb", "lab content")
    try:
        review = page.locator(".jp-OutputArea-output .guide-review")
        first = review.locator(f"#review-{FLOW.start}")
        expect(first.locator("div[lang='ko'] h4")).to_have_text(FLOW[FLOW.start].title("ko"),
                                                                timeout=90_000)
        expect(first.locator("div[lang='en'] h4")).to_have_text(FLOW[FLOW.start].title("en"))
        expect(review.locator(".review-screen")).to_have_count(len(FLOW.nodes))
        svg = review.locator(".review-map svg")
        expect(svg).to_be_visible()
        expect(svg.locator("g.node")).to_have_count(len(FLOW.nodes))
        # the map's box of the first step shows its Korean title (the SVG drew the glyphs)
        box = svg.locator("g.node", has=page.locator("title", has_text=re.compile(
            f"^{re.escape(FLOW.start)}$")))
        expect(box).to_contain_text(FLOW[FLOW.start].title("ko").split()[0])
        size = svg.evaluate("(s) => { const b = s.getBBox(); return [b.width, b.height]; }")
        assert size[0] > 100 and size[1] > 100, size
        expect_ran_cleanly(page)
        screenshot(page, "lab-content.png")
        assert guard.clean, guard.report()
    finally:
        page_factory.close_page(page)


def test_running_in_lab_left_the_project_tree_as_it_was(lab: LabServer, before: Snapshot,
                                                        page_factory: PageFactory) -> None:
    """Nothing saved, no checkpoint or cache folder in the project; no page problem at all."""
    after = Snapshot.take()
    changed = [p.name for p, content in before.notebooks.items() if p.read_bytes() != content]
    assert not changed, f"Lab changed (saved) {changed}"
    assert after.notebooks.keys() == before.notebooks.keys()
    assert after.git_status == before.git_status, (
        f"git status of notebooks/ changed:\nbefore:\n{before.git_status}\nafter:\n"
        f"{after.git_status}")
    assert after.stray == before.stray, f"created in the project: {after.stray - before.stray}"
    assert not page_factory.problems(), "\n".join(g.report() for g in page_factory.problems())
    assert "Traceback" not in lab.log(), _tail(lab.log())
