"""The documentation: a short README with links by audience, pages in docs/ whose links work,
benchmark figures quoted from benchmarks/RESULTS.md, and a settings reference holding every
setting the code reads."""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs"))
import quote_results  # noqa: E402

README = ROOT / "README.md"
SETTINGS = ROOT / "docs" / "settings.md"
PAGES = ["operators.md", "settings.md", "security.md", "editors.md", "developers.md", "dashboard.md"]
ENV_NAME = re.compile(r"^[A-Z][A-Z0-9]*(_[A-Z0-9]+)+$")


def documents() -> list[Path]:
    return quote_results.documents()


# ------------------------------------------------------------------------------------ structure


def test_readme_is_short_and_links_every_audience_page() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= 150
    for page in PAGES + ["style-guide.md"]:
        assert f"](docs/{page}" in text, page
    for kept in ("## Two commands", "./manage app", "./manage test", "docs/screenshot.png",
                 "MIT", "not affiliated with Amazon", "3.11"):
        assert kept in text, kept


def test_every_audience_page_exists_and_its_relative_links_lead_to_files() -> None:
    paths = documents()
    assert {p.name for p in paths} >= set(PAGES)
    for path in paths:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text()):
            if re.match(r"[a-z]+:", target):
                continue
            assert (path.parent / target).exists(), f"{path.name}: {target}"


def test_no_service_snippet_differs_from_the_shipped_units() -> None:
    """A systemd snippet in the docs is a part of a unit in deploy/, not a variant of it."""
    units = "\n".join(p.read_text() for p in (ROOT / "deploy").glob("*.service"))
    for path in documents():
        for block in re.findall(r"```ini\n(.*?)```", path.read_text(), re.S):
            for line in block.splitlines():
                assert line in units.splitlines(), f"{path.name}: {line!r} is not in deploy/*.service"


# ------------------------------------------------------------------------------- quoted figures


def test_quoted_figures_are_those_of_results_md() -> None:
    results = quote_results.RESULTS.read_text()
    quoted = 0
    for path in documents():
        text = path.read_text()
        quoted += len(quote_results.QUOTE.findall(text))
        assert quote_results.quote(text, results) == text, (
            f"{path.name}: figures differ from benchmarks/RESULTS.md (python docs/quote_results.py)")
    assert quoted >= 4


def test_a_changed_result_is_noticed() -> None:
    results = quote_results.RESULTS.read_text()
    text = (ROOT / "docs" / "operators.md").read_text()
    changed = results.replace("110 / 91 / 92 MB", "999 / 91 / 92 MB")
    assert changed != results
    assert quote_results.quote(text, changed) != text


# --------------------------------------------------------------------------- settings reference


def reference() -> str:
    """The settings reference's table rows."""
    return "\n".join(line for line in SETTINGS.read_text().splitlines() if line.startswith("|"))


def environment_variables_read() -> dict[str, str]:
    """Environment variables the package, the deployment scripts and ./manage read."""
    found: dict[str, str] = {}
    for folder in ("widgets", "deploy"):
        for path in (ROOT / folder).rglob("*.py"):
            where = str(path.relative_to(ROOT))
            for node in ast.walk(ast.parse(path.read_text())):
                # os.environ.get("X"), os.getenv("X"), env.get("X"), _env_limit("X", ...)
                if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
                    func = node.func
                    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                    if name in {"get", "getenv", "pop", "_env_limit"}:
                        value = node.args[0].value
                        if isinstance(value, str) and ENV_NAME.match(value):
                            found.setdefault(value, where)
                # os.environ["X"]
                if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
                    value = node.slice.value
                    if isinstance(value, str) and ENV_NAME.match(value) and "environ" in ast.unparse(node.value):
                        found.setdefault(value, where)
                # ENV = "X", MARK_ENV = "X", FLOW_ENV = "X"
                if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                    for target in node.targets:
                        if isinstance(target, ast.Name) and re.search(r"(^|_)ENV$", target.id):
                            found.setdefault(str(node.value.value), where)
    manage = (ROOT / "manage").read_text()
    assigned = set(re.findall(r"(?m)^\s*(?:export\s+|local\s+)?([A-Z_][A-Z0-9_]*)=", manage))
    for name in re.findall(r"\$\{?([A-Z][A-Z0-9_]*)(?![A-Za-z0-9_])", manage):
        if name not in assigned | {"PATH"}:
            found.setdefault(name, "manage")
    found.setdefault("GUIDE_DATA_DIR", "manage")
    return found


def server_settings() -> dict[str, str]:
    """voila.json's settings (Class.trait) and the guide's configurable traits."""
    found = {}
    config = json.loads((ROOT / "voila.json").read_text())
    for section, traits in config.items():
        for trait, value in traits.items():
            found[f"{section}.{trait}"] = "voila.json"
            if trait == "tornado_settings":
                for key in value:
                    found[key] = "voila.json"
    for path in (ROOT / "widgets").rglob("*.py"):
        for cls in ast.walk(ast.parse(path.read_text())):
            if not isinstance(cls, ast.ClassDef):
                continue
            for item in cls.body:
                if (isinstance(item, ast.Assign) and isinstance(item.value, ast.Call)
                        and any(k.arg == "config" for k in item.value.keywords)):
                    for target in item.targets:
                        found[f"{cls.name}.{target.id}"] = str(path.relative_to(ROOT))
    return found


def test_every_environment_variable_the_code_reads_is_in_the_reference() -> None:
    table = reference()
    read = environment_variables_read()
    assert {"GUIDE_LOG_URL", "GUIDE_DATA_DIR", "GUIDE_LOG_TIMEOUT", "GUIDE_LOG_RATE"} <= set(read)
    missing = {name: where for name, where in read.items() if f"`{name}`" not in table}
    assert not missing, f"docs/settings.md lacks {missing}"


def test_every_server_setting_is_in_the_reference() -> None:
    table = reference()
    settings = server_settings()
    assert "GuideIdentityProvider.max_visitors" in settings and "GuideKernelManager.max_visit" in settings
    missing = {name: where for name, where in settings.items() if f"`{name}`" not in table}
    assert not missing, f"docs/settings.md lacks {missing}"


def test_the_reference_states_the_defaults_of_voila_json() -> None:
    table = reference()
    config = json.loads((ROOT / "voila.json").read_text())
    for section, traits in config.items():
        for trait, value in traits.items():
            if isinstance(value, dict):
                continue
            row = next(line for line in table.splitlines() if line.startswith(f"| `{section}.{trait}`"))
            shown = json.dumps(value) if not isinstance(value, str) else value
            assert f"`{shown}`" in row, f"{section}.{trait}: default {shown} not in {row!r}"
