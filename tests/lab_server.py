"""Start JupyterLab the way a maintainer does (``./manage lab``, or ``jupyter lab`` in the
project folder), isolated from this machine's per-user Jupyter folders, for browser tests::

    with start_lab(home, env={"GUIDE_LOG_URL": url}) as lab:
        lab.page_url("notebooks/guide.ipynb", workspace="w1")   # the notebook in Lab
        lab.url + "voila/render/notebooks/guide.ipynb"          # Voilà's preview of it
        lab.api("api/sessions")                                  # the REST API, with the token

Tests get it through the fixture factory ``lab_servers`` (registered by ``conftest.py``;
it marks the test ``server``): ``with lab_servers.serve(env) as lab: ...``, which fails the
test (never skips it) when the server does not start.

The server is ``python -m jupyter lab`` of the running interpreter, started in the project
root (Voilà's preview reads ``voila.json`` from there), on a free 127.0.0.1 port, with a
random token. Its per-user Jupyter folders (configuration, data, runtime, Lab settings and
workspaces, IPython) are temporary folders under ``home``, so nothing in ``~/.jupyter`` or
``~/.local/share/jupyter`` changes what is tested and nothing the server writes lands there.
The installation's own folders (the environment's ``share/jupyter`` and ``etc/jupyter``)
stay, so the widgets manager, Voilà's preview and the guide's Voilà template, all installed
there, load as they do for a maintainer. The project sets no ``JUPYTER_PATH``: a variable
set outside is kept unless ``env`` removes it (``{"JUPYTER_PATH": None}``).

What had to be configured, and why:

* Lab's news and update check: the browser asks "Would you like to get notified about
  official Jupyter news?" on every first visit, and the server fetches its news feed and
  PyPI when allowed to. The user settings turn both off in the page
  (``fetchNews: "false"``, ``checkForUpdates: false``), and ``--LabApp.news_url=None``,
  ``NeverCheckForUpdate`` and the read-only extension manager keep the server itself from
  contacting anything outside the machine.
* Autosave is off (document manager setting ``autosave: false``): running a cell makes the
  notebook "dirty", and Lab would save it, outputs included, after two minutes. The tests
  never save.
* Checkpoints go to a temporary folder (``--FileCheckpoints.checkpoint_dir`` set to an
  absolute path): Lab creates a checkpoint of every notebook it opens, by default in
  ``notebooks/.ipynb_checkpoints/`` in the project tree.
* ``PYTHONDONTWRITEBYTECODE=1``: the kernels import the project's ``widgets`` package and
  would otherwise write ``__pycache__`` into it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from lanes import needs, refuse_in_quick_lane
from voila_server import PROJECT_ROOT, free_port, kernel_processes, stop_server

START_TIMEOUT = 90.0  # until the server answers (a loaded 2-core machine is slow)

#: Lab user settings (``<settings dir>/<package>/<plugin>.jupyterlab-settings``).
LAB_SETTINGS = {
    # no "official Jupyter news?" prompt, no news feed, no update check
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false",
                                                    "checkForUpdates": False},
    # running a cell dirties the notebook: never save it behind the test's back
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
}


class LabStartError(RuntimeError):
    """The JupyterLab server did not start."""


# --------------------------------------------------------------------------- the server


@dataclass
class LabServer:
    """A running JupyterLab server (``url`` ends with ``/``)."""

    process: subprocess.Popen
    port: int
    token: str
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def page_url(self, notebook: str, workspace: str) -> str:
        """The notebook opened in a workspace of its own (a new workspace is empty: the
        notebook a previous test left open is not restored next to it)."""
        return f"{self.url}lab/workspaces/{workspace}/tree/{notebook}?token={self.token}"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise LabStartError(f"JupyterLab exited with status {self.process.returncode}:\n"
                                f"{_tail(self.log())}")

    def api(self, path: str, method: str = "GET", timeout: float = 10.0):
        """Call the server's REST API; the decoded JSON answer (None when empty)."""
        request = urllib.request.Request(self.url + path.lstrip("/"), method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
        return json.loads(body) if body else None

    def kernel_processes(self) -> dict[str, psutil.Process]:
        """The server's running kernels: kernel id -> process (used by ``stop_server``)."""
        return kernel_processes(self.process.pid)

    def shut_down_sessions(self) -> None:
        """End every notebook session (and its kernel) the way Lab's "Shut Down" does."""
        with contextlib.suppress(OSError, ValueError):
            for session in self.api("api/sessions") or []:
                with contextlib.suppress(OSError):
                    self.api(f"api/sessions/{session['id']}", method="DELETE", timeout=30)


def _tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _write_lab_settings(settings_dir: Path) -> None:
    for plugin, values in LAB_SETTINGS.items():
        path = settings_dir / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values), encoding="utf-8")


def _lab_env(home: Path, extra: Mapping[str, str | None]) -> dict[str, str]:
    env = dict(os.environ)
    for key in ("GUIDE_LOG", "QUERY_STRING", "JUPYTER_CONFIG_PATH", "JUPYTER_PREFER_ENV_PATH"):
        env.pop(key, None)
    env.update({
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "config" / "lab" / "user-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "config" / "lab" / "workspaces"),
        "IPYTHONDIR": str(home / "ipython"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
    })
    for key, value in extra.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def _wait_until_answering(server: LabServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        server.check_alive()
        try:
            server.api("api/status", timeout=5)
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise LabStartError(f"JupyterLab did not answer on {server.url} within "
                                f"{timeout:.0f} s:\n{_tail(server.log())}")
        time.sleep(0.25)


@contextlib.contextmanager
def start_lab(home: Path, env: Mapping[str, str | None]) -> Iterator[LabServer]:
    """JupyterLab on a free 127.0.0.1 port with its per-user folders under ``home``; stopped
    on exit, kernels included."""
    refuse_in_quick_lane("JupyterLab")
    for folder in ("config", "data", "runtime", "ipython", "checkpoints"):
        (home / folder).mkdir(parents=True, exist_ok=True)
    _write_lab_settings(home / "config" / "lab" / "user-settings")
    server_env = _lab_env(home, env)
    token = secrets.token_hex(24)
    for attempt in range(1, 4):  # a free port can be taken before the server binds it
        port = free_port()
        log_path = home / f"lab-{port}.log"
        command = [
            sys.executable, "-m", "jupyter", "lab",
            "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={PROJECT_ROOT}",
            f"--FileCheckpoints.checkpoint_dir={home / 'checkpoints'}",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class="
            "jupyterlab.handlers.announcements.NeverCheckForUpdate",
            "--LabApp.extension_manager=readonly",
        ]
        with open(log_path, "wb") as log_file:
            process = subprocess.Popen(
                command, cwd=PROJECT_ROOT, env=server_env, stdin=subprocess.DEVNULL,
                stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
        server = LabServer(process, port, token, log_path)
        try:
            _wait_until_answering(server, START_TIMEOUT)
        except LabStartError:
            stop_server(server)
            if attempt < 3 and "already in use" in server.log():
                continue
            raise
        break
    try:
        yield server
    finally:
        server.shut_down_sessions()
        stop_server(server)


class LabServers:
    """The fixture factory of JupyterLab servers (fixture ``lab_servers``)."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self.tmp_path_factory = tmp_path_factory

    @contextlib.contextmanager
    def serve(self, env: Mapping[str, str | None],
              home: Path | None = None) -> Iterator[LabServer]:
        """:func:`start_lab` with its per-user folders under ``home`` (default: a new temporary
        folder); a server that does not start fails the test."""
        home = home or self.tmp_path_factory.mktemp("lab-home")
        stack = contextlib.ExitStack()
        try:
            server = stack.enter_context(start_lab(home, env))
        except LabStartError as error:
            stack.close()
            pytest.fail(f"cannot start JupyterLab: {error}", pytrace=False)
        with stack:
            yield server


@pytest.fixture(scope="session")
@needs("server")
def lab_servers(tmp_path_factory: pytest.TempPathFactory) -> LabServers:
    """The factory: ``with lab_servers.serve(env) as lab: ...``."""
    return LabServers(tmp_path_factory)
