"""The dashboard's downloads: each table of the summary as a CSV file for spreadsheets (UTF-8
with a byte order mark; a text cell a spreadsheet would run as a formula gets a leading ``'``,
numbers stay numbers), in a ``data:`` link (works under Voilà)."""

from __future__ import annotations

import base64
import html
import logging

import pandas as pd

from ..casenotes import BOM, csv_cell
from ..summary import Summary

logger = logging.getLogger("widgets.dashboard")


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every text cell through :func:`widgets.casenotes.csv_cell` (a leading
    ``'`` before a value a spreadsheet would run as a formula); numbers, dates and missing
    values are left as they are, so a negative number stays a number."""
    safe = frame.copy()
    for column in safe.columns:
        if pd.api.types.is_object_dtype(safe[column]) or pd.api.types.is_string_dtype(safe[column]):
            safe[column] = safe[column].map(lambda v: csv_cell(v) if isinstance(v, str) else v)
    return safe


def csv_file(frame: pd.DataFrame) -> bytes:
    """A table as a CSV file for spreadsheets: UTF-8 with a byte order mark (Excel then shows
    Korean), text cells made safe by :func:`spreadsheet_safe`."""
    return (BOM + spreadsheet_safe(frame).to_csv(index=False)).encode("utf-8")


def csv_link(name: str, frame: pd.DataFrame, suffix: str) -> str:
    """The download link of one table: its CSV file in a ``data:`` URI (works under Voilà)."""
    data = base64.b64encode(csv_file(frame)).decode("ascii")
    filename = html.escape(f"guide-{name}{suffix}.csv")
    return (f'<a download="{filename}" href="data:text/csv;charset=utf-8;base64,{data}">'
            f"{html.escape(name)}.csv</a>")


def csv_links(summary: Summary) -> str:
    """A download link per table; a table whose file cannot be made is named as missing."""
    parts = []
    period = "-".join(d.strftime("%Y%m%d") for d in (summary.start, summary.end) if d is not None)
    suffix = "".join(f"-{x}" for x in (period, summary.lang) if x)
    for name, frame in summary.frames().items():
        try:
            parts.append(csv_link(name, frame, suffix))
        except Exception:  # noqa: BLE001 - the other downloads still work
            logger.exception("summary dashboard: the CSV file of %s failed", name)
            parts.append(f"<span class='dash-failed'>{html.escape(name)}.csv: –</span>")
    return "<div class='dash-downloads'><b>CSV:</b> " + " ".join(parts) + "</div>"


