"""nbval runs every notebook in notebooks/ (against a demo log), and they are committed clean."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from widgets import demo
from widgets.log import open_store

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert {p.name for p in NOTEBOOKS} >= {"guide.ipynb", "summary.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_thin_and_committed_without_outputs(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert len(code) == 1, "one short code cell"
    assert len("".join(code[0]["source"]).strip().splitlines()) <= 5
    assert any(c["cell_type"] == "markdown" for c in nb["cells"])
    for cell in code:
        assert cell.get("outputs") == [] and cell.get("execution_count") is None


def test_nbval_runs_every_notebook(tmp_path):
    url = f"sqlite:///{tmp_path / 'demo.sqlite3'}"
    with open_store(url) as store:
        demo.fill(store, 3000, seed=3, start=dt.date(2026, 1, 5), days=5)
    env = {**os.environ, "GUIDE_LOG_URL": url, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("QUERY_STRING", None)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider", "-q",
         "--rootdir", str(ROOT), "-o", "addopts=", "-o", "testpaths=",
         *map(str, NOTEBOOKS)],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    passed = re.search(r"(\d+) passed", proc.stdout)
    cells = sum(1 for p in NOTEBOOKS for c in json.loads(p.read_text())["cells"]
                if c["cell_type"] == "code")
    assert passed and int(passed.group(1)) == cells, proc.stdout[-2000:]
    # the guide notebook logged its first screen into the store it was given
    with open_store(url) as store:
        _, rows = store.query("SELECT count(*) FROM events WHERE node = 'problem' "
                              "AND action = 'enter' AND ts >= '2026-06-01'")
    assert rows[0][0] >= 1
