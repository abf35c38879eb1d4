"""The call sheet: one screen a person keeps beside the phone, and prints.

It holds Amazon's number and the way online (the flow's ``callsheet_reach`` text), what the
call is about (the answer at the decision with the role ``subject``), the agent names and
reference numbers of the visitor's case notes, and the English lines to say in the order of a
call (``Flow.phrases_for``), each with its Korean meaning under it on a Korean sheet.

:func:`sheet_html` is the sheet as HTML, every text escaped; the view's CallSheetPanel shows it
on the steps whose node has the role ``callsheet``. Its print button (``.guide-print``) is wired
by the page script (guide.js: ``window.print()``, no inline script); the print stylesheet in
guide.css then hides everything but the sheet.
"""

from __future__ import annotations

import html
from typing import Iterable, Mapping

from . import casenotes
from .flow import Flow
from .markup import render_body  # the guide's body markup (escaped; tel: links)

#: The case-notes columns the sheet lists (the ones a caller needs at hand).
NOTE_COLUMNS: tuple[str, ...] = ("when", casenotes.CHANNEL, "agent", "reference")
#: The case-notes columns that make a note worth listing on the sheet.
_WORTH = ("agent", "reference")


def subject(flow: Flow, choices: Mapping[str, str], lang: str) -> str | None:
    """What the call is about: the label of the answer at the ``subject`` decision."""
    for node_id in flow.role_nodes("subject"):
        option = choices.get(node_id)
        if option is not None and option in flow[node_id].option_ids:
            return flow[node_id].option(option).label(lang)
    return None


def sheet_html(flow: Flow, lang: str, choices: Mapping[str, str],
               notes: Iterable[casenotes.Note] = ()) -> str:
    """The call sheet for a path whose answers are ``choices``, in ``lang``."""
    def ui(key: str) -> str:
        return html.escape(flow.ui[key](lang))

    parts = [f"<div class='guide-callsheet' lang='{lang}'>",
             f"<h3>{ui('callsheet_title')}</h3>",
             f"<p class='guide-callsheet-intro'>{ui('callsheet_intro')}</p>",
             f"<p class='guide-print-row'><button type='button' class='guide-print'>"
             f"{ui('callsheet_print')}</button></p>",
             f"<div class='guide-callsheet-reach'>{render_body(flow.ui['callsheet_reach'](lang))}"
             "</div>"]
    about = subject(flow, choices, lang)
    if about:
        parts.append(f"<h4>{ui('callsheet_want')}</h4><p class='guide-callsheet-want'>"
                     f"{html.escape(about)}</p>")
    listed = [n for n in notes if any(getattr(n, c) for c in _WORTH)]
    if listed:
        head = "".join(f"<th scope='col'>{html.escape(casenotes.texts(flow).headers[c](lang))}</th>"
                       for c in NOTE_COLUMNS)
        rows = "".join("<tr>" + "".join(
            f"<td>{html.escape(casenotes.cell(n, c, lang, flow))}</td>" for c in NOTE_COLUMNS)
            + "</tr>" for n in listed)
        parts.append(f"<h4>{ui('callsheet_notes')}</h4><table class='guide-callsheet-notes'>"
                     f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
    lines = flow.phrases_for(choices)  # in call order; none for a flow without phrases
    if lines:
        items = []
        for phrase in lines:
            meaning = (f"<span class='guide-say-ko' lang='ko'>{html.escape(phrase.ko)}</span>"
                       if lang == "ko" else "")
            items.append(f"<li><span class='guide-say-en' lang='en'>{html.escape(phrase.en)}"
                         f"</span>{meaning}</li>")
        parts.append(f"<h4>{ui('callsheet_say')}</h4>"
                     f"<ol class='guide-callsheet-say'>{''.join(items)}</ol>")
    parts.append("</div>")
    return "".join(parts)
