"""Start the guide on Solara's virtual kernels (``widgets/hosts/solara``) the way ``./manage app
--solara`` does, for tests and benchmarks.

The server runs ``python -m widgets.hosts.solara`` of the running interpreter on a free port of
127.0.0.1, with this project on ``PYTHONPATH`` and its own interaction log::

    with start_solara(data_dir, "--max-visitors=1") as server:
        requests.get(server.url)
        server.sessions()            # the log sessions written so far
        server.log                   # what the server wrote to stdout and stderr

``options`` are the host's command-line options (its limits: ``--max-visitors``,
``--idle-timeout``, ...); everything else is the host's default. The log is
``GUIDE_LOG_URL=sqlite://<data_dir>/events.sqlite3`` unless ``store`` says otherwise, and
``GUIDE_DATA_DIR=<data_dir>``.

Fixtures (registered by ``conftest.py``): ``solara_servers``, the factory
(:class:`SolaraServers`: ``.guide(*options)``), e.g. for a module that needs a server of its
own::

    @pytest.fixture(scope="module")
    def server(solara_servers):
        with solara_servers.guide("--max-visitors=1") as server:
            yield server

and ``solara_default_guide`` (session-scoped): the guide with the host's default limits and an
empty temporary log, which ``guide_server`` gives the tests that hold for every host. A server
that cannot be started fails the tests that use it; it never skips them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from lanes import needs, refuse_in_quick_lane
from voila_server import PROJECT_ROOT, free_port

START_TIMEOUT = 120.0  # until the server answers /readyz (a loaded 2-core machine is slow)
STOP_TIMEOUT = 15.0  # for the server to close its visits after SIGTERM

#: The options of the session's shared guide (``solara_default_guide``): the host's defaults,
#: except that a page that has gone gives its virtual kernel back after 10 s instead of 60 s.
#: The browser tests open a page per screen; under the default the closed pages' kernels would
#: count against the visitor cap for a minute each.
SHARED_GUIDE_OPTIONS = ("--disconnected-timeout=10",)


class SolaraStartError(RuntimeError):
    """The Solara host did not start."""


@dataclass
class SolaraServer:
    """A running Solara host: ``url`` (ends with ``/``), ``port``, ``process``, its output in
    ``log_path`` and its interaction log (SQLite) at ``store``."""

    process: subprocess.Popen
    port: int
    log_path: Path
    store: Path

    #: which host this is (``VoilaServer.host`` is ``"voila"``)
    host = "solara"

    def __repr__(self) -> str:
        return f"SolaraServer({self.url!r}, pid={self.process.pid})"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def log(self) -> str:
        """Everything the server wrote to stdout and stderr so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    @property
    def log_store(self) -> Path:
        """The SQLite file of the server's interaction log."""
        return self.store

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise SolaraStartError(f"the Solara host exited with status "
                                   f"{self.process.returncode}:\n{_tail(self.log)}")

    def sessions(self) -> set[str]:
        """The log sessions written so far."""
        if not self.store.exists():
            return set()
        conn = sqlite3.connect(f"file:{self.store}?mode=ro", uri=True, timeout=10)
        try:
            return {row[0] for row in conn.execute("SELECT DISTINCT session FROM events")}
        except sqlite3.OperationalError:
            return set()
        finally:
            conn.close()

    def socket_url(self, kernel_id: str) -> str:
        """The kernel websocket a page of this server opens for ``kernel_id``."""
        return (f"ws://127.0.0.1:{self.port}/jupyter/api/kernels/{kernel_id}/channels"
                f"?session_id={uuid.uuid4()}")

    def get(self, path: str = "", timeout: float = 120.0, headers: Mapping[str, str] | None = None):
        """GET ``url + path``; returns (status, headers, body text), as ``VoilaServer.get``."""
        request = urllib.request.Request(self.url + path.lstrip("/"), headers=dict(headers or {}))
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.headers, response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as error:
            return error.code, error.headers, error.read().decode("utf-8", "replace")


def _tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _ready(server: SolaraServer) -> bool:
    try:
        with urllib.request.urlopen(server.url + "readyz", timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


def stop_server(server: SolaraServer, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM the server, SIGKILL its process group if it is still running after ``timeout``
    (the virtual kernels are threads of the server: nothing else is left)."""
    process = server.process
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


@contextlib.contextmanager
def start_solara(data_dir: str | os.PathLike, *options: str, store: Path | None = None,
                 env: Mapping[str, str | None] | None = None,
                 start_timeout: float = START_TIMEOUT) -> Iterator[SolaraServer]:
    """Run ``python -m widgets.hosts.solara --port=<free> *options`` in ``data_dir``; yield a
    :class:`SolaraServer` once it answers ``/readyz``, and stop it on exit.

    The log is SQLite at ``store`` (default ``<data_dir>/events.sqlite3``); ``env`` overrides
    the server's environment (None removes a variable)."""
    refuse_in_quick_lane("a Solara server")
    data_dir = Path(data_dir)
    store = store or data_dir / "events.sqlite3"
    server_env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT), GUIDE_DATA_DIR=str(data_dir),
                      GUIDE_LOG_URL=f"sqlite://{store}", PYTHONUNBUFFERED="1")
    server_env.pop("GUIDE_LOG", None)  # the guide logs (as the host's default)
    for key, value in (env or {}).items():
        if value is None:
            server_env.pop(key, None)
        else:
            server_env[key] = str(value)
    attempts = 3  # a free port can be taken before the server binds it
    for attempt in range(1, attempts + 1):
        port = free_port()
        log_path = data_dir / f"solara-{port}.log"
        with open(log_path, "wb") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "widgets.hosts.solara", f"--port={port}", *options],
                cwd=data_dir, env=server_env, stdin=subprocess.DEVNULL, stdout=log_file,
                stderr=subprocess.STDOUT, start_new_session=True)
        server = SolaraServer(process, port, log_path, store)
        deadline = time.monotonic() + start_timeout
        try:
            while not _ready(server):
                server.check_alive()
                if time.monotonic() > deadline:
                    raise SolaraStartError(f"the Solara host did not answer on {server.url} "
                                           f"within {start_timeout:.0f} s:\n{_tail(server.log)}")
                time.sleep(0.5)
        except SolaraStartError:
            stop_server(server)
            if attempt < attempts and "address already in use" in server.log.lower():
                continue
            raise
        break
    try:
        yield server
    finally:
        stop_server(server)


class SolaraServers:
    """The fixture factory of Solara hosts (fixture ``solara_servers``): ``guide`` is a context
    manager around :func:`start_solara` that fails the test (never skips it) when the server
    does not start, and stops the server on exit."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self.tmp_path_factory = tmp_path_factory

    @contextlib.contextmanager
    def guide(self, *options: str, data_dir: Path | None = None, store: Path | None = None,
              env: Mapping[str, str | None] | None = None) -> Iterator[SolaraServer]:
        """The guide on Solara with ``options``, in ``data_dir`` (default: a new temporary
        folder) with an empty log there (or at ``store``)."""
        data_dir = data_dir or self.tmp_path_factory.mktemp("solara-guide")
        stack = contextlib.ExitStack()
        try:
            server = stack.enter_context(start_solara(data_dir, *options, store=store, env=env))
        except SolaraStartError as error:
            stack.close()
            pytest.fail(f"cannot start the Solara host: {error}", pytrace=False)
        with stack:
            yield server


# --------------------------------------------------------------------------- pytest fixtures


@pytest.fixture(scope="session")
@needs("server")
def solara_servers(tmp_path_factory: pytest.TempPathFactory) -> SolaraServers:
    """The factory: ``with solara_servers.guide("--max-visitors=1") as server: ...`` in a
    module-scoped fixture of one's own, or in a test."""
    return SolaraServers(tmp_path_factory)


@pytest.fixture(scope="session")
def solara_default_guide(solara_servers: SolaraServers) -> Iterator[SolaraServer]:
    """The guide on Solara for the session, the host's default limits (but
    :data:`SHARED_GUIDE_OPTIONS`) and an empty temporary log: ``guide_server``'s Solara."""
    with solara_servers.guide(*SHARED_GUIDE_OPTIONS) as server:
        yield server
