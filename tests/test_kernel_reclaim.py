"""Visitors' kernels are reclaimed after their pages close (headless Chromium, Playwright).

Every page view takes a kernel process (about 100 MB RSS for the guide). Two
mechanisms give it back, both set up by ``voila.json`` (see widgets/hosts/voila/):

* closing a tab: Voilà's page-close beacon shuts the kernel down at once (it
  works because the page now sets the ``_xsrf`` cookie the beacon echoes), so
  10 closed pages leave no visitor kernel behind, well within 60 seconds;
* a page that goes away without the beacon (crashed or killed browser, lost
  connection): the idle culler removes kernels without a websocket once idle for
  ``cull_idle_timeout``; it leaves alone open pages however long they sit idle,
  and the preheated pool.

Kernels are counted as the Voilà server's kernel processes (its children) minus
the preheated pool. This module runs its own server so that the counts are its own.
Closing a tab is ``page.close(run_before_unload=True)``: Playwright's plain
``page.close()`` skips ``beforeunload``, which a real tab close runs.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Iterator

import pytest
from browser import CHROMIUM
from voila_server import VoilaServer, load_config

PAGES = 10
RECLAIM_LIMIT = 60.0  # seconds, the requirement


@pytest.fixture(scope="module")
def voila_reclaim(voila_servers) -> Iterator[VoilaServer]:
    """This module's own server: the kernel counts are its own."""
    with voila_servers.guide() as server:
        yield server


@pytest.fixture(scope="module")
def chromium(browser) -> object:
    """Headless Debian Chromium (the ``browser`` fixture: its absence fails the tests)."""
    return browser


def test_chromium_is_installed():
    """Reported as a failure of its own: without the browser, the tests below error out."""
    assert os.path.exists(CHROMIUM), (f"{CHROMIUM} not found: install the Debian 'chromium' "
                                      "package")


def open_pages(browser, server: VoilaServer, count: int) -> list[tuple[object, object, str]]:
    """``count`` visitors (one browser context each), each with the guide fully live:
    widgets rendered and the kernel websocket connected. Returns (context, page, kernel id)."""
    visits = []
    for _ in range(count):
        context = browser.new_context()
        page = context.new_page()
        page.goto(server.url, wait_until="commit", timeout=120_000)
        visits.append((context, page))
    opened = []
    for context, page in visits:
        page.wait_for_selector(".jupyter-widgets", timeout=120_000)
        kernel_id = page.evaluate(
            "JSON.parse(document.getElementById('jupyter-config-data').textContent).kernelId")
        opened.append((context, page, kernel_id))
    ids = {kernel_id for _, _, kernel_id in opened}
    assert len(ids) == count, "two pages share a kernel"
    deadline = time.monotonic() + 60
    while not all(connections(server, kernel_id) for kernel_id in ids):
        assert time.monotonic() < deadline, "not every page connected to its kernel"
        time.sleep(0.25)
    return opened


def kernel_model(server: VoilaServer, kernel_id: str) -> dict:
    """The server's view of a kernel (GET /api/kernels/<id>): connections, last_activity..."""
    status, _, body = server.get(f"api/kernels/{kernel_id}")
    return json.loads(body) if status == 200 else {}


def connections(server: VoilaServer, kernel_id: str) -> int:
    """Open websockets to a kernel, as the server counts them."""
    return kernel_model(server, kernel_id).get("connections", 0)


def wait_reclaimed(server: VoilaServer, session_ids: set[str], limit: float,
                   open_ids: frozenset[str] = frozenset()) -> float:
    """Seconds until none of ``session_ids`` runs and, counting the server's kernel processes,
    nothing beyond the preheated pool and the kernels of pages still open (``open_ids``,
    which must keep running)."""
    start = time.monotonic()
    while True:
        running = server.kernel_ids()
        assert open_ids <= running, f"an open page's kernel was shut down: {open_ids - running}"
        if not (session_ids & running) and len(running - open_ids) == server.pool_size:
            return time.monotonic() - start
        if time.monotonic() - start > limit:
            raise AssertionError(
                f"{len(session_ids & running)} of {len(session_ids)} visitor kernels still running "
                f"{limit:.0f} s after their pages closed ({len(running)} kernel processes, "
                f"preheated pool {server.pool_size}, open pages {len(open_ids)})")
        time.sleep(0.25)


def test_closed_tabs_give_their_kernels_back(chromium, voila_reclaim: VoilaServer):
    pool = voila_reclaim.wait_for_pool()
    log_start = len(voila_reclaim.log())
    opened = open_pages(chromium, voila_reclaim, PAGES)
    session_ids = {kernel_id for _, _, kernel_id in opened}
    voila_reclaim.wait_for_pool(exclude=session_ids)  # refilled: 10 visitors + the pool
    peak = len(voila_reclaim.kernel_ids())
    assert peak - voila_reclaim.pool_size == PAGES

    for _, page, _ in opened:
        page.close(run_before_unload=True)  # what closing a tab does: beforeunload runs
    try:
        seconds = wait_reclaimed(voila_reclaim, session_ids, RECLAIM_LIMIT)
    finally:
        for context, _, _ in opened:
            context.close()
    after = len(voila_reclaim.kernel_ids())
    print(f"\nclosed tabs: {len(pool)} kernels before, {peak} with {PAGES} pages open, "
          f"{after} {seconds:.1f} s after closing them")
    # the page-close beacon did it (no 403), not the idle culler
    log = voila_reclaim.log()[log_start:]
    assert "403 POST /voila/api/shutdown" not in log
    assert "Culling '" not in log
    assert all(f"Kernel shutdown: {kernel_id}" in log for kernel_id in session_ids)


def test_abandoned_pages_are_culled_but_not_open_ones_nor_the_pool(chromium,
                                                                    voila_reclaim: VoilaServer):
    culling = load_config()["MappingKernelManager"]
    idle_limit = culling["cull_idle_timeout"] + culling["cull_interval"]
    # plus time for the culler to shut kernels down one after another on a loaded machine
    limit = idle_limit + 30
    voila_reclaim.wait_for_pool()
    log_start = len(voila_reclaim.log())
    opened = open_pages(chromium, voila_reclaim, PAGES)
    (kept_context, kept_page, kept_id), abandoned = opened[0], opened[1:]
    abandoned_ids = {kernel_id for _, _, kernel_id in abandoned}
    pool = voila_reclaim.wait_for_pool(exclude=abandoned_ids | {kept_id})
    peak = len(voila_reclaim.kernel_ids())
    assert peak - voila_reclaim.pool_size == PAGES

    for context, page, _ in abandoned:
        page.close()  # no beforeunload, so no beacon: like a crashed or killed browser
        context.close()
    seconds = wait_reclaimed(voila_reclaim, abandoned_ids, limit, open_ids=frozenset({kept_id}))
    print(f"\nabandoned pages: {peak} kernels with {PAGES} pages open, "
          f"{len(voila_reclaim.kernel_ids())} {seconds:.1f} s after abandoning {len(abandoned)} "
          f"of them (idle culler)")
    log = voila_reclaim.log()[log_start:]
    assert all(f"Culling 'idle' kernel 'python3' ({kernel_id})" in log
               for kernel_id in abandoned_ids)

    # the page left open has been idle long enough to be culled, were it not connected
    deadline = time.monotonic() + limit
    while True:
        model = kernel_model(voila_reclaim, kept_id)
        assert model, "the kernel of the open page was shut down"
        idle = dt.datetime.now(dt.timezone.utc) - dt.datetime.fromisoformat(model["last_activity"])
        if idle.total_seconds() > idle_limit:
            break
        assert time.monotonic() < deadline, "the open page's kernel never went idle"
        time.sleep(1)
    assert model["connections"] == 1 and kept_id in voila_reclaim.kernel_ids()
    assert kept_page.locator(".jupyter-widgets").first.is_visible()
    # the preheated kernels waiting in the pool meanwhile were left alone
    assert pool <= voila_reclaim.kernel_ids()

    kept_page.close(run_before_unload=True)
    try:
        wait_reclaimed(voila_reclaim, {kept_id}, 30)
    finally:
        kept_context.close()
