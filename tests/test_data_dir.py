"""Where the log goes by default: the user's data folder, never the installed code's folder.

``pip install .`` installs the ``widgets`` package into site-packages; the log's default SQLite
file must not follow it there. Checked with the wheel installed (not editable) into a fresh
environment, with ``$GUIDE_DATA_DIR`` unset and set.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import lanes
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import json, widgets
from widgets.log import log_url, open_store
store = open_store()
store.close()
print(json.dumps({"package": widgets.__file__, "url": log_url()}))
"""


@pytest.fixture(scope="module")
@lanes.needs("slow")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh environment holding the guide's wheel (its dependencies from this one's
    site-packages, after its own); its Python."""
    root = tmp_path_factory.mktemp("wheel-install")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-cache-dir",
                    "-w", root / "dist", PROJECT_ROOT], check=True, cwd=root)
    (wheel,) = (root / "dist").glob("amazon_contact_guide-*.whl")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", root / "venv"], check=True)
    python = root / "venv" / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps",
                    "--no-index", wheel], check=True, cwd=root)
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "zz_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def probe(python: Path, tmp_path: Path, **env: str) -> dict[str, str]:
    home = tmp_path / "home"
    clean = {k: v for k, v in os.environ.items()
             if k not in {"GUIDE_DATA_DIR", "GUIDE_LOG_URL", "XDG_DATA_HOME", "PYTHONPATH"}}
    result = subprocess.run([python, "-c", PROBE], capture_output=True, text=True, cwd=tmp_path,
                            env={**clean, "HOME": str(home), **env}, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_installed_package_writes_its_log_in_the_users_data_folder(installed: Path,
                                                                       tmp_path: Path) -> None:
    seen = probe(installed, tmp_path)
    prefix = installed.parent.parent
    assert Path(seen["package"]).is_relative_to(prefix), seen  # the wheel, not the source tree
    expected = tmp_path / "home" / ".local" / "share" / "amazon-contact-guide" / "events.sqlite3"
    assert seen["url"] == f"sqlite://{expected}"
    assert expected.is_file()
    assert not list(prefix.rglob("events.sqlite3*")), "the log went into the environment"

    # $GUIDE_DATA_DIR still wins
    seen = probe(installed, tmp_path, GUIDE_DATA_DIR=str(tmp_path / "chosen"))
    assert seen["url"] == f"sqlite://{tmp_path / 'chosen' / 'events.sqlite3'}"
    assert (tmp_path / "chosen" / "events.sqlite3").is_file()


def test_xdg_data_home_is_followed(installed: Path, tmp_path: Path) -> None:
    seen = probe(installed, tmp_path, XDG_DATA_HOME=str(tmp_path / "xdg"))
    assert seen["url"] == f"sqlite://{tmp_path / 'xdg' / 'amazon-contact-guide' / 'events.sqlite3'}"


def test_manage_keeps_the_projects_data_folder() -> None:
    """``./manage`` (app, summary, demo, lab, cluster, test) sets the project's data/ folder."""
    result = subprocess.run(["bash", "-c", 'source <(sed -n "/^export GUIDE_DATA_DIR/p" manage); '
                             'echo "$GUIDE_DATA_DIR"'], cwd=PROJECT_ROOT, capture_output=True,
                            text=True, check=True, env={k: v for k, v in os.environ.items()
                                                        if k != "GUIDE_DATA_DIR"} | {"ROOT": str(PROJECT_ROOT)})
    assert result.stdout.strip() == str(PROJECT_ROOT / "data")
