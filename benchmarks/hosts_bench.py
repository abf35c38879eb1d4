"""The guide under Voilà and under Solara, side by side in one run on the same machine.

Both servers run the same guide with the log off (``GUIDE_LOG=off``: the log's cost is the
log benchmark's business): Voilà the notebook with the project's ``voila.json`` (a kernel
process per visitor, started ahead in a preheated pool), Solara the guide's own host
(``python -m widgets.hosts.solara``, ``deploy.cluster.SOLARA_MODULE``: a virtual kernel per
visitor, inside the server process, behind the host's gate) with the cluster's limits
(:func:`deploy.cluster.solara_limits`) but no visitor cap, so that the bursts reach it.
Measured for each host:

* **time to interactive** and **click → DOM change**, in headless Chromium, as
  ``benchmarks/voila_bench.py`` measures them (the first ``.guide select`` usable; Next/Back
  between two information steps, from just before the click to the first DOM mutation of the
  step's text); loads and clicks alternate between the hosts (ABBA);
* **a crowd of visitors without a browser** (``benchmarks/ws_visitor.py``: the page's request,
  its kernel websocket held open, every widget's state received, nothing drawn), ``visitors``
  arriving at once, each answering one click (the first screen's answer and Continue: a
  widget message that moves to the next step). While they are all connected:

  - **memory per visitor**: for Voilà, the server's USS growth plus each visitor's kernel
    USS; for Solara, the server's USS growth (its kernels live in it); divided by the
    visitors (USS: pages no other process shares);
  - **server CPU per visitor**: CPU seconds of the server and, for Voilà, its kernels
    (including the replacement kernels the preheated pool starts), from the crowd's first
    request until the clicks are answered and the pool full again, divided by the visitors;
  - the click's latency over the websocket (click message → the kernel's ``idle`` for it).

  Voilà takes at most 16 kernel websockets from one address (``voila.json``), and this
  client is one address: the crowd compared is at most 16.
* **bursts** (Solara only): ``bursts`` visitors (100, then 200) arriving at once, each, once
  all are interactive, clicking at a random moment within ``click_window`` seconds (a
  person reading the screen, not a synchronised machine); the count answered within 1 s,
  memory and CPU per visitor as above.

Targets, as ratios in one run: Solara memory per visitor ≤ 2 MB; Solara server CPU per visitor
≤ half of Voilà's; time to interactive and click no worse than Voilà's (Solara ÷ Voilà ≤ 1);
every one of the largest burst's visitors answered within 1 s.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from browser import PageGuard, launch_chromium, start_playwright  # noqa: E402
from voila_server import free_port, start_voila  # noqa: E402

from benchmarks.voila_bench import (  # noqa: E402
    CLICK_JS,
    INIT_SCRIPT,
    VIEWPORT,
    CpuMeter,
    Spread,
    _guide_to_info_step,
    close_page,
    wait_interactive,
    wait_quiet,
)
from benchmarks.ws_visitor import Visitor  # noqa: E402
from deploy.cluster import GUIDE_NOTEBOOK, SOLARA_MODULE, Solara, solara_limits  # noqa: E402

HOSTS = ("voila", "solara")
CONTROL = ".guide select"
RESULT = ".guide .guide-body .widget-html-content"
CLICK_LIMIT_S = 1.0
TARGETS = {"solara_mb_per_visitor": 2.0, "cpu_ratio": 0.5, "tti_ratio": 1.0,
           "click_ratio": 1.0}
VOILA_CROWD_MAX = 16  # kernel websockets Voilà takes from one address (voila.json)


# --------------------------------------------------------------------------- results


@dataclass
class Crowd:
    """Visitors arriving at once, each answering one click, all connected while measured."""

    host: str
    visitors: int
    interactive: int = 0
    all_interactive_s: float = float("nan")  # first request -> last visitor interactive
    interactive_s: list[float] = field(default_factory=list)
    click_s: list[float] = field(default_factory=list)
    updates: list[int] = field(default_factory=list)
    mb_per_visitor: float = float("nan")
    cpu_per_visitor_s: float = float("nan")
    server_uss_mb: tuple[float, float] = (float("nan"), float("nan"))  # before, with the crowd
    kernel_uss_mb: list[float] = field(default_factory=list)  # Voilà: each visitor's kernel
    click_window_s: float = 0.0
    errors: list[str] = field(default_factory=list)
    other_cores: float = float("nan")

    @property
    def answered(self) -> int:
        """Clicks answered within the limit (one per visitor)."""
        return sum(1 for s in self.click_s if s <= CLICK_LIMIT_S)


@dataclass
class HostResult:
    host: str
    tti_ms: list[float] = field(default_factory=list)
    click_ms: list[float] = field(default_factory=list)
    crowd: Crowd | None = None
    bursts: list[Crowd] = field(default_factory=list)
    js_errors: list[str] = field(default_factory=list)
    external: set[str] = field(default_factory=set)


@dataclass
class HostsRun:
    voila: HostResult
    solara: HostResult
    settings: dict
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def ratio(self, measure: str) -> float:
        a, b = (Spread(getattr(getattr(self, h), measure)).median for h in ("solara", "voila"))
        return a / b if b else float("nan")

    def cpu_ratio(self) -> float:
        s, v = self.solara.crowd, self.voila.crowd
        if not s or not v or not v.cpu_per_visitor_s:
            return float("nan")
        return s.cpu_per_visitor_s / v.cpu_per_visitor_s

    def largest_burst(self) -> Crowd | None:
        return max(self.solara.bursts, key=lambda b: b.visitors, default=None)

    def verdicts(self) -> list[tuple[str, str, str, bool]]:
        """(target, requirement, measured, met)."""
        rows = []
        mem = [c for c in [self.solara.crowd, *self.solara.bursts] if c]
        worst = max((c.mb_per_visitor for c in mem), default=float("nan"))
        rows.append(("Solara memory per visitor", f"≤ {TARGETS['solara_mb_per_visitor']:.0f} MB "
                     "(every crowd)", f"{worst:.2f} MB (largest of {len(mem)} crowds)",
                     worst <= TARGETS["solara_mb_per_visitor"]))
        cpu = self.cpu_ratio()
        rows.append(("server CPU per visitor", f"Solara ÷ Voilà ≤ {TARGETS['cpu_ratio']:.1f}",
                     f"{cpu:.3f}", cpu <= TARGETS["cpu_ratio"]))
        tti = self.ratio("tti_ms")
        rows.append(("time to interactive (browser)",
                     f"Solara ÷ Voilà ≤ {TARGETS['tti_ratio']:.1f}", f"{tti:.3f}",
                     tti <= TARGETS["tti_ratio"]))
        click = self.ratio("click_ms")
        rows.append(("click → DOM change (browser)",
                     f"Solara ÷ Voilà ≤ {TARGETS['click_ratio']:.1f}", f"{click:.3f}",
                     click <= TARGETS["click_ratio"]))
        burst = self.largest_burst()
        if burst is not None:
            rows.append((f"{burst.visitors} simultaneous Solara visitors",
                         f"each interactive and its click answered within {CLICK_LIMIT_S:.0f} s",
                         f"{burst.interactive}/{burst.visitors} interactive, "
                         f"{burst.answered}/{burst.visitors} answered within "
                         f"{CLICK_LIMIT_S:.0f} s",
                         burst.interactive == burst.answered == burst.visitors))
        return rows


# --------------------------------------------------------------------------- processes


def _cpu(processes: Sequence[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def _uss_mb(process: psutil.Process) -> float:
    return process.memory_full_info().uss / 2**20


class Host:
    """A running server of one host: its processes and how to wait until it is at rest."""

    def __init__(self, name: str, url: str, process: psutil.Process, voila=None) -> None:
        self.name = name
        self.url = url
        self.process = process
        self.voila = voila  # tests/voila_server.VoilaServer for Voilà

    def processes(self) -> list[psutil.Process]:
        """The server and, for Voilà, every kernel it runs."""
        try:
            return [self.process, *self.process.children(recursive=True)]
        except psutil.NoSuchProcess:
            return [self.process]

    def kernels(self) -> dict[str, psutil.Process]:
        return self.voila.kernel_processes() if self.voila is not None else {}

    def at_rest(self, visitors: set[str] = frozenset(), quiet: float = 60.0) -> None:
        """Voilà's preheated pool full (besides ``visitors``' kernels), then the machine quiet."""
        if self.voila is not None:
            self.voila.wait_until_preheated(timeout=180)
            try:
                self.voila.wait_for_pool(timeout=180, exclude=visitors)
            except AssertionError:
                pass
        wait_quiet(timeout=quiet)


@contextmanager
def solara_server(env: dict[str, str], log_dir: Path):
    port = free_port()
    # the cluster's limits; no visitor cap: the bursts are larger than a worker's cap
    server = Solara(port, log_dir / f"solara-{port}.log", env, solara_limits(max_visitors=0))
    server.start()
    try:
        server.wait_answering()
        yield server
    finally:
        server.stop()


@contextmanager
def hosts_running(log_dir: Path):
    env = {**os.environ, "GUIDE_LOG": "off"}
    with ExitStack() as stack:
        voila = stack.enter_context(start_voila(GUIDE_NOTEBOOK, env={"GUIDE_LOG": "off"}))
        solara = stack.enter_context(solara_server(env, log_dir))
        hosts = {"voila": Host("voila", voila.url, voila.psutil_process, voila),
                 "solara": Host("solara", solara.url, psutil.Process(solara.process.pid))}
        yield hosts, solara


# --------------------------------------------------------------------------- the browser


def _open(browser, url: str, name: str):
    context = browser.new_context(viewport=VIEWPORT, locale="ko-KR")
    guard = PageGuard(name)
    guard.attach(context, intercept=False)  # the browser is offline; routing slows loads
    context.add_init_script(INIT_SCRIPT % {"selector": json.dumps(CONTROL)})
    page = context.new_page()
    page.set_default_timeout(180_000)
    page.goto(url, wait_until="commit", timeout=180_000)
    return context, page, guard


def _close(result: HostResult, context, page, guard) -> None:
    guard.watching = False
    result.external.update(guard.external)
    result.js_errors.extend(guard.js_errors)
    close_page(context, page)


def measure_browser(browser, hosts: dict[str, Host], results: dict[str, HostResult],
                    loads: int, clicks: int, progress: Callable[[str], None]) -> None:
    from widgets.flow import default_flow

    ui = default_flow().ui
    for round_ in range(loads):
        for name in (HOSTS if round_ % 2 == 0 else HOSTS[::-1]):
            host = hosts[name]
            host.at_rest()
            context, page, guard = _open(browser, host.url, name)
            tti = wait_interactive(page)
            results[name].tti_ms.append(tti)
            _close(results[name], context, page, guard)
            progress(f"load {round_ + 1}/{loads} {name}: interactive after {tti:.0f} ms")
    opened, headings = {}, {}
    for name in HOSTS:
        hosts[name].at_rest()
        context, page, guard = _open(browser, hosts[name].url, name)
        wait_interactive(page)
        headings[name] = _guide_to_info_step(page)
        opened[name] = (context, page, guard)
    wait_quiet()
    for i in range(clicks):
        for name in (HOSTS if i % 2 == 0 else HOSTS[::-1]):
            _, page, _ = opened[name]
            first, second = headings[name]
            label = ui["next"]("ko") if i % 2 == 0 else ui["back"]("ko")
            ms = float(page.evaluate(CLICK_JS, [label, RESULT]))
            if ms < 0:
                raise RuntimeError(f"{name}: click {i} on {label!r} changed nothing ({ms})")
            page.locator(".guide .guide-body h2",
                         has_text=second if i % 2 == 0 else first).wait_for()
            page.wait_for_timeout(200)  # every message of this click has arrived
            results[name].click_ms.append(ms)
    for name in HOSTS:
        _close(results[name], *opened[name])
        progress(f"{clicks} clicks {name}: median {Spread(results[name].click_ms).median:.1f} ms")


# --------------------------------------------------------------------------- a crowd


def crowd(host: Host, visitors: int, continue_label: str, click_window: float = 0.0,
          seed: int = 0, timeout: float = 300.0,
          progress: Callable[[str], None] = print) -> Crowd:
    """``visitors`` arriving at once; each clicks once (at a random moment within
    ``click_window`` seconds after the last one became interactive); measured while all are
    connected; then they leave like closed tabs."""
    result = Crowd(host.name, visitors, click_window_s=click_window)
    host.at_rest()
    result.server_uss_mb = (_uss_mb(host.process), float("nan"))
    cpu_before = _cpu(host.processes())
    people = [Visitor(host.name, host.url, timeout) for _ in range(visitors)]
    start = threading.Barrier(visitors + 1)
    rng = random.Random(seed)
    offsets = [rng.uniform(0, click_window) for _ in people]
    clicked = threading.Barrier(visitors + 1)
    go_click = threading.Event()
    click_at = [0.0]

    def one(i: int) -> None:
        person = people[i]
        start.wait()
        try:
            person.open()
        except Exception as error:  # noqa: BLE001 - counted, the others go on
            person.visit.error = f"open: {error!r}"[:300]
        go_click.wait()
        try:
            if person.visit.ok:
                time.sleep(max(0.0, click_at[0] + offsets[i] - time.monotonic()))
                person.click(continue_label)
        except Exception as error:  # noqa: BLE001
            person.visit.error = f"click: {error!r}"[:300]
        clicked.wait()

    with ThreadPoolExecutor(max_workers=visitors) as pool, CpuMeter() as meter:
        futures = [pool.submit(one, i) for i in range(visitors)]
        start.wait()
        t0 = time.monotonic()
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            done = [p for p in people if p.visit.interactive_s == p.visit.interactive_s
                    or p.visit.error]
            if len(done) == visitors:
                break
            time.sleep(0.2)
        ready = [p for p in people if p.visit.ok and p.visit.interactive_s == p.visit.interactive_s]
        result.interactive = len(ready)
        result.interactive_s = [p.visit.started + p.visit.interactive_s - t0 for p in ready]
        result.all_interactive_s = max(result.interactive_s, default=float("nan"))
        progress(f"{host.name}: {len(ready)}/{visitors} visitors interactive after "
                 f"{result.all_interactive_s:.1f} s; clicking within {click_window:.0f} s")
        click_at[0] = time.monotonic()
        go_click.set()
        clicked.wait()
        for future in futures:
            future.result()
    result.other_cores = meter.others
    result.click_s = [p.visit.click_s for p in people if p.visit.ok]
    result.updates = [p.visit.updates for p in people if p.visit.ok]
    result.errors = [p.visit.error for p in people if p.visit.error]
    mine = {p.visit.kernel_id for p in people}
    host.at_rest(visitors=mine, quiet=30)
    result.cpu_per_visitor_s = (_cpu(host.processes()) - cpu_before) / visitors
    result.server_uss_mb = (result.server_uss_mb[0], _uss_mb(host.process))
    kernels = host.kernels()  # a visitor's kernel may have waited in the pool before
    for kernel_id in mine:
        if kernel_id in kernels:
            try:
                result.kernel_uss_mb.append(_uss_mb(kernels[kernel_id]))
            except psutil.NoSuchProcess:
                pass
    grown = result.server_uss_mb[1] - result.server_uss_mb[0] + sum(result.kernel_uss_mb)
    result.mb_per_visitor = grown / visitors
    with ThreadPoolExecutor(max_workers=min(32, visitors)) as pool:
        list(pool.map(lambda p: p.close(), people))
    _wait_gone(host, mine)
    progress(f"{host.name}: {visitors} visitors: {result.mb_per_visitor:.2f} MB and "
             f"{result.cpu_per_visitor_s:.3f} CPU s each; clicks answered within "
             f"{CLICK_LIMIT_S:.0f} s: {result.answered}/{visitors}; median click "
             f"{Spread(result.click_s).median * 1000:.1f} ms" +
             (f"; {len(result.errors)} errors, first: {result.errors[0]}" if result.errors else ""))
    return result


def _wait_gone(host: Host, kernels: set[str], timeout: float = 120.0) -> None:
    """Until the crowd's kernels are closed (the page-close requests): Voilà's kernel
    processes, Solara's visits as its kernel probe tells (404 once a visit ended)."""
    deadline = time.monotonic() + timeout
    if host.voila is not None:
        while kernels & set(host.kernels()) and time.monotonic() < deadline:
            time.sleep(0.5)
        return
    left = set(kernels)
    while left and time.monotonic() < deadline:
        left = {k for k in left if _solara_holds(host.url, k)}
        if left:
            time.sleep(0.5)


def _solara_holds(url: str, kernel_id: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}jupyter/api/kernels/{kernel_id}", timeout=30):
            return True
    except urllib.error.HTTPError:
        return False
    except OSError:
        return False


# --------------------------------------------------------------------------- the run


def run(loads: int = 6, clicks: int = 12, visitors: int = 16,
        bursts: Sequence[int] = (100, 200), click_window: float = 10.0,
        progress: Callable[[str], None] = print) -> HostsRun:
    from widgets.flow import default_flow

    started = time.monotonic()
    label = default_flow().ui["continue"]("ko")
    voila_crowd = min(visitors, VOILA_CROWD_MAX)
    settings = {"loads": loads, "clicks": clicks, "visitors": visitors,
                "voila_visitors": voila_crowd, "bursts": list(bursts),
                "click_window": click_window,
                "solara_host": f"python -m {SOLARA_MODULE}",
                "load": os.getloadavg()}
    results = {name: HostResult(name) for name in HOSTS}
    run_ = HostsRun(results["voila"], results["solara"], settings)
    with tempfile.TemporaryDirectory(prefix="guide-hosts-") as tmp:
        playwright = start_playwright()
        try:
            browser = launch_chromium(playwright, offline=True)
            settings["chromium"] = browser.version
            with hosts_running(Path(tmp)) as (hosts, solara):
                for name in HOSTS:  # warm both servers and the browser's cache, unmeasured
                    hosts[name].at_rest()
                    context, page, guard = _open(browser, hosts[name].url, name)
                    wait_interactive(page)
                    close_page(context, page)
                progress("warm-up done")
                measure_browser(browser, hosts, results, loads, clicks, progress)
                browser.close()
                for name in HOSTS:
                    results[name].crowd = crowd(hosts[name],
                                                voila_crowd if name == "voila" else visitors,
                                                label, progress=progress)
                if visitors != voila_crowd:
                    run_.notes.append(f"Voilà's crowd was {voila_crowd}, Solara's {visitors}")
                for size in bursts:
                    results["solara"].bursts.append(
                        crowd(hosts["solara"], size, label, click_window, seed=size,
                              progress=progress))
                errors = solara.log().count("Traceback")
                if errors:
                    run_.notes.append(f"the Solara server's log holds {errors} tracebacks")
        finally:
            playwright.stop()
    run_.seconds = time.monotonic() - started
    return run_


# --------------------------------------------------------------------------- reporting


def _ms(values: list[float], scale: float = 1.0, digits: int = 0) -> str:
    spread = Spread([v * scale for v in values])
    if not spread.values:
        return "n/a"
    return (f"{spread.median:.{digits}f} ms ({spread.low:.{digits}f}–"
            f"{spread.high:.{digits}f})")


def _p(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def table(result: HostsRun) -> str:
    v, s = result.voila, result.solara
    vc, sc = v.crowd, s.crowd

    def per(c: Crowd | None, attr: str, fmt: str) -> str:
        return format(getattr(c, attr), fmt) if c else "n/a"

    rows = [
        ("Time to interactive, browser, median (min–max)", _ms(v.tti_ms), _ms(s.tti_ms),
         f"{result.ratio('tti_ms'):.3f}"),
        ("Click → DOM change, browser, median (min–max)", _ms(v.click_ms, digits=1),
         _ms(s.click_ms, digits=1), f"{result.ratio('click_ms'):.3f}"),
        (f"Memory per visitor, USS ({vc.visitors if vc else '?'} / "
         f"{sc.visitors if sc else '?'} visitors connected)",
         f"{per(vc, 'mb_per_visitor', '.1f')} MB", f"{per(sc, 'mb_per_visitor', '.2f')} MB",
         f"{sc.mb_per_visitor / vc.mb_per_visitor:.3f}" if vc and sc else "n/a"),
        ("Server CPU per visitor (page, websocket, widgets, one click; Voilà: with its kernels)",
         f"{per(vc, 'cpu_per_visitor_s', '.2f')} s", f"{per(sc, 'cpu_per_visitor_s', '.3f')} s",
         f"{result.cpu_ratio():.3f}"),
        ("Crowd: all interactive after (no browser)",
         f"{per(vc, 'all_interactive_s', '.1f')} s", f"{per(sc, 'all_interactive_s', '.1f')} s",
         ""),
        ("Crowd: click over the websocket, median",
         f"{Spread(vc.click_s).median * 1000:.1f} ms" if vc else "n/a",
         f"{Spread(sc.click_s).median * 1000:.1f} ms" if sc else "n/a", ""),
    ]
    for b in s.bursts:
        rows.append((f"{b.visitors} visitors at once: interactive, all after; clicks within "
                     f"{CLICK_LIMIT_S:.0f} s (p50 / p99 / max)", "—",
                     f"{b.interactive}/{b.visitors}, {b.all_interactive_s:.1f} s; "
                     f"{b.answered}/{b.visitors} ({_p(b.click_s, .5) * 1000:.0f} / "
                     f"{_p(b.click_s, .99) * 1000:.0f} / {max(b.click_s, default=float('nan')) * 1000:.0f} ms)",
                     ""))
        rows.append((f"{b.visitors} visitors at once: memory, CPU per visitor", "—",
                     f"{b.mb_per_visitor:.2f} MB, {b.cpu_per_visitor_s:.3f} s", ""))
    lines = ["| Measure | Voilà | Solara | Solara ÷ Voilà |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    lines += ["", "| Target | Requirement | Measured | |", "| --- | --- | --- | --- |"]
    lines += [f"| {t} | {req} | {m} | {'PASS' if ok else 'MISS'} |"
              for t, req, m, ok in result.verdicts()]
    return "\n".join(lines)


def details(result: HostsRun) -> str:
    out = []
    for h in (result.voila, result.solara):
        out.append(f"### {h.host}")
        out.append("")
        out.append(f"- time to interactive: {Spread(h.tti_ms).text(' ms')}")
        out.append(f"  - per load, in order: {', '.join(f'{t:.0f}' for t in h.tti_ms)} ms")
        out.append(f"- click → DOM change: {Spread(h.click_ms).text(' ms', 1)}")
        for c in [h.crowd, *h.bursts]:
            if c is None:
                continue
            out.append(
                f"- {c.visitors} visitors at once: {c.interactive} interactive, all after "
                f"{c.all_interactive_s:.1f} s (median {Spread(c.interactive_s).median:.1f} s); "
                f"clicks within {c.click_window_s:.0f} s of the last: "
                f"{c.answered}/{c.visitors} answered within {CLICK_LIMIT_S:.0f} s, median "
                f"{Spread(c.click_s).median * 1000:.1f} ms, max "
                f"{max(c.click_s, default=float('nan')) * 1000:.0f} ms, widget updates per click "
                f"{statistics.median(c.updates) if c.updates else 'n/a'}; server USS "
                f"{c.server_uss_mb[0]:.0f} → {c.server_uss_mb[1]:.0f} MB"
                + (f", visitor kernels' USS median {Spread(c.kernel_uss_mb).median:.1f} MB "
                   f"(n={len(c.kernel_uss_mb)})" if c.kernel_uss_mb else "")
                + f"; {c.mb_per_visitor:.2f} MB and {c.cpu_per_visitor_s:.3f} CPU s per visitor; "
                f"other processes on the machine meanwhile {c.other_cores:.2f} cores"
                + (f"; {len(c.errors)} errors, e.g. {c.errors[0]}" if c.errors else ""))
        if h.js_errors:
            out.append(f"- JavaScript errors: {len(h.js_errors)}, e.g. {h.js_errors[0][:200]}")
        if h.external:
            out.append(f"- requests beyond 127.0.0.1 (failed): {', '.join(sorted(h.external))}")
        out.append("")
    for note in result.notes:
        out.append(f"- note: {note}")
    return "\n".join(out)


def versions() -> str:
    from importlib.metadata import version

    found = []
    for name in ("solara", "solara-assets", "starlette", "uvicorn"):
        try:
            found.append(f"{name} {version(name)}")
        except Exception:  # noqa: BLE001
            found.append(f"{name} ?")
    return ", ".join(found)


if __name__ == "__main__":  # a quick look: python benchmarks/hosts_bench.py
    outcome = run(loads=2, clicks=4, visitors=5, bursts=(20,), click_window=2.0,
                  progress=lambda m: print(m, file=sys.stderr, flush=True))
    print(table(outcome))
    print(details(outcome))
