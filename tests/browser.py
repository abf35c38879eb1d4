"""Shared Playwright helpers for the browser tests (and the benchmarks): headless Debian
Chromium, and pages that cannot reach anything but this machine.

* :func:`launch_chromium` starts ``/usr/bin/chromium`` (``$GUIDE_CHROMIUM`` overrides the
  path) headless with the flags that work as root in a container. Playwright's own browser
  download is not used. A missing browser raises :class:`BrowserUnavailable`; the pytest
  fixture ``browser`` turns that into a *failure* (never a skip): a test run without the
  browser has not tested the page.
* :class:`PageGuard` watches one browser context: every request to anything but
  127.0.0.1 / localhost / ::1 is aborted and recorded (``external``), external websockets are
  recorded too, and JavaScript errors are collected (``js_errors``: uncaught exceptions from
  ``pageerror`` and console messages of type ``error``). A console error that only reports the
  failed load of a request the guard aborted is listed under ``external``, not again as a JS
  error. The fixture's browser is also launched ``offline`` (no host name resolves but
  localhost), so nothing leaves the machine even while a closing page is no longer routed.
* :class:`PageFactory` (fixture ``page_factory``) opens guarded pages, each in a fresh
  context (no shared cookies or storage: one page = one visitor), keeps every guard for a
  module-wide check, and closes the pages with ``beforeunload`` so Voilà's page-close beacon
  gives their kernels back.

The fixtures (``playwright_instance``, ``browser``, ``page_factory``) are registered by
``conftest.py``: a test asks for them by name, and using one makes it a ``browser`` test
(see ``lanes.py``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from lanes import needs, refuse_in_quick_lane

CHROMIUM = Path(os.environ.get("GUIDE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
#: Schemes that never touch the network.
LOCAL_SCHEMES = frozenset({"data", "blob", "about", "chrome", "chrome-error", "devtools"})
PROJECT_ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = PROJECT_ROOT / "test-artifacts"


class BrowserUnavailable(RuntimeError):
    """Chromium (or the Playwright package) is missing or does not start."""


def is_local(url: str) -> bool:
    """True if loading ``url`` stays on this machine."""
    parts = urlsplit(url)
    if parts.scheme in LOCAL_SCHEMES:
        return True
    return parts.scheme in ("http", "https", "ws", "wss") and (parts.hostname or "") in LOCAL_HOSTS


def start_playwright():
    """A started sync Playwright (call ``.stop()``), or BrowserUnavailable."""
    refuse_in_quick_lane("Chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:  # pragma: no cover - the test extras install it
        raise BrowserUnavailable(f"the playwright package is not installed: {error}") from error
    return sync_playwright().start()


#: Makes every host name but localhost unresolvable inside the browser: nothing can leave the
#: machine even without request interception (which slows every request down; benchmarks).
OFFLINE_ARG = "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1"


def launch_chromium(playwright, headless: bool = True, offline: bool = False):
    """Debian Chromium through Playwright, headless; BrowserUnavailable if it is missing.
    ``offline``: no host name resolves except localhost (see OFFLINE_ARG)."""
    refuse_in_quick_lane("Chromium")
    if not CHROMIUM.is_file():
        raise BrowserUnavailable(
            f"{CHROMIUM} not found: install the Debian 'chromium' package (and fonts-noto-cjk); "
            "the browser tests need it and are not skipped without it")
    try:
        args = CHROMIUM_ARGS + ([OFFLINE_ARG] if offline else [])
        return playwright.chromium.launch(executable_path=str(CHROMIUM), args=args,
                                          headless=headless)
    except Exception as error:  # noqa: BLE001 - any launch problem means "no browser"
        raise BrowserUnavailable(f"{CHROMIUM} did not start: {error}") from error


@dataclass
class PageGuard:
    """What one browser context did that it should not: external requests, JS errors."""

    name: str
    external: list[str] = field(default_factory=list)
    js_errors: list[str] = field(default_factory=list)
    watching: bool = True

    def attach(self, context, intercept: bool = True) -> None:
        """Watch ``context`` (before any page opens). With ``intercept`` every request is routed
        through the guard, which aborts the external ones; without, external requests are only
        recorded (use a browser launched ``offline`` so that they fail)."""
        if intercept:
            context.route("**/*", self._route)
        else:
            context.on("request", self._request)
        context.on("page", self.watch_page)

    def _request(self, request) -> None:
        if not is_local(request.url) and request.url not in self.external:
            self.external.append(request.url)

    def watch_page(self, page) -> None:
        page.on("pageerror", lambda error: self._js_error(f"uncaught: {error}"))
        page.on("console", self._console)
        page.on("websocket", self._websocket)

    def _route(self, route) -> None:
        url = route.request.url
        if is_local(url):
            route.continue_()
        else:
            if url not in self.external:
                self.external.append(url)
            route.abort()

    def _websocket(self, websocket) -> None:
        if not is_local(websocket.url) and websocket.url not in self.external:
            self.external.append(websocket.url)

    def _console(self, message) -> None:
        if message.type != "error":
            return
        location = (message.location or {}).get("url", "")
        if location in self.external and "Failed to load resource" in message.text:
            return  # the aborted external request, reported in self.external
        self._js_error(f"console.error: {message.text} ({location})")

    def _js_error(self, text: str) -> None:
        if self.watching:
            self.js_errors.append(text)

    @property
    def clean(self) -> bool:
        return not self.external and not self.js_errors

    def report(self) -> str:
        lines = [f"{self.name}:"]
        lines += [f"  external request: {url}" for url in self.external]
        lines += [f"  JS error: {text}" for text in self.js_errors]
        return "\n".join(lines)


def check_guard(guard: PageGuard) -> None:
    """Fail unless ``guard``'s page made no external request and had no JavaScript error."""
    assert not guard.external and not guard.js_errors, guard.report()


class PageFactory:
    """Opens guarded pages, one fresh browser context each; closes them all on ``close()``."""

    def __init__(self, browser, viewport: dict | None = None) -> None:
        self.browser = browser
        self.viewport = viewport or {"width": 1000, "height": 800}
        self.guards: list[PageGuard] = []
        self._open: list[tuple[object, object, PageGuard]] = []

    def new_page(self, name: str, locale: str = "ko-KR"):
        """(page, guard) in a new context: no cookies, storage or kernel shared with others."""
        context = self.browser.new_context(viewport=self.viewport, locale=locale)
        guard = PageGuard(name)
        guard.attach(context)
        page = context.new_page()
        page.set_default_timeout(60_000)
        self.guards.append(guard)
        self._open.append((context, page, guard))
        return page, guard

    def close_page(self, page) -> None:
        """Close like a visitor closing the tab (``beforeunload`` runs: Voilà's beacon
        shuts the kernel down), then drop the context."""
        for entry in list(self._open):
            context, open_page, guard = entry
            if open_page is page:
                guard.watching = False  # the websocket closing is not a page error
                # Voilà's shutdown beacon is sent while the page unloads; a routed (paused)
                # request would die with the page, so stop routing first.
                with contextlib.suppress(Exception):
                    context.unroute("**/*")
                with contextlib.suppress(Exception):
                    with page.expect_event("close", timeout=10_000):
                        page.close(run_before_unload=True)
                with contextlib.suppress(Exception):
                    context.close()
                self._open.remove(entry)

    def close(self) -> None:
        for _, page, _ in list(self._open):
            self.close_page(page)

    def problems(self) -> list[PageGuard]:
        """Guards of every page opened so far that saw an external request or a JS error."""
        return [guard for guard in self.guards if not guard.clean]


# --------------------------------------------------------------------------- pytest fixtures


@pytest.fixture(scope="module")
@needs("browser")
def playwright_instance() -> Iterator[object]:
    try:
        playwright = start_playwright()
    except BrowserUnavailable as error:
        pytest.fail(str(error), pytrace=False)
    try:
        yield playwright
    finally:
        playwright.stop()


@pytest.fixture(scope="module")
def browser(playwright_instance) -> Iterator[object]:
    """Headless Debian Chromium that resolves no host name but localhost; fails (never skips)
    the tests when it is missing."""
    try:
        chromium = launch_chromium(playwright_instance, offline=True)
    except BrowserUnavailable as error:
        pytest.fail(str(error), pytrace=False)
    try:
        yield chromium
    finally:
        with contextlib.suppress(Exception):
            chromium.close()


@pytest.fixture(scope="module")
def page_factory(browser) -> Iterator[PageFactory]:
    """Guarded pages for the module; ``page_factory.guards`` lists every page's guard."""
    factory = PageFactory(browser)
    try:
        yield factory
    finally:
        factory.close()


def artifact_path(name: str) -> Path:
    """``test-artifacts/<name>`` in the project root (the folder is created, and gitignored)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name


SCROLL_HEIGHT_JS = """
(() => {
  // the tallest scrolled content: Voilà's page scrolls inside #rendered_cells, not the document
  let height = document.documentElement.scrollHeight;
  for (const el of document.querySelectorAll('*')) {
    const overflow = getComputedStyle(el).overflowY;
    if ((overflow === 'auto' || overflow === 'scroll') && el.scrollHeight > el.clientHeight) {
      height = Math.max(height, el.scrollHeight + el.getBoundingClientRect().top);
    }
  }
  return Math.ceil(height);
})()
"""


def full_page_screenshot(page, path: Path) -> Path:
    """A screenshot of the whole page, even where an inner element scrolls (Playwright's
    ``full_page`` only extends to the document's own scroll height): the viewport is made as
    tall as the content for the shot, then restored."""
    viewport = page.viewport_size or {"width": 1000, "height": 800}
    height = int(page.evaluate(SCROLL_HEIGHT_JS))
    page.set_viewport_size({"width": viewport["width"], "height": max(height, viewport["height"])})
    try:
        page.wait_for_timeout(100)  # let the page lay itself out at the new size
        page.screenshot(path=str(path), full_page=True)
    finally:
        page.set_viewport_size(viewport)
    return path
