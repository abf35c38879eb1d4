"""Start Voilà the way the app does, for tests, benchmarks and browser tests.

The server runs ``python -m voila`` of the running interpreter, from the project
root, with the project's ``voila.json`` (and no per-user Voilà configuration),
on a free 127.0.0.1 port::

    with start_voila("notebooks/guide.ipynb", env={"GUIDE_LOG_URL": url}) as server:
        urllib.request.urlopen(server.url)
        server.kernel_ids()          # ids of the kernels the server runs now
        server.process               # the subprocess.Popen of the server

Only the port is set on the command line (plus ``extra_args``); everything else
(the address, preheated pool, culling, stripped sources...) comes from
``voila.json``. Voilà 0.5.13 has no ``--config`` option: it reads ``voila.json``
from its working directory and from the Jupyter configuration path (where installing the
project put a copy, ``<environment>/etc/jupyter/voila.json``); the server starts in the
project root and is told to read the project's file only, so a per-user file does not
change what is tested (the server's self-check still compares the security headers with
the installed copy: after editing voila.json, install again). ``start_voila(...,
cwd=folder)`` starts it elsewhere, with Voilà's own search.
The guide's page template comes from the environment, where installing the project
(``pip install -e .``) put it: the server's environment is the test run's, and the
project adds nothing to ``JUPYTER_PATH``. ``start_voila(..., as_typed=True)`` runs the
environment's ``voila`` script instead, exactly as typed in the project folder.

Fixtures (registered by ``conftest.py``): ``voila_servers``, the one factory of Voilà
servers for tests (:class:`VoilaServers`: ``.guide()``, ``.dashboard(log_url)``,
``.serve(notebook)``), e.g. a module-scoped server of its own for a module that counts
kernels::

    @pytest.fixture(scope="module")
    def server(voila_servers):
        with voila_servers.guide(preheated=True) as server:
            yield server

``voila_guide`` (session-scoped) serves ``notebooks/guide.ipynb`` with an empty temporary
log store; ``guide_server`` is the same for each host of :data:`GUIDE_HOSTS`.
A server that cannot be started fails the tests that use it; it never skips them.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from lanes import needs, refuse_in_quick_lane

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONFIG_FILE = PROJECT_ROOT / "voila.json"
GUIDE_NOTEBOOK = PROJECT_ROOT / "notebooks" / "guide.ipynb"
SUMMARY_NOTEBOOK = PROJECT_ROOT / "notebooks" / "summary.ipynb"

START_TIMEOUT = 90.0  # until the server answers HTTP (a loaded 2-core machine is slow)
STOP_TIMEOUT = 20.0  # for Voilà to shut its kernels down after SIGTERM

_KERNEL_FILE = re.compile(r"kernel-([0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12})\.json")


def kernel_processes(server_pid: int) -> dict[str, psutil.Process]:
    """The kernels a Jupyter server (Voilà, JupyterLab) runs now: kernel id -> process, from
    its direct children's command lines (``kernel-<id>.json``)."""
    kernels = {}
    try:
        children = psutil.Process(server_pid).children(recursive=False)
    except psutil.NoSuchProcess:
        return {}
    for child in children:
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
            match = _KERNEL_FILE.search(" ".join(child.cmdline()))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if match:
            kernels[match.group(1)] = child
    return kernels


class VoilaStartError(RuntimeError):
    """The Voilà server did not start."""


def load_config() -> dict:
    """The project's Voilà configuration (``voila.json``) as a dict."""
    return json.loads(CONFIG_FILE.read_text(encoding="utf-8"))



def isolated_jupyter_env(home: Path, unset: Iterable[str] = ()) -> dict[str, str | None]:
    """Environment changes for a server run as a new user would: temporary per-user Jupyter
    folders (config, data, runtime, IPython) under ``home``, and none of ``unset`` (None
    removes a variable)."""
    for folder in ("config", "data", "runtime", "ipython"):
        (home / folder).mkdir(parents=True, exist_ok=True)
    env: dict[str, str | None] = dict.fromkeys(unset)
    env.update({"JUPYTER_CONFIG_DIR": str(home / "config"),
                "JUPYTER_DATA_DIR": str(home / "data"),
                "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
                "IPYTHONDIR": str(home / "ipython"),
                "PYTHONDONTWRITEBYTECODE": "1"})
    return env


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class VoilaServer:
    """A running Voilà server: ``url`` (ends with ``/``), ``port``, ``process`` and its log."""

    #: which host this is (``solara_server.SolaraServer.host`` is ``"solara"``)
    host = "voila"

    def __init__(self, process: subprocess.Popen, port: int, notebook: Path,
                 log_path: Path, env: Mapping[str, str], pool_size: int) -> None:
        self.process = process
        self.port = port
        self.notebook = notebook
        self.log_path = log_path
        self.env = dict(env)
        self.pool_size = pool_size
        self.url = f"http://127.0.0.1:{port}/"

    def __repr__(self) -> str:
        return f"VoilaServer({self.url!r}, pid={self.process.pid}, notebook={self.notebook.name!r})"

    @property
    def log_store(self) -> Path | None:
        """The SQLite file of the server's interaction log, if its ``GUIDE_LOG_URL`` is one."""
        url = self.env.get("GUIDE_LOG_URL", "")
        return Path(url.removeprefix("sqlite://")) if url.startswith("sqlite://") else None

    @property
    def psutil_process(self) -> psutil.Process:
        return psutil.Process(self.process.pid)

    def kernel_processes(self) -> dict[str, psutil.Process]:
        """The server's running kernels: kernel id -> kernel process (a direct child)."""
        return kernel_processes(self.process.pid)

    def kernel_ids(self) -> set[str]:
        """Ids of the kernels the server runs now (preheated pool included)."""
        return set(self.kernel_processes())

    def wait_until_preheated(self, timeout: float = 60.0) -> None:
        """Wait until Voilà has filled its preheated pool once (no-op without preheating)."""
        deadline = time.monotonic() + timeout
        while self.pool_size and "Kernel pool of" not in self.log():
            if time.monotonic() > deadline:
                raise AssertionError(f"the preheated pool was not filled within {timeout:.0f} s")
            self.check_alive()
            time.sleep(0.25)

    def wait_for_pool(self, timeout: float = 60.0, exclude: Iterable[str] = ()) -> set[str]:
        """Wait until the server runs exactly its preheated pool besides the kernels in
        ``exclude`` (visitors' kernels still open); return the ids of the pool's kernels."""
        exclude = set(exclude)
        deadline = time.monotonic() + timeout
        while True:
            ids = self.kernel_ids() - exclude
            if len(ids) == self.pool_size:
                return ids
            if time.monotonic() > deadline:
                raise AssertionError(f"expected the {self.pool_size} preheated kernel(s), the "
                                     f"server runs {len(ids)} others after {timeout:.0f} s")
            self.check_alive()
            time.sleep(0.25)

    def log(self) -> str:
        """Everything the server (and its kernels) wrote to stdout and stderr so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise VoilaStartError(f"Voilà exited with status {self.process.returncode}:\n"
                                  f"{_tail(self.log())}")

    def get(self, path: str = "", timeout: float = 120.0, headers: Mapping[str, str] | None = None):
        """GET ``url + path``; returns (status, headers, body text). No redirects are followed
        for errors: HTTP errors come back as their status, not as exceptions."""
        request = urllib.request.Request(self.url + path.lstrip("/"), headers=dict(headers or {}))
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.headers, response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as error:
            return error.code, error.headers, error.read().decode("utf-8", "replace")


# --------------------------------------------------------------------------- a visitor over HTTP

OUTPUT_SCRIPT = re.compile(
    r'<script type="application/vnd\.voila\.cell-output\+json">\s*(.*?)\s*</script>', re.S)
PAGE_CONFIG = re.compile(
    r'<script id="jupyter-config-data" type="application/json">\s*(.*?)\s*</script>', re.S)


@dataclass
class Page:
    """One visit: the HTTP answer, its rendered outputs, its kernel and its cookies."""

    status: int
    content_type: str
    html: str
    outputs: list[dict]
    kernel_id: str
    cookies: http.cookiejar.CookieJar

    def cookie(self, name: str) -> str | None:
        return next((c.value for c in self.cookies if c.name == name), None)


def visit(server: VoilaServer, path: str = "") -> Page:
    """GET a page like a first-time visitor (empty cookie jar); an HTTP error (the busy page)
    comes back as its status and page, with no outputs and no kernel."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    try:
        with opener.open(server.url + path, timeout=180) as response:
            status, content_type = response.status, response.headers.get("Content-Type", "")
            text = response.read().decode("utf-8")
    except urllib.error.HTTPError as error:
        status, content_type = error.code, error.headers.get("Content-Type", "")
        text = error.read().decode("utf-8", "replace")
    outputs = [json.loads(block) for block in OUTPUT_SCRIPT.findall(text)]
    config = PAGE_CONFIG.search(text)
    kernel_id = json.loads(config.group(1))["kernelId"] if config else ""
    return Page(status, content_type, text, outputs, kernel_id, jar)


def beacon(server: VoilaServer, kernel_id: str, xsrf: str | None,
           cookies: http.cookiejar.CookieJar) -> int:
    """What Voilà's page sends on ``beforeunload``: POST /voila/api/shutdown/<id> with the
    ``_xsrf`` cookie's value as form field. Returns the HTTP status."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(cookies))
    body = urllib.parse.urlencode({"_xsrf": xsrf or ""}).encode()
    request = urllib.request.Request(f"{server.url}voila/api/shutdown/{kernel_id}", data=body,
                                     method="POST")
    try:
        with opener.open(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _pool_size(config: dict, extra_args: Sequence[str]) -> int:
    """Preheated kernels per notebook, from voila.json and any command-line override."""
    settings = config.get("VoilaConfiguration", {})
    preheat = bool(settings.get("preheat_kernel", False))
    size = int(settings.get("default_pool_size", 1))
    for arg in extra_args:
        name, _, value = arg.lstrip("-").partition("=")
        if name in ("preheat_kernel", "VoilaConfiguration.preheat_kernel"):
            preheat = value.lower() in ("1", "true", "yes")
        elif name in ("pool_size", "VoilaConfiguration.default_pool_size"):
            size = int(value)
    return max(size, 0) if preheat else 0


def _server_env(env: Mapping[str, str | None] | None) -> dict[str, str]:
    merged = dict(os.environ)
    for key, value in (env or {}).items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = str(value)
    merged.setdefault("PYTHONUNBUFFERED", "1")
    return merged


def _wait_until_answering(server: VoilaServer, timeout: float) -> None:
    """Poll a static file (never the notebook: that would take a kernel) until it is served."""
    deadline = time.monotonic() + timeout
    probe = server.url + "voila/static/voila.js"
    while True:
        server.check_alive()
        try:
            with urllib.request.urlopen(probe, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        if time.monotonic() > deadline:
            raise VoilaStartError(f"Voilà did not answer on {server.url} within {timeout:.0f} s:\n"
                                  f"{_tail(server.log())}")
        time.sleep(0.2)


def stop_server(server: VoilaServer, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM the server (Voilà then shuts its kernels down), SIGKILL what is left after
    ``timeout``: the server's process group and any kernel it started (kernels run in
    sessions of their own)."""
    process = server.process
    kernels = list(server.kernel_processes().values())
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            # still running, so its process group (started with the server) is still ours
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    for kernel in kernels:  # psutil refuses to signal a pid that was reused meanwhile
        with contextlib.suppress(psutil.NoSuchProcess):
            kernel.kill()
    psutil.wait_procs(kernels, timeout=5)


@contextlib.contextmanager
def start_voila(notebook: str | os.PathLike, port: int | None = None,
                env: Mapping[str, str | None] | None = None,
                extra_args: Sequence[str] = (),
                start_timeout: float = START_TIMEOUT,
                as_typed: bool = False,
                cwd: str | os.PathLike | None = None) -> Iterator[VoilaServer]:
    """Run Voilà for ``notebook`` with the project's voila.json; yield a :class:`VoilaServer`.

    ``notebook`` is absolute or relative to the project root. ``port`` defaults to a free
    one. ``env`` overrides the server's (and so its kernels') environment; a value of
    None removes the variable. ``extra_args`` go to the Voilà command line, before the
    notebook. The server is stopped on exit, kernels included.

    ``as_typed``: run the command a person types in the project folder, the environment's
    ``voila`` script with the notebook's path relative to the project root
    (``voila --port=N notebooks/guide.ipynb``), which finds ``voila.json`` (and any
    per-user Voilà configuration) by itself.

    ``cwd``: start the server in that folder instead, the notebook named by its absolute
    path, with no configuration given: Voilà finds what it finds from there (the installed
    ``<environment>/etc/jupyter/voila.json``, any per-user one). ``as_typed`` then chooses the
    ``voila`` script over ``python -m voila``.
    """
    refuse_in_quick_lane("a Voilà server")
    notebook = Path(notebook)
    if not notebook.is_absolute():
        notebook = PROJECT_ROOT / notebook
    if not notebook.is_file():
        raise VoilaStartError(f"notebook not found: {notebook}")
    if cwd is not None:
        prefix = ([str(Path(sys.executable).with_name("voila"))] if as_typed
                  else [sys.executable, "-m", "voila"])
        notebook_arg = str(notebook)
    elif as_typed:
        prefix = [str(Path(sys.executable).with_name("voila"))]
        notebook_arg = str(notebook.relative_to(PROJECT_ROOT))
    else:
        # only the project's voila.json, whatever is in ~/.jupyter or the venv
        prefix = [sys.executable, "-m", "voila",
                  f"--Voila.config_file_paths={[str(PROJECT_ROOT)]!r}"]
        notebook_arg = str(notebook)
    config = load_config()
    server_env = _server_env(env)
    attempts = 1 if port is not None else 3  # a free port can be taken before Voilà binds it
    with tempfile.TemporaryDirectory(prefix="voila-test-") as workdir:
        for attempt in range(1, attempts + 1):
            chosen = port if port is not None else free_port()
            log_path = Path(workdir) / f"voila-{chosen}.log"
            command = [*prefix, f"--port={chosen}", *extra_args, notebook_arg]
            with open(log_path, "wb") as log_file:
                process = subprocess.Popen(
                    command, cwd=cwd or PROJECT_ROOT, env=server_env, stdin=subprocess.DEVNULL,
                    stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
                )
            server = VoilaServer(process, chosen, notebook, log_path, server_env,
                                 _pool_size(config, extra_args))
            try:
                _wait_until_answering(server, start_timeout)
            except VoilaStartError:
                stop_server(server)
                log = server.log()
                if attempt < attempts and "could not be started" in log:
                    continue  # port taken meanwhile: try another one
                raise
            break
        try:
            yield server
        finally:
            stop_server(server)


class VoilaServers:
    """The fixture factory of Voilà servers (fixture ``voila_servers``): each method is a
    context manager around :func:`start_voila` that fails the test (never skips it) when the
    server does not start, and stops the server on exit.

    ``log_store`` (the default for the guide): the server gets an empty temporary interaction
    log, ``GUIDE_LOG_URL=sqlite:///<tmp>/events.sqlite3`` and ``GUIDE_DATA_DIR=<tmp>`` (and
    no ``GUIDE_LOG``, so the guide logs), so nothing is written to the project's data folder
    (``VoilaServer.log_store`` is that file); ``env`` is applied on top.
    ``preheated``: yield once the preheated pool is filled.
    """

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self.tmp_path_factory = tmp_path_factory

    def log_env(self, name: str = "guide-data") -> dict[str, str | None]:
        """An empty temporary log: GUIDE_DATA_DIR and GUIDE_LOG_URL for a server."""
        data_dir = self.tmp_path_factory.mktemp(name)
        return {"GUIDE_DATA_DIR": str(data_dir),
                "GUIDE_LOG_URL": f"sqlite://{data_dir / 'events.sqlite3'}",
                "GUIDE_LOG": None}  # the guide logs (the default), whatever the test run says

    @contextlib.contextmanager
    def serve(self, notebook: str | os.PathLike, *,
              env: Mapping[str, str | None] | None = None, log_store: bool = False,
              preheated: bool = False, **start_args) -> Iterator[VoilaServer]:
        """``notebook`` served by :func:`start_voila` (``start_args``: its keyword arguments)."""
        server_env = self.log_env() if log_store else {}
        server_env.update(env or {})
        stack = contextlib.ExitStack()
        try:
            server = stack.enter_context(start_voila(notebook, env=server_env, **start_args))
            if preheated:
                server.wait_until_preheated(timeout=120)
        except (VoilaStartError, AssertionError) as error:
            stack.close()
            pytest.fail(f"cannot start Voilà: {error}", pytrace=False)
        with stack:
            yield server

    def guide(self, *, log_store: bool = True,
              **serve_args) -> contextlib.AbstractContextManager[VoilaServer]:
        """The guide (notebooks/guide.ipynb) on Voilà (the Solara host's factory is
        ``solara_server.SolaraServers``)."""
        return self.serve(GUIDE_NOTEBOOK, log_store=log_store, **serve_args)

    def dashboard(self, log_url: str, *, env: Mapping[str, str | None] | None = None,
                  **serve_args) -> contextlib.AbstractContextManager[VoilaServer]:
        """The summary dashboard (notebooks/summary.ipynb) reading the log at ``log_url``."""
        server_env: dict[str, str | None] = {"GUIDE_LOG_URL": log_url}
        server_env.update(env or {})
        return self.serve(SUMMARY_NOTEBOOK, env=server_env, **serve_args)


#: The hosts that serve the guide: ``guide_server`` runs each test once per host. "voila" is
#: this module's Voilà (``voila_guide``), "solara" the Solara host of ``solara_server.py``
#: (``solara_default_guide``).
GUIDE_HOSTS = ("voila", "solara")


# --------------------------------------------------------------------------- pytest fixtures


@pytest.fixture(scope="session")
@needs("server")
def voila_servers(tmp_path_factory: pytest.TempPathFactory) -> VoilaServers:
    """The factory: ``with voila_servers.guide(preheated=True) as server: ...`` in a
    module-scoped fixture of one's own, or in a test."""
    return VoilaServers(tmp_path_factory)


@pytest.fixture(scope="session")
def voila_guide(voila_servers: VoilaServers) -> Iterator[VoilaServer]:
    """Voilà serving notebooks/guide.ipynb with an empty temporary log store, for the session
    (the tests that check Voilà itself: kernels, its paths, its log)."""
    with voila_servers.guide() as server:
        yield server


@pytest.fixture(scope="session", params=GUIDE_HOSTS)
def guide_host(request: pytest.FixtureRequest) -> str:
    """The host serving the guide: each of GUIDE_HOSTS in turn."""
    return request.param


#: The session fixture serving the guide on each host of GUIDE_HOSTS.
GUIDE_SERVER_OF = {"voila": "voila_guide", "solara": "solara_default_guide"}


@pytest.fixture(scope="session")
@needs("server")
def guide_server(guide_host: str, request: pytest.FixtureRequest):
    """The guide served by ``guide_host`` for the session, with an empty temporary log
    (``server.log_store``), for the tests that hold for every host: ``voila_guide``'s server
    (a :class:`VoilaServer`) or ``solara_default_guide``'s (a ``solara_server.SolaraServer``).
    Both have ``host``, ``url``, ``port``, ``get()`` and ``log_store``."""
    if guide_host not in GUIDE_SERVER_OF:
        raise ValueError(f"no guide server for host {guide_host!r}")
    return request.getfixturevalue(GUIDE_SERVER_OF[guide_host])
