"""The guide run the standard ways, with nothing but an installed environment.

``pip install .``, ``pip install -e .`` and a conda environment plus
``pip install --no-deps -e .`` all install the guide's Voilà template (page template, page
script ``static/guide.js``, ``page.html`` for Voilà's own pages) into
``<environment>/share/jupyter/voila/templates/guide``, one of the folders where Voilà and
JupyterLab's Voilà preview look for templates. The tests here check that, and that the
commands a person types in the project folder then work, with no ``JUPYTER_PATH`` at all
and temporary per-user Jupyter folders (a template left in ``~/.local/share/jupyter`` or a
``voila.json`` in ``~/.jupyter`` could otherwise stand in for the installed ones):

* the install: the wheel carries the template as shared data, and ``voila.json`` for the
  environment's ``etc/jupyter``; an editable install into a fresh virtual environment, and an
  install of the wheel, put them in that environment's ``share/jupyter`` and ``etc/jupyter``; in the environment running the tests, Voilà's template lookup finds the
  guide's template there first, and it is the template of the source tree (an edited
  template needs installing again: ``pip install -e .``, or any ``./manage`` command);
* ``voila notebooks/guide.ipynb`` (the environment's ``voila`` script, in the project folder,
  only the port added): the guide's page, with its page script, rendered in Chromium, and a
  first answer (the first step's first option, then Continue) leads to the step the flow
  says;
* ``jupyter lab`` in the project folder: the notebook toolbar's "Render with Voilà" shows the
  guide in Lab's preview panel with the guide's template and the settings of ``voila.json``
  (sources stripped), and the same first answer works there; Voilà's page of the summary
  notebook (``/voila/render/notebooks/summary.ipynb``) shows the dashboard; an error page
  of Voilà in Lab (a missing notebook) loads nothing from outside.

Step ids and labels come from the flow (``widgets/flow.yaml``) through
:class:`widgets.engine.Engine`, never written here. Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import lanes
import pytest
from browser import PageFactory, artifact_path, full_page_screenshot
from lab_server import LabServer, LabServers
from playwright.sync_api import Frame, Page, expect
import voila_server
from voila_server import GUIDE_NOTEBOOK, PROJECT_ROOT, VoilaServer, VoilaServers

from widgets import demo
from widgets.engine import Engine
from widgets.flow import Node, default_flow
from widgets.log import SQLiteStore
from widgets.summary import summarize

FLOW = default_flow()
TEMPLATE = "guide"
TEMPLATE_DATA_PATH = f"share/jupyter/voila/templates/{TEMPLATE}"
TEMPLATE_SOURCE = PROJECT_ROOT / TEMPLATE_DATA_PATH
#: Where the wheel installs voila.json, under the environment's prefix.
CONFIG_DATA_PATH = "etc/jupyter/voila.json"
PAGE_SCRIPT = f"voila/templates/{TEMPLATE}/static/guide.js"
SUMMARY_NOTEBOOK = "notebooks/summary.ipynb"
PIP_TIMEOUT = 600  # a build installs its backend (hatchling) from the package index first
#: Per-user or extra Jupyter settings that could make a run differ from a new user's.
UNSET = ("JUPYTER_PATH", "JUPYTER_CONFIG_PATH", "JUPYTER_PREFER_ENV_PATH", "GUIDE_LOG",
         "QUERY_STRING")


def template_files() -> dict[str, bytes]:
    """The guide's template in the source tree: path inside the template -> content."""
    files = {path.relative_to(TEMPLATE_SOURCE).as_posix(): path.read_bytes()
             for path in sorted(TEMPLATE_SOURCE.rglob("*")) if path.is_file()}
    assert {"conf.json", "index.html.j2", "page.html", "static/guide.js"} <= files.keys(), files
    return files


def installed_template(prefix: Path) -> dict[str, bytes]:
    """The guide's template installed in the environment at ``prefix``."""
    folder = prefix / TEMPLATE_DATA_PATH
    return {path.relative_to(folder).as_posix(): path.read_bytes()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def pip(*args: str | os.PathLike, cwd: Path) -> None:
    """Run this environment's pip (``--python`` targets another environment)."""
    done = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=PIP_TIMEOUT)
    assert done.returncode == 0, (f"pip {' '.join(map(str, args))} failed:\n"
                                  f"{done.stdout}\n{done.stderr}")


def new_venv(path: Path) -> Path:
    """A fresh, empty virtual environment (no pip: this environment's pip installs into it)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True,
                   timeout=120)
    return path / "bin" / "python"


def module_origin(python: Path, module: str) -> Path:
    """Where ``python`` imports ``module`` from (run outside the project folder, so the
    working directory does not put the source tree on ``sys.path``)."""
    code = f"import importlib.util; print(importlib.util.find_spec({module!r}).origin)"
    done = subprocess.run([str(python), "-c", code], cwd=python.parent, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONPATH": ""})
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip())


def isolated_jupyter_env(home: Path) -> dict[str, str | None]:
    """Environment changes for a server run as a new user would: temporary per-user Jupyter
    folders, and none of ``UNSET`` (no ``JUPYTER_PATH`` in particular)."""
    return voila_server.isolated_jupyter_env(home, UNSET)


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8", "replace")


def external_links(html: str) -> list[str]:
    """``src``/``href`` values in ``html`` that point to another host."""
    return re.findall(r"""(?:src|href)\s*=\s*["']((?:https?:)?//[^"']+)""", html)


# --------------------------------------------------------------------------- the install


@pytest.fixture(scope="module")
@lanes.needs("slow")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built as ``pip install .`` builds it."""
    out = tmp_path_factory.mktemp("wheel")
    pip("wheel", "--no-deps", "--no-cache-dir", "-w", out, PROJECT_ROOT, cwd=out)
    wheels = list(out.glob("amazon_contact_guide-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_carries_the_template_as_shared_data(wheel: Path):
    """Every file of the template, as shared data (``<name>.data/data/share/jupyter/...``:
    pip installs it under the environment's prefix)."""
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        data = next(n.split("/")[0] for n in names if n.split("/")[0].endswith(".data"))
        for name, content in template_files().items():
            member = f"{data}/data/{TEMPLATE_DATA_PATH}/{name}"
            assert member in names, f"{member} is not in {wheel.name}: {sorted(names)}"
            assert archive.read(member) == content, member
    # the package, with every file it reads at run time (the flow, the stylesheet, the log's
    # SQL migrations); nothing else of the source tree
    package = {path.relative_to(PROJECT_ROOT).as_posix()
               for pattern in ("*.py", "*.yaml", "*.css", "*.sql")
               for path in (PROJECT_ROOT / "widgets").rglob(pattern)
               if "__pycache__" not in path.parts}
    assert {"widgets/flow.yaml", "widgets/guide.css", "widgets/log/migrations/sqlite/"
            "0004_session_answers.sql"} <= package
    assert package <= names, sorted(package - names)
    top = {n.split("/")[0] for n in names}
    assert top == {"widgets", data, data.replace(".data", ".dist-info")}, top


def test_wheel_carries_voila_json_as_the_environments_jupyter_configuration(wheel: Path):
    """``voila.json`` as shared data for ``<environment>/etc/jupyter/voila.json``, on the
    Jupyter configuration path where every Voilà started in the environment finds it."""
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        data = next(n.split("/")[0] for n in names if n.split("/")[0].endswith(".data"))
        member = f"{data}/data/{CONFIG_DATA_PATH}"
        assert member in names, f"{member} is not in {wheel.name}"
        assert archive.read(member) == (PROJECT_ROOT / "voila.json").read_bytes()


def test_installing_the_wheel_puts_the_template_in_the_environment(wheel: Path,
                                                                   tmp_path: Path):
    """``pip install .`` (without the dependencies, already tested elsewhere)."""
    python = new_venv(tmp_path / "venv")
    pip("--python", python, "install", "--no-deps", "--no-index", wheel, cwd=tmp_path)
    assert installed_template(tmp_path / "venv") == template_files()
    assert (tmp_path / "venv" / CONFIG_DATA_PATH).read_bytes() == (
        PROJECT_ROOT / "voila.json").read_bytes()
    origin = module_origin(python, "widgets")
    assert origin.parent.parent.name == "site-packages", origin
    assert (origin.parent / "flow.yaml").read_bytes() == (
        PROJECT_ROOT / "widgets" / "flow.yaml").read_bytes()


@pytest.mark.slow
def test_editable_install_puts_the_template_in_the_environment(tmp_path: Path):
    """``pip install --no-deps -e .``, as after ``conda env create -f environment.yml``: the
    template is copied into the environment, the package is the source tree's."""
    python = new_venv(tmp_path / "venv")
    pip("--python", python, "install", "--no-deps", "--no-cache-dir", "-e", PROJECT_ROOT,
        cwd=tmp_path)
    assert installed_template(tmp_path / "venv") == template_files()
    assert (tmp_path / "venv" / CONFIG_DATA_PATH).read_bytes() == (
        PROJECT_ROOT / "voila.json").read_bytes()
    assert module_origin(python, "widgets") == PROJECT_ROOT / "widgets" / "__init__.py"


def test_this_environment_serves_the_source_template(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch):
    """Voilà's template lookup, as the servers below do it (no JUPYTER_PATH, no per-user
    template), finds the guide's template in this environment's ``share/jupyter`` first,
    and it is the template of the source tree."""
    from voila.paths import collect_static_paths, collect_template_paths

    for key in UNSET:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path))
    installed = Path(sys.prefix) / TEMPLATE_DATA_PATH
    paths = collect_template_paths(["voila", "nbconvert"], TEMPLATE, prune=True)
    assert Path(paths[0]) == installed, paths
    assert Path(collect_static_paths(["voila", "nbconvert"], TEMPLATE)[0]) == installed / "static"
    assert installed_template(Path(sys.prefix)) == template_files(), (
        f"the guide's template in {installed} is not the one in {TEMPLATE_SOURCE}: install "
        "the project again (pip install -e ., or any ./manage command)")


# --------------------------------------------------------------------------- driving the guide


def first_answer(page: Page | Frame, name: str) -> Node:
    """On a fresh guide (Korean): the first step as the flow says; its first option, then
    Continue; the step the flow leads to, which is returned. ``page``: the guide's page, or
    the frame showing it."""
    engine = Engine(FLOW, lang="ko")
    node = engine.start()
    guide = page.locator(".guide")
    heading = guide.locator(".guide-body h2")
    expect(heading).to_have_text(node.title("ko"), timeout=120_000)
    option_id, label = engine.options()[0]
    if node.widget == "dropdown":
        guide.get_by_label(node.prompt("ko"), exact=True).select_option(label=label)
        go = guide.get_by_role("button", name=FLOW.ui["continue"]("ko"), exact=True)
        expect(go).to_be_enabled()
        go.click()
    else:
        guide.get_by_role("button", name=label, exact=True).click()
    after = engine.choose(option_id)
    assert after.id != node.id, f"{name}: the flow's first answer stays on {node.id!r}"
    expect(heading).to_have_text(after.title("ko"))
    progress = engine.progress()
    expect(guide.get_by_text(engine.ui("progress", step=progress.step, total=progress.total),
                             exact=True)).to_be_visible()
    return after


def expect_guide_template(page: Page | Frame, step: Node) -> None:
    """The page is the guide's template: its page script is loaded and has run (it names the
    page after the current ``step`` and sets the page's language to the guide's), and no
    source code is shown (``strip_sources`` of voila.json)."""
    expect(page.locator(f"script[src*='{PAGE_SCRIPT}']")).to_have_count(1)
    page.wait_for_function("(prefix) => document.title.startsWith(prefix)",
                           arg=f"{step.title('ko')} · ", timeout=20_000)
    expect(page.locator("html")).to_have_attribute("lang", "ko")
    expect(page.locator(".jp-CodeCell.jp-mod-noInput")).not_to_have_count(0)
    expect(page.locator(".jp-InputPrompt, .jp-InputArea-editor")).to_have_count(0)


# --------------------------------------------------------------------------- voila, as typed


@pytest.fixture(scope="module")
def voila_as_typed(voila_servers: VoilaServers,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[VoilaServer]:
    """``voila --port=N notebooks/guide.ipynb`` in the project folder, with an empty
    temporary interaction log."""
    home = tmp_path_factory.mktemp("voila-home")
    data = tmp_path_factory.mktemp("voila-data")
    env = {**isolated_jupyter_env(home), "GUIDE_DATA_DIR": str(data),
           "GUIDE_LOG_URL": f"sqlite://{data / 'events.sqlite3'}"}
    with voila_servers.serve(GUIDE_NOTEBOOK, env=env, as_typed=True) as server:
        yield server


def test_voila_in_the_project_folder_serves_the_guide(voila_as_typed: VoilaServer,
                                                      page_factory: PageFactory):
    """``voila notebooks/guide.ipynb`` as typed: the page script is the source's, the page is
    the guide's template, a first answer works, nothing loads from outside."""
    server = voila_as_typed
    assert "JUPYTER_PATH" not in server.env
    assert server.process.args[0].endswith("/voila")
    assert server.process.args[-1] == "notebooks/guide.ipynb"
    status, script = fetch(server.url + PAGE_SCRIPT)
    assert status == 200
    assert script == template_files()["static/guide.js"].decode()

    page, guard = page_factory.new_page("standard voila")
    try:
        page.goto(server.url, wait_until="commit")
        step = first_answer(page, "voila")
        expect_guide_template(page, step)
        assert external_links(page.content()) == []
        full_page_screenshot(page, artifact_path("standard-voila.png"))
        assert guard.clean, guard.report()
    finally:
        page_factory.close_page(page)
    log = server.log()
    assert "TemplateNotFound" not in log and "Traceback" not in log, log[-3000:]


# --------------------------------------------------------------------------- jupyter lab


@pytest.fixture(scope="module")
def lab_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A log store with demo events for the preview's kernels (the summary shows them)."""
    path = tmp_path_factory.mktemp("lab-data") / "events.sqlite3"
    start = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=30)
    with SQLiteStore(path) as store:
        assert demo.fill(store, 1000, seed=5, start=start, days=30) == 1000
    return path


def _cells(content: bytes) -> object:
    try:
        return json.loads(content)["cells"]
    except (ValueError, KeyError, TypeError):
        return None


@pytest.fixture(scope="module")
def notebooks_kept() -> Iterator[None]:
    """"Render with Voilà" saves the notebook first (Voilà's preview renders the saved file),
    and Lab may have added the kernel's language details to its metadata by then. After the
    module, a notebook whose cells are unchanged but whose bytes differ is put back as it was
    (other changes, e.g. someone editing it meanwhile, are left alone)."""
    notebooks = {path: path.read_bytes() for path in (PROJECT_ROOT / "notebooks").glob("*.ipynb")}
    yield
    for path, content in notebooks.items():
        now = path.read_bytes() if path.exists() else content
        if now != content and _cells(now) == _cells(content):
            path.write_bytes(content)


@pytest.fixture(scope="module")
def lab(lab_servers: LabServers, lab_log: Path, notebooks_kept: None,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    """``jupyter lab`` in the project folder, no JUPYTER_PATH, after ``jupyter trust`` of the
    notebooks (as ``./manage lab`` does): Lab's preview renders a notebook only once this
    user trusts it, else it asks first, and its "Render anyway" saves the notebook."""
    home = tmp_path_factory.mktemp("lab-home")
    env = {**dict.fromkeys(UNSET), "GUIDE_LOG_URL": f"sqlite://{lab_log}",
           "GUIDE_DATA_DIR": str(lab_log.parent)}
    trust_env = {**os.environ, "JUPYTER_DATA_DIR": str(home / "data")}
    subprocess.run([sys.executable, "-m", "jupyter", "trust", "notebooks/guide.ipynb",
                    SUMMARY_NOTEBOOK], cwd=PROJECT_ROOT, env=trust_env, check=True,
                   capture_output=True, timeout=120)
    with lab_servers.serve(env, home=home) as server:
        yield server


def test_lab_render_with_voila_shows_the_guide(lab: LabServer, page_factory: PageFactory):
    """The notebook toolbar's "Render with Voilà": the preview panel shows the guide, with the
    guide's template and voila.json's settings, and the guide answers a click."""
    page, guard = page_factory.new_page("standard lab preview")
    # leaving Lab with a notebook changed since the preview saved it makes Lab ask first
    page.on("dialog", lambda dialog: dialog.accept() if dialog.type == "beforeunload"
            else dialog.dismiss())
    try:
        page.goto(lab.page_url("notebooks/guide.ipynb", workspace="preview"), wait_until="commit")
        expect(page.locator(".jp-NotebookPanel .jp-Notebook")).to_be_visible(timeout=90_000)
        page.locator(".jp-NotebookPanel-toolbar").get_by_title("Render with Voilà").click()
        source = "voila/render/notebooks/guide.ipynb"
        iframe = page.locator(f"iframe[src*='{source}']")
        expect(iframe).to_have_count(1, timeout=30_000)
        frame = iframe.element_handle().content_frame()
        assert frame is not None
        step = first_answer(frame, "lab preview")
        expect_guide_template(frame, step)
        page.screenshot(path=artifact_path("standard-lab-preview.png"))
        assert guard.clean, guard.report()
    finally:
        page_factory.close_page(page)
        lab.shut_down_sessions()


def test_lab_voila_page_of_the_summary(lab: LabServer, lab_log: Path,
                                        page_factory: PageFactory):
    """``/voila/render/notebooks/summary.ipynb``: the dashboard of the log, on the guide's
    template."""
    with SQLiteStore(lab_log) as store:
        sessions = summarize(store).sessions
    page, guard = page_factory.new_page("standard lab summary")
    try:
        page.goto(f"{lab.url}voila/render/{SUMMARY_NOTEBOOK}?token={lab.token}",
                  wait_until="commit")
        dash = page.locator(".guide-dash")
        card = dash.locator(".dash-kpi", has_text="sessions · 세션").locator("b")
        expect(card).to_have_text(f"{sessions:,}", timeout=120_000)
        charts = dash.locator("img")
        expect(charts).to_have_count(4, timeout=60_000)
        expect(page.locator(f"script[src*='{PAGE_SCRIPT}']")).to_have_count(1)
        expect(page.locator(".jp-InputPrompt, .jp-InputArea-editor")).to_have_count(0)
        full_page_screenshot(page, artifact_path("standard-lab-summary.png"))
        assert guard.clean, guard.report()
    finally:
        page_factory.close_page(page)


def test_lab_voila_error_page_loads_nothing_from_outside(lab: LabServer):
    """Voilà's error pages in Lab come from the guide's template: no stylesheet from a CDN."""
    status, html = fetch(f"{lab.url}voila/render/notebooks/no-such-guide.ipynb?token={lab.token}")
    assert status == 404
    assert f"voila/templates/{TEMPLATE}/static/" in html, html[:2000]
    assert external_links(html) == [], external_links(html)


def test_lab_ran_without_errors(lab: LabServer):
    """Runs last (file order): nothing in Lab's log says the template or a kernel failed."""
    log = lab.log()
    assert "TemplateNotFound" not in log and "Traceback" not in log, log[-3000:]
