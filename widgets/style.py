"""Content checks of the guide's text: what an editor should fix in ``flow.yaml``.

The loader (:mod:`widgets.flow`) refuses a file the guide cannot run; these checks find what it
can run but reads badly (docs/style-guide.md explains each rule):

* **untranslated**: the same words in both languages;
* **glossary**: a word the glossary says to avoid (e.g. "추적 번호" for the reference number);
  a label of Amazon's English site in Korean text without its Korean gloss in brackets the
  first time in that text;
* **speech level**: the guide speaks Korean in 해요체, so every sentence of its own ends in
  "…요"; phrases to say to an agent ("> " lines) and the ready-to-send message are in 합쇼체
  ("…니다", "…니까"); checklist lines are short phrases, not sentences; "당신", "귀하" and
  "…잖아요" are never used;
* **phrases to say**: every phrase (flow.yaml's ``phrases:``) has its English line, plain ASCII
  ending in "." or "?", and its Korean meaning in 합쇼체; no Korean "> " line (a phrase to say
  without its English) in any text;
* **ruled out**: :func:`ruled_out` finds, on a path, a text that speaks of what an answer on
  that path ruled out (an option's ``rules_out`` words, e.g. order records for a service
  problem).

Each finding names the node and field, like the loader's errors. ``notebooks/content.ipynb``
lists them; the tests require none.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .flow import Flow, Node, Term, Text, section_texts

#: How a text is read: "voice" (the guide's own sentences, 해요체), "say" (said or written to
#: Amazon, 합쇼체), "item" (a checklist line: a phrase, not a sentence), "label" (a button or
#: a title: a phrase or a 해요체 sentence).
VOICE, SAY, ITEM, LABEL = "voice", "say", "item", "label"

#: Words the guide's Korean never uses, and why.
NEVER_KO = {
    "당신": "a translated “you”: leave the person out, or say what they do",
    "귀하": "officialese for “you”",
    "잖아요": "“…잖아요” sounds pushy",
    "아마존에게": "에게 is for people: “아마존에”",
}

_SENTENCE_END = re.compile(r"(?<=[.?!])\s+")
_TRAILING = " \t.?!…\"'”’)]*:"
_HANGUL = re.compile(r"[\uac00-\ud7a3]")
_QUOTED = re.compile(r"“[^”]*”|‘[^’]*’|\"[^\"]*\"")


@dataclass(frozen=True)
class Finding:
    """One thing to fix: where (node id, or None for the interface texts; field; language)
    and what."""

    node: str | None
    field: str
    lang: str
    message: str

    def __str__(self) -> str:
        where = f"node {self.node!r}, " if self.node else ""
        return f"{where}field {self.field!r} ({self.lang}): {self.message}"


def texts(flow: Flow) -> Iterator[tuple[str | None, str, Text, str]]:
    """Every text of the flow, each once: (node id or None, field, text, how it is read); the
    interface texts, the steps', then those of the message and the case notes
    (:func:`widgets.flow.section_texts`)."""
    for key, text in flow.ui.items():
        yield None, f"ui.{key}", text, VOICE
    for node in flow:
        yield node.id, "title", node.title, LABEL
        yield node.id, "body", node.body, VOICE
        for field in ("prompt", "fine_print"):
            text = getattr(node, field)
            if text is not None:
                yield node.id, field, text, LABEL if field == "prompt" else VOICE
        if node.recap is not None:
            yield node.id, "recap", node.recap, ITEM
        for i, option in enumerate(node.options):
            yield node.id, f"options[{i}].label", option.label, LABEL
            if option.recap is not None:
                yield node.id, f"options[{i}].recap", option.recap, ITEM
            if option.opening is not None:
                yield node.id, f"options[{i}].opening", option.opening, SAY
    yield from section_texts(flow)


def phrase_texts(flow: Flow) -> Iterator[tuple[str | None, str, Text, str]]:
    """Every phrase to say, as :func:`texts` yields texts (its Korean meaning is read as SAY)."""
    for phrase in flow.phrases:
        yield None, f"phrases.{phrase.id}", phrase.text, SAY


def english_line(value: str) -> Iterator[str]:
    """Findings in a phrase's English line: plain ASCII (what a phone keyboard types), a
    sentence or a question."""
    if not value.isascii():
        yield f"“{value}”: an English line uses plain ASCII punctuation (' and \")"
    if not value.endswith((".", "?")):
        yield f"“{value}”: an English line ends with “.” or “?”"


def check(flow: Flow, extra: Iterable[tuple[str | None, str, Text, str]] = ()) -> list[Finding]:
    """Every finding in the flow's texts (:func:`texts` and the phrases; and in ``extra`` texts,
    given like :func:`texts` yields them), in order."""
    findings: list[Finding] = []
    for phrase in flow.phrases:
        for message in english_line(phrase.en):
            findings.append(Finding(None, f"phrases.{phrase.id}.en", "en", message))
    for node, field, text, reading in [*texts(flow), *phrase_texts(flow), *extra]:
        if any(line.strip().startswith("> ") for line in text.ko.splitlines()):
            findings.append(Finding(node, field, "ko", "a phrase to say (“> ”) without its "
                                    "English line: put it in phrases: with en and ko"))
        if text.ko == text.en and _HANGUL.search(text.ko) is None and \
                any(ch.isalpha() for ch in text.ko):
            findings.append(Finding(node, field, "ko", "the same text as in English: not translated"))
        for lang in ("ko", "en"):
            for message in _glossary(text(lang), lang, flow.glossary):
                findings.append(Finding(node, field, lang, message))
        for message in speech_level(text.ko, reading):
            findings.append(Finding(node, field, "ko", message))
    return findings


# --------------------------------------------------------------------------- glossary


def _glossary(value: str, lang: str, glossary: tuple[Term, ...]) -> Iterator[str]:
    plain = value.replace("**", "")
    for term in glossary:
        for word in term.avoid.get(lang, ()):
            pattern = re.escape(word) if lang == "ko" else rf"(?<![\w-]){re.escape(word)}(?![\w-])"
            if re.search(pattern, plain, flags=re.I):
                yield f"says {word!r}; the glossary's word is {getattr(term, lang)!r}"
    if lang == "ko":
        yield from _glosses(plain, glossary)


def _glosses(plain: str, glossary: tuple[Term, ...]) -> Iterator[str]:
    """Amazon's English labels in Korean text: the first of each is followed by its gloss."""
    taken: list[tuple[int, int]] = []
    for term in sorted((t for t in glossary if t.button), key=lambda t: -len(t.en)):
        first = True
        for match in re.finditer(rf"(?<![A-Za-z]){re.escape(term.en)}(?![A-Za-z])", plain):
            span = match.span()
            if any(a <= span[0] < b for a, b in taken):
                continue
            taken.append(span)
            if not first:
                continue
            first = False
            rest = plain[span[1]:].lstrip("’”\"'")
            if not rest.startswith(f"({term.ko})"):
                yield f"Amazon’s label {term.en!r} needs its gloss “({term.ko})” the first time"


# --------------------------------------------------------------------------- speech level


def sentences(value: str) -> Iterator[str]:
    """The sentences of a text: its lines (without a leading "- " or "> ") split after . ? !"""
    for line in value.splitlines():
        line = line.strip()
        if line.startswith(("- ", "> ")):
            line = line[2:]
        for sentence in _SENTENCE_END.split(line):
            if sentence.strip():
                yield sentence.strip()


def _ending(sentence: str) -> str:
    """The sentence's last word, without markup, punctuation or a closing bracket's text."""
    core = sentence.replace("**", "").rstrip(_TRAILING)
    if core.endswith(")") or core.endswith("）"):
        core = core[:core.rfind("(")].rstrip(_TRAILING)
    return core.split()[-1] if core.split() else ""


def speech_level(value: str, reading: str) -> Iterator[str]:
    """Speech-level findings in a Korean text read as ``reading`` (VOICE, SAY, ITEM, LABEL)."""
    for word, why in NEVER_KO.items():
        if word in value:
            yield f"uses {word!r}: {why}"
    if reading == VOICE and not re.search(r"[.?!]", value):
        reading = LABEL  # no sentence: a button's or a heading's words
    for raw in value.splitlines():
        line = raw.strip()
        say = line.startswith("> ") or reading == SAY
        for sentence in sentences(line):
            if not _HANGUL.search(sentence):
                continue
            bare = sentence.replace("**", "").strip()
            if reading == VOICE and not say and sentence.startswith("**") and \
                    sentence.rstrip(".: ").endswith("**"):
                continue  # a bold lead-in such as "**원하는 것.**"
            end = _ending(sentence)
            if say:
                if not re.search(r"(니다|니까|세요|까요)$", end):
                    yield f"“{bare}”: a phrase to say ends in 합쇼체 (…니다, …니까)"
            elif reading == VOICE:
                if not end.endswith("요") and "{" not in end:
                    yield f"“{bare}”: the guide’s sentences end in 해요체 (…요)"
            elif reading == ITEM:
                unquoted = _QUOTED.sub("", sentence)
                tail = _ending(unquoted) if unquoted.strip() else ""
                if re.search(r"(요|니다|다)$", tail):
                    yield f"“{bare}”: a checklist line is a phrase (…하기), not a sentence"
            elif reading == LABEL:
                if re.search(r"(니다|니까)$", end):
                    yield f"“{bare}”: a label or title is a phrase or a 해요체 sentence"


# --------------------------------------------------------------------------- what a path shows


def _node_texts(flow: Flow, node: Node, answers: dict[str, str],
                choice: str | None) -> Iterator[tuple[str, Text]]:
    yield "title", node.title
    yield "body", node.body
    for name in ("prompt", "fine_print", "recap"):
        if getattr(node, name) is not None:
            yield name, getattr(node, name)
    for i, option in enumerate(node.options):
        yield f"options[{i}].label", option.label
        if option.id == choice and option.recap is not None:
            yield f"options[{i}].recap", option.recap
    for phrase in flow.phrases_for(answers, node.say):
        yield f"phrases.{phrase.id}", phrase.text


def shown_on_path(flow: Flow, path) -> Iterator[tuple[str, str, Text]]:
    """What a visitor is shown along ``path`` (a :attr:`Flow.paths` entry): (node id, field,
    text), screen by screen, with the phrases each screen shows for the answers given by then."""
    answers: dict[str, str] = {}
    for node_id, choice in path:
        node = flow[node_id]
        for field, text in _node_texts(flow, node, dict(answers), choice):
            yield node_id, field, text
        if choice is not None:
            answers[node_id] = choice


def ruled_out(flow: Flow, path) -> list[Finding]:
    """Texts shown on ``path`` after an answer that rules out what they speak of: the words of
    that option's ``rules_out`` (e.g. order confirmations after "not about an order")."""
    findings: list[Finding] = []
    banned: dict[str, set[str]] = {"ko": set(), "en": set()}
    answers: dict[str, str] = {}
    for node_id, choice in path:
        node = flow[node_id]
        for field, text in _node_texts(flow, node, dict(answers), choice):
            for lang, words in banned.items():
                plain = text(lang).replace("**", "").lower()
                for word in sorted(words):
                    if word.lower() in plain:
                        findings.append(Finding(node_id, field, lang,
                                                f"says {word!r}, which an earlier answer on "
                                                "this path ruled out"))
        if choice is not None:
            answers[node_id] = choice
            for lang, words in node.option(choice).rules_out.items():
                banned[lang].update(words)
    return findings
