"""The dashboard widget: the filters (a date range and the visitors' start language), the
"Labels" language, and the parts (numbers, charts, flow map, tables, downloads), each drawn on
its own; and :func:`dashboard`, which the notebook ``notebooks/summary.ipynb`` calls. It reads
the store the guide writes to, opening an SQLite file read-only and never creating one.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import os

import ipywidgets as w
import pandas as pd

from ..flow import Flow, default_flow
from ..log import EventStore, SQLiteStore, StoreOutdated, StoreUnavailable, log_url, open_store, parse_url
from ..summary import Summary, summarize, transitions
from .charts import CHARTS
from .export import csv_links
from .flow_map import MAP_HEAD, flow_map_part
from .style import CSS, attempt, failed
from .tables import kpis, styled_tables
from .words import labelled

logger = logging.getLogger("widgets.dashboard")

LANGUAGE_CHOICES = (("All languages · 모든 언어", ""), ("한국어 (ko)", "ko"), ("English (en)", "en"))
#: The languages the dashboard can show the flow's titles and labels in.
LABEL_CHOICES = (("English", "en"), ("한국어", "ko"))


class NoLog(Exception):
    """There is no log to read yet (e.g. the SQLite file does not exist)."""


def open_for_reading(url: str | None = None) -> EventStore:
    """Open the configured store for reading: SQLite files read-only and never created.

    Raises NoLog when the SQLite file does not exist, StoreUnavailable when the store cannot be
    opened.
    """
    try:
        parsed = parse_url(url or log_url())
    except ValueError as exc:
        raise StoreUnavailable(str(exc)) from None
    if parsed.dialect == "postgresql":
        return open_store(parsed.url)
    assert parsed.path is not None
    path = parsed.path.expanduser()
    if not path.exists():
        raise NoLog(str(path))
    return SQLiteStore(path, read_only=True)


# --------------------------------------------------------------------------- the widget


class Dashboard(w.VBox):
    """The dashboard. ``url`` defaults to the guide's store; ``refresh()`` reads it again."""

    def __init__(self, url: str | None = None, flow: Flow | None = None, labels: str = "en",
                 **kwargs) -> None:
        self.url = url
        self.flow = flow if flow is not None else default_flow()
        self.summary: Summary | None = None
        self.start = w.DatePicker(description="From · 시작", value=None)
        self.end = w.DatePicker(description="To · 끝", value=None)
        self.lang = w.Dropdown(description="Language", options=LANGUAGE_CHOICES, value="")
        self.labels = w.Dropdown(description="Labels · 표시 언어", options=LABEL_CHOICES, value=labels)
        self.labels.observe(self.on_labels_change, names="value")
        self.refresh_button = w.Button(description="Refresh · 새로 고침", icon="refresh")
        for control in (self.start, self.end, self.lang):
            control.observe(self.on_filter_change, names="value")
        self.refresh_button.on_click(self.on_refresh_click)
        self.status = w.HTML()
        self.kpis = w.HTML()
        self.charts = [w.Image(format="png", layout=w.Layout(max_width="100%", height="auto"))
                       for _ in CHARTS]
        # Each chart's place: the image, or the message of a chart that could not be drawn.
        self.chart_notes = [w.HTML(layout=w.Layout(display="none")) for _ in CHARTS]
        self.chart_slots = [w.VBox([image, note]) for image, note in zip(self.charts,
                                                                         self.chart_notes)]
        for slot in self.chart_slots:
            slot.add_class("dash-chart")
        #: the arrows' numbers of the period (widgets.summary.transitions), read with the
        #: summary; None when they could not be read (the map then says so)
        self.moves: pd.DataFrame | None = None
        self.flowmap = w.HTML()
        self.tables = w.Tab()
        self.downloads = w.HTML()
        self.content = w.VBox([
            self.kpis,
            w.Box(self.chart_slots, layout=w.Layout(display="flex", flex_flow="row wrap",
                                                    align_items="flex-start")),
            w.HTML(MAP_HEAD), self.flowmap,
            self.tables, self.downloads,
        ])
        controls = w.Box([self.start, self.end, self.lang, self.labels, self.refresh_button],
                         layout=w.Layout(display="flex", flex_flow="row wrap", align_items="center"))
        super().__init__([w.HTML(CSS), controls, self.status, self.content], **kwargs)
        self.add_class("guide-dash")

    # -- events

    def on_filter_change(self, _change: dict) -> None:
        self.refresh()

    def on_refresh_click(self, _button: w.Button) -> None:
        self.refresh()

    def on_labels_change(self, _change: dict) -> None:
        if self.summary is not None and not self.summary.empty:
            self.show(self.summary)

    # -- reading and drawing

    def filters(self) -> tuple[dt.date | None, dt.date | None, str | None]:
        """(start, end, lang) for summarize(): the To date is included, so end is the day after."""
        end = self.end.value + dt.timedelta(days=1) if self.end.value else None
        return self.start.value, end, self.lang.value or None

    def refresh(self) -> None:
        start, end, lang = self.filters()
        filtered = any(x is not None for x in (start, end, lang))
        if start and end and start >= end:
            self._message("The start date is after the end date. · 시작 날짜가 끝 날짜보다 늦습니다.")
            return
        try:
            with open_for_reading(self.url) as store:
                summary = summarize(store, start, end, lang, flow=self.flow)
                self.moves = self._read_moves(store, start, end, lang)
        except StoreOutdated as exc:
            logger.warning("summary dashboard: %s", exc)
            self._message("The log has an older format; it is updated on the guide's next visit, "
                          "or now with: python -m widgets.log migrate "
                          "· 기록 형식이 오래되었습니다. 다음 방문 때 또는 위 명령으로 갱신됩니다.")
            return
        except NoLog:
            self._message("No data yet: the guide has not logged any visit. "
                          "· 아직 데이터가 없습니다. 안내서 이용 기록이 쌓이면 여기에 표시됩니다.")
            return
        except StoreUnavailable as exc:
            logger.warning("summary dashboard: cannot read the log: %s", exc)
            self._message("The log cannot be read right now; try Refresh in a moment. "
                          "· 지금은 기록을 읽을 수 없습니다. 잠시 후 새로 고침을 눌러 주세요.")
            return
        except Exception:  # noqa: BLE001 - say so on the page; the details go to the server log
            logger.exception("summary dashboard: the log cannot be summarized")
            self._message("The log cannot be summarized: it holds something unexpected (see the "
                          "server log). · 기록을 요약할 수 없습니다.")
            return
        self.summary = summary
        if summary.empty:
            self._message("No sessions match these filters. · 조건에 맞는 세션이 없습니다." if filtered
                          else "No data yet: the log has no visits. · 아직 데이터가 없습니다.")
            return
        self.show(summary)

    def _read_moves(self, store: EventStore, start, end, lang) -> pd.DataFrame | None:
        """The arrows' numbers for the flow map, or None (logged) when they cannot be read:
        only the map then shows a message."""
        try:
            return transitions(store, start, end, lang, flow=self.flow)
        except Exception:  # noqa: BLE001 - the rest of the dashboard is still drawn
            logger.exception("summary dashboard: the flow map's transitions failed")
            return None

    def draw_map(self, summary: Summary) -> None:
        """The flow map part, on its own: a message in its place when it cannot be drawn."""
        if self.moves is None:
            self.flowmap.value = failed("the flow map")
            return
        self.flowmap.value = attempt("the flow map", flow_map_part, summary, self.moves,
                                     self.flow, self.labels.value)

    def show(self, summary: Summary) -> None:
        """Draw ``summary``: numbers, charts, tables and downloads, each on its own (a part
        that fails shows a short message in its place)."""
        self.status.value = ""
        shown = attempt("the flow's labels", labelled, summary, self.flow, self.labels.value)
        if isinstance(shown, str):  # cannot label: show the ids (the message is logged)
            shown = summary
        self.kpis.value = attempt("the main numbers", kpis, shown)
        for image, note, (what, draw) in zip(self.charts, self.chart_notes, CHARTS.items()):
            self._draw_chart(image, note, what, draw, shown)
        self.draw_map(summary)
        tables = styled_tables(shown)
        self.tables.children = [w.HTML(value) for value in tables.values()]
        for i, name in enumerate(tables):
            self.tables.set_title(i, name)
        self.downloads.value = attempt("the CSV downloads", csv_links, summary)
        self.content.layout.display = None

    @staticmethod
    def _draw_chart(image: w.Image, note: w.HTML, what: str, draw, summary: Summary) -> None:
        """One chart into ``image``, or its message into ``note`` (the image then hidden)."""
        try:
            png = draw(summary)
        except Exception:  # noqa: BLE001 - the other charts are still drawn
            logger.exception("summary dashboard: %s failed", what)
            note.value = failed(what)
            image.layout.display = "none"
            note.layout.display = None
            return
        image.value = png
        image.layout.display = None
        note.layout.display = "none"

    def _message(self, text: str) -> None:
        self.status.value = f"<p class='dash-status' role='status'>{html.escape(text)}</p>"
        self.content.layout.display = "none"


def dashboard(url: str | None = None) -> Dashboard:
    """The dashboard over the guide's log (``url``: default ``GUIDE_LOG_URL`` / ``GUIDE_DATA_DIR``).

    Under Voilà with preheated kernels it reads the log only once a visitor's request arrives,
    so the numbers are fresh.
    """
    board = Dashboard(url)
    if os.environ.get("VOILA_PREHEAT", "False") != "False":
        from voila.utils import wait_for_request

        wait_for_request()
    board.refresh()
    return board
