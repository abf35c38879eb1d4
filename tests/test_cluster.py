"""The guide past one machine's single server: nginx in front of two workers of the guide,
one PostgreSQL log, the dashboard reading it — started by ``deploy/cluster.py``, the code
``./manage cluster 2`` runs — with visitors driven through the proxy in headless Chromium.
Every test runs for both hosts: two Voilà servers (a kernel process per visitor), and two
Solara servers (``./manage cluster 2 --solara``: a virtual kernel per visitor inside the
worker, which only that worker can serve).

Each visitor is a fresh browser context (its own cookies: its own route to a server). What
must hold:

* nginx gives a visitor without a route a ``guide_route`` cookie, and every request of that
  visitor (page, static files, kernel model, kernel websocket, page-close beacon) reaches
  the server that holds the visitor's kernel (from nginx's access log and each server's
  kernels: Voilà's kernel processes; for Solara, the worker whose kernel probe, asked
  directly, says it holds the visit);
* both servers served visitors;
* every click is logged exactly once in PostgreSQL: each visitor's log session holds exactly
  the events the guide's engine predicts for what was clicked (replayed on
  :class:`widgets.engine.Engine`, steps and options taken from the flow, not hard-coded);
* the dashboard, served against the same database, counts the sessions of both servers;
* a closed page's kernel is shut down by its page-close beacon, which went through nginx to
  the right server (not by the idle culler);
* with one Voilà server stopped, new visitors — including one whose route leads to the
  stopped server — are served by the other, and their clicks are logged;
* the proxy publishes only what the page needs: ``/voila/query/`` and the rest of
  jupyter_server's API answer 404; for Solara, its health and resource reports, kernel
  eviction, login and other pages (the page's scripts, its kernel probe, websocket and
  close request pass).

No timing is asserted: waits are generous deadlines for a loaded 2-core machine.
"""

from __future__ import annotations

import json
import re
import secrets
import uuid
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from browser import PageFactory, artifact_path
from cluster_server import ClusterServers
from playwright.sync_api import expect
from voila_server import kernel_processes

from deploy.cluster import HOSTS, STATIC_PROBE, Cluster, site_config, visitor_cap
from widgets.engine import Engine
from widgets.eventlog import EventStamper
from widgets.flow import default_flow
from widgets.log import PostgresStore
from widgets.summary import summarize


FLOW = default_flow()
KERNEL_ID_JS = "JSON.parse(document.getElementById('jupyter-config-data').textContent).kernelId"
PAGE_TIMEOUT = 180_000  # ms: a page may wait for a kernel to start on a busy machine
STEPS = 4  # clicks per visitor


# --------------------------------------------------------------------------- the cluster


@pytest.fixture(scope="module", params=HOSTS)
def cluster(request: pytest.FixtureRequest, cluster_servers: ClusterServers) -> Iterator[Cluster]:
    """Two servers of the guide behind nginx, for each host (Voilà: both preheated pools
    filled before any visitor; Solara has no pool)."""
    with cluster_servers.serve(2, host=request.param,
                               wait_pools=request.param == "voila") as instance:
        yield instance


@pytest.fixture(scope="module", autouse=True)
def patient_expect() -> Iterator[None]:
    expect.set_options(timeout=60_000)
    yield
    expect.set_options(timeout=5_000)


def server_of(cluster: Cluster, kernel_id: str) -> int | None:
    """The index of the Voilà server running ``kernel_id`` (None: no server runs it)."""
    for index, backend in enumerate(cluster.backends):
        if backend.alive() and kernel_id in kernel_processes(backend.process.pid):
            return index
    return None


def solara_holders(cluster: Cluster, kernel_id: str) -> list[int]:
    """The Solara workers that hold the visit of ``kernel_id``: each worker's kernel probe
    (``GET /jupyter/api/kernels/<id>``, 404 for a visit it does not hold), asked directly."""
    return [index for index, backend in enumerate(cluster.backends) if backend.holds(kernel_id)]


def upstream(cluster: Cluster, index: int) -> str:
    return f"127.0.0.1:{cluster.backends[index].port}"


def route_to(cluster: Cluster, index: int) -> str:
    """A route id that nginx sends to server ``index``: random ids are tried on a static file
    and the access log says where each went."""
    for _ in range(64):
        route = secrets.token_hex(16)
        request = urllib.request.Request(cluster.url + STATIC_PROBE[cluster.host],
                                         headers={"Cookie": f"guide_route={route}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
            assert "guide_route" not in (response.headers.get("Set-Cookie") or ""), \
                "a valid route cookie was replaced"
        entries = wait_for_entries(cluster, lambda e, r=route: e["route"] == r)
        if entries[-1]["upstream"] == upstream(cluster, index):
            return route
    raise AssertionError(f"no route to server {index} in 64 random ids")


def wait_for_entries(cluster: Cluster, match, timeout: float = 30.0) -> list[dict]:
    """nginx's access-log entries that ``match`` (nginx writes them as requests end)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [entry for entry in cluster.access_entries() if match(entry)]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def http_status(url: str, method: str = "GET") -> int:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def logged_sessions(url: str) -> dict[str, list[tuple]]:
    """Every log session in the database: session id -> its events (node, action, option,
    lang) in the order written."""
    import psycopg

    with psycopg.connect(url) as conn:
        try:
            rows = conn.execute("SELECT session, node, action, option, lang FROM events "
                                "ORDER BY id").fetchall()
        except psycopg.errors.UndefinedTable:
            return {}
    sessions: dict[str, list[tuple]] = {}
    for session, *event in rows:
        sessions.setdefault(session, []).append(tuple(event))
    return sessions


# --------------------------------------------------------------------------- a visitor


class Visitor:
    """One browser context on the proxy; the engine replays what it clicked."""

    def __init__(self, factory: PageFactory, cluster: Cluster, name: str, lang: str = "ko",
                 route: str | None = None) -> None:
        self.name = name
        self.cluster = cluster
        self.factory = factory
        self.page, self.guard = factory.new_page(name, locale="ko-KR" if lang == "ko" else "en-US")
        self.context = self.page.context
        if route is not None:
            self.context.add_cookies([{"name": "guide_route", "value": route,
                                       "url": cluster.url, "httpOnly": True,
                                       "sameSite": "Lax"}])
        self.failed: list[str] = []
        self.context.on("response", self._response)
        self.events = []
        self.engine = Engine(FLOW, lang=lang,
                             on_transition=EventStamper(on_event=self.events.append))
        self.kernel_id = ""
        self.server: int | None = None
        self.sockets: list[str] = []  # the page's websocket URLs
        self.page.on("websocket", lambda ws: self.sockets.append(ws.url))

    def _response(self, response) -> None:
        if response.status >= 400:
            self.failed.append(f"{response.status} {response.request.method} {response.url}")

    @property
    def heading(self):
        return self.page.locator(".guide .guide-body h2")

    def open(self) -> "Visitor":
        """Open the page; find the server holding this visitor's kernel."""
        query = "" if self.engine.lang == "ko" else f"?lang={self.engine.lang}"
        self.page.goto(self.cluster.url + query, wait_until="commit", timeout=PAGE_TIMEOUT)
        self.engine.start()
        expect(self.heading).to_have_text(self.engine.node.title(self.engine.lang),
                                          timeout=PAGE_TIMEOUT)
        if self.cluster.host == "solara":
            kernels = {m.group(1) for url in self.sockets
                       if (m := re.search(r"/jupyter/api/kernels/([0-9a-f-]{36})/channels", url))}
            assert len(kernels) == 1, f"{self.name}: kernel websockets {self.sockets}"
            self.kernel_id = kernels.pop()
            holders = solara_holders(self.cluster, self.kernel_id)
            assert len(holders) <= 1, f"{self.name}: workers {holders} all hold its kernel"
            self.server = holders[0] if holders else None
        else:
            self.kernel_id = self.page.evaluate(KERNEL_ID_JS)
            self.server = server_of(self.cluster, self.kernel_id)
        assert self.server is not None, f"{self.name}: no server runs kernel {self.kernel_id}"
        return self

    @property
    def route(self) -> str:
        cookies = {c["name"]: c for c in self.context.cookies(self.cluster.url)}
        assert "guide_route" in cookies, f"{self.name}: nginx set no route cookie"
        cookie = cookies["guide_route"]
        assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/"
        return cookie["value"]

    def walk(self, seed: int, steps: int = STEPS) -> None:
        """``steps`` clicks along the flow: at a choice the option ``seed + k`` (modulo the
        options), at an information step Next; the page must show the engine's step."""
        lang = self.engine.lang
        for k in range(steps):
            node = self.engine.node
            if node.kind == "choice":
                options = self.engine.options()
                option_id, label = options[(seed + k) % len(options)]
                if node.widget == "dropdown":
                    self.page.get_by_label(node.prompt(lang), exact=True).select_option(label=label)
                    go = self.page.get_by_role("button", name=self.engine.ui("continue"), exact=True)
                    expect(go).to_be_enabled()
                    go.click()
                else:
                    self.page.get_by_role("button", name=label, exact=True).click()
                self.engine.choose(option_id)
            elif node.kind == "info":
                self.page.get_by_role("button", name=self.engine.ui("next"), exact=True).click()
                self.engine.advance()
            else:
                break
            expect(self.heading).to_have_text(self.engine.node.title(lang))

    def expected(self) -> list[tuple]:
        return [(e.node, e.action, e.option, e.lang) for e in self.events]

    def close(self) -> None:
        """Close like a visitor closing the tab: Voilà's page-close beacon is sent."""
        self.factory.close_page(self.page)


def unexpected(visitor: Visitor) -> list[str]:
    """The visitor's page's JavaScript errors and requests off the machine."""
    return [*visitor.guard.external, *visitor.guard.js_errors]


def expect_logged(cluster: Cluster, visitors: list[Visitor], before: set[str],
                  timeout: float = 60.0) -> dict[str, Visitor]:
    """The new log sessions are exactly the visitors' clicks, each once: returns session id
    -> visitor."""
    expected = sorted(v.expected() for v in visitors)
    deadline = time.monotonic() + timeout
    while True:
        new = {s: rows for s, rows in logged_sessions(cluster.log_url).items() if s not in before}
        if sorted(new.values()) == expected or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert sorted(new.values()) == expected, (
        f"the log's {len(new)} new sessions differ from the {len(visitors)} visitors' clicks:\n"
        f"expected {expected}\nlogged {sorted(new.values())}")
    owners = {}
    for session, rows in new.items():
        matching = [v for v in visitors if v.expected() == rows and v not in owners.values()]
        owners[session] = matching[0]
    return owners


def wait_gone(cluster: Cluster, visitor: Visitor, timeout: float = 45.0) -> None:
    """Until the visitor's kernel no longer runs on its server (well before the culler of a
    kernel whose page went away, which waits 60 s and then up to 15 s more)."""
    backend = cluster.backends[visitor.server]
    deadline = time.monotonic() + timeout

    def running() -> bool:
        if cluster.host == "solara":
            return backend.holds(visitor.kernel_id)
        return visitor.kernel_id in kernel_processes(backend.process.pid)

    while running():
        assert time.monotonic() < deadline, (
            f"{visitor.name}: kernel {visitor.kernel_id} still runs on {backend!r} "
            f"{timeout:.0f} s after its page closed")
        time.sleep(0.25)


# --------------------------------------------------------------------------- the tests


def test_one_address_cannot_fill_a_server_in_one_burst() -> None:
    """nginx's page burst per address stays below a server's visitor cap (voila.json)."""
    site = site_config([8001], "127.0.0.1:8000", "/dev/null")
    bursts = [int(b) for b in re.findall(r"limit_req zone=guide_pages burst=(\d+)", site)]
    assert bursts and all(1 <= burst < visitor_cap() for burst in bursts), bursts
    rate = re.search(r"zone=guide_pages:\S+ rate=(\d+)r/m", site)
    assert rate and int(rate.group(1)) < visitor_cap(), "a minute's page loads fill a server"


def test_solara_workers_take_the_clusters_limits(tmp_path) -> None:
    """A Solara worker's visitor cap and culling are voila.json's, on its command line and in
    its systemd unit; the limits parse as the host parses them."""
    from deploy.cluster import ROOT, Solara, solara_limits
    from widgets.hosts.solara.__main__ import parse

    config = json.loads((ROOT / "voila.json").read_text(encoding="utf-8"))
    limits = solara_limits()
    assert limits["max_visitors"] == config["GuideIdentityProvider"]["max_visitors"] == visitor_cap()
    assert limits["idle_timeout"] == config["GuideKernelManager"]["cull_connected_after"]
    assert limits["disconnected_timeout"] == config["MappingKernelManager"]["cull_idle_timeout"]
    assert limits["max_message_bytes"] == \
        config["Voila"]["tornado_settings"]["websocket_max_message_size"]
    assert solara_limits(max_visitors=0)["max_visitors"] == 0
    command = Solara(9999, tmp_path / "solara.log", {}).command()
    assert command[1:3] == ["-m", "widgets.hosts.solara"]
    _, parsed = parse(command[3:])
    for name, value in limits.items():
        assert getattr(parsed, name) == value, name
    unit = (ROOT / "deploy" / "guide-solara@.service").read_text(encoding="utf-8")
    start = re.search(r"^ExecStart=\S+ -m widgets\.hosts\.solara (.*)$", unit, re.M)
    assert start, "the unit starts no Solara worker"
    assert start.group(1).split() == ["--ip=127.0.0.1", "--port=%i", *command[5:]]


def test_proxy_publishes_only_what_the_page_needs(cluster: Cluster) -> None:
    if cluster.host == "voila":
        kernel = next(iter(kernel_processes(cluster.backends[0].process.pid)))
        assert http_status(cluster.url + f"voila/query/{kernel}") == 404
        for path in ("api/kernels", "api/sessions", "api/contents", "api/status", "tree",
                     "voila/render/guide.ipynb", "notebooks/guide.ipynb", "logout", "login"):
            assert http_status(cluster.url + path) == 404, path
        assert http_status(cluster.url + f"api/kernels/{kernel}", method="DELETE") == 403
    else:
        kernel = str(uuid.uuid4())
        for path in ("readyz", "resourcez", f"jupyter/api/kernels/{kernel}", "api/kernels",
                     "guide", "static/../resourcez", "_solara/auth/login", "_guide/nothing.js",
                     f"jupyter/api/kernels/{kernel}/iopub"):
            assert http_status(cluster.url + path) == 404, path
        # the worker itself answers its health report: the proxy is what keeps it private
        assert http_status(cluster.backends[0].url + "readyz") == 200
        # the worker closes the resource report and eviction itself
        assert http_status(cluster.backends[0].url + "resourcez") == 404
        assert http_status(cluster.url + f"_solara/api/evict/{kernel}", method="POST") == 404
        assert http_status(cluster.url + f"_solara/api/close/{kernel}") == 403  # POST only
        assert http_status(cluster.url + f"jupyter/api/kernels/{kernel}",
                           method="DELETE") == 403  # the probe: GET only
        # the page's scripts, which the worker adds to Solara's page
        for script in ("_guide/guide.js", "_guide/solara-host.js"):
            assert http_status(cluster.url + script) == 200, script
            assert http_status(cluster.url + script, method="POST") == 403, script
    assert http_status(cluster.url + STATIC_PROBE[cluster.host]) == 200
    # a malformed route cookie is replaced by a fresh one
    request = urllib.request.Request(cluster.url + STATIC_PROBE[cluster.host],
                                     headers={"Cookie": "guide_route=../../etc"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert re.match(r"guide_route=[0-9a-f]{32}; Path=/; HttpOnly; SameSite=Lax$",
                        response.headers["Set-Cookie"])


def test_visitors_stick_to_their_server_and_every_click_is_logged_once(
        cluster: Cluster, page_factory: PageFactory) -> None:
    routes = {index: route_to(cluster, index) for index in (0, 1)}
    before = set(logged_sessions(cluster.log_url))
    visitors = []
    for i in range(4):
        lang = "ko" if i % 2 == 0 else "en"
        unused = {0, 1} - {v.server for v in visitors}
        # the last visitor goes where nobody went yet, should the random routes all have
        # chosen one server (a route id known to lead there): both servers serve visitors
        route = routes[unused.pop()] if i == 3 and len(unused) == 1 else None
        visitors.append(Visitor(page_factory, cluster, f"visitor {i}", lang, route).open())
    assert {v.server for v in visitors} == {0, 1}, "one server served every visitor"

    for seed, visitor in enumerate(visitors):
        visitor.walk(seed)
    owners = expect_logged(cluster, visitors, before)
    assert {v.server for v in owners.values()} == {0, 1}

    # the dashboard, against the same database, counts the sessions of both servers
    with PostgresStore(cluster.log_url) as store:
        summary = summarize(store)
    assert summary.sessions == len(logged_sessions(cluster.log_url)) >= len(visitors)
    page, guard = page_factory.new_page("dashboard")
    page.goto(cluster.summary_url, wait_until="commit", timeout=PAGE_TIMEOUT)
    card = page.locator(".guide-dash .dash-kpi", has_text="sessions · 세션").locator("b")
    expect(card).to_be_visible(timeout=PAGE_TIMEOUT)
    # its preheated kernel summarised the log before the visits: Refresh reads it again
    page.get_by_role("button", name="Refresh · 새로 고침").click()
    expect(card).to_have_text(f"{summary.sessions:,}")
    page.screenshot(path=str(artifact_path("cluster-dashboard.png")))
    assert guard.clean, guard.report()
    page_factory.close_page(page)

    # every request of a visitor went to the server that holds its kernel
    for visitor in visitors:
        route = visitor.route
        entries = wait_for_entries(cluster, lambda e, r=route: e["route"] == r)
        assert entries, f"{visitor.name}: no request with its route"
        assert {e["upstream"] for e in entries} == {upstream(cluster, visitor.server)}, (
            f"{visitor.name}: requests went to {sorted({e['upstream'] for e in entries})}")
        pages = [e for e in entries if e["uri"] == "/"]
        assert pages and pages[0]["status"] == "200"
        issued = [e for e in entries if e["new_route"] == "1"]
        assert len(issued) == (0 if visitor.name == "visitor 3" and route in routes.values()
                               else 1), f"{visitor.name}: route issued {len(issued)} times"

    # closing a tab: the beacon goes through nginx to the server holding the kernel, which
    # shuts the kernel down at once (not the idle culler)
    beacon, socket = {"voila": ("/voila/api/shutdown/{}", "/api/kernels/{}/channels"),
                      "solara": ("/_solara/api/close/{}", "/jupyter/api/kernels/{}/channels")
                      }[cluster.host]
    for visitor in visitors:
        marks = [len(b.log()) for b in cluster.backends]
        visitor.close()
        wait_gone(cluster, visitor)
        log = cluster.backends[visitor.server].log()[marks[visitor.server]:]
        if cluster.host == "solara":  # closed by the page's request, not by the gate's culler
            assert "closing visit" not in log, log
        else:
            assert f"Kernel shutdown: {visitor.kernel_id}" in log
            assert "Culling" not in log
        beacons = wait_for_entries(
            cluster, lambda e, v=visitor: e["uri"] == beacon.format(v.kernel_id))
        assert beacons and beacons[-1]["method"] == "POST", f"{visitor.name}: no beacon via nginx"
        assert beacons[-1]["upstream"] == upstream(cluster, visitor.server)
        # the browser may leave before the answer (nginx logs 499); the server answered
        assert beacons[-1]["upstream_status"].startswith("2"), beacons[-1]
        sockets = wait_for_entries(
            cluster, lambda e, v=visitor: e["uri"] == socket.format(v.kernel_id))
        assert sockets and {e["upstream"] for e in sockets} == {upstream(cluster, visitor.server)}
        assert sockets[-1]["status"] == "101"
    for visitor in visitors:
        assert not visitor.failed, f"{visitor.name}: {visitor.failed}"
        assert not unexpected(visitor), visitor.guard.report()


def test_a_stopped_server_leaves_new_visitors_to_the_other(
        cluster: Cluster, page_factory: PageFactory) -> None:
    to_stopped = route_to(cluster, 1)  # before it stops: where this route used to lead
    stopped = cluster.stop_backend(1)
    assert not stopped.alive()
    mark = len(cluster.access_entries())
    before = set(logged_sessions(cluster.log_url))
    visitors = [Visitor(page_factory, cluster, "after the stop, routed there", "ko",
                        to_stopped).open(),
                Visitor(page_factory, cluster, "after the stop, new", "en").open()]
    assert [v.server for v in visitors] == [0, 0]
    for seed, visitor in enumerate(visitors):
        visitor.walk(seed + 7)
    expect_logged(cluster, visitors, before)
    # the request routed to the stopped server was refused there and passed to the other
    later = cluster.access_entries()[mark:]
    moved = [e for e in later if e["route"] == to_stopped]
    assert moved and {e["status"] for e in moved} <= {"101", "200", "204", "304"}, moved
    assert any(e["upstream"] == f"{upstream(cluster, 1)}, {upstream(cluster, 0)}"
               for e in later), "no request was passed on from the stopped server"
    for visitor in visitors:
        visitor.close()
        wait_gone(cluster, visitor)
        assert not visitor.failed, f"{visitor.name}: {visitor.failed}"
        assert not unexpected(visitor), visitor.guard.report()
