"""What one visitor costs, and what a second Voilà server buys: the inputs of the README's
capacity model. Everything runs through the cluster ``./manage cluster`` starts
(``deploy/cluster.py``: nginx, two Voilà servers of the guide, a local PostgreSQL log), in
headless Chromium, on 127.0.0.1.

* **a visitor's kernel**: ``visits`` visitors, one after another on a quiet machine, each a
  fresh browser context through the proxy. For each: the memory of its kernel once the page
  is interactive and the machine quiet (RSS, USS, and PSS: shared pages split among the
  kernels sharing them, the fair share for adding up many kernels), and the CPU seconds
  (user + system, ``psutil``) its kernel process has used from its start (it was started
  ahead, in Voilà's preheated pool, and ran the notebook then) until the page is
  interactive;
* **the rest of a visit**: CPU seconds of the Voilà server processes and nginx from the
  moment the page is requested until the preheated pool is full again (the page rendered,
  the websocket relayed, a replacement kernel started and put in the pool; the kernel's own
  CPU is counted above);
* **visitors started per second per core**: 1 ÷ (kernel CPU + the rest), the rate one core
  could sustain if it did nothing else (derived, not measured);
* **a burst**: ``burst`` visitors whose navigations start at once, through the proxy, with
  nginx sending them to two Voilà servers and to one (its upstream rendered again and
  reloaded; the other server keeps running idle), alternating (1, 2, 2, 1, ... for
  ``rounds``) in the same run: the time from the first navigation to the last page
  interactive, and the ratio 1 server ÷ 2 servers.

Other processes on the machine add noise: before each measurement the run waits for the whole
machine to be quiet (at most two minutes).
"""

from __future__ import annotations

import json
import signal
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from browser import PageGuard, launch_chromium, start_playwright  # noqa: E402
from cluster_server import start_cluster  # noqa: E402
from voila_server import _pool_size, kernel_processes, load_config  # noqa: E402

from benchmarks.voila_bench import (  # noqa: E402
    INIT_SCRIPT,
    KERNEL_ID_JS,
    VIEWPORT,
    CpuMeter,
    Spread,
    close_page,
    wait_interactive,
    wait_quiet,
)
from benchmarks.voila_bench import burst as open_at_once  # noqa: E402
from deploy.cluster import Cluster  # noqa: E402

CONTROL = ".guide select"  # the guide's first control: usable means interactive
POOL = _pool_size(load_config(), [])  # preheated kernels per Voilà server (voila.json)


@dataclass
class Visit:
    server: int
    tti_ms: float
    kernel_cpu_s: float
    rest_cpu_s: float
    rss_mb: float
    uss_mb: float
    pss_mb: float


@dataclass
class Burst:
    servers: int
    visitors: int
    interactive: int
    seconds: float
    per_server: dict[int, int]
    busy_pages: int
    other_cores: float = float("nan")  # other processes on the machine meanwhile
    notes: list[str] = field(default_factory=list)


@dataclass
class CapacityRun:
    visits: list[Visit] = field(default_factory=list)
    bursts: list[Burst] = field(default_factory=list)
    server_rss_mb: list[float] = field(default_factory=list)  # each Voilà server, pool full
    pool_size: int = 0
    settings: dict = field(default_factory=dict)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def spread(self, name: str) -> Spread:
        return Spread([getattr(v, name) for v in self.visits])

    @property
    def cpu_per_visitor(self) -> float:
        return self.spread("kernel_cpu_s").median + self.spread("rest_cpu_s").median

    def burst_seconds(self, servers: int) -> Spread:
        return Spread([b.seconds for b in self.bursts
                       if b.servers == servers and b.interactive == b.visitors])

    @property
    def burst_ratio(self) -> float:
        one, two = self.burst_seconds(1).median, self.burst_seconds(2).median
        return one / two if two else float("nan")


# --------------------------------------------------------------------------- processes


def _cpu(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
        return times.user + times.system
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0.0


def _tree_cpu(pids: list[int], kernels: bool = False) -> float:
    """CPU seconds of the processes ``pids`` (and, with ``kernels``, their children)."""
    total = 0.0
    for pid in pids:
        try:
            process = psutil.Process(pid)
        except psutil.NoSuchProcess:
            continue
        total += _cpu(process)
        if kernels:
            total += sum(_cpu(child) for child in process.children(recursive=True))
    return total


def _nginx_pids(cluster: Cluster) -> list[int]:
    if cluster.nginx is None:
        return []
    try:
        master = psutil.Process(cluster.nginx.pid)
        return [master.pid, *(c.pid for c in master.children())]
    except psutil.NoSuchProcess:
        return []


def _kernels(cluster: Cluster, index: int) -> dict[str, psutil.Process]:
    return kernel_processes(cluster.backends[index].process.pid)


def _server_of(cluster: Cluster, kernel_id: str) -> int | None:
    for index in range(len(cluster.backends)):
        if kernel_id in _kernels(cluster, index):
            return index
    return None


def wait_pools(cluster: Cluster, visitors: set[str] = frozenset(), timeout: float = 120.0,
               quiet: float = 60.0) -> None:
    """Every server runs its preheated pool and nothing else (closed pages' kernels gone)
    but ``visitors``' kernels; then the machine is quiet (at most ``quiet`` seconds: the
    CPU seconds measured are per process, and on a shared machine it may never be)."""
    pool = POOL
    deadline = time.monotonic() + timeout
    for index, backend in enumerate(cluster.backends):
        while "Kernel pool of" not in backend.log() and time.monotonic() < deadline:
            time.sleep(0.5)
        while time.monotonic() < deadline:
            if len(set(_kernels(cluster, index)) - set(visitors)) == pool:
                break
            time.sleep(0.5)
    wait_quiet(timeout=quiet)


# --------------------------------------------------------------------------- pages


def _open(browser, url: str, navigate: bool = True):
    context = browser.new_context(viewport=VIEWPORT, locale="ko-KR")
    guard = PageGuard("capacity")
    guard.attach(context, intercept=False)  # the browser is offline; routing slows loads
    context.add_init_script(INIT_SCRIPT % {"selector": json.dumps(CONTROL)})
    page = context.new_page()
    page.set_default_timeout(180_000)
    if navigate:
        page.goto(url, wait_until="commit", timeout=180_000)
    return context, page, guard


def measure_visits(browser, cluster: Cluster, result: CapacityRun, visits: int,
                   progress: Callable[[str], None]) -> None:
    servers = [b.process.pid for b in cluster.backends]
    for i in range(visits):
        wait_pools(cluster, quiet=20)
        rest_before = _tree_cpu(servers) + _tree_cpu(_nginx_pids(cluster))
        context, page, guard = _open(browser, cluster.url)
        tti = wait_interactive(page)
        kernel_id = page.evaluate(KERNEL_ID_JS)
        server = _server_of(cluster, kernel_id)
        if server is None:
            result.notes.append(f"visit {i}: kernel {kernel_id} not found on any server")
            close_page(context, page)
            continue
        kernel = _kernels(cluster, server)[kernel_id]
        kernel_cpu = _cpu(kernel)
        wait_pools(cluster, visitors={kernel_id}, quiet=20)  # the replacement is in the pool
        rest = _tree_cpu(servers) + _tree_cpu(_nginx_pids(cluster)) - rest_before
        info = kernel.memory_full_info()
        visit = Visit(server, tti, kernel_cpu, rest, info.rss / 2**20, info.uss / 2**20,
                      getattr(info, "pss", float("nan")) / 2**20)
        result.visits.append(visit)
        close_page(context, page)
        progress(f"visit {i + 1}/{visits} (server {server + 1}): interactive after {tti:.0f} ms, "
                 f"kernel CPU {kernel_cpu:.2f} s, rest {rest:.2f} s, kernel RSS "
                 f"{visit.rss_mb:.0f} MB USS {visit.uss_mb:.0f} MB PSS {visit.pss_mb:.0f} MB")


def measure_burst(browser, cluster: Cluster, servers: int, visitors: int, timeout: float,
                  progress: Callable[[str], None]) -> Burst:
    ports = [b.port for b in cluster.backends]
    cluster.set_upstreams(ports[:servers])
    wait_pools(cluster)
    marks = [len(b.log()) for b in cluster.backends]
    opened = [_open(browser, cluster.url, navigate=False) for _ in range(visitors)]
    with CpuMeter() as meter:
        states = open_at_once([page for _, page, _ in opened], cluster.url, timeout)
    done = [s for s in states if s]
    seconds = (max(s[1] for s in done) - min(s[0] for s in done)) / 1000 if done else float("nan")
    per_server: dict[int, int] = {}
    for _, _, kernel_id in done:
        index = _server_of(cluster, kernel_id)
        per_server[index] = per_server.get(index, 0) + 1
    busy = 0
    for _, page, _ in opened:
        try:
            if "Please try again shortly" in page.title():
                busy += 1
        except Exception:  # noqa: BLE001
            pass
    burst = Burst(servers, visitors, len(done), seconds,
                  {k + 1 if k is not None else 0: v for k, v in sorted(
                      per_server.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))}, busy,
                  other_cores=meter.others)
    if len(done) < visitors:
        culled = sum(b.log()[mark:].count("Culling 'idle' kernel")
                     for b, mark in zip(cluster.backends, marks))
        burst.notes.append(f"{visitors - len(done)} pages not interactive after {timeout:.0f} s; "
                           f"the idle culler shut down {culled} kernels meanwhile (a page that "
                           "has not connected its websocket 60 s after its kernel ran loses it)")
    kernels = {s[2] for s in done}
    for context, page, _ in opened:
        close_page(context, page)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # the burst's kernels are given back before going on
        running = set()
        for index in range(len(cluster.backends)):
            running |= set(_kernels(cluster, index))
        if not kernels & running:
            break
        time.sleep(1.0)
    progress(f"burst of {visitors} through nginx to {servers} server(s): {len(done)} "
             f"interactive, all after {seconds:.1f} s; per server {burst.per_server}")
    return burst


# --------------------------------------------------------------------------- the run


def run(visits: int = 6, burst: int = 16, rounds: int = 1, burst_timeout: float = 300.0,
        progress: Callable[[str], None] = print) -> CapacityRun:
    started = time.monotonic()
    result = CapacityRun(settings={"visits": visits, "burst": burst, "rounds": rounds})
    playwright = start_playwright()

    def stop(signum, frame):  # a killed run still stops its servers (finally below)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        # the burst comes from this one address on purpose: nginx's per-address page burst
        # (below a server's cap in a deployment) would refuse part of it
        with start_cluster(2, summary=False, pg_fsync=True, wait_pools=False,
                           progress=lambda m: progress(f"starting {m}"),
                           page_burst=(burst + visits) * rounds + 4) as cluster:
            result.pool_size = POOL
            browser = launch_chromium(playwright, offline=True)
            result.settings["chromium"] = browser.version
            wait_pools(cluster, timeout=240)
            for backend in cluster.backends:
                result.server_rss_mb.append(psutil.Process(backend.process.pid).memory_info().rss
                                            / 2**20)
            # warm the browser's cache and both servers once, unmeasured
            for _ in range(2):
                context, page, _ = _open(browser, cluster.url)
                wait_interactive(page)
                close_page(context, page)
            progress("warm-up done")
            measure_visits(browser, cluster, result, visits, progress)
            order = []
            for r in range(rounds):
                order += [1, 2] if r % 2 == 0 else [2, 1]
            for servers in order:
                result.bursts.append(measure_burst(browser, cluster, servers, burst, burst_timeout,
                                                   progress))
            browser.close()
    finally:
        signal.signal(signal.SIGTERM, previous)
        playwright.stop()
    result.seconds = time.monotonic() - started
    return result


# --------------------------------------------------------------------------- reporting


def table(result: CapacityRun) -> str:
    kernel_cpu, rest = result.spread("kernel_cpu_s"), result.spread("rest_cpu_s")
    per_core = 1 / result.cpu_per_visitor if result.cpu_per_visitor else float("nan")
    rows = [
        ("Visitor kernel memory, median: RSS / USS / PSS",
         f"{result.spread('rss_mb').median:.0f} / {result.spread('uss_mb').median:.0f} / "
         f"{result.spread('pss_mb').median:.0f} MB"),
        ("Kernel CPU from its start to the page interactive, median (min–max)",
         f"{kernel_cpu.median:.2f} s ({kernel_cpu.low:.2f}–{kernel_cpu.high:.2f})"),
        ("Voilà server + nginx CPU per visit (page, websocket, replacement kernel started), median",
         f"{rest.median:.2f} s ({rest.low:.2f}–{rest.high:.2f})"),
        ("CPU per visitor started (sum of the medians)", f"{result.cpu_per_visitor:.2f} s"),
        ("Visitors started per second per core (derived: 1 ÷ CPU per visitor)",
         f"{per_core:.2f}"),
        ("Time to interactive through nginx, one visitor at a time, median",
         f"{result.spread('tti_ms').median:.0f} ms"),
        ("Voilà server RSS with its preheated pool full, median",
         f"{statistics.median(result.server_rss_mb):.0f} MB" if result.server_rss_mb else "n/a"),
    ]
    for servers in (1, 2):
        runs = [b for b in result.bursts if b.servers == servers]
        shown = ", ".join(f"{b.interactive}/{b.visitors} after {b.seconds:.1f} s "
                          f"(per server {b.per_server})" for b in runs)
        rows.append((f"Burst of {result.settings['burst']} through nginx, {servers} Voilà "
                     f"server{'s' if servers > 1 else ''}: all interactive after", shown or "n/a"))
    ratio = result.burst_ratio
    rows.append(("Burst time, 1 server ÷ 2 servers (same run; bursts where every page became "
                 "interactive)", f"{ratio:.2f}" if ratio == ratio else
                 "n/a: no burst of one of the two kinds completed"))
    lines = ["| Measure | Value |", "| --- | ---: |"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    return "\n".join(lines)


def details(result: CapacityRun) -> str:
    out = ["| visit | server | interactive | kernel CPU | rest CPU | RSS | USS | PSS |",
           "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for i, v in enumerate(result.visits, 1):
        out.append(f"| {i} | {v.server + 1} | {v.tti_ms:.0f} ms | {v.kernel_cpu_s:.2f} s | "
                   f"{v.rest_cpu_s:.2f} s | {v.rss_mb:.0f} MB | {v.uss_mb:.0f} MB | "
                   f"{v.pss_mb:.0f} MB |")
    out.append("")
    for b in result.bursts:
        out.append(f"- burst, {b.servers} server(s): {b.interactive}/{b.visitors} interactive "
                   f"after {b.seconds:.1f} s; kernels per server {b.per_server}; busy pages "
                   f"{b.busy_pages}; other processes on the machine meanwhile "
                   f"{b.other_cores:.2f} cores" + (f"; {'; '.join(b.notes)}" if b.notes else ""))
    for note in result.notes:
        out.append(f"- note: {note}")
    return "\n".join(out)
