"""Case notes: the person's own record of each contact (when, channel, agent, reference number,
what was promised), so they never have to repeat themselves.

Pure Python. Notes live only in the visitor's session and in the files they download; they are
never logged. A downloaded file (Markdown or CSV) loads back to the same rows.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import astuple, dataclass, fields

from .flow import Text

MAX_ROWS = 200
MAX_FIELD = 200
MAX_FILE_BYTES = 256 * 1024

TITLE = Text(ko="아마존 문의 기록", en="Amazon contact notes")


class CaseNotesError(ValueError):
    """A file that cannot be read as case notes; the message says why (and which line)."""


@dataclass(frozen=True)
class Note:
    when: str = ""
    channel: str = ""
    agent: str = ""
    reference: str = ""
    promised: str = ""


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Note))
HEADERS = {
    "when": Text(ko="날짜·시간", en="Date/time"),
    "channel": Text(ko="연락 방법", en="Channel"),
    "agent": Text(ko="상담원 이름", en="Agent"),
    "reference": Text(ko="참조(추적) 번호", en="Reference number"),
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
        raise CaseNotesError(f"unknown field {sorted(unknown)[0]!r}")
    note = Note(**{key: clean(value) for key, value in values.items()})
    if not any(astuple(note)):
        raise CaseNotesError("an empty note")
    return note


def to_csv(notes: list[Note]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(astuple(n) for n in notes)
    return out.getvalue()


def _md_cell(value: str) -> str:
    return value.replace("\\", "\\\\").replace("|", "\\|")


def to_markdown(notes: list[Note], lang: str = "en") -> str:
    """A Markdown table for people to read: headers and known channels in ``lang``, columns in
    the order of :data:`COLUMNS`. :func:`parse` reads the channel names back to their ids."""
    lines = [f"# {TITLE(lang)}", "",
             "| " + " | ".join(HEADERS[c](lang) for c in COLUMNS) + " |",
             "|" + "---|" * len(COLUMNS)]
    for note in notes:
        cells = [channel_name(v, lang) if c == "channel" else v
                 for c, v in zip(COLUMNS, astuple(note))]
        lines.append("| " + " | ".join(_md_cell(v) for v in cells) + " |")
    return "\n".join(lines) + "\n"


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
    """Read notes back from a file made by :func:`to_csv` or :func:`to_markdown`."""
    if isinstance(data, bytes):
        if len(data) > MAX_FILE_BYTES:
            raise CaseNotesError(f"the file is larger than {MAX_FILE_BYTES // 1024} KB")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise CaseNotesError("the file is not UTF-8 text") from None
    else:
        text = data
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), "")
    notes = _parse_markdown(lines) if first.lstrip().startswith(("#", "|")) else _parse_csv(text)
    if len(notes) > MAX_ROWS:
        raise CaseNotesError(f"more than {MAX_ROWS} notes")
    return notes


def _parse_csv(text: str) -> list[Note]:
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or tuple(c.strip() for c in rows[0]) != COLUMNS:
        raise CaseNotesError(f"line 1: expected the columns {', '.join(COLUMNS)}")
    notes = []
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(COLUMNS):
            raise CaseNotesError(f"line {number}: expected {len(COLUMNS)} values, got {len(row)}")
        notes.append(Note(*(clean(cell) for cell in row)))
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
        raise CaseNotesError(f"no table with {len(COLUMNS)} columns "
                             f"({', '.join(COLUMNS)})")
    notes = []
    for number, line in enumerate(lines[start:], start=start + 1):
        if not line.strip():
            break  # the table ends at the first blank line
        try:
            cells = _split_md_row(line)
        except ValueError:
            raise CaseNotesError(f"line {number}: not a table row") from None
        if len(cells) != len(COLUMNS):
            raise CaseNotesError(f"line {number}: expected {len(COLUMNS)} cells, got {len(cells)}")
        values = dict(zip(COLUMNS, (clean(cell) for cell in cells)))
        values["channel"] = _channel_id(values["channel"])
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
    "intro": Text(ko="연락할 때마다 상담원 이름과 참조 번호를 적어 두세요. 다시 연락할 때 같은 설명을 "
                     "되풀이하지 않아도 됩니다. 기록은 이 화면과 내려받은 파일에만 남습니다.",
                  en="Each time you get in touch, note the agent’s name and the reference number, "
                     "so you never have to explain everything again. Notes stay on this screen "
                     "and in the files you download."),
    "when_hint": Text(ko="예: 11월 26일 오후 3시", en="e.g. 26 Nov, 3 pm"),
    "add": Text(ko="기록 추가", en="Add note"),
    "empty": Text(ko="아직 기록이 없습니다.", en="No notes yet."),
    "download_md": Text(ko="Markdown으로 저장", en="Download as Markdown"),
    "download_csv": Text(ko="CSV로 저장", en="Download as CSV"),
    "load": Text(ko="저장한 기록 불러오기", en="Load saved notes"),
    "loaded": Text(ko="기록 {count}개를 불러왔습니다.", en="Loaded {count} notes."),
    "error": Text(ko="이 파일은 불러올 수 없습니다: {reason}", en="This file can’t be loaded: {reason}"),
    "need_something": Text(ko="적어도 한 칸은 채워 주세요.", en="Please fill in at least one field."),
}
