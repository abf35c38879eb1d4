"""The dashboard's tables: every table of :class:`~widgets.summary.Summary` as a styled HTML
table (pandas' Styler, every cell escaped; :data:`TABLE_STYLES`), and the main numbers
(:func:`kpis`)."""

from __future__ import annotations

import html

import pandas as pd

from ..summary import Summary
from .style import attempt

def pct(value: float) -> str:
    return "–" if pd.isna(value) else f"{value:.1%}"


def seconds(value: float) -> str:
    return "–" if pd.isna(value) else f"{value / 1000:.1f} s"


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
    "overview": ("Overview", {"completion_rate": pct, "switched_share": pct}, []),
    "funnel": ("Funnel (views = sessions that entered; exits = sessions that left there "
               "without finishing)", {"drop_off": pct}, ["views"]),
    "choices": ("Choices per decision", {"share": pct}, ["count"]),
    "channels": ("Contact channels (final choice per session)", {"share": pct}, ["sessions"]),
    "languages": ("Languages (sessions by start language)", {"share": pct}, []),
    "time": ("Median time per step (from entering a step to leaving it)",
             {"median_ms": seconds}, ["leaves"]),
    "outcomes": ("Before contact (older rows): outcomes by contact channel, as the last screen "
                 "asked them until the return link came, before the visitor had contacted "
                 "Amazon; guesses, kept apart", {"share": pct}, []),
    "paths": ("Before contact (older rows): outcomes by path (the answers at the flow's path "
              "steps; share within the path); guesses, kept apart", {"share": pct}, []),
    "followups": ("After contact: outcomes by contact channel, given on the visit that came "
                  "back with the return link (the earlier visit's channel)", {"share": pct}, []),
    "followup_paths": ("After contact: outcomes by path (the earlier visit's answers at the "
                       "flow's path steps; share within the path)", {"share": pct}, []),
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



def kpis(summary: Summary) -> str:
    o = summary.overview.iloc[0]
    cards = [
        (f"{summary.sessions:,}", "sessions · 세션"),
        (pct(summary.completion_rate), "completed · 완료율"),
        (f"{summary.finished:,}", "finished · 끝까지 본 세션"),
        (f"{int(o['language_switches']):,}", "language switches · 언어 전환"),
        (pct(o["switched_share"]), "sessions that switched · 전환한 세션"),
    ]
    days = summary.daily["day"].dropna()  # a start time that is not a date has no day
    if len(days):
        first, last = days.min(), days.max()
        cards.append((f"{first:%Y-%m-%d} – {last:%Y-%m-%d}", "first – last day · 기간"))
    return "<div class='dash-kpis'>" + "".join(
        f"<div class='dash-kpi'><b>{html.escape(v)}</b><span>{html.escape(k)}</span></div>"
        for v, k in cards) + "</div>"

