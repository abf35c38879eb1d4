"""No step of flow.yaml is named in code: a step's id appears only in flow.yaml and the tests.

What the code needs to know about a step is declared on it in flow.yaml (roles, escalate,
weight, drop_off; see widgets/flow/), so renaming, splitting or moving a step is an edit of
flow.yaml alone. This test looks for string literals equal to a step id: in Python through the
``ast`` module (docstrings aside: they explain, they do not decide), in the page script through
its quoted strings (comments aside). Several ids are ordinary words ("order", "channel",
"phone", "kind"), so a literal that is the same word with another meaning is allowed at the one
place it is defined, listed in ALLOWED with the reason.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
import yaml

from conftest import FLOW_2024
from widgets.flow import DEFAULT_PATH

ROOT = Path(__file__).resolve().parents[1]
#: The steps of the packaged flow and of the guide's 2024 flow (tests/fixtures): a name that
#: was a step's stays suspicious in code.
STEP_IDS = frozenset(
    node["id"] for path in (DEFAULT_PATH, FLOW_2024)
    for node in yaml.safe_load(path.read_text(encoding="utf-8"))["nodes"])
PYTHON = sorted((ROOT / "widgets").rglob("*.py")) + sorted((ROOT / "benchmarks").glob("*.py"))
SQL = sorted((ROOT / "widgets").rglob("*.sql"))
#: The log's schema history: migrations that ran on existing stores are never edited. Versions 2
#: and 3 kept columns named after steps; version 4 replaced them with per-step answers.
SQL_HISTORY = frozenset(f"widgets/log/migrations/{dialect}/{name}.sql"
                        for dialect in ("sqlite", "postgresql")
                        for name in ("0002_sessions_rollup", "0003_path_answers"))
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SCRIPTS = sorted((ROOT / "share").rglob("*.js"))

#: (file, literal, where): why that literal there is not a step's id.
ALLOWED: dict[tuple[str, str, str], str] = {
    ("widgets/flow/nodes.py", "kind", "read_node"): "the flow file's node field `kind`",
    ("widgets/flow/nodes.py", "escalate", "read_node"): "the flow file's option field `escalate`",
    ("widgets/casenotes.py", "channel", "CHANNEL"):
        "the case-notes column `channel`, a header of the visitor's saved files",
    ("widgets/flow/texts.py", "channel", "NOTE_COLUMNS"):
        "the case-notes column `channel`, whose header flow.yaml's casenotes: gives",
    ("widgets/demo.py", "phone", "OUTCOME_WEIGHTS"):
        "an option id of a contact decision (the answer `phone`), not the step `phone`",
    ("widgets/summary.py", "kind", "_COLUMNS"): "the summary's column `kind` (of a table row)",
    ("widgets/summary.py", "kind", "summarize"): "the summary's column `kind` (of a table row)",
    ("widgets/summary.py", "channel", "_COLUMNS"): "the outcomes table's column `channel`",
    ("widgets/summary.py", "channel", "summarize"): "the outcomes table's column `channel`",
    ("widgets/dashboard/words.py", "channel", "labelled"): "the outcomes table's column `channel`",
}

#: Files still being moved to the flow's roles (strict xfail: once they name no step, the test
#: fails until their entry here is removed). None left.
PENDING: dict[str, str] = {}


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                found.add(id(body[0].value))
    return found


def python_literals(source: str, ids: frozenset[str] = STEP_IDS) -> list[tuple[str, str, int]]:
    """(literal, where, line) for each string literal in ``source`` equal to an id of ``ids``;
    ``where`` is the enclosing function or class, or the name assigned at module level."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    found: list[tuple[str, str, int]] = []

    def visit(node: ast.AST, where: str) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            where = node.name if where == "<module>" else f"{where}.{node.name}"
        elif where == "<module>" and isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [t.id for t in targets if isinstance(t, ast.Name)]
            if names:
                where = names[0]
        if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and id(node) not in skip and node.value in ids:
            found.append((node.value, where, node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child, where)

    visit(tree, "<module>")
    return found


_JS_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)
_JS_STRING = re.compile(r"\"((?:[^\"\\\n]|\\.)*)\"|'((?:[^'\\\n]|\\.)*)'")


def script_literals(source: str, ids: frozenset[str] = STEP_IDS) -> list[tuple[str, int]]:
    """(literal, line) for each quoted string in a script equal to an id of ``ids``."""
    found = []
    for match in _JS_STRING.finditer(_JS_COMMENT.sub(lambda m: re.sub(r"[^\n]", " ", m[0]),
                                                     source)):
        value = match[1] if match[1] is not None else match[2]
        if value in ids:
            found.append((value, source.count("\n", 0, match.start()) + 1))
    return found


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _python_sources() -> list[tuple[str, str]]:
    sources = [(_relative(p), p.read_text(encoding="utf-8")) for p in PYTHON]
    for notebook in NOTEBOOKS:
        cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        sources.append((_relative(notebook), "\n".join(
            line for line in code.splitlines() if not line.lstrip().startswith(("%", "!")))))
    return sources


@pytest.mark.parametrize("name, source", [
    pytest.param(name, source, id=name, marks=[pytest.mark.xfail(
        reason=PENDING[name], strict=True)] if name in PENDING else [])
    for name, source in _python_sources()])
def test_no_step_id_in_python(name, source):
    named = [(literal, where, line) for literal, where, line in python_literals(source)
             if (name, literal, where) not in ALLOWED]
    assert not named, f"{name} names steps of flow.yaml: " + ", ".join(
        f"{literal!r} at line {line} ({where})" for literal, where, line in named)


@pytest.mark.parametrize("path", SCRIPTS, ids=_relative)
def test_no_step_id_in_the_page_script(path):
    named = script_literals(path.read_text(encoding="utf-8"))
    assert not named, f"{_relative(path)} names steps of flow.yaml: {named}"


def sql_literals(text: str) -> set[str]:
    """The quoted string literals of SQL text, comments aside."""
    return set(re.findall(r"'([^']*)'", re.sub(r"--[^\n]*", "", text)))


@pytest.mark.parametrize("path", SQL, ids=_relative)
def test_no_step_id_in_the_log_schema(path):
    """The log's SQL names no step (its history aside: see SQL_HISTORY)."""
    named = sorted(sql_literals(path.read_text(encoding="utf-8")) & STEP_IDS)
    if _relative(path) in SQL_HISTORY:
        return
    assert not named, f"{_relative(path)} names steps of flow.yaml: {named}"


def test_the_schema_history_still_names_steps():
    """The exemption above is for files that need it (and the scan finds step names in SQL)."""
    for name in SQL_HISTORY:
        text = (ROOT / name).read_text(encoding="utf-8")
        assert sql_literals(text) & STEP_IDS, name


def test_every_allowed_literal_is_still_there():
    """An entry of ALLOWED that no longer matches anything is removed (the list stays short)."""
    seen = {(name, literal, where) for name, source in _python_sources()
            for literal, where, _ in python_literals(source)}
    assert set(ALLOWED) <= seen, sorted(set(ALLOWED) - seen)


# ------------------------------------------------------------------ the scanners themselves


def test_the_python_scan_finds_a_step_named_in_code():
    source = '''
"""Module doc naming 'channel'."""
SHOWN = ("done",)

def render(node, choices):
    """Shows the message at "channel"."""
    if node.id == "channel" or choices.get('helped') == "no":
        return f"{node.id}" + "order"
'''
    assert python_literals(source) == [
        ("done", "SHOWN", 3), ("channel", "render", 7), ("helped", "render", 7),
        ("order", "render", 8)]


def test_the_script_scan_finds_a_step_named_in_code():
    source = ('// the "channel" step\nvar a = "channel", b = \'sign-in\';\n'
              '/* "done" */ var c = "done-ish", d = "phone";\n')
    assert script_literals(source) == [("channel", 2), ("sign-in", 2), ("phone", 3)]
