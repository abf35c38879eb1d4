"""Quote tables of benchmarks/RESULTS.md in the documentation, so that figures are not copied
by hand.

A quote in a Markdown file is::

    <!-- results: SECTION N -->
    (the N-th table of RESULTS.md's section SECTION, filled in here)
    <!-- end results -->

``python docs/quote_results.py`` rewrites the quotes in README.md and docs/*.md from
RESULTS.md (``./manage bench`` runs it after the benchmarks); ``--check`` changes nothing and
exits 1 when a quote differs from RESULTS.md (tests/test_docs.py checks the same).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
QUOTE = re.compile(r"(<!-- results: (\w+) (\d+) -->\n)(.*?)(<!-- end results -->)", re.S)


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def tables(results: str, section: str) -> list[str]:
    """The tables (runs of lines starting with ``|``) of a section of RESULTS.md."""
    match = re.search(rf"<!-- begin {re.escape(section)} -->\n(.*?)<!-- end {re.escape(section)} -->",
                      results, re.S)
    if match is None:
        raise KeyError(f"benchmarks/RESULTS.md has no section {section!r}")
    found, current = [], []
    for line in match.group(1).splitlines():
        if line.startswith("|"):
            current.append(line)
        elif current:
            found.append("\n".join(current) + "\n")
            current = []
    if current:
        found.append("\n".join(current) + "\n")
    return found


def quote(text: str, results: str) -> str:
    """``text`` with every quote filled in from ``results``."""
    def fill(match: re.Match[str]) -> str:
        section, number = match.group(2), int(match.group(3))
        found = tables(results, section)
        if not 1 <= number <= len(found):
            raise KeyError(f"RESULTS.md's section {section!r} has {len(found)} tables, not {number}")
        return match.group(1) + found[number - 1] + match.group(5)
    return QUOTE.sub(fill, text)


def main(argv: list[str]) -> int:
    check = "--check" in argv
    results = RESULTS.read_text()
    status = 0
    for path in documents():
        text = path.read_text()
        new = quote(text, results)
        if new != text:
            if check:
                print(f"{path.relative_to(ROOT)}: figures differ from benchmarks/RESULTS.md", file=sys.stderr)
                status = 1
            else:
                path.write_text(new)
                print(f"updated {path.relative_to(ROOT)}")
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
