"""What one anonymous client can make a Voilà server of the guide spend, and how the server
gives it back (see widgets/hosts/voila/): websockets per kernel and per client, unsent data
per websocket, messages per kernel, a visit's idleness and length, and what the server says
about itself (no tracebacks, no banner, no 500 for a crafted static path).

Each test sends what an attacker sent, to a real Voilà server with the project's
``voila.json``; loops are bounded in count and time, and every address is on loopback.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from kernel_ws import KernelClient, SilentClient, kernel_id_of
from voila_server import PROJECT_ROOT, VoilaServer
from websockets.exceptions import ConnectionClosed, InvalidStatus

GUIDE = PROJECT_ROOT / "notebooks" / "guide.ipynb"


def _serve(voila_servers, name: str, *args: str) -> Iterator[VoilaServer]:
    with voila_servers.serve(GUIDE, env=voila_servers.log_env(name), extra_args=list(args),
                             preheated=True) as server:
        yield server


@pytest.fixture(scope="module")
def guide(voila_servers) -> Iterator[VoilaServer]:
    """The project's settings, but for a per-client bound small enough to reach in a test."""
    yield from _serve(voila_servers, "limits",
                      "--GuideKernelWebsocketConnection.max_per_client=3")


@pytest.fixture(scope="module")
def idle_guide(voila_servers) -> Iterator[VoilaServer]:
    """Kernels culled after 5 s without a guide action (connected or not), and after 20 s
    of visit in any case; the culler looks every second; no preheated pool."""
    yield from _serve(voila_servers, "idle",
                      "--VoilaConfiguration.preheat_kernel=False",
                      "--GuideKernelManager.cull_connected_after=5",
                      "--GuideKernelManager.max_visit=20",
                      "--MappingKernelManager.cull_interval=1",
                      "--MappingKernelManager.cull_idle_timeout=5")


def new_visit(server: VoilaServer) -> str:
    """A visitor's page (plain HTTP, no browser: no websocket of its own): its kernel id."""
    deadline = time.monotonic() + 120
    while True:
        status, _, page = server.get("")
        if status == 200:
            return kernel_id_of(page)
        assert time.monotonic() < deadline, f"no page for a visitor ({status})"
        time.sleep(1)


def connections(server: VoilaServer, kernel_id: str) -> int:
    """The kernel's websocket count as jupyter_server keeps it (what its culler reads)."""
    status, _, body = server.get(f"api/kernels/{kernel_id}")
    assert status == 200, status
    return json.loads(body)["connections"]


def wait_connections(server: VoilaServer, kernel_id: str, expected: int) -> None:
    deadline = time.monotonic() + 30
    while (count := connections(server, kernel_id)) != expected:
        assert time.monotonic() < deadline, f"{count} connections counted, {expected} open"
        time.sleep(0.2)


def refused_status(server: VoilaServer, kernel_id: str, **kw) -> int | None:
    """The HTTP status refusing one more websocket, or None if it opened (then closed)."""
    try:
        KernelClient.connect(server.url, kernel_id, **kw).close()
    except InvalidStatus as exc:
        return exc.response.status_code
    return None


# --------------------------------------------------------------------------- websockets


def test_a_kernel_takes_two_websockets_and_counts_them_exactly(guide):
    kernel_id = new_visit(guide)
    first = KernelClient.connect(guide.url, kernel_id)
    second = KernelClient.connect(guide.url, kernel_id)
    try:
        for _ in range(5):
            assert refused_status(guide, kernel_id) == 429
        wait_connections(guide, kernel_id, 2)
        assert "already open for this kernel" in guide.log()
    finally:
        first.close()
        second.close()
    # refusals and closes leave nothing counted: the culler sees the kernel unconnected
    wait_connections(guide, kernel_id, 0)
    with KernelClient.connect(guide.url, kernel_id) as again:
        again.request_states(again.open_widget_control())
    wait_connections(guide, kernel_id, 0)


def test_one_client_address_has_a_bounded_number_of_websockets(guide):
    kernels = [new_visit(guide) for _ in range(3)]
    here = {"X-Real-IP": "203.0.113.7"}  # as the shipped nginx forwards a client's address
    held = [KernelClient.connect(guide.url, kernel_id, headers=here) for kernel_id in kernels]
    try:
        extra = new_visit(guide)
        assert refused_status(guide, extra, headers=here) == 429
        assert "already open from one client" in guide.log()
        # another address is not affected
        assert refused_status(guide, extra, headers={"X-Real-IP": "198.51.100.2"}) is None
    finally:
        for client in held:
            client.close()
    for kernel_id in kernels:
        wait_connections(guide, kernel_id, 0)
    assert refused_status(guide, extra, headers=here) is None


def test_a_client_that_does_not_read_is_closed_and_the_server_stays_small(guide):
    kernel_id = new_visit(guide)
    rss = guide.psutil_process.memory_info().rss
    client = SilentClient(guide.url, kernel_id)
    assert client.status == 101
    control = "c0" * 16
    try:
        client.send("comm_open", {"comm_id": control, "target_name": "jupyter.widget.control",
                                  "data": {}}, metadata={"version": "1.0.0"})
        deadline = time.monotonic() + 60
        sent = 0
        while "does not read" not in guide.log():
            assert time.monotonic() < deadline and sent < 3000, \
                "a client that never reads was never closed"
            try:
                client.send("comm_msg", {"comm_id": control, "data": {"method": "request_states"}})
            except OSError:
                break  # closed by the server
            sent += 1
            time.sleep(0.025)  # under the message rate: only the unsent data is at stake
    finally:
        client.close()
    assert "does not read" in guide.log()
    wait_connections(guide, kernel_id, 0)
    assert guide.psutil_process.memory_info().rss - rss < 100 * 2**20


def test_the_message_rate_is_per_kernel_not_per_websocket(guide):
    kernel_id = new_visit(guide)
    mark = guide.log().count("over the message rate")
    with KernelClient.connect(guide.url, kernel_id) as one, \
            KernelClient.connect(guide.url, kernel_id) as two:
        for _ in range(130):  # 260 at once: over one kernel's burst (200), under two
            one.send("kernel_info_request", {})
            two.send("kernel_info_request", {})
        deadline = time.monotonic() + 30
        while guide.log().count("over the message rate") == mark:
            assert time.monotonic() < deadline, "two websockets doubled the kernel's rate"
            time.sleep(0.2)


# --------------------------------------------------------------------------- what it says


def test_a_bad_widget_value_sends_no_traceback_to_the_page(guide):
    kernel_id = new_visit(guide)
    with KernelClient.connect(guide.url, kernel_id) as client:
        states = client.request_states(client.open_widget_control())
        dropdowns = [m for m, s in states.items() if s.get("model_name") == "DropdownModel"]
        assert dropdowns
        sent = [client.comm_msg(dropdowns[0], {"method": "update", "buffer_paths": [],
                                               "state": {"index": value}})["header"]["msg_id"]
                for value in ("zzz", 99999, None, [1, 2])]
        seen = []
        deadline = time.monotonic() + 8
        while (left := deadline - time.monotonic()) > 0:
            try:
                channel, msg = client.receive(left)
            except TimeoutError:
                break
            seen.append(msg)
        replies = [m for m in seen if m["parent_header"].get("msg_id") in sent]
        assert replies, "the kernel did not handle the updates"
        text = json.dumps([m["content"] for m in seen])
        assert not [m for m in seen if m["header"]["msg_type"] == "error"]
        assert "Traceback" not in text and "site-packages" not in text


@pytest.mark.parametrize("path", [
    "voila/templates/guide/static/..%2fconf.json",
    "voila/templates/guide/static/..%2f..%2fguide%2fconf.json",
    "voila/templates/guide/static/%2e%2e/conf.json",
    "voila/templates/guide/static/",
    "voila/templates/guide/x",
])
def test_a_crafted_template_static_path_is_not_found(guide, path):
    before = guide.log().count("Traceback")
    status, headers, body = guide.get(path)
    assert status == 404, (status, body[:300])
    assert "conf.json" not in body and '"base_template"' not in body
    assert guide.log().count("Traceback") == before


def test_no_response_names_the_server(guide):
    for path in ("", "voila/static/voila.js", "voila/templates/guide/static/guide.js",
                 "no-such-page", "voila/templates/guide/static/..%2fconf.json"):
        request = urllib.request.Request(guide.url + path)
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                headers = response.headers
        except urllib.error.HTTPError as exc:
            headers = exc.headers
        assert "Server" not in headers, (path, headers.get("Server"))


# --------------------------------------------------------------------------- a visit's length


def test_widget_messages_do_not_hold_a_kernel(idle_guide):
    """A page asking for widget states every second is idle all the same: culled."""
    kernel_id = new_visit(idle_guide)
    with KernelClient.connect(idle_guide.url, kernel_id) as client:
        control = client.open_widget_control()
        deadline = time.monotonic() + 60
        try:
            while kernel_id in idle_guide.kernel_ids():
                assert time.monotonic() < deadline, "widget messages kept an idle kernel"
                client.request_states(control, timeout=5)
                time.sleep(1)
        except (ConnectionClosed, TimeoutError):
            pass
    assert f"Culling kernel {kernel_id}: connected but no action in the guide" in idle_guide.log()


def test_guide_actions_keep_a_kernel_until_the_visit_is_too_long(idle_guide):
    """A visitor who acts keeps the kernel past the idle time, but not past max_visit."""
    kernel_id = new_visit(idle_guide)
    started = time.monotonic()
    with KernelClient.connect(idle_guide.url, kernel_id) as client:
        states = client.request_states(client.open_widget_control())
        languages = [m for m, s in states.items()
                     if s.get("model_name") == "ToggleButtonsModel"
                     and len(s["state"].get("_options_labels", ())) == 2]
        assert len(languages) == 1, "the language switch"
        index = states[languages[0]]["state"]["index"]
        deadline = started + 90
        try:
            while kernel_id in idle_guide.kernel_ids():
                assert time.monotonic() < deadline, "a visit outlived max_visit"
                index = 1 - index  # the visitor switches the language: a guide action
                client.comm_msg(languages[0], {"method": "update", "buffer_paths": [],
                                               "state": {"index": index}})
                time.sleep(1)
        except ConnectionClosed:
            pass
    lasted = time.monotonic() - started
    log = idle_guide.log()
    assert f"Culling kernel {kernel_id}: the visit reached its maximum length" in log
    assert f"Culling kernel {kernel_id}: connected but no action" not in log
    assert lasted > 10, "culled while the visitor was acting"


# --------------------------------------------------------------------------- in-process


def test_a_guide_action_marks_the_visitors_activity(tmp_path, monkeypatch):
    """The kernel marks what the visitor does in the guide, nothing else (widgets/activity.py):
    the Voilà entry point sets the view's hook from the file the server gave the kernel; the
    view itself reads no environment."""
    import os

    from widgets import activity
    from widgets.app import guide
    from widgets.view import GuideView

    mark = tmp_path / "activity"
    monkeypatch.setenv(activity.ENV, str(mark))
    monkeypatch.setattr(activity.FileMark, "every", 0.0)
    bare = GuideView(lang="en").start()
    bare.step_view.option_buttons[0].click()
    assert bare.on_activity is None and not mark.exists(), "the view read the environment"
    view = guide(lang="en", log=False)
    assert isinstance(view.on_activity, activity.FileMark)
    assert not mark.exists(), "building the guide is not a visitor's action"
    view.step_view.option_buttons[0].click()
    assert mark.exists(), "a click in the guide was not marked"
    os.utime(mark, (0, 0))  # as if marked long ago
    view.language.value = "ko" if view.engine.lang == "en" else "en"
    assert mark.stat().st_mtime > 0, "a language switch was not marked"
    monkeypatch.delenv(activity.ENV)
    assert activity.from_environment() is None and guide(lang="en", log=False).on_activity is None


def test_the_kernel_manager_culls_by_guide_actions_and_visit_length(tmp_path):
    """``cull_reason`` with a visit's start and its last action set by hand."""
    import os

    from widgets.hosts.voila.kernels import GuideKernelManager

    manager = GuideKernelManager(cull_connected_after=300, max_visit=3600)
    manager._kernels["k"] = object()
    manager._kernel_connections["k"] = 1
    assert manager.cull_reason("k") is None  # in the pool: not a visitor's kernel yet
    now = 1_000_000.0
    manager._visit_started["k"] = now - 1000
    assert "no action in the guide" in manager.cull_reason("k", now=now)
    with open(manager.activity_file("k"), "w"):
        pass
    os.utime(manager.activity_file("k"), (now - 10, now - 10))
    assert manager.cull_reason("k", now=now) is None
    manager._kernel_connections["k"] = 0  # without a page: jupyter_server's own culler decides
    assert manager.cull_reason("k", now=now + 400) is None
    manager._kernel_connections["k"] = 1
    os.utime(manager.activity_file("k"), (now + 3000, now + 3000))
    assert "maximum length" in manager.cull_reason("k", now=now + 3000)


def test_the_hooks_refuse_to_start_on_an_upstream_they_were_not_made_for(monkeypatch):
    """A missing target or another version of Voilà or jupyter_server stops the server at
    start, naming what differs, instead of serving without a protection."""
    import voila.static_file_handler as static

    from widgets.hosts import voila as voila_host
    from widgets.hosts.voila import upstream

    upstream.check_upstream()  # the installed environment is what the hooks were made for
    with pytest.raises(upstream.UpstreamChanged) as raised:
        upstream.check_upstream(version=lambda package: "9.9.9")
    assert "voila is 9.9.9" in str(raised.value) and "jupyter_server is 9.9.9" in str(raised.value)

    monkeypatch.delattr(static.TemplateStaticFileHandler, "parse_url_path")
    monkeypatch.setattr(voila_host, "_INSTALLED", False)
    with pytest.raises(upstream.UpstreamChanged, match="TemplateStaticFileHandler.parse_url_path"):
        voila_host.install()
    assert not voila_host._INSTALLED


def test_the_pinned_upstream_versions_are_the_projects_pins():
    import tomllib

    from packaging.requirements import Requirement

    from widgets.hosts.voila.upstream import PINNED

    pins = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    declared = {}
    for line in pins["project"]["dependencies"]:
        requirement = Requirement(line)
        declared[requirement.name.replace("-", "_").lower()] = str(requirement.specifier)
    assert {name: declared.get(name) for name in PINNED} == \
        {name: f"=={version}" for name, version in PINNED.items()}


def test_the_client_address_is_the_forwarded_one_only_from_this_machine():
    from types import SimpleNamespace

    from widgets.hosts.voila.websocket import client_address

    def request(peer, **headers):
        return SimpleNamespace(remote_ip=peer, headers=headers)

    assert client_address(request("203.0.113.9")) == "203.0.113.9"
    assert client_address(request("203.0.113.9", **{"X-Real-IP": "198.51.100.1"})) == "203.0.113.9"
    assert client_address(request("127.0.0.1", **{"X-Real-IP": "198.51.100.1"})) == "198.51.100.1"
    assert client_address(request("127.0.0.1", **{"X-Real-IP": "not an address"})) == "127.0.0.1"
    assert client_address(request("::1")) is None  # a local process: not counted


def test_one_token_bucket_limits_both_the_log_and_the_websockets():
    from widgets.log.session import SessionLogger
    from widgets.ratelimit import TokenBucket
    from widgets.hosts.voila.websocket import GuideKernelWebsocketConnection

    now = [0.0]
    bucket = TokenBucket(rate=2, burst=3, monotonic=lambda: now[0])
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    now[0] += 0.5  # one token back
    assert [bucket.take() for _ in range(2)] == [True, False]
    assert TokenBucket(rate=float("inf"), burst=1).take()
    with pytest.raises(ValueError):
        TokenBucket(rate=0, burst=1)
    assert "TokenBucket" in GuideKernelWebsocketConnection._kernel_bucket.__code__.co_names
    assert isinstance(SessionLogger(lambda: None, rate=2, burst=3)._bucket, TokenBucket)
