"""The public app under hostile requests and websocket messages (see widgets/hosts/voila/).

Each test sends what an attacker sent, to a real Voilà server started with the project's
``voila.json``, and checks that the server refuses it and stays responsive: a static file
answers in well under a second, the server's memory stays bounded, and the guide keeps
working for the next visitor.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from concurrent.futures import ThreadPoolExecutor
import urllib.request
import uuid
from collections.abc import Iterator

import pytest
from kernel_ws import V1, KernelClient, find_model, kernel_id_of
from voila_server import (
    PROJECT_ROOT,
    VoilaServer,
    beacon,
    load_config,
)
from voila_server import visit as open_page
from websockets.exceptions import ConnectionClosed, InvalidStatus

from widgets import casenotes, demo
from widgets.log import SQLiteStore

GUIDE = PROJECT_ROOT / "notebooks" / "guide.ipynb"
SUMMARY = PROJECT_ROOT / "notebooks" / "summary.ipynb"
#: A store that cannot be opened: the guide works without it and says so in the server log.
UNAVAILABLE_STORE = "sqlite:////proc/guide-log-cannot-live-here/events.sqlite3"
RESPONSIVE = 1.0  # seconds a static file may take while the server is under attack


def _serve(voila_servers, notebook, env, extra_args=()) -> Iterator[VoilaServer]:
    """``notebook`` served with ``env``, yielded once its preheated pool is filled."""
    with voila_servers.serve(notebook, env=env, extra_args=extra_args, preheated=True) as server:
        yield server


@pytest.fixture(scope="module")
def guide(voila_servers, tmp_path_factory) -> Iterator[VoilaServer]:
    data = tmp_path_factory.mktemp("guide-data")
    yield from _serve(voila_servers, GUIDE, {"GUIDE_LOG_URL": UNAVAILABLE_STORE, "GUIDE_DATA_DIR": str(data)})


@pytest.fixture(scope="module")
def dashboard(voila_servers, tmp_path_factory) -> Iterator[VoilaServer]:
    path = tmp_path_factory.mktemp("dashboard-data") / "events.sqlite3"
    with SQLiteStore(path) as store:
        demo.fill(store, 500, seed=3)
    yield from _serve(voila_servers, SUMMARY, {"GUIDE_LOG_URL": f"sqlite://{path}",
                                "GUIDE_DATA_DIR": str(path.parent)})


@pytest.fixture(scope="module")
def small_guide(voila_servers, tmp_path_factory) -> Iterator[VoilaServer]:
    """One visitor at most, no preheated pool; kernels culled after 5 idle seconds without a
    page, 4 with one."""
    data = tmp_path_factory.mktemp("small-data")
    yield from _serve(voila_servers, GUIDE, {"GUIDE_LOG_URL": f"sqlite://{data / 'events.sqlite3'}",
                              "GUIDE_DATA_DIR": str(data)},
                      extra_args=["--VoilaConfiguration.preheat_kernel=False",
                                  "--GuideIdentityProvider.max_visitors=1",
                                  "--GuideIdentityProvider.retry_after=7",
                                  "--GuideKernelManager.cull_connected_after=4",
                                  "--MappingKernelManager.cull_interval=1",
                                  "--MappingKernelManager.cull_idle_timeout=5"])


CAP = 3  # visitors the capped servers below take at once


@pytest.fixture(scope="module", params=[1, 0], ids=["pool-of-1", "no-pool"])
def capped_guide(request, voila_servers, tmp_path_factory) -> Iterator[VoilaServer]:
    """A cap of ``CAP`` visitors, with a preheated pool of one kernel or none."""
    data = tmp_path_factory.mktemp("capped-data")
    pool = (["--VoilaConfiguration.default_pool_size=1"] if request.param
            else ["--VoilaConfiguration.preheat_kernel=False"])
    yield from _serve(voila_servers, GUIDE, {"GUIDE_LOG_URL": f"sqlite://{data / 'events.sqlite3'}",
                                       "GUIDE_DATA_DIR": str(data)},
                               extra_args=[f"--GuideIdentityProvider.max_visitors={CAP}", *pool])


def static_answer_time(server: VoilaServer) -> float:
    """Seconds a small static file takes (a failure counts as 60)."""
    start = time.monotonic()
    try:
        with urllib.request.urlopen(server.url + "voila/static/voila.js", timeout=60) as response:
            response.read()
    except OSError:
        return 60.0
    return time.monotonic() - start


def assert_responsive(server: VoilaServer, rss_before: int, probes: int = 5) -> None:
    """Static files answer in well under a second, and the server did not balloon."""
    times = []
    for _ in range(probes):
        times.append(static_answer_time(server))
        time.sleep(0.2)
    assert max(times) < RESPONSIVE, f"static file took {max(times):.2f} s: the server is stuck"
    rss = server.psutil_process.memory_info().rss
    assert rss - rss_before < 150 * 2**20, \
        f"the server grew by {(rss - rss_before) / 2**20:.0f} MB"


def visit(server: VoilaServer, path: str = "") -> tuple[int, dict, str]:
    status, headers, body = server.get(path)
    return status, headers, body


# --------------------------------------------------------------------------- 2. links (first:
# it needs the module's server with its preheated pool still full)


def test_a_theme_in_the_link_still_gets_a_preheated_kernel(guide):
    """Voilà skips its preheated kernels for a page asked in another theme: a link could make
    every visit start a kernel from cold. The theme argument is dropped before Voilà sees it."""
    start = len(guide.log())
    status, _, _ = visit(guide, "?theme=dark")
    assert status == 200
    assert "Using pre-heated kernel" in guide.log()[start:]


# --------------------------------------------------------------------------- 1. server freeze


def upload_then_request_state(client: KernelClient) -> tuple[dict, dict]:
    """Open the case notes, upload a small file and ask the upload widget for its state.
    Returns that state (with ``buffers``: the binary parts of the answer) and then every
    widget's state."""
    control = client.open_widget_control()
    states = client.request_states(control)
    toggle = find_model(states, "ToggleButtonModel", description=casenotes.labels()["toggle"].ko)
    client.comm_msg(toggle, {"method": "update", "state": {"value": True}, "buffer_paths": []})
    opened = client.wait_for(lambda _c, m: m["header"]["msg_type"] == "comm_open"
                             and m["content"]["data"]["state"].get("_model_name")
                             == "FileUploadModel")
    upload = opened["content"]["comm_id"]
    content = "when,channel,agent,reference,promised\n2026-11-29,phone,Kim,A1,refund\n".encode()
    client.comm_msg(upload, {"method": "update", "buffer_paths": [["value", 0, "content"]],
                             "state": {"value": [{"name": "notes.csv", "type": "text/csv",
                                                  "size": len(content), "last_modified": 0}]}},
                    buffers=[content])
    request = client.comm_msg(upload, {"method": "request_state"})
    reply = client.wait_for(lambda _c, m: m["header"]["msg_type"] == "comm_msg"
                            and m["parent_header"].get("msg_id") == request["header"]["msg_id"])
    state = {**reply["content"]["data"]["state"], "buffers": [bytes(b) for b in reply["buffers"]]}
    return state, client.request_states(control)


def legacy_attack(server: VoilaServer, kernel_id: str, attack) -> str:
    """Open the kernel websocket without the v1 subprotocol and, if the server takes it, run
    ``attack`` on it. Returns "refused" or "accepted"."""
    try:
        client = KernelClient.connect(server.url, kernel_id, protocol=None)
    except InvalidStatus as refusal:
        assert refusal.response.status_code == 400
        return "refused"
    done = threading.Event()

    def run() -> None:
        try:
            attack(client)
        except Exception:  # noqa: BLE001 - a frozen server drops the socket or never answers
            pass
        finally:
            done.set()

    threading.Thread(target=run, daemon=True).start()
    done.wait(20)
    client.close()
    return "accepted"


def test_legacy_kernel_websocket_is_refused_and_the_guide_stays_responsive(guide):
    rss = guide.psutil_process.memory_info().rss
    status, _, page = visit(guide)
    assert status == 200
    kernel_id = kernel_id_of(page)
    outcome = legacy_attack(guide, kernel_id, upload_then_request_state)
    assert_responsive(guide, rss)
    assert outcome == "refused", "a legacy-protocol kernel websocket was accepted"
    # the page's own protocol still works: the same upload, and its state comes back
    with KernelClient.connect(guide.url, kernel_id, protocol=V1) as client:
        assert client.socket.subprotocol == V1
        upload, states = upload_then_request_state(client)
    # the file was read, then dropped: the widget does not keep it (nor send it again)
    assert upload["value"] == [] and not upload["buffers"], "the upload widget kept the file"
    shown = [m["state"].get("value", "") for m in states.values() if m["model_name"] == "HTMLModel"]
    assert any("Kim" in value and "A1" in value for value in shown), "the notes were not loaded"
    assert_responsive(guide, rss)


def test_legacy_kernel_websocket_is_refused_on_the_dashboard(dashboard):
    rss = dashboard.psutil_process.memory_info().rss
    status, _, page = visit(dashboard)
    assert status == 200
    kernel_id = kernel_id_of(page)

    def request_charts(client: KernelClient) -> None:
        client.request_states(client.open_widget_control(), timeout=15)

    outcome = legacy_attack(dashboard, kernel_id, request_charts)
    assert_responsive(dashboard, rss)
    assert outcome == "refused"
    # over v1 the dashboard's charts (PNG buffers) come through
    with KernelClient.connect(dashboard.url, kernel_id) as client:
        control = client.open_widget_control()
        request = client.comm_msg(control, {"method": "request_states"})
        reply = client.wait_for(lambda _c, m: m["parent_header"].get("msg_id")
                                == request["header"]["msg_id"] and m["buffers"])
    assert any(bytes(b).startswith(b"\x89PNG") for b in reply["buffers"]), [bytes(b)[:8] for b in reply["buffers"]]
    assert_responsive(dashboard, rss)


def test_a_hostile_v1_frame_does_not_freeze_the_server(guide):
    """8 bytes claiming 2**40 parts: jupyter_server would build a list that long."""
    rss = guide.psutil_process.memory_info().rss
    _, _, page = visit(guide)
    with KernelClient.connect(guide.url, kernel_id_of(page)) as client:
        client.socket.send((2**40).to_bytes(8, "little") + b"\0" * 64)
        client.socket.send("not a v1 frame")
        client.socket.send((7).to_bytes(8, "little") + (10**9).to_bytes(8, "little") * 7)
        assert_responsive(guide, rss)
        # the connection still works for a well-formed message
        states = client.request_states(client.open_widget_control())
    assert states


def test_v1_frame_check_and_voila_header_reader_are_bounded():
    from widgets.hosts.common import check_v1_frame
    from widgets.hosts.voila.websocket import read_header_from_binary_message

    good = KernelClient(None, V1).encode(KernelClient(None, V1).message("kernel_info_request", {}))
    assert len(check_v1_frame(good)) == 6
    header = read_header_from_binary_message(good)
    assert header["msg_type"] == "kernel_info_request"
    # the legacy framing Voilà misread: 4-byte big-endian counts read as 8-byte little-endian
    legacy = KernelClient(None, None).encode(KernelClient(None, None).message("comm_msg", {}),
                                             buffers=[b"x" * 10])
    started = time.monotonic()
    assert read_header_from_binary_message(legacy) is None
    assert read_header_from_binary_message((2**60).to_bytes(8, "little")) is None
    assert time.monotonic() - started < 5  # the unpatched reader never returns from these
    for bad in (b"", b"\x06" + b"\0" * 7, (6).to_bytes(8, "little") + b"\xff" * 48, "text"):
        with pytest.raises(ValueError):
            check_v1_frame(bad)


# --------------------------------------------------------------------------- websocket bounds


def test_the_page_cannot_create_widgets_in_the_kernel(guide):
    _, _, page = visit(guide)
    with KernelClient.connect(guide.url, kernel_id_of(page)) as client:
        control = client.open_widget_control()
        before = client.request_states(control)
        for _ in range(3):
            client.send("comm_open", {
                "comm_id": uuid.uuid4().hex, "target_name": "jupyter.widget",
                "data": {"state": {"_model_name": "TextareaModel",
                                   "_model_module": "@jupyter-widgets/controls",
                                   "_model_module_version": "2.0.0",
                                   "_view_name": "TextareaView", "value": "x" * 200_000},
                         "buffer_paths": []}})
        after = client.request_states(control)
    assert len(after) == len(before), "a widget made by the page exists in the kernel"
    assert "the page may not create widgets" in guide.log()


def test_a_message_flood_is_cut_off(guide):
    rss = guide.psutil_process.memory_info().rss
    _, _, page = visit(guide)
    kernel_id = kernel_id_of(page)
    client = KernelClient.connect(guide.url, kernel_id)
    closed = False
    try:
        for _ in range(1000):
            client.send("kernel_info_request", {})
    except ConnectionClosed:
        closed = True
    try:
        deadline = time.monotonic() + 30
        while not closed and time.monotonic() < deadline:
            client.receive(timeout=deadline - time.monotonic())
    except (ConnectionClosed, TimeoutError):
        closed = True
    finally:
        client.close()
    assert closed, "1,000 messages at once did not close the websocket"
    assert "closed after" in guide.log()
    assert_responsive(guide, rss)


def test_websocket_messages_are_bounded_in_size():
    settings = load_config()["Voila"]["tornado_settings"]
    assert 0 < settings["websocket_max_message_size"] <= 2 * 2**20


# --------------------------------------------------------------------------- 2. links


HOSTILE_QUERIES = [
    '?theme=x"><img src=x onerror=alert(document.cookie)>',
    "?template=lab",
    "?template=../../../etc&theme=dark",
    '?lang="><script>alert(1)</script>',
    "?step=<svg/onload=alert(1)>",
]


@pytest.mark.parametrize("query", HOSTILE_QUERIES)
def test_a_link_changes_neither_theme_nor_template_and_reflects_nothing(guide, query):
    status, headers, body = visit(guide, urllib.request.quote(query, safe="?=&"))
    assert status == 200
    for marker in ("onerror", "<img src=x", "<script>alert", "<svg/onload"):
        assert marker not in body
    assert 'data-jp-theme-name="JupyterLab Light"' in body
    assert "static/guide.js" in body, "another template was used"
    assert "cdn.jsdelivr.net" not in body
    assert "default-src 'self'" in headers["Content-Security-Policy"]


def test_pages_carry_a_content_security_policy(guide):
    _, headers, _ = visit(guide)
    policy = headers["Content-Security-Policy"]
    for directive in ("default-src 'self'", "object-src 'none'", "frame-ancestors 'none'",
                      "connect-src 'self'"):
        assert directive in policy
    assert "*" not in policy and "http" not in policy and "unsafe-eval" not in policy


# --------------------------------------------------------------------------- 3. capacity


def test_a_visitor_beyond_the_cap_gets_the_busy_page_at_once(small_guide):
    first_status, _, first = visit(small_guide)
    assert first_status == 200
    started = time.monotonic()
    status, headers, body = visit(small_guide)
    elapsed = time.monotonic() - started
    assert status == 503
    assert elapsed < RESPONSIVE, f"the busy page took {elapsed:.2f} s"
    assert headers["Retry-After"] == "7"
    assert "지금 이용하는 분이 많습니다" in body and "The guide is busy right now" in body
    assert "7초" in body and "7 seconds" in body
    assert "<script" not in body
    # the first visitor's kernel ends (culled below, or its page closes): a new visitor is served
    kernel_id = kernel_id_of(first)
    deadline = time.monotonic() + 120
    while kernel_id in small_guide.kernel_ids():
        assert time.monotonic() < deadline, "the first visitor's kernel never ended"
        time.sleep(0.5)
    # the process ends a moment before the kernel manager forgets the kernel
    deadline = time.monotonic() + 15
    while (status := visit(small_guide)[0]) == 503 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert status == 200, "the server still counts a visitor whose kernel has ended"


def test_a_burst_fills_the_cap_exactly(capped_guide):
    """Twice the cap arrive at once. Each counts once, whether its page is still waiting for a
    kernel, renders in one taken from the pool or in one started for it, and the pool's own
    kernels do not count: exactly ``CAP`` get the guide, the others the busy page."""
    with ThreadPoolExecutor(2 * CAP) as pool:
        pages = list(pool.map(lambda _: open_page(capped_guide), range(2 * CAP)))
    served = [page for page in pages if page.status == 200]
    try:
        assert sorted(page.status for page in pages) == [200] * CAP + [503] * CAP
        assert all(page.outputs for page in served), "a served page came without the guide"
        kernels = {page.kernel_id for page in served}
        assert len(kernels) == CAP and kernels <= capped_guide.kernel_ids()
        assert open_page(capped_guide).status == 503, "the cap let one more in"
        # one visitor closes the page: exactly one more is served
        leaving = served.pop(0)
        assert beacon(capped_guide, leaving.kernel_id, leaving.cookie("_xsrf"),
                      leaving.cookies) == 204
        deadline = time.monotonic() + 30
        while (page := open_page(capped_guide)).status == 503:
            assert time.monotonic() < deadline, "a closed page's visitor is still counted"
            time.sleep(0.5)
        served.append(page)
        assert page.status == 200 and page.outputs
        assert open_page(capped_guide).status == 503, "the cap let one more in"
    finally:
        for page in served:
            beacon(capped_guide, page.kernel_id, page.cookie("_xsrf"), page.cookies)


def test_a_connected_but_idle_kernel_is_culled(small_guide):
    deadline = time.monotonic() + 120
    while True:  # wait for the previous test's visitor to be gone
        status, _, page = visit(small_guide)
        if status == 200:
            break
        assert time.monotonic() < deadline
        time.sleep(1)
    kernel_id = kernel_id_of(page)
    with KernelClient.connect(small_guide.url, kernel_id) as client:
        client.request_states(client.open_widget_control())
        deadline = time.monotonic() + 60
        while kernel_id in small_guide.kernel_ids():
            assert time.monotonic() < deadline, "a held websocket kept its idle kernel alive"
            time.sleep(0.5)
    assert f"Culling kernel {kernel_id}: connected but no action in the guide" in small_guide.log()


def test_the_default_configuration_bounds_visitors_and_culls_held_kernels():
    config = load_config()
    assert 0 < config["GuideIdentityProvider"]["max_visitors"] <= 64
    assert 0 < config["GuideKernelManager"]["cull_connected_after"] <= 3600
    assert config["VoilaConfiguration"]["allow_theme_override"] == "NO"
    assert config["VoilaConfiguration"]["allow_template_override"] == "NO"


# --------------------------------------------------------------------------- 5. diagnostics


def test_log_warnings_go_to_the_server_log_not_the_page(guide):
    status, _, page = visit(guide)
    assert status == 200
    assert "store unavailable" not in page and "interaction log" not in page
    assert "guide-log-cannot-live-here" not in page
    deadline = time.monotonic() + 30
    while "interaction log: store unavailable" not in guide.log():
        assert time.monotonic() < deadline, "the store warning is not in the server log"
        time.sleep(0.5)
    # and a click's messages carry no stderr stream or traceback to the page
    with KernelClient.connect(guide.url, kernel_id_of(page)) as client:
        control = client.open_widget_control()
        states = client.request_states(control)
        toggle = find_model(states, "ToggleButtonModel",
                            description=casenotes.labels()["toggle"].ko)
        client.comm_msg(toggle, {"method": "update", "state": {"value": True},
                                 "buffer_paths": []})
        seen = []
        try:
            while True:
                seen.append(client.receive(timeout=3)[1])
        except TimeoutError:
            pass
    assert seen, "the click got no answer"
    leaks = [m for m in seen if m["header"]["msg_type"] in ("stream", "error")]
    assert not leaks, f"diagnostics sent to the page: {leaks[:2]}"


def test_the_kernel_manager_tells_the_pool_from_visitors():
    """In-process, with real kernels: a kernel started while a page is served without a kernel
    is that page's; any other start (the pool's fill, or a refill started from a page that
    already has its kernel) is the pool's, until a page takes it. Each visitor counts once."""
    from widgets.hosts.voila.admission import _PAGE, _Page
    from widgets.hosts.voila.kernels import GuideKernelManager

    async def scenario() -> None:
        manager = GuideKernelManager()
        started: list[str] = []

        async def start() -> str:
            kernel_id = await manager.start_kernel()
            started.append(kernel_id)
            await manager.get_kernel(kernel_id).ready
            return kernel_id

        try:
            pooled = await start()  # the pool's fill at server start: no page
            assert manager.visitors(set()) == 0
            waiting = _Page()  # admitted, no kernel yet: counts
            assert manager.visitors({waiting}) == 1

            async def served(page: _Page) -> str:
                _PAGE.set(page)
                return await start()

            mine = await asyncio.create_task(served(waiting),
                                             context=contextvars.copy_context())
            assert waiting.kernel_id == mine
            assert manager.visitors({waiting}) == 1  # its kernel, not also the page
            assert manager.visitors(set()) == 1  # the page finished: its kernel still counts

            taker = _Page()
            _PAGE.set(taker)
            manager._taken(pooled)  # what Voilà's get_rendered_notebook does for a page
            assert taker.kernel_id == pooled
            refill = await start()  # a refill, started from the page that took the kernel
            assert taker.kernel_id == pooled
            assert manager.visitors({taker}) == 2  # two visitors; the refill is the pool's
            _PAGE.set(None)

            await manager.shutdown_kernel(mine)
            assert manager.visitors(set()) == 1
            await manager.shutdown_kernel(refill)
            assert manager._pool_ids == set()
        finally:
            for kernel_id in started:
                if kernel_id in manager:
                    await manager.shutdown_kernel(kernel_id, now=True)

    asyncio.run(scenario())


class _Receiver:
    """Stands in for the kernel's websocket to /voila/query/<id>."""

    def __init__(self) -> None:
        self.messages: list[dict] = []

    def write_message(self, message: dict) -> None:
        self.messages.append(message)


def test_a_visitors_request_is_handed_to_its_kernel_once_and_forgotten_with_it():
    """Voilà caches the request of a visitor whose preheated kernel has not connected yet; it
    sent it to every later connection for that kernel and never dropped it."""
    from voila.request_info_handler import RequestInfoSocketHandler as handler

    from widgets.hosts.voila import install
    from widgets.hosts.voila.query import forget_request_info

    install()
    kernel, ended = str(uuid.uuid4()), str(uuid.uuid4())
    request = {"QUERY_STRING": "lang=en&step=channel"}
    try:
        handler.send_updates({"kernel_id": kernel, "payload": request})
        first, later = _Receiver(), _Receiver()
        handler.open(first, kernel)
        assert first.messages == [request]
        handler.on_close(first)
        handler.open(later, kernel)
        assert later.messages == [], "the visitor's request was sent again"
        handler.on_close(later)
        # a request kept for a kernel that ends before connecting goes with it
        handler.send_updates({"kernel_id": ended, "payload": request})
        forget_request_info(ended)
        assert ended not in handler._cache
    finally:
        for kernel_id in (kernel, ended):
            handler._cache.pop(kernel_id, None)
            handler._waiters.pop(kernel_id, None)


# --------------------------------------------------------------------------- 8. unused doors


def test_logout_does_not_fail(guide):
    start = len(guide.log())
    status, _, _ = visit(guide, "logout")
    assert status < 500
    assert "Traceback" not in guide.log()[start:]


def test_voila_query_refuses_anonymous_websockets(guide):
    from websockets.sync.client import connect

    _, _, page = visit(guide)
    kernel_id = kernel_id_of(page)
    start = len(guide.log())
    base = guide.url.replace("http://", "ws://") + "voila/query/"
    for target, headers in ((kernel_id, {"Origin": guide.url.rstrip("/")}),
                            (kernel_id, {"X-Forwarded-For": "203.0.113.9"}),
                            (str(uuid.uuid4()), {})):
        with pytest.raises(InvalidStatus) as refusal:
            connect(base + target, additional_headers=headers, open_timeout=10, legacy=True).close()
        assert refusal.value.response.status_code == 403
    # the preheated kernels themselves still connect and get their visitors' requests
    for _ in range(3):
        status, _, page = visit(guide, "?lang=en")
        assert status == 200
    time.sleep(5)  # the pool refills: new kernels connect to /voila/query
    assert guide.log()[start:].count("403 GET /voila/query") == 3
