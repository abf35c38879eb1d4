"""The dashboard's charts: PNG images rendered by matplotlib's Agg canvas (no pyplot, no inline
backend), every label drawn as plain text (no math text, no LaTeX), Korean with a fallback font.
:data:`CHARTS` lists them in display order."""

from __future__ import annotations

import functools
import io

import matplotlib as mpl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..summary import Summary
from .tables import pct as _pct

#: The charts' colours: the start languages, the funnel's views and exits, a plain bar.
COLORS = {"ko": "#146eb4", "en": "#e47911", "views": "#9cc3e6", "exits": "#c0392b", "bar": "#146eb4"}

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


#: The charts, in display order: what each shows (for its message) → the function drawing it.
CHARTS = {
    "the sessions chart": sessions_chart,
    "the funnel chart": funnel_chart,
    "the contact channels chart": channels_chart,
    "the languages chart": languages_chart,
}

