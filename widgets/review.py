"""The content review for editors of ``flow.yaml``: ``notebooks/content.ipynb`` calls :func:`review`.

:func:`review` loads and validates the flow file (the one ``GUIDE_FLOW`` names, else the
packaged ``widgets/flow.yaml``), read again at every call, so re-running the notebook's cell
after an edit shows the edit. It shows, as one HTML output:

- the file's problem, when the loader refuses it: the loader's message, naming the step
  (node) and the field, and nothing else (no traceback);
- the flow map without traffic (:mod:`widgets.flowmap`: every step by its titles, every answer
  as an arrow; dashed: taken only after certain earlier answers);
- every screen in Korean and English side by side as the visitor sees it: title, body (with
  the guide's own markup rendering), the question and its answers, the Next button, the
  checklist lines a screen and its answers add, the panels its roles open;
- every path from the first screen to the last, with its number of screens;
- the texts of the ready-to-send message and of the case notes (the file's ``messages:`` and
  ``casenotes:``), Korean and English side by side by section and key, with an example message
  in both languages;
- the content checks' findings (:func:`widgets.style.check`: missing translations, glossary,
  speech level), each naming step (or section and key), field and language.

Every text of the file is escaped before it is shown. This module imports the guide's view
(for its body rendering) but not pandas; the guide never imports it.
"""

from __future__ import annotations

import dataclasses
import html
import logging
import os
from pathlib import Path

from . import messages, style
from .engine import OUTCOME_KEYS
from .flow import (DEFAULT_PATH, FLOW_ENV, LANGUAGES, Flow, FlowError, Node, load_flow,
                   section_texts)
from .flowmap import DotFailed, DotMissing, flow_map, svg_for_html
from .markup import render_body

logger = logging.getLogger(__name__)

__all__ = ["review", "review_html", "flow_path", "load", "error_html", "screens_html",
           "screen_html", "paths_html", "texts_html", "findings_html", "map_html"]

LANGUAGE_NAMES = {"ko": "한국어", "en": "English"}

CSS = """
<style>
.guide-review { font-family: system-ui, -apple-system, "Segoe UI", "Noto Sans CJK KR",
  "Noto Sans KR", sans-serif; color: #1b1b1b; max-width: 80rem; }
.guide-review h2 { font-size: 1.25rem; margin: 1.2rem 0 0.4rem; }
.guide-review .review-error { border: 2px solid #c0392b; background: #fdf0ee; padding: 0.6rem 1rem;
  border-radius: 6px; }
.guide-review .review-error code { white-space: pre-wrap; font-size: 0.95rem; }
.guide-review .review-map { overflow: auto; max-height: 70rem; border: 1px solid #d0d7de;
  border-radius: 6px; padding: 0.4rem; }
.guide-review .review-screen { border: 1px solid #d0d7de; border-radius: 6px; margin: 0.8rem 0;
  padding: 0.4rem 0.8rem; }
.guide-review .review-screen > h3 { font-size: 0.9rem; color: #57606a; margin: 0.2rem 0;
  font-weight: 600; }
.guide-review .review-pair { display: grid; grid-template-columns: 1fr 1fr; gap: 1rem; }
.guide-review .review-pair > div { min-width: 0; }
.guide-review .review-pair h4 { font-size: 1.15rem; margin: 0.3rem 0; }
.guide-review .review-option { border: 1px solid #8c959f; border-radius: 4px; padding: 0.3rem 0.6rem;
  margin: 0.25rem 0; background: #f6f8fa; }
.guide-review .review-button { display: inline-block; border: 1px solid #146eb4; color: #146eb4;
  border-radius: 4px; padding: 0.2rem 0.6rem; margin: 0.3rem 0; }
.guide-review .review-recap { color: #1a7f37; font-size: 0.9rem; margin: 0.15rem 0 0 0.6rem; }
.guide-review .review-note { color: #57606a; font-size: 0.85rem; }
.guide-review table { border-collapse: collapse; font-size: 0.9rem; }
.guide-review th, .guide-review td { border-bottom: 1px solid #e5e5e5; padding: 0.2rem 0.5rem;
  text-align: left; vertical-align: top; }
.guide-review td.num { text-align: right; }
</style>
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def flow_path() -> Path:
    """The flow file the guide uses: ``$GUIDE_FLOW``, else the packaged flow.yaml."""
    return Path(os.environ.get(FLOW_ENV) or DEFAULT_PATH)


def load(path: str | Path | None = None) -> Flow:
    """Read and validate the flow file (``path``, else :func:`flow_path`), afresh (no cache).
    Raises FlowError naming the step and field at fault."""
    return load_flow(path if path is not None else flow_path())


def error_html(error: FlowError) -> str:
    """The loader's complaint, plainly: its message, naming step and field."""
    where = []
    if error.node is not None:
        where.append(f"<li>step (node): <code>{_e(error.node)}</code></li>")
    if error.field is not None:
        where.append(f"<li>field: <code>{_e(error.field)}</code></li>")
    if error.source is not None:
        where.append(f"<li>file: <code>{_e(error.source)}</code></li>")
    return ("<div class='review-error' role='alert'><p><b>The flow file cannot be used: fix it "
            "and run the cell again. · 흐름 파일에 오류가 있습니다. 고친 뒤 다시 실행하세요.</b></p>"
            f"<p><code>{_e(error)}</code></p><ul>{''.join(where)}</ul></div>")


# --------------------------------------------------------------------------- the map


def map_html(flow: Flow, lang: str = "ko") -> str:
    """The flow map without traffic, every title in both languages (``lang`` first)."""
    try:
        svg = flow_map(flow, lang, both=True)
    except DotMissing as exc:
        return f"<p class='review-error' role='status'>No flow map: {_e(exc)}</p>"
    except DotFailed as exc:
        logger.warning("content review: the flow map failed: %s", exc)
        return f"<p class='review-error' role='status'>No flow map: {_e(exc)}</p>"
    return (f"<div class='review-map'>{svg_for_html(svg)}</div>"
            "<p class='review-note'>Boxes are screens (rounded: a question; double: the last "
            "screen; thick: the first); arrows are answers and Next buttons; a dashed arrow is "
            "taken only after certain earlier answers (hover it).</p>")


# --------------------------------------------------------------------------- the screens


def _column(flow: Flow, node: Node, lang: str) -> str:
    parts = [f"<h4>{_e(node.title(lang))}</h4>", render_body(node.body(lang))]
    if node.fine_print is not None:
        parts.append(f"<p class='review-note'><small>{_e(node.fine_print(lang))}</small></p>")
    if node.kind == "choice":
        assert node.prompt is not None
        kind = "dropdown" if node.widget == "dropdown" else "buttons"
        parts.append(f"<p><b>{_e(node.prompt(lang))}</b> <span class='review-note'>({kind})</span></p>")
        for option in node.options:
            recap = (f"<div class='review-recap'>✓ {_e(option.recap(lang))}</div>"
                     if option.recap is not None else "")
            opening = (f"<div class='review-note'>✉ {_e(option.opening(lang))}</div>"
                       if option.opening is not None else "")
            parts.append(f"<div class='review-option'>{_e(option.label(lang))}{recap}"
                         f"{opening}</div>")
        parts.append(f"<span class='review-button'>{_e(flow.ui['continue'](lang))}</span>"
                     if node.widget == "dropdown" else "")
    elif node.kind == "info":
        parts.append(f"<span class='review-button'>{_e(flow.ui['next'](lang))}</span>")
    else:
        parts.append(f"<p><b>{_e(flow.ui['recap_title'](lang))}</b> <span class='review-note'>"
                     "(the checklist: the ✓ lines of the screens and answers of the path "
                     "taken)</span></p>")
    if node.recap is not None:
        parts.append(f"<div class='review-recap'>✓ {_e(node.recap(lang))}</div>")
    if "message" in node.roles:
        parts.append("<p class='review-note'>+ the ready-to-send message builder</p>")
    if "outcome" in node.roles:
        answers = " · ".join(_e(flow.ui[key](lang)) for key in OUTCOME_KEYS.values())
        parts.append(f"<p class='review-note'>+ {_e(flow.ui['outcome_question'](lang))} "
                     f"{answers}</p>")
    return f"<div lang='{lang}'>{''.join(parts)}</div>"


def screen_html(flow: Flow, node: Node) -> str:
    """One screen, Korean and English side by side."""
    roles = f" · roles: {_e(', '.join(sorted(node.roles)))}" if node.roles else ""
    first = " · first screen" if node.id == flow.start else ""
    columns = "".join(_column(flow, node, lang) for lang in LANGUAGES)
    return (f"<section class='review-screen' id='review-{_e(node.id)}'>"
            f"<h3>{_e(node.id)} · {_e(node.kind)}{first}{roles}</h3>"
            f"<div class='review-pair'>{columns}</div></section>")


def screens_html(flow: Flow) -> str:
    """Every screen, in the order of the flow file."""
    head = "".join(f"<b>{LANGUAGE_NAMES[lang]}</b>" for lang in LANGUAGES)
    return (f"<div class='review-pair review-note'>{head}</div>"
            + "".join(screen_html(flow, node) for node in flow))


# --------------------------------------------------------------------------- the paths


def path_text(flow: Flow, path: tuple[tuple[str, str | None], ...], lang: str) -> str:
    """A path as the answers given on it, each with its question on hover, as HTML."""
    steps = []
    for node_id, option_id in path:
        node = flow.nodes[node_id]
        if option_id is not None:
            steps.append(f"<span title='{_e(node.title(lang))}'>"
                         f"{_e(node.option(option_id).label(lang))}</span>")
    return " → ".join(steps) or "–"


def paths_html(flow: Flow) -> str:
    """Every path from the first screen to the last: its number of screens and its answers."""
    counts = [len(path) for path in flow.paths]
    rows = "".join(
        f"<tr><td class='num'>{i}</td><td class='num'>{len(path)}</td>"
        + "".join(f"<td lang='{lang}'>{path_text(flow, path, lang)}</td>" for lang in LANGUAGES)
        + "</tr>"
        for i, path in enumerate(flow.paths, 1))
    head = "".join(f"<th>answers ({LANGUAGE_NAMES[lang]})</th>" for lang in LANGUAGES)
    return (f"<p>{len(counts)} paths, from {min(counts)} to {max(counts)} screens each "
            f"(the last screen included).</p>"
            f"<details open><summary>Every path</summary><table><thead><tr><th>#</th>"
            f"<th>screens</th>{head}</tr></thead><tbody>{rows}</tbody></table></details>")


# --------------------------------------------------------------------------- the message, the notes


#: What the example message is written from (as a visitor might type it).
EXAMPLE = {"order_number": "123-4567890-1234567", "date": "Nov 20",
           "detail": "I was charged the same amount twice"}


def texts_html(flow: Flow) -> str:
    """The texts of the message builder and the case notes, by section and key, Korean and
    English side by side; then an example message (the flow's default want, every typed field,
    the supervisor request) in both languages."""
    rows = "".join(
        f"<tr><td><code>{_e(field)}</code></td>"
        + "".join(f"<td lang='{lang}'>{_e(text(lang))}</td>" for lang in LANGUAGES) + "</tr>"
        for _, field, text, _ in section_texts(flow))
    head = "".join(f"<th>{LANGUAGE_NAMES[lang]}</th>" for lang in LANGUAGES)
    example = messages.build_both(messages.MessageInput(
        want=flow.messages.default_want, escalate=True, **EXAMPLE), flow=flow)
    columns = "".join(f"<div lang='{lang}'><pre style='white-space: pre-wrap'>{_e(example[lang])}"
                      "</pre></div>" for lang in LANGUAGES)
    return (f"<table><thead><tr><th>section.key</th>{head}</tr></thead><tbody>{rows}</tbody>"
            "</table><p class='review-note'>An example message (what a visitor would send, "
            f"with every field filled in and the supervisor request ticked):</p>"
            f"<div class='review-pair'>{columns}</div>")


# --------------------------------------------------------------------------- the findings


def findings_html(flow: Flow) -> str:
    """The content checks' findings (widgets.style.check), one row each, or that there are none."""
    findings = style.check(flow)
    if not findings:
        return "<p>No findings: the content checks found nothing to fix. · 고칠 내용이 없습니다.</p>"
    columns = [f.name for f in dataclasses.fields(findings[0])]
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    rows = "".join("<tr>" + "".join(f"<td>{_e('' if getattr(f, c) is None else getattr(f, c))}</td>"
                                    for c in columns) + "</tr>" for f in findings)
    return (f"<p>{len(findings)} findings.</p>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")


# --------------------------------------------------------------------------- all of it


def _part(what: str, draw, *args) -> str:
    try:
        return draw(*args)
    except Exception as exc:  # noqa: BLE001 - the other parts are still shown
        logger.exception("content review: %s failed", what)
        return f"<p class='review-error' role='status'>{_e(what)} cannot be shown: {_e(exc)}</p>"


def review_html(path: str | Path | None = None) -> str:
    """The whole review as HTML (see the module docstring)."""
    source = Path(path) if path is not None else flow_path()
    try:
        flow = load(source)
    except FlowError as error:
        return f"{CSS}<div class='guide-review'>{error_html(error)}</div>"
    parts = [
        f"<p class='review-note'>From <code>{_e(source)}</code>: {len(flow.nodes)} screens, "
        f"{len(flow.paths)} paths. · 화면 {len(flow.nodes)}개, 경로 {len(flow.paths)}개.</p>",
        "<h2>Flow map · 흐름도</h2>", _part("the flow map", map_html, flow),
        "<h2>Findings · 점검 결과</h2>", _part("the findings", findings_html, flow),
        "<h2>Every screen · 모든 화면</h2>", _part("the screens", screens_html, flow),
        "<h2>Every path · 모든 경로</h2>", _part("the paths", paths_html, flow),
        "<h2>The message and the case notes · 메시지와 문의 기록</h2>",
        _part("the texts of the message and the case notes", texts_html, flow),
    ]
    return f"{CSS}<div class='guide-review'>{''.join(parts)}</div>"


def review(path: str | Path | None = None):
    """The review as a notebook output (an IPython HTML object)."""
    from IPython.display import HTML

    return HTML(review_html(path))
