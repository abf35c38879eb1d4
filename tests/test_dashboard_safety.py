"""The maintainers' dashboard against what a hostile or careless log row or network can hold.

* The dashboard's CSV downloads open safely in a spreadsheet: a value that would run as a
  formula is written with a leading ``'`` (text cells only: numbers stay numbers), and every
  file starts with a UTF-8 byte order mark.
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
import re
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import matplotlib as mpl
import pandas as pd
import pytest
import lanes
from voila_server import PROJECT_ROOT, VoilaServer, free_port, stop_server

from widgets import dashboard, demo
from widgets.log import SQLiteStore
from widgets.summary import summarize

def csv_rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))


# --------------------------------------------------------------------------- formulas in CSV downloads


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


# --------------------------------------------------------------------------- odd log rows


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
    conn.close()
    with SQLiteStore(path) as store:
        store.refresh()  # the derived tables take in rows of other writers (the next write would)
    if delete_session:
        with sqlite3.connect(path) as conn:
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
    entered, = conn.execute("SELECT group_concat(node, '|') FROM session_steps "
                            "WHERE session = 'gone-session' AND entered = 1").fetchone()
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

    monkeypatch.setattr(dashboard.widget, "kpis", boom)
    monkeypatch.setattr(dashboard.widget, "csv_links", boom)
    board = dashboard.Dashboard(demo_url)
    board.refresh()
    assert "cannot be shown" in board.kpis.value and "cannot be shown" in board.downloads.value
    assert all(bytes(image.value).startswith(b"\x89PNG") for image in board.charts)


# --------------------------------------------------------------------------- ./manage summary


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
