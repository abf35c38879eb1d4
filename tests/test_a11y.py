"""Accessibility of the guide in headless Chromium: axe-core, phone layout, keyboard only.

One Voilà server (the project's ``voila.json``, an empty temporary log) serves the module.

* Every screen at phone width (375 × 800): each node of the flow opened by its deep link
  (``?step=<id>&lang=<ko|en>``), then switched to the other language with the language
  buttons, so every node is seen in Korean and in English. On each: ``<html lang>`` follows
  the guide's language and the pressed language button says so (``aria-pressed``); axe-core
  finds no serious or critical violation (color-contrast included, and no text whose
  contrast axe could not decide); nothing scrolls sideways; texts wrap and nothing is cut
  off; buttons, choices and text fields are at least 44 px tall. On ``channel`` the case
  notes panel is opened and checked as well. Screenshots of the first screen, the long
  ``kind`` step and the end recap go to ``test-artifacts/``.
* Desktop width (1280 × 800): a Korean and an English path through every kind of step
  (dropdown, buttons, info, ``channel`` with the message builder, the end recap with its
  outcome buttons, the case notes opened), walked with mouse clicks: axe on every screen,
  and after every click that changes the step the keyboard focus is on the new step's
  heading (that is how the step change is announced to screen readers).
* Keyboard only, in each language: from the first screen to the end recap with Tab,
  Shift+Tab, Enter, Space and the arrow keys (language switch, a dropdown, buttons, Next,
  Back, a checklist box, an outcome button). Every element the focus lands on in the guide
  shows a focus ring (outline >= 2 px with >= 3:1 contrast); after each step change the
  focus is on the new step's heading, never on ``<body>``.

``GUIDE_UPDATE_DOCS_SCREENSHOT=1`` also copies the Korean first screen at 375 px to
``docs/screenshot-phone.png`` (the README's phone screenshot).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from a11y_helpers import (
    DESKTOP,
    FLOW,
    HEADING,
    LANGUAGE_BUTTON,
    PHONE,
    Focus,
    GuideTab,
    focus_ring_problem,
    format_violations,
)
from browser import artifact_path, browser, playwright_instance  # noqa: F401  (fixtures)
from playwright.sync_api import expect
from voila_server import GUIDE_NOTEBOOK, PROJECT_ROOT, VoilaServer, voila_fixture

from widgets import casenotes
from widgets.engine import OUTCOME_THANKS, OUTCOMES, Engine

pytestmark = pytest.mark.browser

a11y_server = voila_fixture(GUIDE_NOTEBOOK, scope="module", name="a11y_server")

NODE_IDS = [node.id for node in FLOW]
#: Screens photographed at phone width (first screen, a long text, the end recap).
SCREENSHOTS = (FLOW.start, "talk", "done")
DOCS_SCREENSHOT = PROJECT_ROOT / "docs" / "screenshot-phone.png"
OTHER = {"ko": "en", "en": "ko"}


def ui(key: str, lang: str) -> str:
    return FLOW.ui[key](lang)


@pytest.fixture(scope="module")
def server(a11y_server: VoilaServer) -> VoilaServer:
    a11y_server.wait_until_preheated(timeout=120)
    return a11y_server


@pytest.fixture(scope="module")
def phone_tab(browser, server) -> Iterator[GuideTab]:  # noqa: F811
    tab = GuideTab(browser, server, PHONE, "phone")
    yield tab
    tab.close()


@pytest.fixture
def desktop_tab(browser, server) -> Iterator[GuideTab]:  # noqa: F811
    tab = GuideTab(browser, server, DESKTOP, "desktop")
    yield tab
    tab.close()


# --------------------------------------------------------------------------- shared checks


def check_screen(tab: GuideTab, where: str, lang: str, layout: bool) -> list[str]:
    """Problems of the screen shown now: language, axe, and (``layout``) the phone layout."""
    problems = []
    tab.settle()  # the kernel's last updates of this screen have arrived
    html_lang = tab.html_lang()
    if html_lang != lang:
        problems.append(f"<html lang> is {html_lang!r}, the guide shows {lang!r}")
    for code, name in LANGUAGE_BUTTON.items():
        pressed = tab.language_button(code).get_attribute("aria-pressed")
        if pressed != ("true" if code == lang else "false"):
            problems.append(f"language button {name!r} has aria-pressed={pressed!r}")
    problems += tab.name_problems()
    serious, other = tab.axe_problems()
    if serious:
        problems.append("axe: serious or critical violations:\n" + format_violations(serious))
    if other:
        print(f"[{where}] axe, moderate or minor (not failing): "
              + ", ".join(f"{v['id']} ({v.get('impact')})" for v in other))
    if layout:
        problems += tab.layout_problems()
    if tab.js_errors:
        problems += [f"JavaScript error: {error}" for error in tab.js_errors]
        tab.js_errors.clear()
    return [f"[{where}] {problem}" for problem in problems]


def focus_on_heading(tab: GuideTab, title: str) -> str | None:
    """None if the keyboard focus is on the step heading ``title``; else what has it."""
    try:
        tab.page.wait_for_function(
            """([selector, title]) => {
                 const e = document.activeElement;
                 return e && e.matches(selector) && e.textContent.trim() === title;
               }""", arg=[HEADING, title], timeout=10_000)
    except Exception:  # noqa: BLE001 - reported below
        return str(tab.focus())
    return None


# --------------------------------------------------------------------------- every screen, phone


@pytest.mark.parametrize("node_id", NODE_IDS)
def test_every_screen_at_phone_width(phone_tab: GuideTab, node_id: str):
    """The node by its deep link in one language, then switched to the other."""
    first = "ko" if NODE_IDS.index(node_id) % 2 == 0 else "en"
    problems = []
    for lang in (first, OTHER[first]):
        if lang == first:
            phone_tab.open(node_id, lang)
        else:
            phone_tab.switch_language(lang, node_id)
        problems += check_screen(phone_tab, f"{node_id} {lang} 375px", lang, layout=True)
        if node_id in SCREENSHOTS:
            path = phone_tab.screenshot(artifact_path(f"a11y-phone-{node_id}-{lang}.png"))
            if (node_id, lang) == (FLOW.start, "ko") and os.environ.get(
                    "GUIDE_UPDATE_DOCS_SCREENSHOT"):
                shutil.copyfile(path, DOCS_SCREENSHOT)
    if node_id == "channel":  # the case notes panel, opened, at phone width
        lang = OTHER[first]
        phone_tab.button(casenotes.LABELS["toggle"](lang)).click()
        expect(phone_tab.page.locator(".guide .widget-upload")).to_be_visible()
        # named by its label alone, not "… (0)" with the widget's file counter
        expect(phone_tab.page.get_by_role(
            "button", name=casenotes.LABELS["load"](lang), exact=True)).to_be_visible()
        problems += check_screen(phone_tab, f"{node_id} {lang} 375px, case notes open", lang,
                                 layout=True)
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------- desktop, mouse

#: Two paths between them through every kind of step; the option taken at each decision.
ROUTES = {
    "ko": {"problem": "refund", "reach": "online", "channel": "chat"},
    "en": {"problem": "again", "reach": "call"},
}


def test_screens_at_desktop_width_by_mouse(desktop_tab: GuideTab):
    """Korean then English paths by mouse, axe on every screen, focus moving to each new
    step heading; at the end the outcome buttons and the case notes panel."""
    tab = desktop_tab
    problems: list[str] = []
    tab.open(lang="ko")
    for lang in ("ko", "en"):
        engine = Engine(FLOW, lang=lang)
        route = ROUTES[lang]
        if lang == "en":
            tab.switch_language("en", FLOW.start)
        while True:
            node = engine.node
            problems += check_screen(tab, f"{node.id} {lang} 1280px", lang, layout=False)
            if engine.finished:
                break
            if node.kind == "choice" and node.widget == "dropdown":
                label = node.option(route[node.id]).label(lang)
                tab.page.locator(".guide select").first.select_option(label=label)
                tab.settle()
                go = tab.button(ui("continue", lang))
                expect(go).to_be_enabled()
                go.click()
                engine.choose(route[node.id])
            elif node.kind == "choice":
                tab.button(node.option(route[node.id]).label(lang)).click()
                engine.choose(route[node.id])
            else:
                tab.button(ui("next", lang)).click()
                engine.advance()
            tab.expect_step(engine.node.id, lang)
            wrong = focus_on_heading(tab, engine.node.title(lang))
            if wrong:
                problems.append(f"[{engine.node.id} {lang}] after the click the focus is on "
                                f"{wrong}, not on the new step heading")
        # the end: outcome buttons, then the case notes panel
        tab.button(OUTCOMES["solved"](lang)).click()
        expect(tab.page.locator(".guide").get_by_text(OUTCOME_THANKS(lang))).to_be_visible()
        problems += check_screen(tab, f"done {lang} 1280px, outcome given", lang, layout=False)
        tab.button(casenotes.LABELS["toggle"](lang)).click()
        expect(tab.page.locator(".guide .widget-upload")).to_be_visible()
        problems += check_screen(tab, f"done {lang} 1280px, case notes open", lang,
                                 layout=False)
        tab.button(casenotes.LABELS["toggle_close"](lang)).click()
        tab.button(ui("restart", lang)).click()
        tab.expect_step(FLOW.start, lang)
        wrong = focus_on_heading(tab, FLOW[FLOW.start].title(lang))
        if wrong:
            problems.append(f"[{lang}] after Start over the focus is on {wrong}")
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------- keyboard only


class KeyboardWalk:
    """Drives a page with the keyboard alone, checking the focus ring wherever it lands."""

    LIMIT = 60  # Tab presses to reach one control

    def __init__(self, tab: GuideTab, lang: str) -> None:
        self.tab = tab
        self.page = tab.page
        self.lang = lang
        self.problems: list[str] = []
        self.landed: list[str] = []

    def press(self, key: str) -> Focus | None:
        self.page.keyboard.press(key)
        focus = self.tab.focus()
        if focus is not None and focus.inGuide:
            self.landed.append(str(focus))
            problem = focus_ring_problem(focus)
            if problem and problem not in self.problems:
                self.problems.append(problem)
        return focus

    def tab_to(self, name: str, reverse: bool = False) -> Focus:
        """Press Tab (Shift+Tab with ``reverse``) until the control named ``name`` has focus."""
        self.landed = []
        for _ in range(self.LIMIT):
            focus = self.press("Shift+Tab" if reverse else "Tab")
            if focus is not None and focus.inGuide and focus.name == name:
                return focus
        raise AssertionError(f"{'Shift+' if reverse else ''}Tab did not reach {name!r} in "
                             f"{self.LIMIT} presses; it went through {self.landed}")

    def expect_step_heading(self, node_id: str) -> None:
        """The new step is shown and the focus is on its heading, with a visible ring."""
        title = FLOW[node_id].title(self.lang)
        expect(self.tab.heading).to_have_text(title)
        wrong = focus_on_heading(self.tab, title)
        assert wrong is None, (f"[{node_id} {self.lang}] after the step change the focus is on "
                               f"{wrong}, not on the step heading")
        problem = focus_ring_problem(self.tab.focus())
        if problem and problem not in self.problems:
            self.problems.append(problem)


def walk_by_keyboard(walk: KeyboardWalk, engine: Engine, route: dict[str, str],
                     back_at: str | None) -> None:
    """From the current step to the end of ``route``; one Back (and forward again) at
    ``back_at``."""
    lang, page, tab = walk.lang, walk.page, walk.tab
    went_back = False
    while not engine.finished:
        node = engine.node
        if node.id == back_at and not went_back:
            walk.tab_to(ui("back", lang))
            walk.press("Enter")
            engine.back()
            walk.expect_step_heading(engine.node.id)
            went_back = True
            continue
        if node.kind == "choice" and node.widget == "dropdown":
            option_id = route[node.id]
            label = node.option(option_id).label(lang)
            walk.tab_to(node.prompt(lang))
            select = page.locator(".guide select").first
            ids = [oid for oid, _ in engine.options()]
            moves = ids.index(option_id) + 1 - (ids.index(engine.selected) + 1
                                                if engine.selected else 0)
            for _ in range(abs(moves)):
                walk.press("ArrowDown" if moves > 0 else "ArrowUp")
            expect(select.locator("option:checked")).to_have_text(label)
            tab.settle()  # every change of the select has reached the kernel
            expect(tab.button(ui("continue", lang))).to_be_enabled()
            focus = walk.press("Tab")
            assert focus is not None and focus.name == ui("continue", lang), (
                f"Tab after the dropdown went to {focus}, not to Continue")
            walk.press("Enter")
            engine.choose(option_id)
        elif node.kind == "choice":
            labels = [label for _, label in engine.options()]
            target = node.option(route[node.id]).label(lang)
            walk.tab_to(labels[-1])
            if target != labels[-1]:
                walk.tab_to(target, reverse=True)
            walk.press("Space")
            engine.choose(route[node.id])
        else:
            walk.tab_to(ui("next", lang))
            walk.press("Enter")
            engine.advance()
        walk.expect_step_heading(engine.node.id)


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_keyboard_only_walk_to_the_recap(desktop_tab: GuideTab, lang: str):
    """The guide opens in the other language; the language buttons switch it by keyboard,
    then a full path to the end recap, ticking a checklist box and giving an outcome."""
    tab = desktop_tab
    tab.open(lang=OTHER[lang])
    walk = KeyboardWalk(tab, lang)
    walk.tab_to(LANGUAGE_BUTTON[lang])
    walk.press("Enter")
    tab.expect_step(FLOW.start, lang)
    assert tab.html_lang() == lang

    engine = Engine(FLOW, lang=lang)
    back_at = {"ko": "help", "en": "ready"}[lang]
    walk_by_keyboard(walk, engine, ROUTES[lang], back_at)
    expect(tab.page.locator(".guide .guide-recap li")).to_have_text(engine.recap())

    first_line = engine.recap()[0]
    walk.tab_to(first_line)
    walk.press("Space")
    expect(tab.page.locator(".guide .guide-recap input[type=checkbox]").first).to_be_checked()
    outcome = OUTCOMES["partly"](lang)
    walk.tab_to(outcome)
    walk.press("Enter")
    expect(tab.page.locator(".guide").get_by_text(OUTCOME_THANKS(lang))).to_be_visible()
    walk.tab_to(ui("restart", lang))
    walk.press("Enter")
    walk.expect_step_heading(FLOW.start)
    assert not walk.problems, "focus not visible:\n" + "\n".join(walk.problems)
    assert not tab.js_errors, tab.js_errors


# --------------------------------------------------------------------------- the guide has stopped


def test_the_notice_of_a_stopped_guide_at_phone_width(browser, server):  # noqa: F811
    """The page's notice when its kernel is gone (see test_kernel_gone.py): an alert region
    in both languages, each part marked with its language; the focus moves to it; axe finds
    nothing serious on the page with its controls disabled; the phone layout holds; the link
    that starts again is named in both languages, at least 44 px tall, and shows a focus
    ring when reached with Tab."""
    tab = GuideTab(browser, server, PHONE, "stopped")
    try:
        tab.open(lang="en")
        kernel_id = tab.page.evaluate(
            "JSON.parse(document.getElementById('jupyter-config-data').textContent).kernelId")
        process = server.kernel_processes()[kernel_id]
        process.kill()
        notice = tab.page.locator(".guide .guide-offline")
        expect(notice).to_contain_text(ui("offline", "en"), timeout=60_000)
        problems = []
        if notice.get_attribute("role") != "alert":
            problems.append("the notice is not an alert region")
        langs = notice.locator("div[lang]").evaluate_all("es => es.map(e => e.lang)")
        if langs != ["ko", "en"]:
            problems.append(f"the notice's parts are marked {langs}, not ['ko', 'en']")
        focus = tab.focus()
        if focus is None or "guide-offline" not in focus.classes:
            problems.append(f"the focus is on {focus}, not on the notice")
        reload = notice.get_by_role("link")
        reload = reload.filter(has_text=ui("reload", "en"))
        name = " · ".join(ui("reload", lang) for lang in ("ko", "en"))
        expect(reload).to_have_accessible_name(name)
        # the phone number is a link in each language and in the step's text: links of the
        # same name that lead to the same place are one link, as far as their names go
        phone = tab.page.locator(".guide a[href^='tel:']")
        numbers = {(text, href) for text, href in phone.evaluate_all(
            "es => es.map(e => [e.textContent.trim(), e.getAttribute('href')])")}
        same = {f"two links are both named {text!r}" for text, _ in numbers
                if len({href for t, href in numbers if t == text}) == 1}
        problems += [p for p in tab.name_problems() if p not in same]
        serious, _ = tab.axe_problems()
        if serious:
            problems.append("axe: serious or critical violations:\n" + format_violations(serious))
        problems += tab.layout_problems()
        for _ in range(10):
            tab.page.keyboard.press("Tab")
            focus = tab.focus()
            if focus is not None and name in focus.name:
                break
        else:
            problems.append(f"Tab did not reach the link that starts again (at {focus})")
        ring = focus_ring_problem(focus) if focus is not None else "no focus"
        if ring:
            problems.append(ring)
        problems += [f"JavaScript error: {error}" for error in tab.js_errors]
        tab.screenshot(artifact_path("a11y-phone-stopped.png"))
        assert not problems, "\n".join(problems)
    finally:
        tab.close()
