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
from widgets.flow import DEFAULT_PATH, FLOW_ENV
from widgets.log import open_store

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert {p.name for p in NOTEBOOKS} >= {"guide.ipynb", "summary.ipynb", "content.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_thin_and_committed_without_outputs(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert len(code) == 1, "one short code cell"
    assert len("".join(code[0]["source"]).strip().splitlines()) <= 5
    assert any(c["cell_type"] == "markdown" for c in nb["cells"])
    for cell in code:
        assert cell.get("outputs") == [] and cell.get("execution_count") is None


@pytest.mark.slow
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


def run_content_notebook(env: dict[str, str], tmp_path) -> list[dict]:
    """content.ipynb run by nbclient in a kernel with ``env``; its code cell's outputs."""
    import nbclient
    import nbformat

    nb = nbformat.read(ROOT / "notebooks" / "content.ipynb", as_version=4)
    old = {key: os.environ.get(key) for key in env}
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return next(c for c in nb.cells if c.cell_type == "code").outputs


@pytest.mark.slow
def test_content_notebook_shows_a_broken_flow_plainly(tmp_path):
    """With a flow file whose answer leads to an unknown step, the notebook's output is the
    loader's message naming the step and field: no traceback, no error output."""
    import yaml

    data = yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))
    node = next(n for n in data["nodes"] if n.get("options"))
    node["options"][0]["next"] = "hepl"
    broken = tmp_path / "flow.yaml"
    broken.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    outputs = run_content_notebook({FLOW_ENV: str(broken), "PYTHONDONTWRITEBYTECODE": "1"},
                                   tmp_path)
    assert [o.output_type for o in outputs] == ["execute_result"], outputs
    shown = outputs[0].data["text/html"]
    expected = f"node {node['id']!r}, field 'options[0].next': unknown node 'hepl'"
    import html

    assert html.escape(expected) in shown and "review-error" in shown
    assert "Traceback" not in shown and "<svg" not in shown
