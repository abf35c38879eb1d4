"""The maintainers' summary dashboard: the notebook ``notebooks/summary.ipynb`` calls :func:`dashboard`.

Filters (a date range and the visitors' start language), the main numbers, four charts
(sessions per day, the funnel, the contact channels, the languages), the flow map (the steps
as boxes coloured by drop-off, the answers as arrows as thick as the sessions that took them;
:mod:`widgets.flowmap`, drawn by Graphviz's ``dot`` on the server, with an SVG download), every
table of :class:`~widgets.summary.Summary` as a styled table, and a CSV download of each. Works under
Voilà: the charts are PNG images rendered by matplotlib's Agg canvas (no pyplot, no inline
backend) and the downloads are ``data:`` links.

The log may hold rows the guide never writes (an older writer, a row added by hand; the
``sessions`` rollup keeps a session's nodes even after its events are deleted), so whatever
it holds is only ever shown as text: charts draw labels without matplotlib's math text (a
``$`` in a node id is two dollar signs, not a formula) or LaTeX, tables escape every cell, and
the CSV downloads write a text cell that a spreadsheet would run as a formula with a leading
``'`` (numbers stay numbers). Each chart, table and the downloads are drawn on their own: one
that fails shows a short message in its place, the rest of the dashboard is still drawn.

It reads the store the guide writes to (``GUIDE_LOG_URL``, else ``$GUIDE_DATA_DIR``; the URL is
read by the log's own parser, ``widgets.log.parse_url``), opening an SQLite file read-only, and
never creates one: with no log yet it says so.

It speaks the flow's language: steps and answers are shown by their titles and labels in
``flow.yaml``, in the language chosen with "Labels" (ids stay in the CSV files, which are the
summary's tables as they are). A step or answer the log holds but the flow no longer has is shown
as "(removed) <id>", never dropped; the contact and path steps are the ones the flow gives those
roles, so renaming, adding or moving a step needs no change here.

This module imports pandas (through widgets.summary) and matplotlib; the guide never imports it.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import functools
import html
import io
import logging
import os

import ipywidgets as w
import matplotlib as mpl
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .casenotes import BOM, csv_cell
from .engine import OUTCOMES as OUTCOME_LABELS
from .flow import Flow, default_flow
from .flowmap import DotMissing, Traffic, dot_source, render_svg, svg_for_html
from .log import EventStore, SQLiteStore, StoreOutdated, StoreUnavailable, log_url, open_store, parse_url
from .summary import NO_ANSWER, NO_CHANNEL, OTHER, Summary, flow_roles, summarize, transitions

logger = logging.getLogger(__name__)

__all__ = ["Dashboard", "dashboard", "open_for_reading", "NoLog", "Labels", "labelled"]

LANGUAGE_CHOICES = (("All languages · 모든 언어", ""), ("한국어 (ko)", "ko"), ("English (en)", "en"))
#: The languages the dashboard can show the flow's titles and labels in.
LABEL_CHOICES = (("English", "en"), ("한국어", "ko"))
#: How a step or answer id is shown when the flow no longer has it.
REMOVED = "(removed) {}"
COLORS = {"ko": "#146eb4", "en": "#e47911", "views": "#9cc3e6", "exits": "#c0392b", "bar": "#146eb4"}

CSS = """
<style>
.guide-dash { max-width: 72rem; margin: 0 auto; font-family: system-ui, -apple-system, "Segoe UI",
  "Noto Sans CJK KR", "Noto Sans KR", sans-serif; color: #1b1b1b; }
.guide-dash .dash-kpis { display: flex; flex-wrap: wrap; gap: 0.75rem; margin: 0.5rem 0; }
.guide-dash .dash-kpi { border: 1px solid #d0d7de; border-radius: 6px; padding: 0.5rem 0.9rem;
  min-width: 9rem; }
.guide-dash .dash-kpi b { display: block; font-size: 1.4rem; }
.guide-dash .dash-kpi span { color: #404040; font-size: 0.85rem; }
.guide-dash .dash-status { color: #7a2e00; }
.guide-dash table { border-collapse: collapse; font-size: 0.9rem; margin: 0.4rem 0; }
.guide-dash th, .guide-dash td { padding: 0.2rem 0.6rem; border-bottom: 1px solid #e5e5e5;
  text-align: right; }
.guide-dash th.row_heading, .guide-dash td.col0, .guide-dash th.col_heading { text-align: left; }
.guide-dash caption { caption-side: top; text-align: left; font-weight: 600; padding: 0.3rem 0; }
.guide-dash .dash-downloads a { margin-right: 1rem; }
.guide-dash .dash-chart { max-width: 100%; }
.guide-dash .dash-map { overflow: auto; max-height: 60rem; border: 1px solid #d0d7de;
  border-radius: 6px; padding: 0.4rem; margin: 0.4rem 0; }
.guide-dash .dash-map-head { font-weight: 600; margin: 0.6rem 0 0.2rem; }
.guide-dash .dash-failed { color: #7a2e00; border: 1px dashed #c0392b; padding: 0.5rem 0.9rem;
  margin: 0.4rem; }
</style>
"""


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


# --------------------------------------------------------------------------- the flow's words


class Labels:
    """Step titles and answer labels of ``flow`` in ``lang``; ids the flow does not have are
    shown as :data:`REMOVED`. The summary's own markers ((none), (other)) stay as they are."""

    MARKERS = frozenset({NO_ANSWER, NO_CHANNEL, OTHER})

    def __init__(self, flow: Flow, lang: str) -> None:
        self.flow, self.lang = flow, lang
        self.contact_nodes, self.path_nodes = flow_roles(flow)

    def node(self, node_id: object) -> str:
        text = str(node_id)
        if text in self.MARKERS:
            return text
        node = self.flow.nodes.get(text)
        return node.title(self.lang) if node is not None else REMOVED.format(text)

    def option(self, node_id: object, option_id: object) -> str:
        text = str(option_id)
        if option_id is None or text in self.MARKERS:
            return NO_ANSWER if option_id is None else text
        node = self.flow.nodes.get(str(node_id))
        if node is not None and text in node.option_ids:
            return node.option(text).label(self.lang)
        return REMOVED.format(text)

    def contact(self, option_id: object) -> str:
        """A final contact choice given by its option id (the outcomes table): the label at the
        first contact step that has that option."""
        text = str(option_id)
        for node_id in self.contact_nodes:
            node = self.flow.nodes.get(node_id)
            if node is not None and text in node.option_ids:
                return self.option(node_id, text)
        return self.option(None, text)

    def outcome(self, outcome_id: object) -> str:
        text = str(outcome_id)
        label = OUTCOME_LABELS.get(text)
        return label(self.lang) if label is not None else text


def _path_words(table: pd.DataFrame, words: Labels) -> pd.DataFrame:
    """An outcome-by-path table with its steps and answers in the flow's words."""
    table = table.copy()
    steps = [c for c in table.columns if c not in ("outcome", "sessions", "share")]
    for step in steps:
        table[step] = [words.option(step, o) for o in table[step]]
    table["outcome"] = [words.outcome(o) for o in table["outcome"]]
    return table.rename(columns={step: words.node(step) for step in steps})


def labelled(summary: Summary, flow: Flow, lang: str) -> Summary:
    """``summary`` with its steps and answers in the flow's words (for display only; the CSV
    files use the summary itself, with ids)."""
    words = Labels(flow, lang)

    def nodes(frame: pd.DataFrame, column: str = "node") -> pd.DataFrame:
        frame = frame.copy()
        frame[column] = [words.node(n) for n in frame[column]]
        return frame

    choices = summary.choices.copy()
    choices["option"] = [words.option(n, o) for n, o in zip(choices["node"], choices["option"])]
    channels = summary.channels.copy()
    channels["option"] = [words.option(n, o) for n, o in zip(channels["node"], channels["option"])]
    outcomes = summary.outcomes.copy()
    outcomes["channel"] = [words.contact(c) for c in outcomes["channel"]]
    outcomes["outcome"] = [words.outcome(o) for o in outcomes["outcome"]]
    paths = _path_words(summary.paths, words)
    followups = summary.followups.copy()
    followups["channel"] = [words.contact(c) for c in followups["channel"]]
    followups["outcome"] = [words.outcome(o) for o in followups["outcome"]]
    followup_paths = _path_words(summary.followup_paths, words)
    return dataclasses.replace(
        summary, funnel=nodes(summary.funnel), choices=nodes(choices), channels=nodes(channels),
        time=nodes(summary.time), outcomes=outcomes, paths=paths, followups=followups,
        followup_paths=followup_paths)


# --------------------------------------------------------------------------- rendering helpers

#: matplotlib settings while the dashboard draws: every text as it is (no math text between
#: dollar signs, no LaTeX even when a matplotlibrc asks for it). Applied only around the
#: dashboard's own drawing, so a JupyterLab session's other plots keep their settings.
PLAIN_TEXT = {"text.parse_math": False, "text.usetex": False}


@functools.cache
def _font_fallback() -> dict:
    """Korean labels: DejaVu Sans (matplotlib's own) then the first Korean font installed, which
    matplotlib uses for the glyphs DejaVu Sans does not have (none installed: boxes, no error)."""
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    korean = [name for name in ("Noto Sans CJK KR", "Noto Sans KR", "NanumGothic", "Malgun Gothic",
                                "Apple SD Gothic Neo") if name in installed][:1]
    return {"font.family": ["DejaVu Sans", *korean]}


def plain_text(draw):
    """``draw`` (a chart function) with :data:`PLAIN_TEXT` in force while it builds and
    renders its figure: tick labels are made at render time, so both happen inside."""

    @functools.wraps(draw)
    def drawn(summary: Summary) -> bytes:
        with mpl.rc_context({**PLAIN_TEXT, **_font_fallback()}):
            return draw(summary)

    return drawn


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buffer)
    return buffer.getvalue()


#: The longest chart label (characters); longer step titles are cut with "…" (tables show them whole).
TICK_LABEL = 36


def _tick(label: object) -> str:
    text = str(label)
    return text if len(text) <= TICK_LABEL else text[:TICK_LABEL - 1].rstrip() + "…"


def _pct(value: float) -> str:
    return "–" if pd.isna(value) else f"{value:.1%}"


def _seconds(value: float) -> str:
    return "–" if pd.isna(value) else f"{value / 1000:.1f} s"


@plain_text
def sessions_chart(summary: Summary) -> bytes:
    daily = summary.daily
    fig = Figure(figsize=(7, 3), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    ax.bar(daily["day"], daily["ko"], color=COLORS["ko"], label="ko")
    ax.bar(daily["day"], daily["en"], bottom=daily["ko"], color=COLORS["en"], label="en")
    ax.set_title("Sessions per day (UTC), by start language")
    ax.set_ylabel("sessions")
    ax.legend(loc="upper left")
    fig.autofmt_xdate()
    return _png(fig)


@plain_text
def funnel_chart(summary: Summary) -> bytes:
    funnel = summary.funnel.iloc[::-1]
    fig = Figure(figsize=(7, 0.32 * len(funnel) + 1.2), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    y = range(len(funnel))
    ax.barh(y, funnel["views"], color=COLORS["views"], label="views")
    ax.barh(y, funnel["exits"], color=COLORS["exits"], label="exits")
    ax.set_yticks(list(y), [_tick(n) for n in funnel["node"]])
    top = max(1, int(funnel["views"].max()))
    for y, (views, drop) in enumerate(zip(funnel["views"], funnel["drop_off"])):
        if views:
            ax.text(views + top * 0.01, y, f"{drop:.0%}", va="center", fontsize=8)
    ax.set_xlim(0, top * 1.12)
    ax.set_title("Funnel: sessions that saw each step, exits and drop-off (flow order)")
    ax.set_xlabel("sessions")
    ax.legend(loc="lower right")
    return _png(fig)


@plain_text
def channels_chart(summary: Summary) -> bytes:
    channels = summary.channels.iloc[::-1]
    labels = [_tick(f"{node}: {option}") for node, option in zip(channels["node"], channels["option"])]
    fig = Figure(figsize=(5, 0.4 * len(channels) + 1.2), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    ax.barh(range(len(labels)), channels["sessions"], color=COLORS["bar"])
    ax.set_yticks(list(range(len(labels))), labels)
    top = max(1, int(channels["sessions"].max()))
    for y, (n, share) in enumerate(zip(channels["sessions"], channels["share"])):
        ax.text(n + top * 0.01, y, _pct(share), va="center", fontsize=8)
    ax.set_xlim(0, top * 1.2)
    ax.set_title("Final contact choice per session")
    ax.set_xlabel("sessions")
    return _png(fig)


@plain_text
def languages_chart(summary: Summary) -> bytes:
    languages = summary.languages
    fig = Figure(figsize=(4, 3), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    ax.bar(languages["lang"], languages["sessions"],
           color=[COLORS.get(code, COLORS["bar"]) for code in languages["lang"]])
    for x, (n, share) in enumerate(zip(languages["sessions"], languages["share"])):
        ax.text(x, n, _pct(share), ha="center", va="bottom", fontsize=9)
    o = summary.overview.iloc[0]
    ax.set_title(f"Start language\n{int(o['switched_sessions']):,} sessions switched "
                 f"({int(o['language_switches']):,} switches)", fontsize=10)
    ax.set_ylabel("sessions")
    ax.margins(y=0.15)
    return _png(fig)


def _style(frame: pd.DataFrame, caption: str, formats: dict | None = None,
           bars: list[str] | None = None) -> str:
    """One table as HTML, styled with pandas' Styler; every cell is HTML-escaped."""
    styler = frame.style.hide(axis="index").set_caption(html.escape(caption))
    styler = styler.format(formats or {}, na_rep="–", escape="html")
    styler = styler.format_index(escape="html", axis=1)
    for column in bars or []:
        if len(frame) and frame[column].max() > 0:
            styler = styler.bar(subset=[column], color="#cfe2f3", vmin=0)
    return styler.to_html()


NO_OUTCOMES = ("<p>No outcome answers asked before contact in this period (the guide asks "
               "after contact now: see the after-contact tables).</p>")
NO_FOLLOWUPS = "<p>No outcome answers after contact (the return link) in this period.</p>"

#: How each table is shown: (caption, formats of its columns, columns with bars).
TABLE_STYLES: dict[str, tuple[str, dict, list[str]]] = {
    "overview": ("Overview", {"completion_rate": _pct, "switched_share": _pct}, []),
    "funnel": ("Funnel (views = sessions that entered; exits = sessions that left there "
               "without finishing)", {"drop_off": _pct}, ["views"]),
    "choices": ("Choices per decision", {"share": _pct}, ["count"]),
    "channels": ("Contact channels (final choice per session)", {"share": _pct}, ["sessions"]),
    "languages": ("Languages (sessions by start language)", {"share": _pct}, []),
    "time": ("Median time per step (from entering a step to leaving it)",
             {"median_ms": _seconds}, ["leaves"]),
    "outcomes": ("Before contact (older rows): outcomes by contact channel, as the last screen "
                 "asked them until the return link came, before the visitor had contacted "
                 "Amazon; guesses, kept apart", {"share": _pct}, []),
    "paths": ("Before contact (older rows): outcomes by path (the answers at the flow's path "
              "steps; share within the path); guesses, kept apart", {"share": _pct}, []),
    "followups": ("After contact: outcomes by contact channel, given on the visit that came "
                  "back with the return link (the earlier visit's channel)", {"share": _pct}, []),
    "followup_paths": ("After contact: outcomes by path (the earlier visit's answers at the "
                       "flow's path steps; share within the path)", {"share": _pct}, []),
    "daily": ("Sessions per day (UTC)", {"day": lambda d: d.strftime("%Y-%m-%d")}, ["sessions"]),
}


def styled_table(summary: Summary, name: str) -> str:
    """Table ``name`` of the summary as HTML (see :data:`TABLE_STYLES`)."""
    frame = getattr(summary, name)
    if name in ("outcomes", "paths", "followups", "followup_paths") and not len(frame):
        return NO_FOLLOWUPS if name.startswith("followup") else NO_OUTCOMES
    caption, formats, bars = TABLE_STYLES[name]
    return _style(frame, caption, formats, bars)


def styled_tables(summary: Summary) -> dict[str, str]:
    """Every table as HTML, in the summary's order; a table that cannot be drawn is a short
    message instead (see :func:`failed`)."""
    return {name: attempt(f"the {name} table", styled_table, summary, name)
            for name in summary.frames()}


def failed(what: str) -> str:
    """The short message shown in place of a part of the dashboard that could not be drawn."""
    return (f"<p class='dash-failed' role='status'>{html.escape(what[:1].upper() + what[1:])} "
            "cannot be shown: the log holds something unexpected (see the server log). "
            "· 이 부분은 표시할 수 없습니다.</p>")


def attempt(what: str, draw, *args):
    """``draw(*args)``, or :func:`failed`'s message when it raises (logged with the details)."""
    try:
        return draw(*args)
    except Exception:  # noqa: BLE001 - one part must never take the whole dashboard down
        logger.exception("summary dashboard: %s failed", what)
        return failed(what)


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


# --------------------------------------------------------------------------- the flow map


def map_traffic(summary: Summary, moves: pd.DataFrame) -> Traffic:
    """The flow map's numbers, as the summary computed them: views, exits and drop-off of its
    ``funnel``, and the sessions of each arrow from :func:`widgets.summary.transitions`."""
    funnel = summary.funnel
    return Traffic(
        views={str(n): int(v) for n, v in zip(funnel["node"], funnel["views"])},
        exits={str(n): int(v) for n, v in zip(funnel["node"], funnel["exits"])},
        drop_off={str(n): float(v) for n, v in zip(funnel["node"], funnel["drop_off"])},
        sessions={(str(n), None if o is None or pd.isna(o) else str(o), str(t)): int(k)
                  for n, o, t, k in zip(moves["node"], moves["option"], moves["to"],
                                        moves["sessions"])},
    )


NO_DOT = ("The flow map needs Graphviz's dot program, which is not installed where the "
          "dashboard runs (Debian: apt-get install graphviz; ./manage summary installs it). "
          "· 흐름도를 그리려면 Graphviz(dot)가 필요합니다.")


def map_suffix(summary: Summary, labels: str) -> str:
    """The download's name suffix: the period and language filter (as the CSV files), then the
    language of the labels."""
    period = "-".join(d.strftime("%Y%m%d") for d in (summary.start, summary.end) if d is not None)
    return "".join(f"-{x}" for x in (period, summary.lang) if x) + f"-labels-{labels}"


def flow_map_part(summary: Summary, moves: pd.DataFrame, flow: Flow, labels: str) -> str:
    """The flow map of the period as HTML: the SVG in the page and its download (and the
    arrows' table as CSV); without Graphviz, a message saying how to install it."""
    try:
        svg = render_svg(dot_source(flow, labels, map_traffic(summary, moves)))
    except DotMissing:
        logger.warning("summary dashboard: the flow map needs Graphviz's dot")
        return f"<p class='dash-failed' role='status'>{html.escape(NO_DOT)}</p>"
    suffix = map_suffix(summary, labels)
    data = base64.b64encode(svg.encode("utf-8")).decode("ascii")
    name = html.escape(f"guide-flow-map{suffix}.svg")
    download = (f'<a download="{name}" href="data:image/svg+xml;base64,{data}">'
                "flow-map.svg</a>")
    try:
        download += " " + csv_link("transitions", moves, suffix)
    except Exception:  # noqa: BLE001 - the map itself is still shown
        logger.exception("summary dashboard: the CSV file of transitions failed")
    return (f"<div class='dash-map'>{svg_for_html(svg)}</div>"
            f"<div class='dash-downloads'><b>Flow map:</b> {download}</div>")


MAP_HEAD = ("<p class='dash-map-head'>Flow map · 흐름도: boxes are steps, coloured by drop-off "
            "(left ÷ views); arrows are answers, as thick as the sessions that took them. "
            "Hover for the numbers.</p>")


#: The charts, in display order: what each shows (for its message) → the function drawing it.
CHARTS = {
    "the sessions chart": sessions_chart,
    "the funnel chart": funnel_chart,
    "the contact channels chart": channels_chart,
    "the languages chart": languages_chart,
}


def kpis(summary: Summary) -> str:
    o = summary.overview.iloc[0]
    cards = [
        (f"{summary.sessions:,}", "sessions · 세션"),
        (_pct(summary.completion_rate), "completed · 완료율"),
        (f"{summary.finished:,}", "finished · 끝까지 본 세션"),
        (f"{int(o['language_switches']):,}", "language switches · 언어 전환"),
        (_pct(o["switched_share"]), "sessions that switched · 전환한 세션"),
    ]
    days = summary.daily["day"].dropna()  # a start time that is not a date has no day
    if len(days):
        first, last = days.min(), days.max()
        cards.append((f"{first:%Y-%m-%d} – {last:%Y-%m-%d}", "first – last day · 기간"))
    return "<div class='dash-kpis'>" + "".join(
        f"<div class='dash-kpi'><b>{html.escape(v)}</b><span>{html.escape(k)}</span></div>"
        for v, k in cards) + "</div>"


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
