"""Hostile links and the busy page, in Chromium, on each host (``guide_server``: Voilà and
Solara).

A link is the one thing an attacker fully controls on the guide's page. For each hostile link
the page must open the guide as usual with no dialog, no request leaving the machine, no
element the link injected and no JavaScript error (a Content-Security-Policy violation is
reported as one). A visitor beyond the server's cap sees the bilingual busy page, readable on
a phone.

The link's ``theme`` and ``template`` mean something to Voilà only (Solara's gate drops every
parameter but the guide's own): on Solara they are hostile links like the others.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect
from browser import artifact_path, check_guard

from widgets.flow import default_flow


HOSTILE_LINKS = {
    "theme": '?theme=x"><img src=x onerror=alert(document.cookie)>',
    "template": "?template=lab",
    "lang": '?lang="><script>alert(1)</script>',
    "step": "?step=<img src=x onerror=alert(2)>",
    "step-js": "?lang=en&step=javascript:alert(3)",
    "fragment": '#"><img src=x onerror=alert(4)>',
    "many": "?" + "&".join(f"p{i}=<svg/onload=alert({i})>" for i in range(50)),
}

INJECTED = """() => [
  ...document.querySelectorAll('img[src="x"], svg[onload], [onerror], [onload]'),
  ...[...document.scripts].filter(s => /alert\\(/.test(s.textContent)),
].map(e => e.outerHTML.slice(0, 120))"""


@pytest.fixture(scope="module")
def full_guide(guide_host: str, request: pytest.FixtureRequest) -> Iterator[object]:
    """A server of ``guide_host`` with room for one visitor (Voilà: no preheated pool)."""
    if guide_host == "voila":
        server = request.getfixturevalue("voila_servers").guide(
            preheated=True, extra_args=["--VoilaConfiguration.preheat_kernel=False",
                                        "--GuideIdentityProvider.max_visitors=1"])
    else:
        server = request.getfixturevalue("solara_servers").guide("--max-visitors=1")
    with server as started:
        yield started


@pytest.mark.parametrize("name", list(HOSTILE_LINKS))
def test_a_hostile_link_opens_the_plain_guide(page_factory, guide_server, name):
    page, guard = page_factory.new_page(f"hostile link: {name}")
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    link = urllib.parse.quote(HOSTILE_LINKS[name], safe="?=&#")
    page.goto(guide_server.url + link, wait_until="domcontentloaded", timeout=120_000)
    page.wait_for_selector(".guide h2", state="visible", timeout=120_000)
    page.wait_for_timeout(500)  # anything injected would have run by now
    assert dialogs == [], f"the link opened a dialog: {dialogs}"
    assert page.evaluate(INJECTED) == []
    if guide_server.host == "voila":  # Voilà's theme (Solara's page has no JupyterLab theme)
        assert page.evaluate("document.body.dataset.jpThemeName") == "JupyterLab Light"
    # the guide's page script, once: Voilà's page of the guide's template, not another;
    # Solara's page dressed by its gate
    assert page.locator("script[src*='guide.js']").count() == 1, "another template was used"
    check_guard(guard)
    page_factory.close_page(page)


#: Links whose step or language the guide ignores, with a value that would mislead a visitor
#: if the page repeated it: (link, the notice's interface text, the guide's language, the
#: parts of the value that must appear nowhere on the page).
MISLEADING_LINKS = {
    "fake-number": ("?lang=en&step=Call +1 888 555 0199", "link_step", "en",
                    ("888 555", "555 0199")),
    "right-to-left": ("?lang=\u202eCall 0199 555 888 1%2B&step=reach", "link_language", "ko",
                      ("\u202e", "0199 555", "555 888")),
}


@pytest.mark.parametrize("name", list(MISLEADING_LINKS))
def test_the_notice_of_an_ignored_link_repeats_nothing_of_it(page_factory, guide_server, name):
    link, key, lang, parts = MISLEADING_LINKS[name]
    page, guard = page_factory.new_page(f"misleading link: {name}")
    page.goto(guide_server.url + urllib.parse.quote(link, safe="?=&%"), wait_until="domcontentloaded",
              timeout=120_000)
    notice = page.locator(".guide-notice [role='status']")
    expect(notice).to_have_text(default_flow().ui[key](lang), timeout=120_000)
    page.wait_for_selector(".guide h2", state="visible", timeout=120_000)
    shown = page.evaluate("document.title + '\\n' + document.body.innerText")
    markup = page.evaluate("document.documentElement.outerHTML")
    for part in parts:
        assert part not in shown and part not in markup, part
    check_guard(guard)
    page_factory.close_page(page)


def test_the_busy_page_is_readable_on_a_phone(browser, full_guide):
    status, _, _ = full_guide.get()  # the one visitor the server takes
    assert status == 200
    context = browser.new_context(viewport={"width": 375, "height": 740}, locale="ko-KR")
    try:
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        response = page.goto(full_guide.url + "?lang=en", timeout=30_000)
        assert response.status == 503
        assert response.headers["retry-after"].isdigit()
        assert page.locator("h1").first.inner_text() == "지금 이용하는 분이 많습니다"
        assert page.get_by_text("The guide is busy right now").is_visible()
        retry = page.get_by_role("link", name="다시 시도 · Try again")
        assert retry.get_attribute("href") == "/?lang=en"
        box = retry.bounding_box()
        assert box["height"] >= 44
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        # Hangul is drawn with a CJK font, not as empty boxes
        width = page.evaluate("""() => {
            const c = document.createElement('canvas').getContext('2d');
            c.font = '20px sans-serif';
            return c.measureText('많습니다').width; }""")
        assert width > 40
        page.screenshot(path=str(artifact_path("busy-page-phone.png")), full_page=True)
        assert errors == []
    finally:
        context.close()
