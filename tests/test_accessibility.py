"""Accessibility of the guide in headless Chromium: axe-core, phone layout, keyboard only.

Every test runs on each host (``guide_server``: Voilà with the project's ``voila.json``, and
Solara; the session's server of each, with an empty temporary log), but the one of a stopped
guide, which needs a visit that can be stopped (``stopping_server``).

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
  call sheet and the case notes opened), walked with mouse clicks: axe on every screen,
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
import re
import shutil
from collections.abc import Iterator

import pytest
from accessibility import (
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
from browser import artifact_path
from playwright.sync_api import expect
from voila_server import PROJECT_ROOT

from widgets import casenotes
from widgets.engine import OUTCOME_KEYS, Engine
from widgets.flow import default_flow

NODE_IDS = [node.id for node in FLOW]
#: Screens photographed at phone width (first screen, a long text, the end recap).
SCREENSHOTS = (FLOW.start, "talk", "done")
DOCS_SCREENSHOT = PROJECT_ROOT / "docs" / "screenshot-phone.png"
OTHER = {"ko": "en", "en": "ko"}
HANGUL = re.compile(r"[\uac00-\ud7a3]")


def ui(key: str, lang: str) -> str:
    return FLOW.ui[key](lang)


@pytest.fixture(scope="module")
def server(guide_server):
    """The guide on each host (see the module's docstring)."""
    return guide_server


@pytest.fixture(scope="module")
def phone_tab(browser, server) -> Iterator[GuideTab]:
    tab = GuideTab(browser, server, PHONE, "phone")
    yield tab
    tab.close()


@pytest.fixture
def desktop_tab(browser, server) -> Iterator[GuideTab]:
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
    problems += [f"JavaScript error: {error}" for error in tab.page_errors()]
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
        phone_tab.button(casenotes.labels()["toggle"](lang)).click()
        expect(phone_tab.page.locator(".guide .widget-upload")).to_be_visible()
        # named by its label alone, not "… (0)" with the widget's file counter
        expect(phone_tab.page.get_by_role(
            "button", name=casenotes.labels()["load"](lang), exact=True)).to_be_visible()
        problems += check_screen(phone_tab, f"{node_id} {lang} 375px, case notes open", lang,
                                 layout=True)
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------- the call sheet

CALL_SHEET_ROUTE = {"problem": "refund", "reach": "online", "channel": "chat"}
DOCS_CALL_SHEET = PROJECT_ROOT / "docs" / "call-sheet-phone.png"


def _words(text: str) -> str:
    return " ".join(text.split())


def test_call_sheet_at_phone_width_printed_to_pdf(phone_tab: GuideTab, tmp_path):
    """A Korean path walked by touch to the last screen; the call sheet opened there (axe,
    the phone layout); its print button (window.print, stubbed: headless Chromium prints with
    page.pdf) marks the page, and the PDF holds the sheet alone: the number, every English line
    of the path in call order with its Korean meaning, nothing cut."""
    import subprocess

    tab = phone_tab
    tab.open(lang="ko")
    engine = Engine(FLOW, lang="ko")
    engine.start()
    while not engine.finished:
        node = engine.node
        if node.kind == "choice" and node.widget == "dropdown":
            tab.page.locator(".guide select").first.select_option(
                label=node.option(CALL_SHEET_ROUTE[node.id]).label("ko"))
            tab.settle()
            tab.button(ui("continue", "ko")).click()
            engine.choose(CALL_SHEET_ROUTE[node.id])
        elif node.kind == "choice":
            tab.button(node.option(CALL_SHEET_ROUTE[node.id]).label("ko")).click()
            engine.choose(CALL_SHEET_ROUTE[node.id])
        else:
            tab.button(ui("next", "ko")).click()
            engine.advance()
        tab.expect_step(engine.node.id, "ko")
    tab.button(ui("callsheet_open", "ko")).click()
    sheet = tab.page.locator(".guide .guide-callsheet")
    expect(sheet).to_be_visible()
    problems = check_screen(tab, "call sheet ko 375px", "ko", layout=True)
    assert not problems, "\n".join(problems)
    tab.screenshot(artifact_path("a11y-phone-call-sheet-ko.png"))
    shot = artifact_path("a11y-phone-call-sheet-ko-sheet.png")
    with tab.full_height():  # the sheet alone, as tall as it is (the README's screenshot)
        tab.page.locator(".guide .guide-callsheet-panel").screenshot(
            path=str(shot), animations="disabled")
    if os.environ.get("GUIDE_UPDATE_DOCS_SCREENSHOT"):
        shutil.copyfile(shot, DOCS_CALL_SHEET)

    tab.page.evaluate("window.print = () => { window.guidePrinted = true; }")
    tab.button(ui("callsheet_print", "ko")).click()
    assert tab.page.evaluate("window.guidePrinted === true")
    assert tab.page.evaluate("document.documentElement.classList.contains('guide-print-sheet')")
    pdf = artifact_path("call-sheet-ko.pdf")
    tab.page.pdf(path=str(pdf), format="A4", print_background=True)
    text = subprocess.run(["pdftotext", "-enc", "UTF-8", str(pdf), "-"], check=True,
                          capture_output=True, text=True).stdout
    flat = _words(text)
    assert "+1 206 266 2992" in flat and "Contact us" in flat
    lines = FLOW.phrases_for(engine.choices)
    assert lines
    where = []
    for phrase in lines:  # whole (nothing clipped), in the order of a call
        assert _words(phrase.en) in flat, phrase.en
        # (pdftotext sets the punctuation of a Korean line, drawn in another font, apart)
        assert re.sub(r"[\W_]+", "", phrase.ko) in re.sub(r"[\W_]+", "", flat), phrase.ko
        where.append(flat.index(_words(phrase.en)))
    assert where == sorted(where)
    assert HANGUL.search(text)
    # the sheet alone: not the step, the checklist, the message or the buttons around it
    for other in (FLOW["done"].title("ko"), ui("recap_title", "ko"), ui("callsheet_print", "ko"),
                  ui("restart", "ko")):
        assert other not in flat, other
    tab.page.evaluate("window.dispatchEvent(new Event('afterprint'))")
    assert not tab.page.evaluate(
        "document.documentElement.classList.contains('guide-print-sheet')")


def test_the_visit_that_comes_back_at_phone_width(phone_tab: GuideTab):
    """The return link: the one-click question (axe, phone layout), then "not yet" leads to
    the escalation advice with the message's supervisor request ticked."""
    tab = phone_tab
    tab.page.goto(tab.server.url + "?followup=problem:late,reach:call&lang=ko",
                  wait_until="commit")
    tab.page.locator(HEADING).first.wait_for(timeout=120_000)
    expect(tab.page.locator(".guide .guide-followup")).to_contain_text(
        ui("followup_question", "ko"))
    problems = check_screen(tab, "return visit ko 375px", "ko", layout=True)
    assert not problems, "\n".join(problems)
    tab.button(default_flow().ui[OUTCOME_KEYS["not-yet"]]("ko")).click()
    escalation = FLOW.role_nodes("escalation")[0]
    tab.expect_step(escalation, "ko")
    expect(tab.page.locator(".guide .widget-checkbox input")).to_be_checked()


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
        # the end: no outcome question (before contact); the call sheet, then the case notes
        expect(tab.page.locator(".guide").get_by_text(default_flow().ui[OUTCOME_KEYS["solved"]](lang),
                                                      exact=True)).to_have_count(0)
        tab.button(ui("callsheet_open", lang)).click()
        expect(tab.page.locator(".guide .guide-callsheet")).to_be_visible()
        problems += check_screen(tab, f"done {lang} 1280px, call sheet open", lang, layout=False)
        tab.button(ui("callsheet_close", lang)).click()
        tab.button(casenotes.labels()["toggle"](lang)).click()
        expect(tab.page.locator(".guide .widget-upload")).to_be_visible()
        problems += check_screen(tab, f"done {lang} 1280px, case notes open", lang,
                                 layout=False)
        tab.button(casenotes.labels()["toggle_close"](lang)).click()
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
    expect(tab.page.locator(".guide .guide-recap li:not(.guide-phrase)")).to_have_text(engine.recap())

    first_line = engine.recap()[0]
    walk.tab_to(first_line)
    walk.press("Space")
    expect(tab.page.locator(".guide .guide-recap input[type=checkbox]").first).to_be_checked()
    walk.tab_to(ui("callsheet_open", lang))
    walk.press("Enter")
    expect(tab.page.locator(".guide .guide-callsheet")).to_be_visible()
    walk.tab_to(ui("callsheet_print", lang))  # the sheet's own button takes the focus too
    walk.tab_to(ui("restart", lang))
    walk.press("Enter")
    walk.expect_step_heading(FLOW.start)
    assert not walk.problems, "focus not visible:\n" + "\n".join(walk.problems)
    errors = tab.page_errors()
    assert not errors, errors


# --------------------------------------------------------------------------- the guide has stopped


@pytest.fixture(scope="module")
def stopping_server(guide_host: str, request: pytest.FixtureRequest) -> Iterator[object]:
    """A server of each host whose visit a test can stop: on Voilà the session's server (the
    test kills the visit's kernel process); on Solara, whose visits are virtual kernels with
    no process of their own, a server that closes a visit after 8 s without an action."""
    if guide_host == "voila":
        yield request.getfixturevalue("voila_guide")
        return
    with request.getfixturevalue("solara_servers").guide("--idle-timeout=8",
                                                         "--cull-interval=1") as server:
        yield server


def stop_visit(tab: GuideTab, server) -> None:
    """Stop the tab's visit: kill its Voilà kernel; on Solara the idle visit is closed."""
    if server.host == "voila":
        kernel_id = tab.page.evaluate(
            "JSON.parse(document.getElementById('jupyter-config-data').textContent).kernelId")
        server.kernel_processes()[kernel_id].kill()


def test_the_notice_of_a_stopped_guide_at_phone_width(browser, stopping_server):
    """The page's notice when its kernel is gone (see test_kernel_gone.py): an alert region
    in both languages, each part marked with its language; the focus moves to it; axe finds
    nothing serious on the page with its controls disabled; the phone layout holds; the link
    that starts again is named in both languages, at least 44 px tall, and shows a focus
    ring when reached with Tab."""
    server = stopping_server
    tab = GuideTab(browser, server, PHONE, "stopped")
    try:
        tab.open(lang="en")
        stop_visit(tab, server)
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
        problems += [f"JavaScript error: {error}" for error in tab.page_errors()]
        tab.screenshot(artifact_path("a11y-phone-stopped.png" if server.host == "voila"
                                     else f"a11y-phone-stopped-{server.host}.png"))
        assert not problems, "\n".join(problems)
    finally:
        tab.close()
