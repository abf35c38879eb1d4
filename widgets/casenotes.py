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

Every text (the files' title, the column headers, the ways of contact, the form's labels, the
reasons a file cannot be loaded) is in flow.yaml's ``casenotes:``
(:class:`widgets.flow.CaseNotesTexts`): :func:`texts` gives a flow's, :func:`labels` the form's
labels with :data:`MAX_ROWS` filled in. Every function that shows a text takes the ``flow``
whose words it uses (the packaged flow by default), so a visit of another flow file
(``GUIDE_FLOW``) reads its own.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import astuple, dataclass, fields
from types import MappingProxyType
from typing import Mapping

from .flow import LANGUAGES, CaseNotesTexts, Flow, Text, default_flow

MAX_ROWS = 200
MAX_FIELD = 200
#: The largest case-notes file loaded, in bytes: far above any real one (a few KB), and far
#: below what the server accepts in one websocket message. The page refuses a larger file
#: before sending it (see NotesPanel.draw in widgets/view/panels.py and the guide template's guide.js).
MAX_BYTES = 256 * 1024


def texts(flow: Flow | None = None) -> CaseNotesTexts:
    """The case notes' texts of ``flow`` (the guide's flow by default)."""
    return (flow if flow is not None else default_flow()).casenotes


def labels(flow: Flow | None = None) -> Mapping[str, Text]:
    """The case notes form's labels of ``flow``, ``full`` with :data:`MAX_ROWS` filled in."""
    words = texts(flow).labels
    return MappingProxyType({**words, "full": words["full"].format(limit=MAX_ROWS)})


def reason(key: str, flow: Flow | None = None) -> Text:
    """Why a file cannot be loaded (a key of flow.yaml's ``casenotes.reasons``), with its
    ``{fields}`` still to fill in (see :class:`CaseNotesError`)."""
    return texts(flow).reasons[key]


#: The byte order mark at the start of a CSV file: spreadsheets then read it as UTF-8.
BOM = "\ufeff"
#: First characters that make a spreadsheet read a cell as a formula (OWASP's list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

class CaseNotesError(ValueError):
    """A file (or form) that cannot be read as case notes. ``reason`` (one of the flow's
    ``casenotes.reasons``)
    says why in each language, with ``values`` filled in (e.g. which line); ``str()`` of the
    error is the English reason, for the server's log."""

    def __init__(self, reason: Text | str, **values: object) -> None:
        self.reason = reason if isinstance(reason, Text) else Text(ko=reason, en=reason)
        self.values = values
        super().__init__(self.explain("en"))

    def explain(self, lang: str) -> str:
        """The reason in ``lang``, as a visitor reads it."""
        return self.reason(lang).format(**self.values)


def too_large(flow: Flow | None = None) -> CaseNotesError:
    """The error of a file over :data:`MAX_BYTES`."""
    return CaseNotesError(reason("too_large", flow), limit=MAX_BYTES // 1024)


def check_size(size: int, flow: Flow | None = None) -> None:
    """Refuse a file of ``size`` bytes over :data:`MAX_BYTES` (before reading it)."""
    if size > MAX_BYTES:
        raise too_large(flow)


@dataclass(frozen=True)
class Note:
    when: str = ""
    channel: str = ""
    agent: str = ""
    reference: str = ""
    promised: str = ""


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Note))
#: The column of the way of contact (its values are ids of the flow's ``casenotes.channels``).
CHANNEL = "channel"

_SPACE = re.compile(r"\s+")


def clean(value: object) -> str:
    """One trimmed line of at most MAX_FIELD characters."""
    text = _SPACE.sub(" ", str(value or "")).strip()
    return text[:MAX_FIELD]


def make_note(flow: Flow | None = None, /, **values: object) -> Note:
    """A note from form values; every field is cleaned. Refuses an entirely empty note (the
    reasons in ``flow``'s words)."""
    unknown = set(values) - set(COLUMNS)
    if unknown:
        raise CaseNotesError(reason("unknown_field", flow), field=repr(sorted(unknown)[0]))
    note = Note(**{key: clean(value) for key, value in values.items()})
    if not any(astuple(note)):
        raise CaseNotesError(reason("empty_note", flow))
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
                followup_label: str = "", flow: Flow | None = None) -> str:
    """A Markdown table for people to read: headers and known channels in ``lang``, columns in
    the order of :data:`COLUMNS`. :func:`parse` reads the channel names back to their ids.

    ``followup``: the return link's value (ids only, widgets/followup.py), written after the
    table as ``<followup_label>: ?followup=<value>``; loading the file back in the guide
    (:func:`followup_in`) then asks how it went."""
    words = texts(flow)
    lines = [f"# {words.title(lang)}", "",
             "| " + " | ".join(words.headers[c](lang) for c in COLUMNS) + " |",
             "|" + "---|" * len(COLUMNS)]
    for note in notes:
        cells = [channel_name(v, lang, flow) if c == CHANNEL else v
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


def cell(note: Note, column: str, lang: str, flow: Flow | None = None) -> str:
    """A note's cell as people read it: a known channel by its name in ``lang`` (the files keep
    the id, so they load the same in either language)."""
    value = getattr(note, column)
    return channel_name(value, lang, flow) if column == CHANNEL else value


def channel_name(channel: str, lang: str, flow: Flow | None = None) -> str:
    """A channel id's name in ``lang`` (an unknown value as it is)."""
    channels = texts(flow).channels
    return channels[channel](lang) if channel in channels else channel


def _channel_id(cell: str, flow: Flow | None = None) -> str:
    """A channel cell of a Markdown file (a name in either language, or an id) → its id."""
    for key, name in texts(flow).channels.items():
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


def parse(data: bytes | str, flow: Flow | None = None) -> list[Note]:
    """Read notes back from a file made by :func:`to_csv` or :func:`to_markdown` (with or
    without a byte order mark). Anything that is not such a file raises CaseNotesError with a
    reason a visitor can read (in ``flow``'s words), never another error."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        check_size(memoryview(data).nbytes, flow)
        try:
            text = bytes(data).decode("utf-8-sig")
        except UnicodeDecodeError:
            raise CaseNotesError(reason("not_text", flow)) from None
    else:
        check_size(len(data.encode("utf-8", "surrogatepass")), flow)
        text = data.removeprefix(BOM)
    try:
        lines = text.splitlines()
        first = next((line for line in lines if line.strip()), "")
        notes = (_parse_markdown(lines, flow) if first.lstrip().startswith(("#", "|"))
                 else _parse_csv(text, flow))
    except CaseNotesError:
        raise
    except (ValueError, UnicodeError, TypeError):
        raise CaseNotesError(reason("unreadable", flow)) from None
    if len(notes) > MAX_ROWS:
        raise CaseNotesError(reason("too_many", flow), limit=MAX_ROWS)
    return notes


def _parse_csv(text: str, flow: Flow | None) -> list[Note]:
    reader = csv.reader(io.StringIO(text))
    try:
        rows = list(reader)
    except csv.Error as exc:
        # Python's csv module: "field larger than field limit (131072)", "new-line character
        # seen in unquoted field", "line contains NUL"...
        line = max(reader.line_num, 1)
        if "field limit" in str(exc):
            raise CaseNotesError(reason("too_long", flow), line=line) from None
        if "NUL" in str(exc):
            raise CaseNotesError(reason("not_text", flow)) from None
        raise CaseNotesError(reason("bad_csv", flow), line=line) from None
    if not rows or tuple(c.strip() for c in rows[0]) != COLUMNS:
        raise CaseNotesError(reason("columns", flow), columns=", ".join(COLUMNS))
    notes = []
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(COLUMNS):
            raise CaseNotesError(reason("values", flow), line=number, expected=len(COLUMNS),
                                 got=len(row))
        notes.append(Note(*(clean(read_csv_cell(cell)) for cell in row)))
    return notes


def _is_separator(cells: list[str]) -> bool:
    return all(cell and set(cell) <= set("-: ") for cell in cells)


def _parse_markdown(lines: list[str], flow: Flow | None) -> list[Note]:
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
        raise CaseNotesError(reason("no_table", flow), count=len(COLUMNS), columns=", ".join(COLUMNS))
    notes = []
    for number, line in enumerate(lines[start:], start=start + 1):
        if not line.strip():
            break  # the table ends at the first blank line
        try:
            cells = _split_md_row(line)
        except ValueError:
            raise CaseNotesError(reason("not_row", flow), line=number) from None
        if len(cells) != len(COLUMNS):
            raise CaseNotesError(reason("cells", flow), line=number, expected=len(COLUMNS),
                                 got=len(cells))
        values = dict(zip(COLUMNS, (clean(cell) for cell in cells)))
        values[CHANNEL] = _channel_id(values[CHANNEL], flow)
        notes.append(Note(**values))
    return notes


def error_message(error: CaseNotesError, flow: Flow | None = None) -> Text:
    """The line the guide shows for a file it cannot load: the label ``error`` with the error's
    reason, in each language (so it follows a language switch)."""
    label = texts(flow).labels["error"]
    return Text(**{lang: label(lang).format(reason=error.explain(lang))
                   for lang in LANGUAGES})


def loaded_message(count: int, flow: Flow | None = None) -> Text:
    """The line the guide shows after loading ``count`` notes, in each language."""
    return texts(flow).labels["loaded"].format(count=count)
