"""The guide against the bare app (benchmarks/bare/bare.ipynb), both served by Voilà with the
project's ``voila.json`` at the same time, measured in the same run by headless Chromium.

Measurements (guide and bare side by side, and the guide ÷ bare ratio):

* **time to interactive**: a fresh browser context opens the page; an init script records
  ``performance.now()`` (ms since navigation start) at the first moment the app's first
  control is usable — a ``<select>`` that is attached, visible (has layout boxes, not
  ``visibility: hidden``) and not disabled; for the guide its first dropdown, for bare its
  dropdown. Loads alternate guide/bare (ABBA) to cancel drift; before each load every process
  of the run (servers, kernels, browser) must be quiet and the preheated pools refilled.
* **click → DOM change**: in one page per app (both open, clicks alternating), in-page, ``performance.now()`` just before
  ``button.click()`` to the first MutationObserver callback on the element showing the
  result: for the guide the step text, alternating Next/Back between two information steps;
  for bare the HTML output after its button (the dropdown is changed between clicks, not
  timed, so that every click changes the output). Also counted in-page: websocket messages
  and bytes received per click.
* **session kernel memory**: RSS and USS (``psutil`` ``memory_full_info``) of the kernel
  serving the page — its id is the page's own ``kernelId`` (a visitor's kernel, never one of
  the preheated pool) — when the page is interactive and the machine quiet.
* **K concurrent sessions**: K contexts start navigating at once; all must become
  interactive (time from the first navigation start to the last page interactive, from the
  pages' own clocks); then each makes one choice (guide: dropdown + Continue; bare: dropdown +
  button), and for the guide every session's rows in the temporary log store are checked:
  exactly enter / choose / enter.
* **reclaim**: the K pages are closed like closed tabs (``beforeunload``: Voilà's shutdown
  beacon) — or, with ``drop_fraction``, that share of them by dropping the browser context
  without a beacon (a crashed browser: the idle culler's job); kernels of those pages still
  alive are counted until none is or ``reclaim_wait`` seconds have passed.

Other processes on the machine add noise: before each measurement the run waits for the whole
machine to be quiet (at most two minutes), and records how busy the other processes were while
it measured.

Requests beyond 127.0.0.1 fail (the browser resolves no host name but localhost) and are
listed, for both apps alike; requests are not intercepted, which would slow every load.
"""

from __future__ import annotations

import collections
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from browser import PageGuard, launch_chromium, start_playwright  # noqa: E402
from benchmarks import cpu_model  # noqa: E402
from voila_server import VoilaServer, start_voila  # noqa: E402

GUIDE_NOTEBOOK = "notebooks/guide.ipynb"
BARE_NOTEBOOK = "benchmarks/bare/bare.ipynb"
VIEWPORT = {"width": 1000, "height": 800}
KERNEL_ID_JS = "JSON.parse(document.getElementById('jupyter-config-data').textContent).kernelId"

TARGETS = {
    "tti_ratio": 1.10,
    "click_ratio": 1.3,
    "uss_extra_mb": 5.0,
}

# Installed in every page before its own scripts: records when the first control is usable,
# and counts the websocket messages the page receives.
INIT_SCRIPT = """
(() => {
  const SELECTOR = %(selector)s;
  const bench = window.__bench = {tti: null, frames: 0, bytes: 0, socket: -1, state: -1,
                                  largest: 0};
  const usable = (el) => !el.disabled && el.getClientRects().length > 0
      && getComputedStyle(el).visibility !== 'hidden';
  let observer = null;
  const check = () => {
    if (bench.tti !== null) return;
    const el = document.querySelector(SELECTOR);  // the first one in the page
    if (el && usable(el)) {
      bench.tti = performance.now();
      if (observer) observer.disconnect();
      return;
    }
    requestAnimationFrame(check);
  };
  observer = new MutationObserver(check);
  observer.observe(document, {subtree: true, childList: true, attributes: true});
  requestAnimationFrame(check);
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      if (bench.socket < 0) bench.socket = performance.now();
      this.addEventListener('message', (event) => {
        bench.frames += 1;
        const data = event.data;
        const size = data.byteLength || data.size || data.length || 0;
        bench.bytes += size;
        if (bench.tti === null && size > bench.largest) {  // the widget state, before TTI
          bench.largest = size;
          bench.state = performance.now();
        }
      });
    }
  };
})();
"""

# [page HTML received, kernel websocket opened, largest message (the widget state) received,
#  its size], ms since navigation start
NAV_TIMING_JS = """
(() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const bench = window.__bench;
  return [nav ? nav.responseEnd : -1, bench.socket, bench.state, bench.largest];
})()
"""

# Click the visible, enabled button labelled ``label``; resolve with the ms from just before
# the click to the first DOM mutation under ``target`` (-1 if none within 15 s).
CLICK_JS = """
async ([label, target]) => {
  const watched = document.querySelector(target);
  const button = [...document.querySelectorAll('button')].find(
      (b) => b.textContent.trim() === label && !b.disabled && b.getClientRects().length > 0);
  if (!watched || !button) return -2;
  return await new Promise((resolve) => {
    let t0 = 0;
    const observer = new MutationObserver(() => {
      const ms = performance.now() - t0;
      observer.disconnect();
      resolve(ms);
    });
    observer.observe(watched, {subtree: true, childList: true, characterData: true});
    t0 = performance.now();
    button.click();
    setTimeout(() => { observer.disconnect(); resolve(-1); }, 15000);
  });
}
"""


@dataclass(frozen=True)
class App:
    name: str
    notebook: str
    control: str  # CSS selector of the first control (a <select>; the first match counts)
    result: str  # CSS selector of the element a click changes


APPS = (
    App("guide", GUIDE_NOTEBOOK, ".guide select", ".guide .guide-body .widget-html-content"),
    App("bare", BARE_NOTEBOOK, ".widget-dropdown select", ".widget-html .widget-html-content"),
)


# --------------------------------------------------------------------------- results


@dataclass
class Spread:
    """Median and spread of a sample."""

    values: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    @property
    def low(self) -> float:
        return min(self.values) if self.values else float("nan")

    @property
    def high(self) -> float:
        return max(self.values) if self.values else float("nan")

    def quartiles(self) -> tuple[float, float]:
        if len(self.values) < 4:
            return self.low, self.high
        q = statistics.quantiles(self.values, n=4)
        return q[0], q[2]

    def text(self, unit: str = "", digits: int = 0) -> str:
        if not self.values:
            return "n/a"
        q1, q3 = self.quartiles()
        return (f"{self.median:.{digits}f}{unit} (IQR {q1:.{digits}f}–{q3:.{digits}f}, "
                f"min {self.low:.{digits}f}, max {self.high:.{digits}f}, n={len(self.values)})")


@dataclass
class AppResult:
    app: str
    tti_ms: list[float] = field(default_factory=list)
    response_ms: list[float] = field(default_factory=list)  # page HTML received
    socket_ms: list[float] = field(default_factory=list)  # kernel websocket opened
    state_ms: list[float] = field(default_factory=list)  # largest message (widget state) in
    state_kib: list[float] = field(default_factory=list)  # its size
    noise_cores: list[float] = field(default_factory=list)  # other processes during the load
    click_noise_cores: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    uss_mb: list[float] = field(default_factory=list)
    click_ms: list[float] = field(default_factory=list)
    frames_per_click: list[int] = field(default_factory=list)
    bytes_per_click: list[int] = field(default_factory=list)
    click_rss_mb: float = float("nan")
    click_uss_mb: float = float("nan")
    sessions: int = 0
    sessions_interactive: int = 0
    sessions_all_ms: float = float("nan")
    sessions_clicked: int = 0
    sessions_logged: int | None = None  # guide only
    session_uss_mb: list[float] = field(default_factory=list)
    reclaim_left: int = -1
    reclaim_seconds: float = float("nan")
    reclaim_left_beacon: int = -1
    reclaim_left_dropped: int = -1
    external: set[str] = field(default_factory=set)
    js_errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def tti(self) -> Spread:
        return Spread(self.tti_ms)

    @property
    def click(self) -> Spread:
        return Spread(self.click_ms)

    @property
    def uss(self) -> Spread:
        return Spread(self.uss_mb)

    @property
    def rss(self) -> Spread:
        return Spread(self.rss_mb)


@dataclass
class Run:
    guide: AppResult
    bare: AppResult
    settings: dict
    seconds: float = 0.0
    diagnostics: dict = field(default_factory=dict)

    def ratio(self, name: str) -> float:
        guide, bare = getattr(self.guide, name).median, getattr(self.bare, name).median
        return guide / bare if bare else float("nan")

    def verdicts(self) -> list[tuple[str, str, str, bool]]:
        """(target, requirement, measured, met) for every target."""
        k = self.settings["sessions"]
        tti, click = self.ratio("tti"), self.ratio("click")
        extra = self.guide.uss.median - self.bare.uss.median
        g = self.guide
        return [
            ("time to interactive", f"guide ÷ bare ≤ {TARGETS['tti_ratio']:.2f}",
             f"{tti:.3f}", tti <= TARGETS["tti_ratio"]),
            ("click → DOM change", f"guide ÷ bare ≤ {TARGETS['click_ratio']:.2f}",
             f"{click:.3f}", click <= TARGETS["click_ratio"]),
            ("session kernel USS", f"≤ bare + {TARGETS['uss_extra_mb']:.0f} MB",
             f"bare {extra:+.1f} MB", extra <= TARGETS["uss_extra_mb"]),
            (f"{k} concurrent sessions", "all interactive, every click logged",
             f"{g.sessions_interactive}/{k} interactive, {g.sessions_logged}/{k} logged",
             g.sessions_interactive == k and g.sessions_logged == k),
            ("kernels left", f"0 after {self.settings['reclaim_wait']:.0f} s",
             f"guide {g.reclaim_left}, bare {self.bare.reclaim_left}",
             g.reclaim_left == 0 and self.bare.reclaim_left == 0),
        ]


# --------------------------------------------------------------------------- the machine


def _own_cpu() -> float:
    """CPU seconds used so far by this process and everything it started (servers, kernels,
    browser), as far as they are still running."""
    me = psutil.Process()
    total = 0.0
    for proc in [me, *me.children(recursive=True)]:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def _busy_cpu() -> float:
    """CPU seconds the whole machine has been busy."""
    t = psutil.cpu_times()
    return sum(getattr(t, name, 0.0) for name in
               ("user", "nice", "system", "irq", "softirq", "steal"))


class CpuMeter:
    """How many cores other processes (not this run's) kept busy during a measurement."""

    def __enter__(self) -> "CpuMeter":
        self.wall, self.busy, self.own = time.monotonic(), _busy_cpu(), _own_cpu()
        self.others = float("nan")
        return self

    def __exit__(self, *exc) -> None:
        wall = max(1e-6, time.monotonic() - self.wall)
        self.others = max(0.0, (_busy_cpu() - self.busy) - (_own_cpu() - self.own)) / wall


def wait_quiet(own_cores: float = 0.08, other_cores: float = 0.25, window: float = 0.5,
               timeout: float = 120.0, needed: int = 2) -> float:
    """Wait until this run's processes (servers, kernels, browser) use less than ``own_cores``
    and everything else on the machine less than ``other_cores``, over ``needed`` consecutive
    windows; after ``timeout`` go on anyway. Returns the seconds waited."""
    start = time.monotonic()
    quiet = 0
    while time.monotonic() - start < timeout:
        own, busy = _own_cpu(), _busy_cpu()
        time.sleep(window)
        own_used = max(0.0, _own_cpu() - own)
        others = max(0.0, (_busy_cpu() - busy) - own_used) / window
        quiet = quiet + 1 if own_used / window < own_cores and others < other_cores else 0
        if quiet >= needed:
            break
    return time.monotonic() - start


def wait_ready(servers: Sequence[VoilaServer], visitors: set[str] = frozenset()) -> None:
    """Preheated pools full (no kernel of a closed page left) and the machine quiet. Kernels
    that do not go away are the reclaim measurement's business: after 120 s, go on anyway."""
    for server in servers:
        server.wait_until_preheated(timeout=180)
        try:
            server.wait_for_pool(timeout=120, exclude=visitors)
        except AssertionError:
            pass
    wait_quiet()


def kernel_memory(server: VoilaServer, kernel_id: str) -> tuple[float, float]:
    """(RSS, USS) in MB of the kernel process ``kernel_id`` of ``server``."""
    process = server.kernel_processes().get(kernel_id)
    if process is None:
        raise RuntimeError(f"kernel {kernel_id} is not running")
    info = process.memory_full_info()
    return info.rss / 2**20, info.uss / 2**20


def machine() -> dict[str, str]:
    cpu = cpu_model()
    versions = {}
    for module in ("voila", "ipywidgets", "ipykernel", "jupyter_server", "playwright"):
        try:
            from importlib.metadata import version

            versions[module] = version(module)
        except Exception:  # noqa: BLE001
            versions[module] = "?"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    return {
        "nproc": str(os.cpu_count()),
        "memory": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "cpu": cpu or platform.processor() or "?",
        "os": platform.platform(),
        "python": platform.python_version(),
        "commit": commit or "?",
        **versions,
    }


# --------------------------------------------------------------------------- one page


class Pages:
    """Guarded browser contexts with the benchmark's init script."""

    def __init__(self, browser, results: dict[str, AppResult]) -> None:
        self.browser = browser
        self.results = results

    def open(self, app: App, server: VoilaServer, navigate: bool = True):
        context = self.browser.new_context(viewport=VIEWPORT, locale="ko-KR")
        guard = PageGuard(app.name)
        guard.attach(context, intercept=False)  # the browser is offline; routing slows loads
        context.add_init_script(INIT_SCRIPT % {"selector": json.dumps(app.control)})
        page = context.new_page()
        page.set_default_timeout(180_000)
        if navigate:
            page.goto(server.url, wait_until="commit", timeout=180_000)
        return context, page, guard

    def close(self, app: App, context, page, guard: PageGuard, beacon: bool = True) -> None:
        guard.watching = False
        result = self.results[app.name]
        result.external.update(guard.external)
        result.js_errors.extend(guard.js_errors)
        close_page(context, page, beacon)


def close_page(context, page, beacon: bool = True) -> None:
    """Close a page (with its page-close beacon, which frees its kernel, unless ``beacon`` is
    false) and its browser context; a page or context already gone is no error."""
    try:
        if beacon:
            with page.expect_event("close", timeout=10_000):
                page.close(run_before_unload=True)
    except Exception:  # noqa: BLE001
        pass
    try:
        context.close()
    except Exception:  # noqa: BLE001
        pass


def wait_interactive(page, timeout_ms: float = 180_000) -> float:
    page.wait_for_function("() => window.__bench && window.__bench.tti !== null", timeout=timeout_ms,
                           polling=50)
    return float(page.evaluate("window.__bench.tti"))


# --------------------------------------------------------------------------- measurements


def measure_tti(pages: Pages, servers: dict[str, VoilaServer], results: dict[str, AppResult],
                loads: int, progress: Callable[[str], None]) -> None:
    for round_ in range(loads):
        order = APPS if round_ % 2 == 0 else APPS[::-1]
        for app in order:
            server = servers[app.name]
            wait_ready(list(servers.values()))
            with CpuMeter() as meter:
                context, page, guard = pages.open(app, server)
                tti = wait_interactive(page)
            kernel_id = page.evaluate(KERNEL_ID_JS)
            timing = page.evaluate(NAV_TIMING_JS)
            wait_ready(list(servers.values()), visitors={kernel_id})
            rss, uss = kernel_memory(server, kernel_id)
            result = results[app.name]
            result.tti_ms.append(tti)
            result.response_ms.append(timing[0])
            result.socket_ms.append(timing[1])
            result.state_ms.append(timing[2])
            result.state_kib.append(timing[3] / 1024)
            result.noise_cores.append(meter.others)
            result.rss_mb.append(rss)
            result.uss_mb.append(uss)
            pages.close(app, context, page, guard)
            progress(f"load {round_ + 1}/{loads} {app.name}: {tti:.0f} ms, "
                     f"kernel RSS {rss:.1f} MB USS {uss:.1f} MB")


def _guide_to_info_step(page) -> tuple[str, str]:
    """Walk the guide, as a visitor clicks, to the first of two information steps in a row (on
    the first path of the flow that has them); returns the two headings Next/Back toggle."""
    from widgets.flow import default_flow

    flow = default_flow()
    found = next(((path, i) for path in flow.paths for i in range(len(path) - 1)
                  if flow[path[i][0]].kind == flow[path[i + 1][0]].kind == "info"), None)
    assert found is not None, "the benchmark needs two information steps in a row"
    path, at = found
    for (node_id, choice), (next_id, _) in zip(path[:at], path[1:at + 1]):
        node = flow[node_id]
        if node.kind == "info":
            page.get_by_role("button", name=flow.ui["next"]("ko"), exact=True).click()
        elif node.widget == "dropdown":
            page.locator(".guide select").first.select_option(label=node.option(choice).label("ko"))
            page.get_by_role("button", name=flow.ui["continue"]("ko"), exact=True).click()
        else:
            page.get_by_role("button", name=node.option(choice).label("ko"), exact=True).click()
        page.locator(".guide .guide-body h2", has_text=flow[next_id].title("ko")).wait_for()
    return flow[path[at][0]].title("ko"), flow[path[at + 1][0]].title("ko")


def measure_clicks(pages: Pages, servers: dict[str, VoilaServer], results: dict[str, AppResult],
                   clicks: int, progress: Callable[[str], None]) -> None:
    """Both apps' pages open at once; their clicks alternate (ABBA) to cancel drift."""
    from widgets.flow import default_flow

    ui = default_flow().ui
    wait_ready(list(servers.values()))
    open_pages, headings, kernels = {}, {}, {}
    for app in APPS:
        context, page, guard = pages.open(app, servers[app.name])
        wait_interactive(page)
        kernels[app.name] = page.evaluate(KERNEL_ID_JS)
        if app.name == "guide":
            headings[app.name] = _guide_to_info_step(page)
        open_pages[app.name] = (context, page, guard)
    wait_ready(list(servers.values()), visitors=set(kernels.values()))
    with CpuMeter() as meter:
        for i in range(clicks):
            for app in (APPS if i % 2 == 0 else APPS[::-1]):
                _, page, _ = open_pages[app.name]
                result = results[app.name]
                if app.name == "guide":
                    first, second = headings[app.name]
                    label = ui["next"]("ko") if i % 2 == 0 else ui["back"]("ko")
                    expect_text = second if i % 2 == 0 else first
                else:
                    value = "two" if i % 2 == 0 else "one"
                    page.locator(app.control).first.select_option(value)
                    page.wait_for_timeout(250)  # the value reaches the kernel before the click
                    label, expect_text = "Show", f"chosen: {value}"
                frames0, bytes0 = page.evaluate("[window.__bench.frames, window.__bench.bytes]")
                ms = float(page.evaluate(CLICK_JS, [label, app.result]))
                if ms < 0:
                    raise RuntimeError(f"{app.name}: click {i} on {label!r} changed nothing ({ms})")
                page.locator(app.result, has_text=expect_text).wait_for()
                page.wait_for_timeout(300)  # every message of this click has arrived
                frames1, bytes1 = page.evaluate("[window.__bench.frames, window.__bench.bytes]")
                result.click_ms.append(ms)
                result.frames_per_click.append(frames1 - frames0)
                result.bytes_per_click.append(bytes1 - bytes0)
    wait_ready(list(servers.values()), visitors=set(kernels.values()))
    for app in APPS:
        result = results[app.name]
        result.click_noise_cores.append(meter.others)
        result.click_rss_mb, result.click_uss_mb = kernel_memory(servers[app.name], kernels[app.name])
        pages.close(app, *open_pages[app.name])
        progress(f"{clicks} clicks {app.name}: median {result.click.median:.1f} ms, "
                 f"{statistics.median(result.frames_per_click):.0f} messages per click")


# (navigation start as epoch ms, ms to interactive, kernel id) once interactive, else null
SESSION_STATE_JS = """
(() => {
  const bench = window.__bench;
  if (!bench || bench.tti === null) return null;
  const config = document.getElementById('jupyter-config-data');
  return [performance.timeOrigin, bench.tti, config ? JSON.parse(config.textContent).kernelId : ''];
})()
"""
# What a page that never became interactive shows.
PAGE_STATE_JS = """
(() => {
  const outputs = document.querySelectorAll(
      'script[type="application/vnd.voila.cell-output+json"]').length;
  const widgets = document.querySelectorAll('.jupyter-widgets').length;
  return `${outputs} cell outputs, ${widgets} widget views`;
})()
"""


def _page_kernel(page) -> str:
    try:
        return page.evaluate(f"(() => {{ try {{ return {KERNEL_ID_JS}; }} catch (e) {{ return ''; }} }})()")
    except Exception:  # noqa: BLE001
        return ""


def _sessions_since(db: Path, before: set[str]) -> dict[str, list[tuple]]:
    if not db.exists():
        return {}
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        sessions = {row[0] for row in conn.execute("SELECT DISTINCT session FROM events")} - before
        return {s: conn.execute("SELECT node, action, option FROM events WHERE session = ? "
                                "ORDER BY id", (s,)).fetchall() for s in sessions}
    except sqlite3.OperationalError:
        return {}
    finally:
        conn.close()


def burst(pages: list, url: str, timeout: float) -> list[tuple[float, float, str] | None]:
    """Navigate every page to ``url`` at once, then poll each until its session is interactive.
    Per page: (navigation start, interactive, kernel id) in the page's ms clock, or None if it
    did not get there within ``timeout`` seconds."""
    for page in pages:  # every navigation starts at once
        page.evaluate("url => { setTimeout(() => { location.href = url; }, 0); }", url)
    deadline = time.monotonic() + timeout
    states: list[tuple[float, float, str] | None] = [None] * len(pages)
    while time.monotonic() < deadline and not all(states):
        for i, page in enumerate(pages):
            if states[i] is None:
                try:
                    found = page.evaluate(SESSION_STATE_JS)
                except Exception:  # noqa: BLE001 - navigating: no context to evaluate in
                    continue
                if found:
                    states[i] = (found[0], found[0] + found[1], found[2])
        time.sleep(0.5)
    return states


def measure_sessions(pages: Pages, servers: dict[str, VoilaServer], results: dict[str, AppResult],
                     k: int, reclaim_wait: float, drop_fraction: float, db: Path,
                     progress: Callable[[str], None], session_timeout: float = 300.0) -> None:
    from widgets.flow import default_flow

    flow = default_flow()
    problem = flow[flow.start]
    for app in APPS:
        server = servers[app.name]
        result = results[app.name]
        result.sessions = k
        wait_ready(list(servers.values()))
        before = set(_sessions_since(db, set()))
        log_mark = len(server.log())
        opened = [pages.open(app, server, navigate=False) for _ in range(k)]
        states = burst([page for _, page, _ in opened], server.url, session_timeout)
        starts = [state[0] for state in states if state]
        readies = [state[1] for state in states if state]
        kernels = [state[2] if state else "" for state in states]
        missing = [i for i, state in enumerate(states) if state is None]
        if missing:
            shown = []
            for i in missing:
                try:
                    shown.append(opened[i][1].evaluate(PAGE_STATE_JS))
                except Exception as error:  # noqa: BLE001
                    shown.append(f"unknown ({error})")
            timeouts = server.log()[log_mark:].count("Timeout waiting for IOPub output")
            result.notes.append(
                f"{len(missing)} of {k} sessions not interactive after {session_timeout:.0f} s; "
                f"the server logged {timeouts}× 'Timeout waiting for IOPub output'; those pages "
                f"show: {sorted(set(shown))}")
        result.sessions_interactive = len(readies)
        if readies:
            result.sessions_all_ms = max(readies) - min(starts)
        progress(f"{k} sessions {app.name}: {len(readies)} interactive, all after "
                 f"{result.sessions_all_ms / 1000:.1f} s")
        for kernel_id in filter(None, kernels):
            try:
                result.session_uss_mb.append(kernel_memory(server, kernel_id)[1])
            except RuntimeError:
                pass

        # one choice per session
        expected: list[list[tuple]] = []
        for i, (_, page, _) in enumerate(opened):
            if states[i] is None:
                continue
            try:
                if app.name == "guide":
                    option = problem.options[i % len(problem.options)]
                    target = flow[option.next.resolve({problem.id: option.id})]
                    page.locator(app.control).first.select_option(label=option.label("ko"))
                    page.get_by_role("button", name=flow.ui["continue"]("ko"), exact=True).click()
                    page.locator(".guide .guide-body h2", has_text=target.title("ko")).wait_for(
                        timeout=60_000)
                    expected.append([(problem.id, "enter", None), (problem.id, "choose", option.id),
                                     (target.id, "enter", None)])
                else:
                    value = ("one", "two", "three")[i % 3]
                    page.locator(app.control).first.select_option(value)
                    page.wait_for_timeout(100)
                    page.get_by_role("button", name="Show", exact=True).click()
                    page.locator(app.result, has_text=f"chosen: {value}").wait_for(timeout=60_000)
                result.sessions_clicked += 1
            except Exception as error:  # noqa: BLE001
                result.notes.append(f"session {i}: the choice did not go through: {error}")
        if app.name == "guide":
            deadline = time.monotonic() + 15
            while True:
                logged = _sessions_since(db, before)
                matched = sorted(logged.values()) == sorted(expected)
                if matched or time.monotonic() > deadline:
                    break
                time.sleep(0.25)
            result.sessions_logged = sum(1 for rows in logged.values() if rows in expected)
            if not matched:
                others = collections.Counter(
                    " / ".join(f"{n} {a}{' ' + o if o else ''}" for n, a, o in rows)
                    for rows in logged.values() if rows not in expected)
                result.notes.append(
                    f"log: {len(logged)} new sessions, {result.sessions_logged} with exactly the "
                    "clicks made; the others: "
                    + "; ".join(f"{count}× [{rows}]" for rows, count in others.most_common()))
        progress(f"{k} sessions {app.name}: {result.sessions_clicked} choices made"
                 + (f", {result.sessions_logged} sessions logged exactly" if app.name == "guide" else ""))

        # close like closed tabs (beacon); with drop_fraction, that share of the pages is
        # dropped without a beacon instead (a crashed browser: the idle culler's job)
        beacon_ids, dropped_ids = set(), set()
        dropped = round(k * drop_fraction)
        for i, (context, page, guard) in enumerate(opened):
            beacon = i >= dropped
            kernel_id = kernels[i] or _page_kernel(page)
            if kernel_id:
                (beacon_ids if beacon else dropped_ids).add(kernel_id)
            pages.close(app, context, page, guard, beacon=beacon)
        closed = time.monotonic()
        visitors = beacon_ids | dropped_ids
        while True:  # the pages' kernels, and any other kernel beyond the preheated pool
            running = server.kernel_ids()
            alive = visitors & running
            beyond = max(0, len(running) - server.pool_size)
            waited = time.monotonic() - closed
            if (not alive and not beyond) or waited >= reclaim_wait:
                break
            time.sleep(1.0)
        result.reclaim_left = max(len(alive), beyond)
        result.reclaim_left_beacon = len(alive & beacon_ids)
        result.reclaim_left_dropped = len(alive & dropped_ids)
        result.reclaim_seconds = waited
        progress(f"{k} sessions {app.name}: {result.reclaim_left} kernels left {waited:.0f} s "
                 "after closing")


# --------------------------------------------------------------------------- diagnostics

DIAG_CODE = r"""
import json, os, sys, time
os.environ.pop("VOILA_PREHEAT", None)
os.environ["GUIDE_LOG"] = "off"
import IPython, ipykernel.kernelapp  # already loaded in a kernel before the cell runs
before = set(sys.modules)
t0 = time.perf_counter()
exec(compile(sys.stdin.read(), "cell", "exec"), {"__name__": "__main__"})
seconds = time.perf_counter() - t0
from ipywidgets.widgets.widget import _instances
kinds = {}
for widget in _instances.values():
    kinds[type(widget).__name__] = kinds.get(type(widget).__name__, 0) + 1
new = sorted(set(sys.modules) - before)
print(json.dumps({"seconds": seconds, "modules": len(new), "widgets": len(_instances),
                  "kinds": kinds,
                  "top": sorted({m.split('.')[0] for m in new})}))
"""


def cell_diagnostics(notebook: str) -> dict:
    """Run the notebook's code cells in a fresh interpreter (with IPython and ipykernel already
    imported, as in a kernel): seconds, modules imported, widget models created."""
    cells = json.loads((ROOT / notebook).read_text(encoding="utf-8"))["cells"]
    source = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    with tempfile.TemporaryDirectory() as data:
        env = {**os.environ, "GUIDE_DATA_DIR": data, "PYTHONPATH": str(ROOT)}
        done = subprocess.run([sys.executable, "-c", DIAG_CODE], input=source, cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)
    if done.returncode:
        return {"error": done.stderr.strip().splitlines()[-1:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- the run


@contextmanager
def servers_running(env: dict[str, str]) -> Iterator[dict[str, VoilaServer]]:
    with ExitStack() as stack:
        yield {app.name: stack.enter_context(start_voila(app.notebook, env=env)) for app in APPS}


def run(loads: int = 10, clicks: int = 24, sessions: int = 16, reclaim_wait: float = 60.0,
        drop_fraction: float = 0.0, session_timeout: float = 300.0,
        progress: Callable[[str], None] = print) -> Run:
    started = time.monotonic()
    results = {app.name: AppResult(app.name) for app in APPS}
    settings = {"loads": loads, "clicks": clicks, "sessions": sessions,
                "reclaim_wait": reclaim_wait, "drop_fraction": drop_fraction,
                "session_timeout": session_timeout}
    with tempfile.TemporaryDirectory(prefix="guide-bench-") as data:
        db = Path(data) / "events.sqlite3"
        env = {"GUIDE_DATA_DIR": data, "GUIDE_LOG_URL": f"sqlite://{db}",
               "GUIDE_LOG": None}
        playwright = start_playwright()
        try:
            browser = launch_chromium(playwright, offline=True)
            settings["chromium"] = browser.version
            with servers_running(env) as servers:
                pages = Pages(browser, results)
                # warm the browser's cache and both servers once, unmeasured
                for app in APPS:
                    wait_ready(list(servers.values()))
                    context, page, guard = pages.open(app, servers[app.name])
                    wait_interactive(page)
                    pages.close(app, context, page, guard)
                progress("warm-up done")
                measure_tti(pages, servers, results, loads, progress)
                measure_clicks(pages, servers, results, clicks, progress)
                measure_sessions(pages, servers, results, sessions, reclaim_wait, drop_fraction,
                                 db, progress, session_timeout)
            browser.close()
        finally:
            playwright.stop()
    diagnostics = {app.name: cell_diagnostics(app.notebook) for app in APPS}
    return Run(results["guide"], results["bare"], settings, time.monotonic() - started,
               diagnostics)


# --------------------------------------------------------------------------- reporting


def _mb(value: float) -> str:
    return f"{value:.1f} MB"


def summary_table(result: Run) -> str:
    """The short table for the README."""
    g, b, k = result.guide, result.bare, result.settings["sessions"]
    rows = [
        ("Time to interactive, median (min–max)",
         f"{g.tti.median:.0f} ms ({g.tti.low:.0f}–{g.tti.high:.0f})",
         f"{b.tti.median:.0f} ms ({b.tti.low:.0f}–{b.tti.high:.0f})", f"{result.ratio('tti'):.3f}"),
        ("Click → DOM change, median (min–max)",
         f"{g.click.median:.1f} ms ({g.click.low:.1f}–{g.click.high:.1f})",
         f"{b.click.median:.1f} ms ({b.click.low:.1f}–{b.click.high:.1f})",
         f"{result.ratio('click'):.2f}"),
        ("Session kernel USS / RSS, median", f"{_mb(g.uss.median)} / {_mb(g.rss.median)}",
         f"{_mb(b.uss.median)} / {_mb(b.rss.median)}",
         f"{g.uss.median - b.uss.median:+.1f} MB USS"),
        (f"{k} concurrent sessions: interactive, all after",
         f"{g.sessions_interactive}/{k}, {g.sessions_all_ms / 1000:.1f} s",
         f"{b.sessions_interactive}/{k}, {b.sessions_all_ms / 1000:.1f} s",
         f"{g.sessions_all_ms / b.sessions_all_ms:.2f}"
         if g.sessions_interactive == b.sessions_interactive == k else "n/a"),
        (f"Clicks logged ({k} sessions, one choice each)", f"{g.sessions_logged}/{k}", "—", ""),
        (f"Kernels left {result.settings['reclaim_wait']:.0f} s after closing",
         f"{g.reclaim_left}", f"{b.reclaim_left}", ""),
    ]
    lines = ["| Measure | Guide | Bare | Guide ÷ bare |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {a} | {g_} | {b_} | {r} |" for a, g_, b_, r in rows]
    lines += ["", "| Target | Requirement | Measured | |", "| --- | --- | --- | --- |"]
    lines += [f"| {name} | {need} | {got} | {'PASS' if ok else 'MISS'} |"
              for name, need, got, ok in result.verdicts()]
    return "\n".join(lines)


def details(result: Run) -> str:
    """Everything measured, for RESULTS.md."""
    out = []
    for r in (result.guide, result.bare):
        out.append(f"### {r.app}\n")
        out.append(f"- time to interactive: {r.tti.text(' ms')}")
        out.append(f"  - per load, in order: {', '.join(f'{v:.0f}' for v in r.tti_ms)} ms")
        if r.response_ms:
            out.append(f"  - page HTML received after {Spread(r.response_ms).text(' ms')}")
            out.append(f"  - kernel websocket opened after {Spread(r.socket_ms).text(' ms')}")
            out.append(f"  - widget state (largest message, {Spread(r.state_kib).median:.0f} KiB) "
                       f"received after {Spread(r.state_ms).text(' ms')}")
        if r.noise_cores:
            out.append(f"  - other processes on the machine meanwhile: median "
                       f"{Spread(r.noise_cores).median:.2f} cores, max {max(r.noise_cores):.2f}")
        out.append(f"- click → DOM change: {r.click.text(' ms', 1)}")
        if r.click_noise_cores:
            out.append(f"  - other processes on the machine meanwhile: median "
                       f"{Spread(r.click_noise_cores).median:.2f} cores, "
                       f"max {max(r.click_noise_cores):.2f}")
        if r.frames_per_click:
            out.append(f"- websocket messages received per click: median "
                       f"{statistics.median(r.frames_per_click):.0f} "
                       f"({statistics.median(r.bytes_per_click) / 1024:.1f} KiB)")
        out.append(f"- session kernel USS: {r.uss.text(' MB', 1)}")
        out.append(f"- session kernel RSS: {r.rss.text(' MB', 1)}")
        out.append(f"- kernel after {len(r.click_ms)} clicks: USS {_mb(r.click_uss_mb)}, "
                   f"RSS {_mb(r.click_rss_mb)}")
        if r.session_uss_mb:
            out.append(f"- {r.sessions} concurrent sessions: {r.sessions_interactive} interactive, "
                       f"all within {r.sessions_all_ms / 1000:.1f} s of the first navigation; "
                       f"{r.sessions_clicked} choices made; kernel USS median "
                       f"{statistics.median(r.session_uss_mb):.1f} MB")
        if r.sessions_logged is not None:
            out.append(f"- sessions whose log rows are exactly enter/choose/enter: "
                       f"{r.sessions_logged}/{r.sessions}")
        out.append(f"- kernels left beyond the preheated pool after the {r.sessions} sessions "
                   f"closed: {r.reclaim_left} after {r.reclaim_seconds:.0f} s (of the pages closed "
                   f"with the page-close beacon: {r.reclaim_left_beacon}; dropped without it: "
                   f"{r.reclaim_left_dropped})")
        if r.external:
            out.append(f"- requests beyond 127.0.0.1, aborted: {', '.join(sorted(r.external))}")
        if r.js_errors:
            out.append(f"- JavaScript errors: {len(r.js_errors)} (first: {r.js_errors[0]})")
        for note in r.notes:
            out.append(f"- note: {note}")
        out.append("")
    if result.diagnostics:
        out.append("### What the notebook's code cell does (fresh interpreter, IPython and "
                   "ipykernel preloaded)\n")
        out.append("| app | cell run time | modules imported | widget models | by type |")
        out.append("| --- | ---: | ---: | ---: | --- |")
        for name, diag in result.diagnostics.items():
            if "error" in diag:
                out.append(f"| {name} | error: {diag['error']} | | | |")
                continue
            kinds = ", ".join(f"{k} {v}" for k, v in sorted(diag["kinds"].items(),
                                                            key=lambda kv: -kv[1]))
            out.append(f"| {name} | {diag['seconds'] * 1000:.0f} ms | {diag['modules']} | "
                       f"{diag['widgets']} | {kinds} |")
        out.append("")
    return "\n".join(out)
