"""The guide on Solara's virtual kernels (widgets/hosts/solara), served as ``./manage app
--solara`` serves it (``python -m widgets.hosts.solara``), each server on a free port of
127.0.0.1 as a subprocess, with its own temporary interaction log.

Two servers: ``solara_guide`` with the default limits but a small message budget (so that the
rate test is not a race against the clock), and ``solara_small`` with room for one visitor,
visits culled after a few idle seconds and a log store that cannot be opened (so that closing a
visit's logger is seen in the server's log: its unwritten events reported as lost).
"""

from __future__ import annotations

import contextlib
import json
import re
import time
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from browser import artifact_path
from playwright.sync_api import expect
from solara_server import SolaraServer
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from widgets.engine import Engine
from widgets.flow import default_flow

ROOT = Path(__file__).resolve().parent.parent
FLOW = default_flow()
NEXT = {"ko": "다음 단계로 →", "en": "Next step →"}
CONTINUE = {"ko": "이 답으로 계속 →", "en": "Continue with this answer →"}


# --------------------------------------------------------------------------- the servers
# (started by solara_server.py's factory, fixture solara_servers)


@pytest.fixture(scope="module")
def solara_guide(solara_servers) -> Iterator[SolaraServer]:
    with solara_servers.guide("--message-burst=60", "--message-rate=5") as server:
        yield server


@pytest.fixture(scope="module")
def solara_small(solara_servers, tmp_path_factory) -> Iterator[SolaraServer]:
    tmp = tmp_path_factory.mktemp("solara-small")
    (tmp / "not-a-folder").write_text("the store's folder is a file: the store cannot open")
    with solara_servers.guide("--max-visitors=1", "--retry-after=7", "--idle-timeout=6",
                              "--cull-interval=1", data_dir=tmp,
                              store=tmp / "not-a-folder" / "events.sqlite3") as server:
        yield server


# --------------------------------------------------------------------------- helpers


def kernel_message(msg_type: str, content: dict, channel: str = "shell") -> str:
    return json.dumps({
        "header": {"msg_id": uuid.uuid4().hex, "msg_type": msg_type, "session": "test",
                   "username": "", "date": "2026-01-01T00:00:00Z", "version": "5.3"},
        "parent_header": {}, "metadata": {}, "content": content, "channel": channel,
        "buffers": []})


def replies(socket, msg_type: str, seconds: float = 20.0) -> list[dict]:
    """The messages of ``msg_type`` received until ``seconds`` pass without any message."""
    found = []
    while True:
        try:
            raw = socket.recv(timeout=seconds)
        except TimeoutError:
            return found
        except ConnectionClosed:
            return found
        if isinstance(raw, str):
            message = json.loads(raw)
            if message.get("header", {}).get("msg_type") == msg_type:
                found.append(message)
                if msg_type.endswith("_reply") and msg_type != "kernel_info_reply":
                    return found


def open_guide(page, url: str) -> None:
    page.goto(url, wait_until="commit")
    expect(page.locator(".guide .guide-body h2")).to_be_visible(timeout=120_000)


def choose_first(page, engine: Engine) -> None:
    """Answer the current step with its first option, as a visitor would, and check the page
    shows the step the engine goes to."""
    node = engine.node
    option_id, label = engine.options()[0]
    lang = engine.lang
    if node.widget == "dropdown":
        page.get_by_label(node.prompt(lang), exact=True).select_option(label=label)
        page.get_by_role("button", name=CONTINUE[lang], exact=True).click()
    else:
        page.get_by_role("button", name=label, exact=True).click()
    engine.choose(option_id)
    expect(page.locator(".guide .guide-body h2")).to_have_text(engine.node.title(lang))


# --------------------------------------------------------------------------- HTTP


def test_the_page_serves_with_the_guides_headers(solara_guide):
    voila = json.loads((ROOT / "voila.json").read_text())["Voila"]["tornado_settings"]["headers"]
    response = requests.get(solara_guide.url, timeout=60)
    assert response.status_code == 200
    assert "server" not in {k.lower() for k in response.headers}
    assert response.headers["Referrer-Policy"] == voila["Referrer-Policy"]
    assert response.headers["X-Frame-Options"] == voila["X-Frame-Options"]
    # voila.json's policy, with only 'unsafe-eval' (Vue compiles templates) and blob: (ipyvue's
    # module loader, made by the page) added to script-src, and blob: to connect-src
    expected = {d.split()[0]: d.split()[1:] for d in voila["Content-Security-Policy"].split("; ")}
    expected["script-src"] += ["'unsafe-eval'", "blob:"]
    expected["connect-src"].append("blob:")
    got = {d.split()[0]: d.split()[1:] for d in response.headers["Content-Security-Policy"].split("; ")}
    assert got == expected
    assert '<html lang="ko">' in response.text
    assert '<script src="/_guide/guide.js"></script>' in response.text
    # Solara's own pages and files carry the headers too; its unused routes are closed
    script = requests.get(solara_guide.url + "_guide/guide.js", timeout=30)
    assert script.status_code == 200 and "guide-offline" in script.text
    assert script.headers["X-Frame-Options"] == "DENY"
    static = requests.get(solara_guide.url + "static/main-vuetify.js", timeout=30)
    assert static.status_code == 200 and static.headers["Content-Security-Policy"] == \
        response.headers["Content-Security-Policy"]
    for closed in ("resourcez", f"_solara/api/evict/{uuid.uuid4()}"):
        assert requests.get(solara_guide.url + closed, timeout=30).status_code == 404, closed
    # a file solara-assets lacks is not fetched from a CDN: it is missing
    missing = requests.get(solara_guide.url + "_solara/cdn/left-pad@1.3.0/index.js", timeout=30)
    assert missing.status_code == 404


def test_solaras_own_link_parameters_are_dropped(solara_guide):
    response = requests.get(solara_guide.url + "?kernelid=abc&lang=en&modelid=x",
                            allow_redirects=False, timeout=30)
    assert response.status_code == 303
    assert response.headers["Location"] == "/?lang=en"


# --------------------------------------------------------------------------- in the browser


@pytest.mark.browser
def test_a_walk_in_korean_at_phone_width_stays_on_this_machine(browser, solara_guide):
    context = browser.new_context(viewport={"width": 375, "height": 800}, locale="ko-KR")
    requested: list[str] = []

    def route(route):
        requested.append(route.request.url)
        if route.request.url.startswith(f"http://127.0.0.1:{solara_guide.port}/") or \
                route.request.url.startswith("blob:") or route.request.url.startswith("data:"):
            route.continue_()
        else:
            route.abort()

    context.route("**/*", route)
    sockets: list[str] = []
    page = context.new_page()
    page.on("websocket", lambda ws: sockets.append(ws.url))
    try:
        open_guide(page, solara_guide.url)
        engine = Engine(FLOW, lang="ko")
        engine.start()
        expect(page.locator(".guide .guide-body h2")).to_have_text(engine.node.title("ko"))
        assert page.evaluate("document.documentElement.lang") == "ko"
        for _ in range(3):
            if engine.node.kind == "info":
                page.get_by_role("button", name=NEXT["ko"], exact=True).click()
                engine.advance()
                expect(page.locator(".guide .guide-body h2")).to_have_text(engine.node.title("ko"))
            else:
                choose_first(page, engine)
            # focus moves to the new step's heading; the title names it
            page.wait_for_function("document.activeElement && document.activeElement.tagName === 'H2'")
            assert page.title().startswith(engine.node.title("ko"))
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        page.screenshot(path=str(artifact_path("solara-guide-375.png")))
    finally:
        context.close()
    assert requested, "no request was seen"
    off = [url for url in requested + sockets
           if not re.match(rf"^(https?|wss?)://127\.0\.0\.1:{solara_guide.port}/|^(blob|data):", url)]
    assert not off, off


@pytest.mark.browser
def test_deep_links_and_two_visitors_apart(page_factory, solara_guide):
    node = next(n for n in FLOW if n.kind == "choice" and n.id != FLOW.start)
    english, _ = page_factory.new_page("english link")
    korean, _ = page_factory.new_page("plain link")
    before = solara_guide.sessions()
    open_guide(english, solara_guide.url + f"?lang=en&step={node.id}")
    open_guide(korean, solara_guide.url)
    expect(english.locator(".guide .guide-body h2")).to_have_text(node.title("en"))
    assert english.evaluate("document.documentElement.lang") == "en"
    engine = Engine(FLOW, lang="ko")
    engine.start()
    expect(korean.locator(".guide .guide-body h2")).to_have_text(engine.node.title("ko"))
    # one visitor's answer does not move the other
    choose_first(korean, engine)
    expect(english.locator(".guide .guide-body h2")).to_have_text(node.title("en"))
    deadline = time.monotonic() + 30
    while len(solara_guide.sessions() - before) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert len(solara_guide.sessions() - before) == 2  # two visits, two log sessions
    page_factory.close()


@pytest.mark.browser
def test_a_hostile_link_is_reflected_nowhere(page_factory, solara_guide):
    words = "CALL-1-800-FAKE"
    query = (f"?lang=%3Cb%3E{words}%3C/b%3E&step={words}%3Cscript%3E&followup={words}")
    page, _ = page_factory.new_page("hostile link")
    served = requests.get(solara_guide.url + query, timeout=60)
    assert words not in served.text
    open_guide(page, solara_guide.url + query)
    notice = page.locator(".guide .guide-notice")
    expect(notice).to_be_visible()
    assert words not in page.content()
    assert words not in page.title()
    page_factory.close()


# --------------------------------------------------------------------------- websockets


def test_the_page_may_not_create_widgets(solara_guide):
    kernel_id = str(uuid.uuid4())
    with connect(solara_guide.socket_url(kernel_id), open_timeout=60) as socket:
        comm_id = uuid.uuid4().hex
        socket.send(kernel_message("comm_open", {
            "comm_id": comm_id, "target_name": "jupyter.widget",
            "data": {"state": {"_model_name": "ButtonModel",
                               "_model_module": "@jupyter-widgets/controls",
                               "_model_module_version": "2.0.0",
                               "_view_name": "ButtonView",
                               "_view_module": "@jupyter-widgets/controls",
                               "_view_module_version": "2.0.0"}, "buffer_paths": []}}))
        socket.send(kernel_message("comm_info_request", {}))
        (reply,) = replies(socket, "comm_info_reply")
        assert comm_id not in reply["content"]["comms"]
        # code is not run either: the request is refused, the kernel goes on
        socket.send(kernel_message("execute_request", {"code": "import os", "silent": False}))
        socket.send(kernel_message("kernel_info_request", {}))
        assert replies(socket, "kernel_info_reply", seconds=10)
    assert "the page may not create widgets" in solara_guide.log


def test_message_size_and_rate_are_bounded(solara_guide):
    with connect(solara_guide.socket_url(str(uuid.uuid4())), open_timeout=60,
                 max_size=None) as socket:
        for _ in range(150):
            socket.send(kernel_message("kernel_info_request", {}))
        answered = replies(socket, "kernel_info_reply", seconds=10)
        # a burst of 60 and 5 a second: far fewer than 150 however slow the machine
        assert 0 < len(answered) < 150
    assert "over the message rate" in solara_guide.log
    with connect(solara_guide.socket_url(str(uuid.uuid4())), open_timeout=60,
                 max_size=None) as socket:
        socket.send(kernel_message("kernel_info_request", {"pad": "x" * (2 << 20)}))
        with pytest.raises(ConnectionClosed):
            for _ in range(100):
                socket.recv(timeout=30)


def test_a_binary_message_with_a_huge_part_count_is_refused(solara_guide):
    with connect(solara_guide.socket_url(str(uuid.uuid4())), open_timeout=60) as socket:
        socket.send(b"\x7f\xff\xff\xff" + b"\x00" * 12)  # Solara's reader: a 8 GB format
        socket.send(kernel_message("kernel_info_request", {}))
        assert replies(socket, "kernel_info_reply", seconds=10)
    assert "unreadable" in solara_guide.log


def test_kernel_ids_the_page_does_not_make_are_refused(solara_guide):
    with pytest.raises(InvalidStatus):
        with connect(solara_guide.socket_url("not-a-uuid"), open_timeout=60):
            pass


# --------------------------------------------------------------------------- cap and culling


@pytest.mark.browser
def test_the_cap_then_culling_closes_the_visit_and_its_logger(page_factory, solara_small):
    page, _ = page_factory.new_page("the one visitor")
    open_guide(page, solara_small.url)
    engine = Engine(FLOW, lang="ko")
    engine.start()
    choose_first(page, engine)  # an event for the log, which cannot write it
    # the server is full: the busy page, at once
    busy = requests.get(solara_small.url + "?lang=en", timeout=30)
    assert busy.status_code == 503
    assert busy.headers["Retry-After"] == "7"
    assert "지금 이용하는 분이 많습니다" in busy.text and "The guide is busy right now" in busy.text
    assert busy.headers["X-Frame-Options"] == "DENY"
    with pytest.raises(InvalidStatus):
        with connect(solara_small.socket_url(str(uuid.uuid4())), open_timeout=60):
            pass
    # idle: the visit is closed, the page says so, the cap frees, the logger is closed
    expect(page.locator(".guide.guide-stopped")).to_be_visible(timeout=90_000)
    expect(page.locator(".guide .guide-offline")).to_contain_text("+1 206 266 2992")
    assert requests.get(solara_small.url, timeout=30).status_code == 200
    deadline = time.monotonic() + 30
    while "are lost" not in solara_small.log and time.monotonic() < deadline:
        time.sleep(0.5)
    assert re.search(r"interaction log: \d+ events of session \S+ are lost", solara_small.log)
    page_factory.close()


# --------------------------------------------------------------------------- per client


def test_websockets_are_bounded_per_client_address(solara_guide):
    """16 websockets from one address (the one nginx forwards), then HTTP 403; another
    address is served, and once they close the first may connect again."""
    # one browser session (Solara's cookie): a page's kernel may have two websockets
    first = {"X-Real-IP": "203.0.113.7", "Cookie": f"solara-session-id={uuid.uuid4()}"}
    kernels = [str(uuid.uuid4()) for _ in range(8)]
    with contextlib.ExitStack() as opened:
        for kernel_id in kernels:
            for _ in range(2):  # max_per_kernel: two each
                opened.enter_context(connect(solara_guide.socket_url(kernel_id), open_timeout=60,
                                             additional_headers=first))
        with pytest.raises(InvalidStatus):
            with connect(solara_guide.socket_url(str(uuid.uuid4())), open_timeout=60,
                         additional_headers=first):
                pass
        assert "too many websockets from this client" in solara_guide.log
        with connect(solara_guide.socket_url(str(uuid.uuid4())), open_timeout=60,
                     additional_headers={"X-Real-IP": "203.0.113.8"}) as other:
            other.send(kernel_message("kernel_info_request", {}))
            assert replies(other, "kernel_info_reply", seconds=10)
        last = opened.pop_all()
        last.close()  # all sixteen go: the address may connect again
        first["Cookie"] = f"solara-session-id={uuid.uuid4()}"
        deadline = time.monotonic() + 30
        while True:  # the server counts them out once it has seen them close
            try:
                with connect(solara_guide.socket_url(str(uuid.uuid4())), open_timeout=60,
                             additional_headers=first):
                    break
            except InvalidStatus:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)


# --------------------------------------------------------------------------- the log store


def test_the_visits_of_a_worker_share_one_log_store(tmp_path, monkeypatch):
    """Every visit's logger in a Solara worker writes through one store (one connection, not
    one per visitor), from their writer threads at once; it is closed at the end."""
    import threading

    from widgets.hosts.solara import logstore
    from widgets.log import SessionLogger, open_store, sqlite

    path = tmp_path / "events.sqlite3"
    monkeypatch.setenv("GUIDE_LOG_URL", f"sqlite://{path}")
    real = sqlite.SQLiteStore
    opened: list = []

    def counting(*args, **kwargs):
        store = real(*args, **kwargs)
        opened.append(store)
        return store

    monkeypatch.setattr(sqlite, "SQLiteStore", counting)
    shared = logstore.install()
    try:
        loggers = [SessionLogger(open_store) for _ in range(12)]

        def visit(logger) -> None:
            for _ in range(5):
                assert logger.log("start", "enter", lang="en")
            assert logger.flush()

        threads = [threading.Thread(target=visit, args=(logger,)) for logger in loggers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        loggers[0].close()  # one visit ends: the others still write through the store
        assert loggers[1].log("start", "enter", lang="ko") and loggers[1].flush()
        for logger in loggers[1:]:
            logger.close()
        assert len(opened) == 1 and shared.opened == 1
        assert not opened[0]._closed
    finally:
        logstore.uninstall()
    assert opened[0]._closed
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT session) FROM events").fetchone() \
            == (61, 12)
    finally:
        conn.close()


def test_the_server_shares_one_log_store(solara_guide):
    assert "interaction log: one store for all the visits of this worker" in solara_guide.log


def test_the_shared_store_is_opened_again_after_it_failed():
    from widgets.hosts.solara.logstore import SharedStore
    from widgets.log.store import StoreUnavailable

    class Flaky:
        def __init__(self, fail: bool) -> None:
            self.fail, self.closed, self.written = fail, False, 0

        def write(self, events, gaps=()) -> None:
            if self.fail:
                raise StoreUnavailable("away")
            self.written += len(events)

        def close(self) -> None:
            self.closed = True

    stores = [Flaky(True), Flaky(False)]
    made = iter(stores)
    shared = SharedStore(lambda: next(made))
    with pytest.raises(StoreUnavailable):
        shared.write(["event"])
    assert stores[0].closed
    shared.close()  # a logger closing: nothing closes
    shared.write(["event", "event"])
    assert stores[1].written == 2 and not stores[1].closed and shared.opened == 2
    shared.shutdown()
    assert stores[1].closed
    with pytest.raises(StoreUnavailable):
        shared.write(["event"])


# --------------------------------------------------------------------------- a page that does not read


def test_a_page_that_does_not_read_is_dropped_and_holds_up_nothing():
    """A send that waits (the client's buffer is full) ends after send_timeout: Solara's
    sending thread is told the page is gone, a later close does not wait, and the page's
    receive ends, so that its visit closes like any other."""
    import asyncio
    import concurrent.futures

    from widgets.hosts import common
    from widgets.hosts.solara.gate import Gate
    from widgets.hosts.solara.settings import Limits
    from widgets.ratelimit import TokenBucket

    gate = Gate(None, Limits(send_timeout=0.3), {}, {})
    sent: list[dict] = []

    async def run() -> None:
        never = asyncio.Event()

        async def blocked_send(message: dict) -> None:
            if message.get("text") == "stuck":
                await never.wait()  # what uvicorn's send does while the client's buffer is full
            sent.append(message)

        async def silent_receive() -> dict:
            await never.wait()
            return {}

        stuck = asyncio.Event()
        send = gate._checked_send(blocked_send, "k" * 36, stuck)
        receive = gate._checked_receive(silent_receive, send, "k" * 36,
                                        common.MessageGate(TokenBucket(1, 1), 1), stuck)
        waiting = asyncio.ensure_future(receive())
        await send({"type": "websocket.send", "text": '{"header": {"msg_type": "status"}}'})
        error = kernel_message("error", {"ename": "E", "evalue": "", "traceback": ["/srv"]})
        await send({"type": "websocket.send", "text": error})  # never sent to a page
        with pytest.raises(RuntimeError, match="websocket.close"):  # Solara: the page has gone
            await asyncio.wait_for(send({"type": "websocket.send", "text": "stuck"}), 10)
        assert (await asyncio.wait_for(waiting, 10))["type"] == "websocket.disconnect"
        await asyncio.wait_for(send({"type": "websocket.close", "code": 1000}), 1)
        with pytest.raises(RuntimeError, match="websocket.close"):
            await asyncio.wait_for(send({"type": "websocket.send", "text": "more"}), 1)

    # on a thread of its own: a browser test of this module may leave this thread's loop running
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result(60)
    assert [m.get("text", "")[:10] for m in sent] == ['{"header":']


def test_every_limit_is_in_the_settings_reference():
    import dataclasses

    from widgets.hosts.solara.settings import ENV_PREFIX, Limits

    table = (ROOT / "docs" / "settings.md").read_text().splitlines()
    for field in dataclasses.fields(Limits):
        variable = f"`{ENV_PREFIX}{field.name.upper()}`"
        row = next((line for line in table if variable in line), "")
        assert f"`--{field.name.replace('_', '-')}`" in row, f"docs/settings.md lacks {variable}"
        default = int(field.default) if field.default == int(field.default) else field.default
        assert f"| `{default}`" in row, f"{variable}: default {default} not in {row!r}"
