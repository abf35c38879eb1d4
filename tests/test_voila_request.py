"""A preheated kernel receives its visitor's request without Voilà (widgets/hosts/voila/request.py).

The client is tested against Voilà's own ``/voila/query`` handler (``RequestInfoSocketHandler``
with the guide's hooks, widgets/hosts/voila/query.py, on a tornado server in this process), from a
fresh interpreter that must not load Voilà's server side, and in a guide kernel that Voilà
preheated and a visitor's link then took.
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from tornado import web, websocket
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop
from voila.request_info_handler import RequestInfoSocketHandler
from voila_server import PROJECT_ROOT, VoilaServer, beacon, visit

from widgets.hosts.voila import request as voila_request
from widgets.hosts.voila.query import request_info_open, request_info_prepare

#: Top-level packages of Voilà's server side, none of which a visitor's kernel needs.
SERVER_SIDE = ("voila", "jupyter_server", "jupyterlab_server", "websockets", "nbconvert",
               "jinja2", "tornado")
KERNEL_ID = r"(?P<kernel_id>\w+-\w+-\w+-\w+-\w+)"  # voila.app's route for /voila/query


class _QueryHandler(RequestInfoSocketHandler):
    """Voilà's handler as the guide's server runs it (its checks and its one-time hand-over),
    noting each handshake's headers."""

    prepare = request_info_prepare
    open = request_info_open
    headers_seen: list[dict[str, str]] = []

    def get(self, *args, **kwargs):
        _QueryHandler.headers_seen.append(dict(self.request.headers))
        return super().get(*args, **kwargs)


class _Misbehaving(websocket.WebSocketHandler):
    """A websocket that pings, then sends what the test asks: ``/big``, ``/binary``, ``/close``."""

    async def open(self, what: str) -> None:
        self.ping(b"are you there")
        if what == "big":
            await self.write_message("x" * (voila_request.MAX_MESSAGE + 1))
        elif what == "binary":
            await self.write_message(b"{}", binary=True)
        elif what == "close":
            self.close(1001)
        else:
            await self.write_message(json.dumps({"QUERY_STRING": "after=ping"}))


class _Kernels:
    def __init__(self) -> None:
        self.ids: set[str] = set()

    def list_kernel_ids(self) -> list[str]:
        return list(self.ids)


@dataclass
class _Server:
    loop: IOLoop
    port: int
    kernels: _Kernels = field(default_factory=_Kernels)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/voila/query"

    def new_kernel(self) -> str:
        kernel_id = str(uuid.uuid4())
        self.kernels.ids.add(kernel_id)
        return kernel_id

    def send_request(self, kernel_id: str, payload: dict) -> None:
        """What Voilà's page handler does when a visitor takes the kernel."""
        done = threading.Event()

        def send() -> None:
            RequestInfoSocketHandler.send_updates({"kernel_id": kernel_id, "payload": payload})
            done.set()

        self.loop.add_callback(send)
        assert done.wait(10)

    def waiting(self, kernel_id: str) -> bool:
        return kernel_id in RequestInfoSocketHandler._waiters


@pytest.fixture(scope="module")
def query_server() -> Iterator[_Server]:
    """A tornado server with Voilà's /voila/query handler, in a thread of this process."""
    ready = threading.Event()
    holder: dict = {}
    kernels = _Kernels()

    def run() -> None:
        asyncio.set_event_loop(asyncio.new_event_loop())
        app = web.Application([(rf"/voila/query/{KERNEL_ID}", _QueryHandler),
                               (r"/misbehave/(\w+)", _Misbehaving)],
                              kernel_manager=kernels)
        server = HTTPServer(app)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        sock.setblocking(False)
        server.add_sockets([sock])
        holder["port"] = sock.getsockname()[1]
        holder["loop"] = IOLoop.current()
        ready.set()
        IOLoop.current().start()
        server.stop()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10)
    yield _Server(holder["loop"], holder["port"], kernels)
    holder["loop"].add_callback(holder["loop"].stop)
    thread.join(10)


def _kernel_env(server: _Server, kernel_id: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOILA_")}
    env.update(VOILA_PREHEAT="True", VOILA_KERNEL_ID=kernel_id, VOILA_APP_PORT=str(server.port),
               VOILA_SERVER_URL="/", VOILA_BASE_URL="/")
    env.pop("QUERY_STRING", None)
    return env


FRESH_KERNEL_SCRIPT = """
import json, os, sys
import widgets.app
widgets.app.wait_for_request()
loaded = sorted({name.split(".")[0] for name in sys.modules} & set(sys.argv[1].split(",")))
print(json.dumps({"loaded": loaded, "query": os.environ.get("QUERY_STRING"),
                  "server": os.environ.get("SERVER_SOFTWARE")}))
"""


def test_the_guide_receives_its_visitors_request_without_loading_voila(query_server):
    """In a fresh interpreter: the guide's wait for its visitor returns with the request in
    ``os.environ``, and nothing of Voilà's server side has been imported."""
    kernel_id = query_server.new_kernel()
    request = {"QUERY_STRING": "lang=en&step=channel", "SERVER_SOFTWARE": "voila/0.5.13",
               "SCRIPT_NAME": "/", "PATH_INFO": ""}
    query_server.send_request(kernel_id, request)  # the visitor came before the kernel asked
    result = subprocess.run(
        [sys.executable, "-c", FRESH_KERNEL_SCRIPT, ",".join(SERVER_SIDE)], cwd=PROJECT_ROOT,
        env=_kernel_env(query_server, kernel_id), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["loaded"] == []
    assert found["query"] == "lang=en&step=channel"
    assert found["server"] == "voila/0.5.13"


def test_a_request_that_comes_after_the_kernel_connected(query_server, monkeypatch):
    kernel_id = query_server.new_kernel()
    for key, value in _kernel_env(query_server, kernel_id).items():
        if key.startswith("VOILA_"):
            monkeypatch.setenv(key, value)
    monkeypatch.delenv("QUERY_STRING", raising=False)
    monkeypatch.delenv("VOILA_WS_BASE_URL", raising=False)
    done = threading.Event()
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            voila_request.wait_for_request()
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)
        done.set()

    threading.Thread(target=wait, daemon=True).start()
    for _ in range(200):
        if query_server.waiting(kernel_id) or done.is_set():
            break
        done.wait(0.05)
    assert query_server.waiting(kernel_id), errors
    assert not done.is_set()  # it waits for the visitor
    query_server.send_request(kernel_id, {"QUERY_STRING": "step=reach"})
    assert done.wait(30)
    assert errors == []
    assert os.environ["QUERY_STRING"] == "step=reach"
    headers = {name.lower() for name in _QueryHandler.headers_seen[-1]}
    assert "origin" not in headers
    assert not headers & {"x-forwarded-for", "x-real-ip", "forwarded", "x-forwarded-host"}
    # the request was handed over once: a second connection for the kernel gets nothing
    assert kernel_id not in RequestInfoSocketHandler._cache


def test_a_refused_connection_is_a_clear_error_and_the_guide_starts_plainly(
        query_server, monkeypatch, caplog):
    unknown = str(uuid.uuid4())  # not a kernel of this server: /voila/query answers 403
    with pytest.raises(voila_request.RequestInfoError, match="refused the websocket.*403"):
        voila_request.receive(f"{query_server.url}/{unknown}")
    from widgets import app

    for key, value in _kernel_env(query_server, unknown).items():
        if key.startswith("VOILA_"):
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("QUERY_STRING", "unchanged")
    app.wait_for_request()
    assert os.environ["QUERY_STRING"] == "unchanged"
    assert "the visitor's request did not arrive" in caplog.text


def test_pings_are_answered_and_bad_messages_refused(query_server):
    base = f"ws://127.0.0.1:{query_server.port}/misbehave/"
    assert voila_request.receive(base + "ok") == {"QUERY_STRING": "after=ping"}
    with pytest.raises(voila_request.RequestInfoError, match="longer than"):
        voila_request.receive(base + "big")
    with pytest.raises(voila_request.RequestInfoError, match="binary"):
        voila_request.receive(base + "binary")
    with pytest.raises(voila_request.RequestInfoError, match="closed the websocket"):
        voila_request.receive(base + "close")


def test_a_server_that_never_answers_the_handshake(query_server):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        with pytest.raises(voila_request.RequestInfoError, match="during the handshake"):
            voila_request.receive(f"ws://127.0.0.1:{port}/voila/query/x", timeout=0.5)
    with pytest.raises(voila_request.RequestInfoError, match="cannot connect"):
        voila_request.receive(f"ws://127.0.0.1:{port}/voila/query/x", timeout=0.5)


def test_the_address_is_voilas():
    """Built from the environment as ``voila.utils.wait_for_request`` builds it."""
    assert voila_request.query_url({}) == "ws://127.0.0.1:8866/voila/query"
    env = {"VOILA_APP_PORT": "9000", "VOILA_SERVER_URL": "/guide/", "VOILA_APP_IP": "10.0.0.2",
           "VOILA_WS_PROTOCOL": "wss"}
    assert voila_request.query_url(env) == "wss://10.0.0.2:9000/guide/voila/query"
    env["VOILA_WS_BASE_URL"] = "/ws/"
    assert voila_request.query_url(env) == "wss://10.0.0.2:9000/ws/voila/query"


# --------------------------------------------------------------------------- a served kernel

@pytest.fixture(scope="module")
def served_guide(voila_servers) -> Iterator[VoilaServer]:
    with voila_servers.guide() as server:
        yield server


KERNEL_PROBE = (
    "json.dumps({'loaded': sorted({n.split('.')[0] for n in sys.modules} & set(%r)),"
    " 'query': os.environ.get('QUERY_STRING'), 'preheated': os.environ.get('VOILA_PREHEAT')})"
    % (SERVER_SIDE[:-1],))  # tornado: ipykernel itself runs on it


def _ask_kernel(server: VoilaServer, kernel_id: str) -> dict:
    """Evaluate :data:`KERNEL_PROBE` in the server's kernel ``kernel_id``, over its own
    connection file (as the server talks to it)."""
    from jupyter_client import BlockingKernelClient

    cmdline = server.kernel_processes()[kernel_id].cmdline()
    connection_file = next(arg for arg in cmdline if re.search(r"kernel-.*\.json$", arg))
    client = BlockingKernelClient(connection_file=connection_file)
    client.load_connection_file()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        reply = client.execute_interactive(
            "import json, os, sys", user_expressions={"probe": KERNEL_PROBE}, timeout=60,
            silent=True, store_history=False, output_hook=lambda msg: None)
    finally:
        client.stop_channels()
    value = reply["content"]["user_expressions"]["probe"]
    assert value["status"] == "ok", value
    return json.loads(ast.literal_eval(value["data"]["text/plain"]))  # the repr of a str


def test_a_preheated_guide_kernel_gets_its_link_and_holds_no_voila(served_guide):
    served_guide.wait_until_preheated(timeout=120)
    page = visit(served_guide, "?lang=en&step=channel")
    try:
        assert page.status == 200 and page.kernel_id
        found = _ask_kernel(served_guide, page.kernel_id)
        assert found["preheated"] == "True"  # a kernel of the pool, taken by this visit
        assert found["query"] == "lang=en&step=channel"
        assert found["loaded"] == []
        assert "the visitor's request did not arrive" not in served_guide.log()
    finally:
        beacon(served_guide, page.kernel_id, page.cookie("_xsrf"), page.cookies)


# --------------------------------------------------------------------------- the benchmark's bare app

BARE_NOTEBOOK = PROJECT_ROOT / "benchmarks" / "bare" / "bare.ipynb"


@pytest.fixture(scope="module")
def served_bare(voila_servers) -> Iterator[VoilaServer]:
    with voila_servers.serve(BARE_NOTEBOOK, log_store=True) as server:
        yield server


def test_the_bare_app_imports_ipywidgets_and_nothing_else():
    """The benchmark compares the guide's kernel with this one: anything else it imports would
    hide the same cost in the guide."""
    cells = json.loads(BARE_NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    imported = set()
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        for node in ast.walk(ast.parse("".join(cell["source"]))):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                imported.add(node.module)
    assert imported == {"ipywidgets", "IPython.display"}


def test_the_bare_app_is_served_from_a_preheated_kernel_without_voila(served_bare):
    served_bare.wait_until_preheated(timeout=120)
    page = visit(served_bare, "?unused=1")
    try:
        assert page.status == 200 and page.kernel_id
        assert any("application/vnd.jupyter.widget-view+json" in out.get("data", {})
                   for out in page.outputs), page.outputs
        found = _ask_kernel(served_bare, page.kernel_id)
        assert found["preheated"] == "True"
        assert found["loaded"] == []
    finally:
        beacon(served_bare, page.kernel_id, page.cookie("_xsrf"), page.cookies)


def test_a_pool_kernel_given_to_a_visitor_is_not_culled_for_its_wait_in_the_pool():
    """A notebook that does not wait for its visitor (the bare app) finishes in the pool and
    is quiet from then on; the idle culler must not count that time against the page that
    takes the kernel (its websocket connects a moment later)."""
    from datetime import timedelta

    from jupyter_server._tz import utcnow

    from widgets.hosts.voila.kernels import GuideKernelManager

    async def scenario() -> None:
        manager = GuideKernelManager(cull_idle_timeout=60)
        kernel_id = await manager.start_kernel()
        try:
            await manager.get_kernel(kernel_id).ready
            kernel = manager.get_kernel(kernel_id)
            kernel.last_activity = utcnow() - timedelta(minutes=10)  # quiet in the pool
            manager._taken(kernel_id)  # a page takes it
            await manager.cull_kernel_if_idle(kernel_id)
            assert kernel_id in manager
        finally:
            if kernel_id in manager:
                await manager.shutdown_kernel(kernel_id, now=True)

    asyncio.run(scenario())
