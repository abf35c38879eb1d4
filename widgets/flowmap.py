"""The flow map: the guide's steps as boxes and its answers as arrows, drawn by Graphviz.

:func:`edges` lists the arrows of a :class:`~widgets.flow.Flow`; :func:`dot_source` writes the
Graphviz DOT text of the map, with the traffic of a period when given (:class:`Traffic`: views,
exits and drop-off per step, sessions per arrow, the summary's own numbers); :func:`render_svg`
runs Graphviz's ``dot -Tsvg`` on it (a local program, no outside request; Debian's package
``graphviz``, which ``./manage`` installs); :func:`svg_for_html` makes its output fit to
place in a page.

Every text of the map comes from the content file, so every one is treated as untrusted: in the
DOT text labels are Graphviz HTML-like labels with ``<``, ``>``, ``&`` and quotes as entities and
backslashes doubled, tooltips are quoted strings with quotes and backslashes escaped (dot reads
backslashes twice there), so that Graphviz's ``\\N``-style sequences stay as written; ids are
the flow's validated slugs. dot escapes the texts again when it writes the SVG.

With traffic, a step's colour is its drop-off (exits ÷ views, in the bands of
:data:`DROP_OFF_BANDS`), an arrow's width grows with the sessions that took it, and both show
their numbers as labels and on hover. Without traffic (the content notebook) the map shows the
flow alone.

Pure Python (the standard library and the flow); the guide's kernel never imports it.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import textwrap
from dataclasses import dataclass, field
from typing import Mapping

from .flow import LANGUAGES, Flow, Node

__all__ = ["Edge", "Traffic", "edges", "dot_source", "render_svg", "svg_for_html", "flow_map",
           "DotMissing", "DotFailed", "DROP_OFF_BANDS", "DOT_TIMEOUT"]

#: Seconds dot may take before the map is given up.
DOT_TIMEOUT = 30.0
#: The fonts named in the map (Korean needs a CJK font: fonts-noto-cjk on Debian).
FONT = "Noto Sans CJK KR,Noto Sans KR,sans-serif"
#: Drop-off bands: (lowest drop-off of the band, fill colour, text colour), from ColorBrewer's
#: "Reds"; a step without views is grey.
DROP_OFF_BANDS: tuple[tuple[float, str, str], ...] = (
    (0.0, "#fff5f0", "#1b1b1b"),
    (0.05, "#fcbba1", "#1b1b1b"),
    (0.10, "#fc9272", "#1b1b1b"),
    (0.20, "#fb6a4a", "#1b1b1b"),
    (0.40, "#cb181d", "#ffffff"),
)
NO_VIEWS = "#eeeeee"
#: Arrow widths (points): an arrow nobody took, and the busiest one.
PEN_MIN, PEN_MAX = 1.0, 9.0

#: The map's own words, per language.
WORDS = {
    "ko": {"views": "{n:,}명 봄", "exits": "{n:,}명 떠남", "sessions": "{n:,}세션",
           "no_views": "본 세션 없음", "next": "다음", "legend": "이탈률 (떠남 ÷ 봄)",
           "width": "화살표 굵기: 그 길로 간 세션 수", "if": "조건: {when}",
           "kinds": {"choice": "선택", "info": "안내", "end": "마지막"}},
    "en": {"views": "{n:,} views", "exits": "{n:,} left", "sessions": "{n:,} sessions",
           "no_views": "no views", "next": "next", "legend": "Drop-off (left ÷ views)",
           "width": "Arrow width: sessions that took it", "if": "when {when}",
           "kinds": {"choice": "question", "info": "advice", "end": "last step"}},
}


class DotMissing(RuntimeError):
    """Graphviz's ``dot`` is not installed."""


class DotFailed(RuntimeError):
    """``dot`` ran but did not draw the map (an error, or too slow)."""


@dataclass(frozen=True)
class Edge:
    """One arrow: from ``source`` (by answer ``option``, None for an info step's Next) to
    ``target``; ``when``: the earlier answers it needs (decision id → option ids), empty when
    it is always taken."""

    source: str
    option: str | None
    target: str
    when: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str | None, str]:
        return self.source, self.option, self.target


def edges(flow: Flow) -> list[Edge]:
    """Every arrow of the flow, in the flow's order: each answer of a decision (and each info
    step's Next) to every step its rules can lead to. A target reached by several rules of one
    route is one arrow, conditional only when every rule to it is."""
    found: dict[tuple[str, str | None, str], Edge] = {}
    for node in flow:
        routes = [(option.id, option.next) for option in node.options]
        if node.next is not None:
            routes.append((None, node.next))
        for option_id, route in routes:
            for rule in route.rules:
                key = (node.id, option_id, rule.to)
                old = found.get(key)
                if old is None or (old.when and not rule.when):
                    found[key] = Edge(node.id, option_id, rule.to, dict(rule.when))
    return list(found.values())


@dataclass(frozen=True)
class Traffic:
    """The numbers of a period: per step, ``views`` (sessions that entered it), ``exits``
    (sessions that left the guide there without finishing) and ``drop_off`` (exits ÷ views,
    NaN or missing without views); per arrow key (step, option or None, target), ``sessions``
    that took it. The summary computes them (widgets.summary: ``funnel`` and ``transitions``)."""

    views: Mapping[str, int]
    exits: Mapping[str, int]
    drop_off: Mapping[str, float]
    sessions: Mapping[tuple[str, str | None, str], int]


# --------------------------------------------------------------------------- DOT text


def _quoted(text: str) -> str:
    """``text`` as a DOT quoted string whose value, once dot has read the string (``\\\\`` is
    one backslash) and expanded it as an escString (``\\\\`` again one backslash, ``\\N``
    the node's name, ``\\n`` a new line), is ``text`` itself: a backslash is written as
    four, a double quote with a backslash, a new line as ``\\n``."""
    text = text.replace("\r", "")
    return '"' + text.replace("\\", "\\" * 4).replace('"', '\\"').replace("\n", "\\n") + '"'


def _html_lines(lines: list[str], small: set[int] = frozenset()) -> str:  # type: ignore[assignment]
    """Lines of text as a Graphviz HTML-like label, every character escaped: a table of one
    cell per line (dot spaces the lines of a plain label too tightly for Korean glyphs)."""
    rows = []
    for i, line in enumerate(lines):
        # Entities for <, >, &, quotes; a backslash doubled, else dot expands \N, \G, ...
        # (an entity would not do: dot decodes it before expanding)
        text = html.escape(line, quote=True).replace("\\", "\\\\") or " "
        if i in small:
            text = f'<FONT POINT-SIZE="9">{text}</FONT>'
        rows.append(f"<TR><TD>{text}</TD></TR>")
    return ('<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="1">'
            + "".join(rows) + "</TABLE>>")


def _wrap(text: str, lang: str, width: int | None = None) -> list[str]:
    width = width or (15 if lang == "ko" else 26)
    return textwrap.wrap(" ".join(text.split()), width=width, break_long_words=True) or [""]


def _band(drop_off: float | None) -> tuple[str, str]:
    if drop_off is None or drop_off != drop_off:  # no views (NaN)
        return NO_VIEWS, "#1b1b1b"
    fill, ink = DROP_OFF_BANDS[0][1:]
    for low, band_fill, band_ink in DROP_OFF_BANDS:
        if drop_off >= low:
            fill, ink = band_fill, band_ink
    return fill, ink


def _pct(value: float) -> str:
    return f"{value:.1%}"


def _node_text(node: Node, langs: tuple[str, ...]) -> list[str]:
    lines: list[str] = []
    for lang in langs:
        lines += _wrap(node.title(lang), lang)
    return lines


def node_numbers(node_id: str, traffic: Traffic, lang: str) -> str:
    """A step's numbers as the map shows them: "120 views · 30 left (25.0%)"."""
    words = WORDS[lang]
    views = int(traffic.views.get(node_id, 0))
    if not views:
        return words["no_views"]
    exits = int(traffic.exits.get(node_id, 0))
    drop = traffic.drop_off.get(node_id)
    drop_text = f" ({_pct(drop)})" if drop is not None and drop == drop else ""
    return f"{words['views'].format(n=views)} · {words['exits'].format(n=exits)}{drop_text}"


def edge_numbers(edge: Edge, traffic: Traffic, lang: str) -> str:
    """An arrow's number as the map shows it: "42 sessions"."""
    return WORDS[lang]["sessions"].format(n=int(traffic.sessions.get(edge.key, 0)))


def _when_text(flow: Flow, edge: Edge, lang: str) -> str:
    parts = []
    for decision, allowed in edge.when.items():
        node = flow.nodes[decision]
        labels = " / ".join(node.option(o).label(lang) for o in sorted(allowed)
                            if o in node.option_ids)
        parts.append(f"{node.title(lang)} = {labels}")
    return WORDS[lang]["if"].format(when="; ".join(parts))


def dot_source(flow: Flow, lang: str = "en", traffic: Traffic | None = None,
               both: bool = False) -> str:
    """The DOT text of the map of ``flow``, labelled in ``lang`` ('ko' or 'en'; with ``both``,
    each title in both languages, ``lang`` first), with the numbers of ``traffic`` when given."""
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}; expected one of {LANGUAGES}")
    langs = (lang, *(other for other in LANGUAGES if other != lang)) if both else (lang,)
    words = WORDS[lang]
    arrows = edges(flow)
    busiest = max((int(traffic.sessions.get(e.key, 0)) for e in arrows), default=0) \
        if traffic is not None else 0
    font = _quoted(FONT)
    out = [
        "digraph flowmap {",
        f'  graph [rankdir=TB, nodesep=0.35, ranksep=0.5, fontname={font}, fontsize=10, '
        'bgcolor="white", id="flowmap"];',
        f'  node [shape=box, style="rounded,filled", fontname={font}, fontsize=11, '
        'fillcolor="#ffffff", color="#57606a", fontcolor="#1b1b1b", margin="0.14,0.06"];',
        f'  edge [fontname={font}, fontsize=9, color="#57606a", fontcolor="#1b1b1b", '
        'arrowsize=0.7];',
    ]
    for node in flow:
        lines = _node_text(node, langs)
        tip = [node.title(la) for la in langs]
        tip.append(f"{words['kinds'][node.kind]} · {node.id}")
        attrs = {"id": _quoted(f"flowmap-node-{node.id}")}
        small: set[int] = set()
        if traffic is not None:
            numbers = node_numbers(node.id, traffic, lang)
            small.add(len(lines))
            lines.append(numbers)
            tip.append(numbers)
            fill, ink = _band(traffic.drop_off.get(node.id) if traffic.views.get(node.id) else None)
            attrs["fillcolor"] = _quoted(fill)
            attrs["fontcolor"] = _quoted(ink)
        elif node.kind == "choice":
            attrs["fillcolor"] = _quoted("#eaf2fb")
        if node.kind == "end":
            attrs["peripheries"] = "2"
        if node.kind == "info":
            attrs["style"] = _quoted("filled")
        if node.id == flow.start:
            attrs["penwidth"] = "2.2"
        attrs["label"] = _html_lines(lines, small)
        attrs["tooltip"] = _quoted("\n".join(tip))
        out.append(f"  {_quoted(node.id)} [{', '.join(f'{k}={v}' for k, v in attrs.items())}];")
    for edge in arrows:
        source = flow.nodes[edge.source]
        label = (source.option(edge.option).label(lang) if edge.option is not None
                 else words["next"])
        lines = _wrap(label, lang, 20 if lang == "ko" else 30) if edge.option is not None else []
        tip = [f"{source.title(lang)} → {flow.nodes[edge.target].title(lang)}"]
        if edge.option is not None:
            tip.insert(0, label)
        attrs = {"id": _quoted(f"flowmap-edge-{edge.source}-{edge.option or ''}-{edge.target}")}
        small = set()
        if edge.when:
            when = _when_text(flow, edge, lang)
            attrs["style"] = "dashed"
            tip.append(when)
        if traffic is not None:
            n = int(traffic.sessions.get(edge.key, 0))
            numbers = edge_numbers(edge, traffic, lang)
            small.add(len(lines))
            lines.append(numbers)
            tip.append(numbers)
            width = PEN_MIN + (PEN_MAX - PEN_MIN) * (n / busiest if busiest else 0)
            attrs["penwidth"] = f"{width:.2f}"
            attrs["arrowsize"] = f"{min(1.0, 0.6 + width / 20):.2f}"
            if not n:
                attrs["color"] = _quoted("#afb8c1")
        if lines:
            attrs["label"] = _html_lines(lines, small)
        attrs["tooltip"] = _quoted("\n".join(tip))
        attrs["labeltooltip"] = attrs["tooltip"]
        out.append(f"  {_quoted(edge.source)} -> {_quoted(edge.target)} "
                   f"[{', '.join(f'{k}={v}' for k, v in attrs.items())}];")
    if traffic is not None:
        cells = "".join(
            f'<TD BGCOLOR="{fill}"><FONT COLOR="{ink}">≥ {low:.0%}</FONT></TD>'
            for low, fill, ink in DROP_OFF_BANDS)
        cells += f'<TD BGCOLOR="{NO_VIEWS}">{html.escape(words["no_views"])}</TD>'
        out.append(
            '  graph [labelloc=b, labeljust=l, label=<<TABLE BORDER="0" CELLSPACING="2" '
            f'CELLPADDING="3"><TR><TD>{html.escape(words["legend"])}</TD>{cells}</TR>'
            f'<TR><TD COLSPAN="{len(DROP_OFF_BANDS) + 2}" ALIGN="LEFT">'
            f'{html.escape(words["width"])}</TD></TR></TABLE>>];')
    out.append("}")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- rendering


def render_svg(dot: str, timeout: float = DOT_TIMEOUT) -> str:
    """The SVG file dot draws from ``dot`` (text). Raises DotMissing when Graphviz is not
    installed, DotFailed when dot fails or takes longer than ``timeout`` seconds."""
    program = shutil.which("dot")
    if program is None:
        raise DotMissing("Graphviz's 'dot' program is not installed (Debian: apt-get install "
                         "graphviz; ./manage installs it)")
    try:
        proc = subprocess.run([program, "-Tsvg"], input=dot.encode("utf-8"),
                              capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise DotFailed(f"dot took longer than {timeout:.0f} s") from None
    except OSError as exc:
        raise DotMissing(f"cannot run Graphviz's 'dot': {exc}") from None
    if proc.returncode != 0 or b"<svg" not in proc.stdout:
        raise DotFailed(f"dot failed (status {proc.returncode}): "
                        f"{proc.stderr.decode('utf-8', 'replace').strip()[:500]}")
    return proc.stdout.decode("utf-8")


def svg_for_html(svg: str) -> str:
    """dot's SVG file without its XML declaration, doctype and comments: an ``<svg>`` element
    to place in a page, at its own size (its text stays readable; the page's box around it
    scrolls)."""
    start = svg.find("<svg")
    if start < 0:
        raise DotFailed("dot's output holds no <svg> element")
    element = re.sub(r"<!--.*?-->\s*", "", svg[start:], flags=re.S).strip()
    return element.replace("<svg ", '<svg role="img" ', 1)


def flow_map(flow: Flow, lang: str = "en", traffic: Traffic | None = None,
             both: bool = False) -> str:
    """The map as an SVG file (text): :func:`dot_source` drawn by :func:`render_svg`."""
    return render_svg(dot_source(flow, lang, traffic, both=both))
