"""Case notes: the person's own record of each contact (when, channel, agent, reference number,
what was promised), so they never have to repeat themselves.

Pure Python. Notes live only in the visitor's session and in the files they download; they are
never logged. A downloaded file (Markdown or CSV) loads back to the same rows.

CSV files are made to be opened in a spreadsheet: they start with a UTF-8 byte order mark (so
Excel shows Korean), and a value that a spreadsheet would run as a formula (one starting with
``=``, ``+``, ``-``, ``@``, a tab or a carriage return) is written with a leading ``'``, which
:func:`parse` removes again (see :func:`csv_cell` and :func:`read_csv_cell`).

A file that cannot be loaded raises :class:`CaseNotesError`, whose reason is given in each
language of the guide (:meth:`CaseNotesError.explain`).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import astuple, dataclass, fields

from .flow import LANGUAGES, Text

MAX_ROWS = 200
MAX_FIELD = 200
#: The largest case-notes file loaded, in bytes: far above any real one (a few KB), and far
#: below what the server accepts in one websocket message. The page refuses a larger file
#: before sending it (see GuideView._render_notes_panel and the guide template's guide.js).
MAX_BYTES = 256 * 1024

TITLE = Text(ko="아마존 문의 기록", en="Amazon case notes")

#: The byte order mark at the start of a CSV file: spreadsheets then read it as UTF-8.
BOM = "\ufeff"
#: First characters that make a spreadsheet read a cell as a formula (OWASP's list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

#: Why a file cannot be loaded, in each language; ``{...}`` are filled in by CaseNotesError.
REASONS = {
    "too_large": Text(ko="파일이 너무 커요 (문의 기록 파일은 {limit} KB까지)",
                      en="the file is too large (case notes files are at most {limit} KB)"),
    "not_text": Text(ko="UTF-8 텍스트 파일이 아니에요", en="the file is not UTF-8 text"),
    "unreadable": Text(ko="문의 기록 파일로 읽을 수 없어요",
                       en="it cannot be read as a case notes file"),
    "bad_csv": Text(ko="{line}번째 줄을 CSV로 읽을 수 없어요 (따옴표나 줄바꿈이 잘못되었을 수 있어요)",
                    en="line {line} cannot be read as CSV (a quote mark or a line break may be "
                       "out of place)"),
    "too_long": Text(ko="{line}번째 줄의 값이 너무 길어요",
                     en="line {line}: a value is too long"),
    "columns": Text(ko="첫 줄에 다음 열이 있어야 해요: {columns}",
                    en="line 1: expected the columns {columns}"),
    "values": Text(ko="{line}번째 줄: 값이 {expected}개여야 하는데 {got}개예요",
                   en="line {line}: expected {expected} values, got {got}"),
    "no_table": Text(ko="{count}개 열({columns})로 된 표가 없어요",
                     en="no table with {count} columns ({columns})"),
    "not_row": Text(ko="{line}번째 줄이 표의 행이 아니에요", en="line {line}: not a table row"),
    "cells": Text(ko="{line}번째 줄: 칸이 {expected}개여야 하는데 {got}개예요",
                  en="line {line}: expected {expected} cells, got {got}"),
    "too_many": Text(ko="기록이 {limit}개를 넘어요", en="more than {limit} notes"),
    "unknown_field": Text(ko="알 수 없는 항목 {field}", en="unknown field {field}"),
    "empty_note": Text(ko="빈 기록", en="an empty note"),
}


class CaseNotesError(ValueError):
    """A file (or form) that cannot be read as case notes. ``reason`` (one of :data:`REASONS`)
    says why in each language, with ``values`` filled in (e.g. which line); ``str()`` of the
    error is the English reason, for the server's log."""

    def __init__(self, reason: Text | str, **values: object) -> None:
        self.reason = reason if isinstance(reason, Text) else Text(ko=reason, en=reason)
        self.values = values
        super().__init__(self.explain("en"))

    def explain(self, lang: str) -> str:
        """The reason in ``lang``, as a visitor reads it."""
        return self.reason(lang).format(**self.values)


def too_large() -> CaseNotesError:
    """The error of a file over :data:`MAX_BYTES`."""
    return CaseNotesError(REASONS["too_large"], limit=MAX_BYTES // 1024)


def check_size(size: int) -> None:
    """Refuse a file of ``size`` bytes over :data:`MAX_BYTES` (before reading it)."""
    if size > MAX_BYTES:
        raise too_large()


@dataclass(frozen=True)
class Note:
    when: str = ""
    channel: str = ""
    agent: str = ""
    reference: str = ""
    promised: str = ""


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Note))
#: The column of the way of contact (its values are ids from :data:`CHANNELS`).
CHANNEL = "channel"

HEADERS = {
    "when": Text(ko="날짜·시간", en="Date/time"),
    CHANNEL: Text(ko="연락 방법", en="Channel"),
    "agent": Text(ko="상담원 이름", en="Agent"),
    "reference": Text(ko="접수 번호", en="Reference number"),
    "promised": Text(ko="약속받은 내용", en="What was promised"),
}
_SPACE = re.compile(r"\s+")


def clean(value: object) -> str:
    """One trimmed line of at most MAX_FIELD characters."""
    text = _SPACE.sub(" ", str(value or "")).strip()
    return text[:MAX_FIELD]


def make_note(**values: object) -> Note:
    """A note from form values; every field is cleaned. Refuses an entirely empty note."""
    unknown = set(values) - set(COLUMNS)
    if unknown:
        raise CaseNotesError(REASONS["unknown_field"], field=repr(sorted(unknown)[0]))
    note = Note(**{key: clean(value) for key, value in values.items()})
    if not any(astuple(note)):
        raise CaseNotesError(REASONS["empty_note"])
    return note


def csv_cell(value: str) -> str:
    """A text cell as a CSV file holds it: a value a spreadsheet would run as a formula
    (starting with one of :data:`FORMULA_STARTS`) gets a leading ``'``, and so does a value
    already starting with ``'``, so that :func:`read_csv_cell` gives back exactly ``value``."""
    return "'" + value if value.startswith((*FORMULA_STARTS, "'")) else value


def read_csv_cell(cell: str) -> str:
    """The value of a CSV cell written by :func:`csv_cell`: the one ``'`` it added is removed
    (only from a cell starting with ``'`` and then a formula character or another ``'``)."""
    if cell.startswith("'") and cell[1:].startswith((*FORMULA_STARTS, "'")):
        return cell[1:]
    return cell


def to_csv(notes: list[Note]) -> str:
    """The notes as a CSV file for spreadsheets: a byte order mark, the header row of
    :data:`COLUMNS`, then one row per note, each value through :func:`csv_cell`."""
    out = io.StringIO()
    out.write(BOM)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows([csv_cell(value) for value in astuple(n)] for n in notes)
    return out.getvalue()


def _md_cell(value: str) -> str:
    return value.replace("\\", "\\\\").replace("|", "\\|")


def to_markdown(notes: list[Note], lang: str = "en", followup: str | None = None,
                followup_label: str = "") -> str:
    """A Markdown table for people to read: headers and known channels in ``lang``, columns in
    the order of :data:`COLUMNS`. :func:`parse` reads the channel names back to their ids.

    ``followup``: the return link's value (ids only, widgets/followup.py), written after the
    table as ``<followup_label>: ?followup=<value>``; loading the file back in the guide
    (:func:`followup_in`) then asks how it went."""
    lines = [f"# {TITLE(lang)}", "",
             "| " + " | ".join(HEADERS[c](lang) for c in COLUMNS) + " |",
             "|" + "---|" * len(COLUMNS)]
    for note in notes:
        cells = [channel_name(v, lang) if c == CHANNEL else v
                 for c, v in zip(COLUMNS, astuple(note))]
        lines.append("| " + " | ".join(_md_cell(v) for v in cells) + " |")
    if followup:
        label = clean(followup_label)
        lines += ["", (f"{label}: " if label else "") + f"?{FOLLOWUP_PARAM}={followup}"]
    return "\n".join(lines) + "\n"


#: The return link's parameter, as a case-notes file carries it (widgets/followup.py's PARAM).
FOLLOWUP_PARAM = "followup"
_FOLLOWUP_LINE = re.compile(r"[?&]" + FOLLOWUP_PARAM + r"=([a-z0-9._:,-]{1,600})\s*$", re.M)


def followup_in(data: bytes | str) -> str | None:
    """The return link's value a case-notes file carries (after its table), unvalidated (the
    guide checks it against the flow); None when it carries none."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        data = bytes(data).decode("utf-8", "replace")
    match = _FOLLOWUP_LINE.search(data[:MAX_BYTES])
    return match.group(1) if match else None


def cell(note: Note, column: str, lang: str) -> str:
    """A note's cell as people read it: a known channel by its name in ``lang`` (the files keep
    the id, so they load the same in either language)."""
    value = getattr(note, column)
    return channel_name(value, lang) if column == CHANNEL else value


def channel_name(channel: str, lang: str) -> str:
    """A channel id's name in ``lang`` (an unknown value as it is)."""
    return CHANNELS[channel](lang) if channel in CHANNELS else channel


def _channel_id(cell: str) -> str:
    """A channel cell of a Markdown file (a name in either language, or an id) → its id."""
    for key, name in CHANNELS.items():
        if cell.casefold() in {name("ko").casefold(), name("en").casefold()}:
            return key
    return cell


def _split_md_row(line: str) -> list[str]:
    body = line.strip()
    if not (body.startswith("|") and body.endswith("|")):
        raise ValueError
    cells, cell, i = [], [], 1
    while i < len(body) - 1:
        ch = body[i]
        if ch == "\\" and i + 1 < len(body) - 1:
            cell.append(body[i + 1])
            i += 2
            continue
        if ch == "|":
            cells.append("".join(cell).strip())
            cell = []
        else:
            cell.append(ch)
        i += 1
    cells.append("".join(cell).strip())
    return cells


def parse(data: bytes | str) -> list[Note]:
    """Read notes back from a file made by :func:`to_csv` or :func:`to_markdown` (with or
    without a byte order mark). Anything that is not such a file raises CaseNotesError with a
    reason a visitor can read, never another error."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        check_size(memoryview(data).nbytes)
        try:
            text = bytes(data).decode("utf-8-sig")
        except UnicodeDecodeError:
            raise CaseNotesError(REASONS["not_text"]) from None
    else:
        check_size(len(data.encode("utf-8", "surrogatepass")))
        text = data.removeprefix(BOM)
    try:
        lines = text.splitlines()
        first = next((line for line in lines if line.strip()), "")
        notes = _parse_markdown(lines) if first.lstrip().startswith(("#", "|")) else _parse_csv(text)
    except CaseNotesError:
        raise
    except (ValueError, UnicodeError, TypeError):
        raise CaseNotesError(REASONS["unreadable"]) from None
    if len(notes) > MAX_ROWS:
        raise CaseNotesError(REASONS["too_many"], limit=MAX_ROWS)
    return notes


def _parse_csv(text: str) -> list[Note]:
    reader = csv.reader(io.StringIO(text))
    try:
        rows = list(reader)
    except csv.Error as exc:
        # Python's csv module: "field larger than field limit (131072)", "new-line character
        # seen in unquoted field", "line contains NUL"...
        line = max(reader.line_num, 1)
        if "field limit" in str(exc):
            raise CaseNotesError(REASONS["too_long"], line=line) from None
        if "NUL" in str(exc):
            raise CaseNotesError(REASONS["not_text"]) from None
        raise CaseNotesError(REASONS["bad_csv"], line=line) from None
    if not rows or tuple(c.strip() for c in rows[0]) != COLUMNS:
        raise CaseNotesError(REASONS["columns"], columns=", ".join(COLUMNS))
    notes = []
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(COLUMNS):
            raise CaseNotesError(REASONS["values"], line=number, expected=len(COLUMNS),
                                 got=len(row))
        notes.append(Note(*(clean(read_csv_cell(cell)) for cell in row)))
    return notes


def _is_separator(cells: list[str]) -> bool:
    return all(cell and set(cell) <= set("-: ") for cell in cells)


def _parse_markdown(lines: list[str]) -> list[Note]:
    """The first table whose header has one cell per column, in :data:`COLUMNS` order."""
    start = None
    for number in range(len(lines) - 1):
        try:
            header, separator = _split_md_row(lines[number]), _split_md_row(lines[number + 1])
        except ValueError:
            continue
        if len(header) == len(COLUMNS) and _is_separator(separator):
            start = number + 2
            break
    if start is None:
        raise CaseNotesError(REASONS["no_table"], count=len(COLUMNS), columns=", ".join(COLUMNS))
    notes = []
    for number, line in enumerate(lines[start:], start=start + 1):
        if not line.strip():
            break  # the table ends at the first blank line
        try:
            cells = _split_md_row(line)
        except ValueError:
            raise CaseNotesError(REASONS["not_row"], line=number) from None
        if len(cells) != len(COLUMNS):
            raise CaseNotesError(REASONS["cells"], line=number, expected=len(COLUMNS),
                                 got=len(cells))
        values = dict(zip(COLUMNS, (clean(cell) for cell in cells)))
        values[CHANNEL] = _channel_id(values[CHANNEL])
        notes.append(Note(**values))
    return notes

CHANNELS = {
    "chat": Text(ko="채팅", en="Chat"),
    "phone": Text(ko="전화", en="Phone"),
    "email": Text(ko="이메일", en="E-mail"),
}

#: Labels of the case-notes form.
LABELS = {
    "toggle": Text(ko="문의 기록 열기", en="Open case notes"),
    "toggle_close": Text(ko="문의 기록 닫기", en="Close case notes"),
    "intro": Text(ko="연락할 때마다 상담원 이름과 접수 번호를 적어 두세요. 다시 연락해야 할 때 시간을 "
                     "크게 아낄 수 있어요. 기록은 이 화면과 내려받은 파일에만 남아요.",
                  en="Each time you get in touch, note the agent’s name and the reference number. "
                     "If you have to contact Amazon again, it saves a lot of time. Your notes are "
                     "kept only on this screen and in any files you download."),
    "when_hint": Text(ko="예: 11월 26일 오후 3시", en="e.g. Nov 26, 3 pm"),
    "add": Text(ko="기록 추가", en="Add note"),
    "empty": Text(ko="아직 기록이 없어요.", en="No notes yet."),
    "download_md": Text(ko="Markdown으로 저장", en="Download as Markdown"),
    "download_csv": Text(ko="CSV로 저장", en="Download as CSV"),
    "load": Text(ko="저장한 기록 불러오기", en="Load saved notes"),
    "loaded": Text(ko="기록 {count}개를 불러왔어요.", en="Notes loaded: {count}."),
    "error": Text(ko="이 파일은 불러올 수 없어요: {reason}", en="This file can’t be loaded: {reason}"),
    "need_something": Text(ko="적어도 한 칸은 채워 주세요.", en="Please fill in at least one field."),
    "full": Text(ko=f"기록은 {MAX_ROWS}개까지 적을 수 있어요.",
                 en=f"You can keep up to {MAX_ROWS} notes."),
}


def error_message(error: CaseNotesError) -> Text:
    """The line the guide shows for a file it cannot load: LABELS["error"] with the error's
    reason, in each language (so it follows a language switch)."""
    return Text(**{lang: LABELS["error"](lang).format(reason=error.explain(lang))
                   for lang in LANGUAGES})


def loaded_message(count: int) -> Text:
    """The line the guide shows after loading ``count`` notes, in each language."""
    return Text(**{lang: LABELS["loaded"](lang).format(count=count) for lang in LANGUAGES})
