"""End to end, issue 5: the message builder's copy button and case notes kept across visits,
in headless Chromium against the guide served by Voilà (the project's ``voila.json``).

* One message copied: a visitor walks to the ``channel`` step, where the message builder
  appears, types an order number, presses each copy button and the clipboard is read back.
* Case notes: two notes added through the form are downloaded as CSV and as Markdown; a later
  visit (a new browser context: no cookies, storage or kernel shared) loads each file through
  the panel's file upload (its button opens the file chooser) and sees the same rows, in the
  same order.

Every page is a fresh browser context (one visitor, one kernel). The module's Voilà server has
an empty temporary interaction log, which must never receive what the visitors typed.
"""

from __future__ import annotations

import csv
import io
import re
import sqlite3
import unicodedata
from collections.abc import Iterator
from dataclasses import astuple
from pathlib import Path

import pytest
from browser import PageFactory, PageGuard, artifact_path, full_page_screenshot
from playwright.sync_api import Locator, expect
from voila_server import VoilaServer

from widgets import casenotes, messages
from widgets.engine import Engine
from widgets.flow import default_flow


FLOW = default_flow()
HANGUL = re.compile(r"[\uac00-\ud7a3]")

@pytest.fixture(scope="module")
def server(voila_servers) -> Iterator[VoilaServer]:
    """The guide under Voilà, its preheated kernels ready."""
    with voila_servers.guide(preheated=True) as server:
        yield server


@pytest.fixture(scope="module", autouse=True)
def patient_expect() -> Iterator[None]:
    """Assertions wait up to 20 s: a click's answer comes from a kernel on a busy machine."""
    expect.set_options(timeout=20_000)
    yield
    expect.set_options(timeout=5_000)


# --------------------------------------------------------------------------- a visitor


class Visitor:
    """One visitor's page, with an engine replaying their answers to know the expected step."""

    def __init__(self, factory: PageFactory, server: VoilaServer, name: str, lang: str = "ko") -> None:
        self.factory = factory
        self.server = server
        self.page, self.guard = factory.new_page(name)
        self.engine = Engine(FLOW, lang=lang)

    @property
    def lang(self) -> str:
        return self.engine.lang

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def button(self, name: str) -> Locator:
        return self.page.get_by_role("button", name=name, exact=True)

    def open(self) -> "Visitor":
        self.page.goto(self.server.url, wait_until="commit")
        expect(self.page.locator(".guide")).to_be_visible(timeout=120_000)
        self.engine.start()
        self.expect_step()
        return self

    def expect_step(self) -> None:
        expect(self.page.locator(".guide .guide-body h2")).to_have_text(self.engine.node.title(self.lang))

    def choose(self, option_id: str) -> None:
        """Answer the current question with ``option_id``, by its visible label."""
        node = self.engine.node
        label = node.option(option_id).label(self.lang)
        if node.widget == "dropdown":
            self.page.get_by_label(node.prompt(self.lang), exact=True).select_option(label=label)
            go = self.button(self.engine.ui("continue"))
            expect(go).to_be_enabled()
            go.click()
        else:
            self.button(label).click()
        self.engine.choose(option_id)
        self.expect_step()

    def next(self) -> None:
        self.button(self.engine.ui("next")).click()
        self.engine.advance()
        self.expect_step()

    def close(self) -> None:
        self.factory.close_page(self.page)


def logged_rows(server: VoilaServer) -> list[tuple]:
    """Every row of the server's interaction log (events and the sessions rollup)."""
    path = Path(server.env["GUIDE_LOG_URL"].removeprefix("sqlite://"))
    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        return [row for table in ("events", "sessions") if table in tables
                for row in conn.execute(f"SELECT * FROM {table}")]
    finally:
        conn.close()


def assert_not_logged(server: VoilaServer, typed: list[str]) -> None:
    flat = " ".join(str(value) for row in logged_rows(server) for value in row)
    assert flat, "the log holds no events at all"
    for text in typed:
        assert text not in flat, f"{text!r} reached the interaction log"


def assert_clean(guard: PageGuard) -> None:
    assert guard.clean, guard.report()


# --------------------------------------------------------------------------- the message, copied


ORDER_NUMBER = "112-4477889-6655443"


def test_message_copied_to_the_clipboard(page_factory: PageFactory, server: VoilaServer) -> None:
    visitor = Visitor(page_factory, server, "message copy")
    page = visitor.page
    # The Clipboard API needs both permissions on the page's origin (a secure context:
    # 127.0.0.1 counts as one).
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=visitor.origin)
    visitor.open()

    # To the channel step: a refund, getting in touch online, the info steps on the way.
    visitor.choose("refund")
    visitor.next()
    visitor.choose("online")
    while visitor.engine.node.id != "channel":
        assert visitor.engine.node.kind == "info", visitor.engine.node.id
        visitor.next()

    labels = messages.texts().labels
    panel = page.locator(".guide .guide-panel").filter(has_text=labels["title"]("ko"))
    expect(panel).to_be_visible()
    order_field = panel.get_by_label(labels["order_number"]("ko"), exact=True)
    order_field.fill(ORDER_NUMBER)
    order_field.press("Tab")  # the field sends its value when it loses focus

    blocks = panel.locator(".guide-message")
    expect(blocks).to_have_count(2)
    for i in range(2):  # the message is built again with the order number, in each language
        expect(blocks.nth(i).locator("textarea")).to_have_value(re.compile(re.escape(ORDER_NUMBER)))
    full_page_screenshot(page, artifact_path("e2e-extras-message.png"))

    # In headless Chromium, with clipboard-read and clipboard-write granted on the origin,
    # navigator.clipboard.writeText (the copy button's first choice) and readText both work,
    # so what is read back below is what the button put on the system clipboard; the
    # execCommand fallback is not needed.
    assert page.evaluate("window.isSecureContext && !!navigator.clipboard")
    copied: dict[str, str] = {}
    for i in range(blocks.count()):
        block = blocks.nth(i)
        lang = block.get_attribute("lang") or ""
        shown = block.locator("textarea").input_value()
        page.evaluate("navigator.clipboard.writeText('')")  # nothing left from the other copy
        copy = block.locator("button.guide-copy")
        copy.click()
        expect(copy).to_have_text(labels["copied"]("ko"))  # the button confirms the copy
        copied[lang] = page.evaluate("navigator.clipboard.readText()")
        assert copied[lang] == shown, f"the {lang} copy differs from the text shown"

    assert sorted(copied) == ["en", "ko"]
    korean, english = copied["ko"], copied["en"]
    order_line = messages.texts().lines["order_line"]
    assert order_line("ko").format(order_number=ORDER_NUMBER) in korean.splitlines()
    assert order_line("en").format(order_number=ORDER_NUMBER) in english.splitlines()
    assert HANGUL.search(korean) and korean.startswith(messages.texts().lines["greeting"]("ko"))
    opening = visitor.engine.flow[visitor.engine.flow.start].option("refund").opening
    assert opening("ko") in korean and messages.texts().wants["refund"].request("ko") in korean
    assert not HANGUL.search(english) and english.startswith(messages.texts().lines["greeting"]("en"))
    assert opening("en") in english and messages.texts().wants["refund"].request("en") in english

    assert_not_logged(server, [ORDER_NUMBER, "4477889"])
    assert_clean(visitor.guard)
    visitor.close()


# --------------------------------------------------------------------------- case notes, saved and loaded


NOTES: list[dict[str, str]] = [
    {"when": "11월 26일 오후 3시", "channel": "chat", "agent": "김민지",
     "reference": 'R-2024, "급함"', "promised": "환불 3–5일 안에"},
    {"when": "27 Nov, 10 am", "channel": "phone", "agent": "Sam O'Neil",
     "reference": '77,"A"', "promised": 'Replacement "by Friday", free'},
]


def notes_panel(visitor: Visitor) -> Locator:
    """Open the case notes panel and return it."""
    visitor.button(casenotes.labels()["toggle"](visitor.lang)).click()
    panel = visitor.page.locator(".guide .guide-panel").filter(has_text=casenotes.texts().title(visitor.lang))
    expect(panel).to_be_visible()
    expect(upload_button(panel, visitor.lang)).to_be_visible()
    return panel


def upload_button(panel: Locator, lang: str) -> Locator:
    """The panel's FileUpload: a button that opens the file chooser (ipywidgets 8 keeps its
    ``input[type=file]`` out of the document and clicks it from the button)."""
    return panel.locator("button.widget-upload").filter(has_text=casenotes.labels()["load"](lang))


def table_rows(panel: Locator) -> list[list[str]]:
    """The notes table's data rows, cell texts in column order."""
    rows = panel.locator(".guide-notes-table tr").filter(has=panel.page.locator("td"))
    return [rows.nth(i).locator("td").all_inner_texts() for i in range(rows.count())]


def stored_rows() -> list[list[str]]:
    """NOTES as the files hold them, in column order (the channel by its id, as the form's
    dropdown stores it, so a file loads the same whatever the language)."""
    return [[n[c] for c in casenotes.COLUMNS] for n in NOTES]


def shown_rows(lang: str = "ko") -> list[list[str]]:
    """NOTES as the table shows them: the channel by its name in the page's language."""
    return [[casenotes.texts().channels[n[c]](lang) if c == "channel" else n[c]
             for c in casenotes.COLUMNS] for n in NOTES]


def expect_table(panel: Locator) -> None:
    cells = panel.locator(".guide-notes-table tr td")
    expect(cells).to_have_text([cell for row in shown_rows() for cell in row])
    assert table_rows(panel) == shown_rows()


def test_case_notes_downloaded_then_loaded_on_a_later_visit(page_factory: PageFactory, server: VoilaServer,
                                                            tmp_path: Path) -> None:
    first = Visitor(page_factory, server, "case notes, first visit").open()
    panel = notes_panel(first)
    headers = casenotes.texts().headers
    for i, note in enumerate(NOTES, start=1):
        for column in ("when", "agent", "reference", "promised"):
            panel.get_by_label(headers[column]("ko"), exact=True).fill(note[column])
        panel.get_by_label(headers["channel"]("ko"), exact=True).select_option(
            label=casenotes.texts().channels[note["channel"]]("ko"))
        first.button(casenotes.labels()["add"]("ko")).click()
        expect(panel.locator(".guide-notes-table tr td")).to_have_count(i * len(casenotes.COLUMNS))
        expect(panel.get_by_label(headers["agent"]("ko"), exact=True)).to_have_value("")  # form cleared
    expect_table(panel)
    full_page_screenshot(first.page, artifact_path("e2e-extras-notes.png"))

    files: dict[str, Path] = {}
    for kind, label in (("csv", "download_csv"), ("md", "download_md")):
        with first.page.expect_download() as info:
            panel.get_by_role("link", name=casenotes.labels()[label]("ko"), exact=True).click()
        download = info.value
        assert download.suggested_filename == f"amazon-contact-notes.{kind}"
        files[kind] = tmp_path / download.suggested_filename
        download.save_as(files[kind])

    # The files themselves: the CSV read with the csv module, the Markdown table cell by cell
    # (no value above holds a '|' or a backslash, which it would escape); and both read back by
    # the guide's own parser.
    csv_text = files["csv"].read_text(encoding="utf-8-sig")
    assert list(csv.reader(io.StringIO(csv_text))) == [list(casenotes.COLUMNS), *stored_rows()]
    md_lines = files["md"].read_text(encoding="utf-8").splitlines()
    header = "| " + " | ".join(headers[c]("ko") for c in casenotes.COLUMNS) + " |"
    assert md_lines[0] == f"# {casenotes.texts().title('ko')}" and header in md_lines
    body = md_lines[md_lines.index(header) + 2:]
    # the Markdown is for reading: the channel by its name in the page's language
    assert [line[2:-2].split(" | ") for line in body if line] == shown_rows("ko")
    for path in files.values():
        assert [list(astuple(note)) for note in casenotes.parse(path.read_bytes())] == stored_rows()
    assert_clean(first.guard)
    first.close()

    # Later visits, one per file: a new browser context each (nothing shared with the first).
    for kind, path in files.items():
        later = Visitor(page_factory, server, f"case notes, later visit ({kind})").open()
        panel = notes_panel(later)
        expect(panel.locator(".guide-notes-table")).to_have_text(casenotes.labels()["empty"]("ko"))
        with later.page.expect_file_chooser() as chooser:
            upload_button(panel, "ko").click()
        chooser.value.set_files(str(path))
        expect(panel.get_by_role("status")).to_have_text(
            casenotes.labels()["loaded"]("ko").format(count=len(NOTES)))
        expect_table(panel)
        assert_clean(later.guard)
        later.close()

    typed = [value for note in NOTES for key, value in note.items() if key != "channel"]
    assert_not_logged(server, typed + ["김민지", "R-2024"])


def test_typed_values_need_no_normalising() -> None:
    """The notes above are already what casenotes.clean keeps (one line, NFC), so the rows
    compared in the browser test are exactly the typed values."""
    for note in NOTES:
        for value in note.values():
            assert casenotes.clean(value) == value == unicodedata.normalize("NFC", value)
