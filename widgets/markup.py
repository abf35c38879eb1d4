"""The guide's HTML: the flow's body markup, the phrases to say, the notice of a stopped guide.

Pure Python (no ipywidgets): the view (widgets/view/), the call sheet (widgets/callsheet.py) and
the content review use it. Everything is escaped first; only the markup made here is HTML.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import TYPE_CHECKING

from .flow import LANGUAGES, Flow

if TYPE_CHECKING:
    from .engine import Engine

__all__ = ["COPY_JS", "CSS", "CSS_PATH", "offline_markup", "phrases_markup", "render_body",
           "inline"]

_PHONE = re.compile(r"\+\d[\d ]{6,}\d")
_BOLD = re.compile(r"\*\*(.+?)\*\*")

#: The guide's stylesheet (widgets/guide.css), as the first widget of the guide shows it.
CSS_PATH = Path(__file__).with_name("guide.css")
CSS = "\n<style>\n" + CSS_PATH.read_text(encoding="utf-8") + "</style>\n"

#: The copy button's click handler: the Clipboard API where the page is a secure context,
#: else select the text and copy it the old way; then say "Copied" on the button.
COPY_JS = (
    "(function(b){var t=b.closest('.guide-message').querySelector('textarea');"
    "var done=function(){b.textContent=b.dataset.done;};"
    "var old=function(){t.focus();t.select();try{document.execCommand('copy');}catch(e){}done();};"
    "if(navigator.clipboard&&window.isSecureContext){"
    "navigator.clipboard.writeText(t.value).then(done,old);}else{old();}})(this)"
)


def render_body(text: str) -> str:
    """Flow body markup → HTML. Escapes everything first; then paragraphs (blank lines),
    bullets ("- "), example phrases ("> "), **bold** and tel: links for phone numbers."""
    blocks: list[str] = []
    for chunk in re.split(r"\n\s*\n", text.strip()):
        lines = [line.strip() for line in chunk.splitlines() if line.strip()]
        if all(line.startswith("- ") for line in lines):
            items = "".join(f"<li>{inline(line[2:])}</li>" for line in lines)
            blocks.append(f"<ul>{items}</ul>")
        elif all(line.startswith("> ") for line in lines):
            blocks.extend(f"<blockquote>{inline(line[2:])}</blockquote>" for line in lines)
        else:
            blocks.append(f"<p>{inline(' '.join(lines))}</p>")
    return "".join(blocks)


def inline(text: str) -> str:
    """One line of body markup → HTML: escaped, then **bold** and tel: links."""
    text = html.escape(text, quote=True)
    text = _BOLD.sub(r"<strong>\1</strong>", text)
    return _PHONE.sub(
        lambda m: f'<a href="tel:{m.group(0).replace(" ", "")}">{m.group(0)}</a>', text)


def phrases_markup(engine: Engine) -> str:
    """The phrases to say at the current step (its node's ``say:`` stages, for the answers
    given so far), in call order: each English line large and selectable, in its own element
    with ``lang="en"``; on a Korean screen its Korean meaning under it, smaller. Empty when the
    step shows none."""
    node = engine.node
    if not node.say:
        return ""
    phrases = engine.flow.phrases_for(engine.choices, node.say)
    if not phrases:
        return ""
    items = []
    for phrase in phrases:
        meaning = ("" if engine.lang == "en" else
                   f"<span class='guide-phrase-meaning' lang='{engine.lang}'>"
                   f"{html.escape(phrase.text(engine.lang))}</span>")
        items.append(f"<li class='guide-phrase'><span class='guide-phrase-en' lang='en'>"
                     f"{html.escape(phrase.en)}</span>{meaning}</li>")
    title = engine.flow.ui.get("say_title")
    heading = "" if title is None else f"<h3>{html.escape(title(engine.lang))}</h3>"
    return (f"<section class='guide-say'>{heading}"
            f"<ul class='guide-phrases'>{''.join(items)}</ul></section>")


def offline_markup(flow: Flow) -> str:
    """What the page shows when the guide has stopped on the server (guide.js): an empty alert
    region, and in a ``<template>`` (inert, not shown) the flow's ``offline``,
    ``offline_reach`` and ``reload`` texts in every language, for the page script to put in it.
    The same for every visitor: nothing of the visit, nothing of the link."""
    ui = flow.ui
    texts = "".join(
        f"<div lang='{code}'><p><strong>{html.escape(ui['offline'](code))}</strong></p>"
        f"{render_body(ui['offline_reach'](code))}</div>" for code in LANGUAGES)
    label = " · ".join(f"<span lang='{code}'>{html.escape(ui['reload'](code))}</span>"
                       for code in LANGUAGES)
    return ("<div class='guide-offline' role='alert' tabindex='-1'></div>"
            f"<template class='guide-offline-texts'>{texts}"
            f"<p><a class='guide-offline-reload'>{label}</a></p></template>")
