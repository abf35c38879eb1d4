"""The visitor's kernel is gone, in Chromium: the page says so instead of going quiet.

A visitor's guide lives in its kernel on the server. When that kernel ends under an open page
(the idle culler or the longest visit shut it down, the server restarted, the process died)
the page's buttons do nothing any more. The page then says so in Korean and in English (an
alert region, ``.guide-offline``), keeps Amazon's phone number and the Help → Need more
help? → Contact us route on screen (the step's text stays as it was), disables the controls
that no longer work, and offers a link that starts the guide again at the page's own path.

Each test opens the guide at phone width, takes the first step, then ends the page's kernel
from the server's side: the kernel process is killed, or the kernel is shut down the way the
culler does it (Voilà's own shutdown request, as the page-close beacon sends it).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import psutil
import pytest
from browser import artifact_path, full_page_screenshot
from playwright.sync_api import expect
from voila_server import VoilaServer, beacon

from widgets.engine import Engine
from widgets.flow import default_flow


FLOW = default_flow()
PHONE_NUMBER = next(term.en for term in FLOW.glossary if term.id == "phone-number")
ROUTE = ("Help", "Need more help?", "Contact us")
PHONE = {"width": 375, "height": 740}

@pytest.fixture(scope="module")
def server(voila_servers) -> Iterator[VoilaServer]:
    with voila_servers.guide(preheated=True) as server:
        yield server


@pytest.fixture
def page(browser) -> Iterator[object]:
    context = browser.new_context(viewport=PHONE, locale="ko-KR")
    try:
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.js_errors = []
        page.on("pageerror", lambda error: page.js_errors.append(str(error)))
        yield page
    finally:
        context.close()


def ui(key: str, lang: str) -> str:
    return FLOW.ui[key](lang)


def open_guide(page, server: VoilaServer, query: str = "") -> str:
    """Load the guide and wait until it is live (its first step shown); its kernel id."""
    page.goto(server.url + query, wait_until="commit", timeout=120_000)
    expect(page.locator(".guide h2")).to_have_text(FLOW[FLOW.start].title("ko"), timeout=120_000)
    return page.evaluate(
        "JSON.parse(document.getElementById('jupyter-config-data').textContent).kernelId")


def take_first_step(page) -> str:
    """Choose the first screen's first answer and continue; the next step's title."""
    engine = Engine(FLOW, lang="ko")
    engine.start()
    option_id, label = engine.options()[0]
    engine.choose(option_id)
    guide = page.locator(".guide")
    guide.locator("select").select_option(label=label)
    continue_button = guide.get_by_role("button", name=ui("continue", "ko"), exact=True)
    expect(continue_button).to_be_enabled()
    continue_button.click()
    title = engine.node.title("ko")
    expect(page.locator(".guide h2")).to_have_text(title)
    return title


def kill_kernel(server: VoilaServer, kernel_id: str, _page) -> None:
    """The kernel process dies (the server may start a new, empty one under the same id)."""
    process = server.kernel_processes()[kernel_id]
    process.kill()
    psutil.wait_procs([process], timeout=30)


def shut_kernel_down(server: VoilaServer, kernel_id: str, page) -> None:
    """The server shuts the kernel down, as the idle culler does: Voilà's shutdown request,
    sent with the page's own cookies (like the page-close beacon)."""
    import http.cookiejar

    jar = http.cookiejar.CookieJar()
    xsrf = None
    for cookie in page.context.cookies():
        jar.set_cookie(http.cookiejar.Cookie(
            0, cookie["name"], cookie["value"], None, False, cookie["domain"], True, False,
            cookie["path"], True, cookie["secure"], None, False, None, None, {}))
        if cookie["name"] == "_xsrf":
            xsrf = cookie["value"]
    assert beacon(server, kernel_id, xsrf, jar) < 400
    assert kernel_id not in server.kernel_ids()


ENDINGS = {"killed": kill_kernel, "shut-down": shut_kernel_down}

#: Voilà's app out of the page script's reach (``window.jupyterapp`` never set): the page
#: script then watches the kernel's websocket alone.
WITHOUT_APP = """Object.defineProperty(window, 'jupyterapp', {
  configurable: false, get: () => undefined, set: () => {} });"""


@pytest.mark.parametrize("watch", ["kernel-signals", "websocket-only"])
@pytest.mark.parametrize("ending", list(ENDINGS))
def test_the_page_says_when_its_kernel_is_gone_and_starts_again(page, server, ending, watch):
    if watch == "websocket-only":
        page.add_init_script(WITHOUT_APP)
    kernel_id = open_guide(page, server, "?lang=ko")
    assert page.evaluate("window.jupyterapp === undefined") == (watch == "websocket-only")
    title = take_first_step(page)
    notice = page.locator(".guide .guide-offline")
    expect(notice).to_be_empty()

    ENDINGS[ending](server, kernel_id, page)

    # the notice, in Korean and in English, in an alert region (read out when it appears)
    expect(notice).to_contain_text(ui("offline", "ko"), timeout=60_000)
    expect(notice).to_contain_text(ui("offline", "en"))
    assert notice.get_attribute("role") == "alert"
    expect(notice.locator("div[lang='ko']")).to_contain_text("도움이 더 필요하신가요?")
    expect(notice.locator("div[lang='en']")).to_contain_text("Calls are in English")
    # Amazon's phone number (a tel: link) and the Help route stay on screen
    phone = notice.get_by_role("link", name=PHONE_NUMBER).first
    expect(phone).to_be_visible()
    assert phone.get_attribute("href") == "tel:" + PHONE_NUMBER.replace(" ", "")
    text = notice.inner_text()
    for label in ROUTE:
        assert text.count(label) >= 2, label  # in both languages
    assert re.search(r"Help\W+Need more help\?\W+Contact us", text)
    # the page is not blanked: the step stays; its controls are disabled
    expect(page.locator(".guide h2")).to_have_text(title)
    guide = page.locator(".guide")
    for key in ("back", "restart"):
        button = guide.get_by_role("button", name=re.compile(re.escape(ui(key, "ko")) + "$"))
        expect(button).to_be_disabled()
    enabled = page.evaluate("""() => [...document.querySelectorAll(
        '.guide button, .guide select, .guide input')]
        .filter(e => !e.disabled && !e.readOnly && !e.closest('.widget-html-content'))
        .map(e => e.outerHTML.slice(0, 80))""")
    assert enabled == [], enabled
    assert page.js_errors == []

    shot = full_page_screenshot(page, artifact_path(f"kernel-gone-{ending}-{watch}-phone.png"))
    assert shot.exists()

    # starting again: the page's own path, without the link's query string
    reload = notice.get_by_role("link", name=re.compile(re.escape(ui("reload", "ko"))))
    expect(reload).to_be_visible()
    assert reload.get_attribute("href") == "/"
    assert reload.bounding_box()["height"] >= 44
    reload.click()
    page.wait_for_url(server.url)
    new_kernel = page.evaluate(
        "JSON.parse(document.getElementById('jupyter-config-data').textContent).kernelId")
    expect(page.locator(".guide h2")).to_have_text(FLOW[FLOW.start].title("ko"), timeout=120_000)
    assert new_kernel != kernel_id
    take_first_step(page)
    expect(page.locator(".guide .guide-offline")).to_be_empty()
