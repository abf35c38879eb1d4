"""The project's dependency files agree: pyproject.toml's ranges, the lock files in requirements/
(every transitive package pinned, with hashes; what ./manage installs) and environment.yml."""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
LOCKS = {"": "lock.txt", "postgres": "postgres-lock.txt", "test": "test-lock.txt"}
CONDA_PIP_LOCK = ROOT / "requirements" / "conda-pip-lock.txt"
#: The top-level folders of the project's own code, whose imports must be declared.
CODE = ("widgets", "deploy", "benchmarks", "tests")


def _name(raw: str) -> str:
    return re.sub(r"[-_.]+", "-", raw).lower()


class Locked:
    """A lock file: name → (version, marker or None, hashes)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pins: dict[str, tuple[str, Marker | None, list[str]]] = {}
        # requirement lines, with their continuation lines joined
        text = path.read_text().replace("\\\n", " ")
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if not line or line.startswith("-"):
                continue
            spec, _, rest = line.partition(" --hash=")
            hashes = re.findall(r"sha256:[0-9a-f]{64}", line)
            requirement = Requirement(spec.strip())
            (pin,) = requirement.specifier
            assert pin.operator == "==", f"{path.name}: {line!r} is not pinned with =="
            assert hashes, f"{path.name}: {requirement.name} has no hash"
            self.pins[_name(requirement.name)] = (pin.version, requirement.marker, hashes)

    def version(self, name: str) -> str:
        return self.pins[_name(name)][0]

    def applies(self, name: str) -> bool:
        marker = self.pins[_name(name)][1]
        return marker is None or marker.evaluate()


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def requirements(extras: str = "") -> list[Requirement]:
    specs = list(project()["dependencies"])
    if extras:
        specs += project()["optional-dependencies"][extras]
    return [Requirement(spec) for spec in specs]


def environment() -> dict:
    return yaml.safe_load((ROOT / "environment.yml").read_text())


def environment_pins() -> dict[str, str]:
    pins = {}
    for dep in environment()["dependencies"]:
        if isinstance(dep, dict):
            continue
        name, _, version = dep.partition("=")
        if _name(re.split(r"[<>=! ]", name)[0]) in {"python", "pip"}:
            continue
        assert version and not version.startswith("="), f"environment.yml: {dep!r} not pinned"
        pins[_name(name)] = version.strip()
    return pins


def closure(roots: list[Requirement]) -> dict[str, set[Requirement]]:
    """The distributions the requirements lead to in this environment (markers evaluated here),
    each with the requirements that reach it."""
    reached: dict[str, set[Requirement]] = {}
    todo = [(r, ()) for r in roots]
    while todo:
        requirement, extras = todo.pop()
        if requirement.marker is not None and not any(
                requirement.marker.evaluate({"extra": e}) for e in (extras or ("",))):
            continue
        name = _name(requirement.name)
        first = name not in reached
        reached.setdefault(name, set()).add(requirement)
        if not first and not requirement.extras:
            continue
        for sub in metadata.requires(name) or []:
            todo.append((Requirement(sub), tuple(requirement.extras) or ()))
    return reached


# ------------------------------------------------------------------------------------ the locks


@pytest.mark.parametrize("extras", list(LOCKS))
def test_every_package_is_locked_with_hashes(extras: str) -> None:
    """Each lock pins, with hashes, every package its requirements lead to (as installed here),
    at a version each requirement on it accepts, and the project's ranges accept the lock."""
    lock = Locked(ROOT / "requirements" / LOCKS[extras])
    for requirement in requirements(extras):
        version = lock.version(requirement.name)
        assert requirement.specifier.contains(version, prereleases=True), (
            f"pyproject.toml: {requirement} does not accept {LOCKS[extras]}'s {version}")
    assert not unlocked(lock, extras), f"{LOCKS[extras]} does not pin {unlocked(lock, extras)}"


def unlocked(lock: Locked, extras: str) -> list[str]:
    """The packages the requirements lead to that the lock lacks (AssertionError if the lock's
    version does not satisfy a requirement on it)."""
    missing = []
    for name, reached_by in closure(requirements(extras)).items():
        if name not in lock.pins:
            missing.append(name)
            continue
        for requirement in reached_by:
            assert requirement.specifier.contains(lock.version(name), prereleases=True), (
                f"{lock.path.name}: {name} {lock.version(name)} does not satisfy {requirement}")
    return missing


def test_the_locks_agree_with_each_other() -> None:
    """One version of each package across the lock files; each lock's set includes the one
    before it (base ⊂ postgres ⊂ test)."""
    base, postgres, test = (Locked(ROOT / "requirements" / LOCKS[e]) for e in LOCKS)
    for smaller, larger in ((base, postgres), (postgres, test)):
        for name, (version, _, _) in smaller.pins.items():
            assert larger.version(name) == version, f"{name}: {smaller.path.name} and {larger.path.name}"


def test_this_environment_has_the_locked_versions_of_the_project_requirements() -> None:
    lock = Locked(ROOT / "requirements" / LOCKS["test"])
    for requirement in requirements("test"):
        assert metadata.version(requirement.name) == lock.version(requirement.name), requirement


def test_a_missing_or_unhashed_pin_is_caught(tmp_path: Path) -> None:
    """The checks above can fail: a lock without a hash, and a package the lock lacks."""
    lines = (ROOT / "requirements" / "lock.txt").read_text()
    unhashed = tmp_path / "lock.txt"
    unhashed.write_text(re.sub(r"(?m)^(pyyaml==[^ ]+) \\\n(\s+--hash=\S+ \\\n)*\s+--hash=\S+\n", r"\1\n", lines))
    with pytest.raises(AssertionError, match="no hash"):
        Locked(unhashed)
    lock = Locked(ROOT / "requirements" / "lock.txt")
    del lock.pins["tornado"]
    assert unlocked(lock, "") == ["tornado"]


# --------------------------------------------------------------------------- environment.yml


def test_environment_has_the_locked_versions() -> None:
    """environment.yml's conda packages are pyproject.toml's, at test-lock.txt's versions; what
    it installs with pip (conda-pip-lock.txt) is locked at the same versions."""
    lock = Locked(ROOT / "requirements" / LOCKS["test"])
    conda = environment_pins()
    pip_lock = Locked(CONDA_PIP_LOCK)
    for name, version in conda.items():
        assert version == lock.version(name), f"environment.yml: {name}={version}, lock {lock.version(name)}"
    for name, (version, _, _) in pip_lock.pins.items():
        assert version == lock.version(name), f"conda-pip-lock.txt: {name}=={version}"
    declared = {_name(r.name) for r in requirements("test")}
    assert declared <= set(conda) | set(pip_lock.pins), declared - set(conda) - set(pip_lock.pins)
    (pip,) = [d for d in environment()["dependencies"] if isinstance(d, dict)]
    assert pip == {"pip": ["-r requirements/conda-pip-lock.txt"]}


def test_comparison_notices_a_difference() -> None:
    lock = Locked(ROOT / "requirements" / LOCKS["test"])
    pins = environment_pins()
    pins["pandas"] = "0.0.1"
    assert any(version != lock.version(name) for name, version in pins.items())


# ----------------------------------------------------------------------------------- Python


def test_python_has_no_upper_bound() -> None:
    requires = SpecifierSet(project()["requires-python"])
    assert all(spec.operator in {">=", ">"} for spec in requires), requires
    for version in ("3.11", "3.12", "3.13", "3.14"):
        assert requires.contains(Version(version)), version
    assert "python>=3.11" in environment()["dependencies"]
    assert requires.contains(Version(".".join(map(str, sys.version_info[:3]))))


# ------------------------------------------------------------------------------ what is imported


def imported_distributions(folder: str) -> dict[str, set[str]]:
    """The distributions whose modules the folder's code imports, each with a file doing so."""
    owners = metadata.packages_distributions()
    found: dict[str, set[str]] = {}
    for path in (ROOT / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top in sys.stdlib_module_names or top not in owners:
                    continue  # the standard library, or the project's own modules
                for dist in owners[top]:
                    found.setdefault(_name(dist), set()).add(str(path.relative_to(ROOT)))
    return found


def test_what_the_code_imports_is_declared() -> None:
    """The package imports only its runtime dependencies; the tests, benchmarks and deployment
    scripts only those and the [test] extra (psycopg, in the package, is the [postgres] extra,
    imported only when a PostgreSQL log is configured)."""
    undeclared = {}
    for folder in CODE:
        declared = {_name(r.name) for r in requirements("" if folder == "widgets" else "test")}
        if folder == "widgets":
            declared |= {_name(r.name) for r in requirements("postgres")}
        for dist, files in imported_distributions(folder).items():
            if dist not in declared and dist != "amazon-contact-guide":
                undeclared[f"{folder}/: {dist}"] = sorted(files)
    assert not undeclared, f"imports of undeclared packages: {undeclared}"
