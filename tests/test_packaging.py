"""The project's two dependency lists (pyproject.toml, environment.yml) must agree."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(raw: str) -> str:
    return re.sub(r"[-_.]+", "-", raw.split("[")[0]).lower()


def pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        specs += extra
    pins = {}
    for spec in specs:
        name, sep, version = spec.partition("==")
        assert sep, f"pyproject.toml: {spec!r} is not pinned with =="
        pins[_name(name)] = version.strip()
    return pins


def environment_pins() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pins = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for spec in dep.get("pip", []):
                name, sep, version = spec.partition("==")
                assert sep, f"environment.yml: pip entry {spec!r} is not pinned"
                pins[_name(name)] = version.strip()
            continue
        name, _, version = dep.partition("=")
        if _name(name) in {"python", "pip"}:
            continue
        assert version and not version.startswith("="), f"environment.yml: {dep!r} not pinned"
        pins[_name(name)] = version.strip()
    return pins


def test_pyproject_and_environment_agree():
    assert pyproject_pins() == environment_pins()


def test_comparison_notices_a_difference(tmp_path, monkeypatch):
    """The check above can fail: a changed version in one file is caught."""
    pins = environment_pins()
    pins["pandas"] = "0.0.1"
    assert pins != pyproject_pins()


def test_environment_python_matches_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    python = [d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python=")]
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert python == ["python=3.11"] and "3.11" in requires


def test_log_migrations_are_package_data():
    """Every migration file is matched by pyproject's package-data (so ``pip install .`` ships
    it), and the package is listed."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    assert "widgets.log.migrations" in config["packages"] and "widgets.log" in config["packages"]
    patterns = config["package-data"]["widgets.log.migrations"]
    folder = ROOT / "widgets" / "log" / "migrations"
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.sql"))
    shipped = sorted({p.relative_to(folder).as_posix() for pattern in patterns for p in folder.glob(pattern)})
    assert files and files == shipped
