"""The maintainers' summary dashboard as Voilà serves it (``./manage summary``), in Chromium.

The module's server runs ``notebooks/summary.ipynb`` with the project's ``voila.json`` over a
temporary SQLite log filled with demo events. The page must show the summary of that log (its
numbers computed here from the same store), four charts that really are images, every table
as a tab, working CSV downloads, the language filter, and fresh numbers after Refresh once new
visits are logged.
"""

from __future__ import annotations

import re

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from browser import PageFactory, artifact_path, full_page_screenshot
from playwright.sync_api import Page, expect
from voila_server import VoilaServer

from widgets import demo
from widgets.flow import default_flow
from widgets.log import SQLiteStore
from widgets.summary import Summary, summarize

DEMO_EVENTS = 3000


@pytest.fixture(scope="module")
def log_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dashboard-data") / "events.sqlite3"
    with SQLiteStore(path) as store:
        assert demo.fill(store, DEMO_EVENTS, seed=11) == DEMO_EVENTS
    return path


@pytest.fixture(scope="module")
def dashboard_server(voila_servers, log_path: Path) -> Iterator[VoilaServer]:
    with voila_servers.dashboard(f"sqlite://{log_path}", preheated=True,
                                 env={"GUIDE_DATA_DIR": str(log_path.parent)}) as server:
        yield server


@pytest.fixture(scope="module", autouse=True)
def patient_expect() -> Iterator[None]:
    """Assertions wait up to 30 s: each refresh reads the log and draws four charts."""
    expect.set_options(timeout=30_000)
    yield
    expect.set_options(timeout=5_000)


def expected(log_path: Path, lang: str | None = None) -> Summary:
    with SQLiteStore(log_path) as store:
        return summarize(store, lang=lang)


def sessions_card(page: Page):
    return page.locator(".guide-dash .dash-kpi", has_text="sessions · 세션").locator("b")


def open_dashboard(page_factory: PageFactory, server: VoilaServer, name: str) -> tuple[Page, object]:
    page, guard = page_factory.new_page(name)
    page.goto(server.url, wait_until="commit")
    expect(sessions_card(page)).to_be_visible(timeout=120_000)
    return page, guard


def test_dashboard_shows_the_logs_summary(page_factory: PageFactory,
                                          dashboard_server: VoilaServer, log_path: Path) -> None:
    summary = expected(log_path)
    # the demo log has outcomes given after contact (return visits), by the earlier path
    assert summary.sessions > 10 and len(summary.followup_paths) > 0
    page, guard = open_dashboard(page_factory, dashboard_server, "dashboard")
    try:
        expect(sessions_card(page)).to_have_text(f"{summary.sessions:,}")
        # four charts, each a decoded PNG of real size
        charts = page.locator(".guide-dash img")
        expect(charts).to_have_count(4)
        sizes = charts.evaluate_all("(imgs) => imgs.map((i) => [i.naturalWidth, i.naturalHeight])")
        assert all(w > 200 and h > 100 for w, h in sizes), sizes
        # every table of the summary is a tab; the outcome-by-path tab shows its rows
        titles = page.locator(".guide-dash .lm-TabBar-tab").all_inner_texts()
        assert sorted(t.strip() for t in titles) == sorted(summary.frames())
        page.locator(".guide-dash .lm-TabBar-tab").filter(
            has_text=re.compile(r"^\s*followup_paths\s*$")).click()
        # headed by the path steps' titles (the dashboard shows the flow's words; English by default)
        problem_title = default_flow().nodes["problem"].title("en")
        table = page.locator(".guide-dash table", has_text=problem_title).filter(visible=True)
        expect(table.locator("tbody tr")).to_have_count(len(summary.followup_paths))
        # the CSV download of that table holds the same numbers
        with page.expect_download() as info:
            page.get_by_role("link", name="followup_paths.csv", exact=True).click()
        downloaded = pd.read_csv(info.value.path(), keep_default_na=False)
        expected_rows = summary.followup_paths
        assert list(downloaded.columns) == list(expected_rows.columns)
        assert downloaded["sessions"].tolist() == expected_rows["sessions"].tolist()
        assert downloaded["problem"].tolist() == expected_rows["problem"].astype(str).tolist()
        full_page_screenshot(page, artifact_path("dashboard.png"))
        assert guard.clean, guard.report()
    finally:
        page_factory.close_page(page)


def test_dashboard_filters_by_language_and_refreshes(page_factory: PageFactory,
                                                     dashboard_server: VoilaServer,
                                                     log_path: Path) -> None:
    english = expected(log_path, lang="en")
    page, guard = open_dashboard(page_factory, dashboard_server, "dashboard filters")
    try:
        before = expected(log_path)
        expect(sessions_card(page)).to_have_text(f"{before.sessions:,}")
        page.get_by_label("Language", exact=True).select_option(label="English (en)")
        expect(sessions_card(page)).to_have_text(f"{english.sessions:,}")
        assert 0 < english.sessions < before.sessions
        page.get_by_label("Language", exact=True).select_option(label="All languages · 모든 언어")
        # the labels' language changes the words, not the numbers
        page.get_by_label("Labels · 표시 언어").select_option(label="한국어")
        first_title = default_flow().nodes[default_flow().start].title("ko")
        expect(page.locator(".guide-dash table", has_text=first_title).first).to_be_attached()
        expect(sessions_card(page)).to_have_text(f"{before.sessions:,}")
        expect(sessions_card(page)).to_have_text(f"{before.sessions:,}")

        # new visits logged while the page is open appear after Refresh
        with SQLiteStore(log_path) as store:
            events = list(demo.generate(400, seed=12))
            store.write(events)
        after = expected(log_path)
        assert after.sessions > before.sessions
        page.get_by_role("button", name="Refresh · 새로 고침").click()
        expect(sessions_card(page)).to_have_text(f"{after.sessions:,}")
        assert guard.clean, guard.report()
    finally:
        page_factory.close_page(page)

