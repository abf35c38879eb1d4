"""The dashboard's flow map: the steps as boxes coloured by drop-off, the answers as arrows as
thick as the sessions that took them (:mod:`widgets.flowmap`, drawn by Graphviz's ``dot`` on the
server), with an SVG download and the arrows' CSV."""

from __future__ import annotations

import base64
import html
import logging

import pandas as pd

from ..flow import Flow
from ..flowmap import DotMissing, Traffic, dot_source, render_svg, svg_for_html
from ..summary import Summary
from .export import csv_link

logger = logging.getLogger("widgets.dashboard")



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


