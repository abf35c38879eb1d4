"""End to end: the guide served by each host (``guide_server``: Voilà with the real
``voila.json``, and Solara), walked in headless Chromium.

Every test runs once per host, on the session's server of that host, with an empty temporary
interaction log (``GUIDE_LOG_URL=sqlite:///<tmp>/events.sqlite3``). Every page is a fresh
browser context, so one page is one visitor: one kernel (a Voilà kernel or a Solara virtual
kernel) and one log session.

A :class:`Walk` drives a page the way a person does — it picks dropdown entries by their
visible label, presses buttons by their accessible name — and replays every action on a
:class:`widgets.engine.Engine` (``start()`` first) whose transitions, stamped as the log's
events (``widgets.eventlog.EventStamper``), are the interactions the page must have logged. After each action the page must show the engine's
step: its title as the step heading, the progress line, and on the last screen the checklist.
At the end of a walk the log session of that page must hold exactly the replayed events, in
order.

The module-wide checks at the end need the walks on the same host to have run first (pytest
runs a module's tests in file order, all of one host's before the other's): every outline
id's content was shown, and no page of that host made a request beyond 127.0.0.1 or raised a
JavaScript error.

Screenshots go to ``test-artifacts/`` (gitignored).
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import lanes
import pytest
from browser import (
    PageFactory,
    artifact_path,
    check_guard,
    full_page_screenshot,
)
from playwright.sync_api import Page, expect

from widgets.engine import Engine, Interaction
from widgets.eventlog import EventStamper
from widgets.flow import Node, default_flow


FLOW = default_flow()

# What a visitor sees on the action buttons and the language switch (literal on purpose:
# a change of these labels is a change the visitor sees).
NEXT = {"ko": "다음 단계로 →", "en": "Next step →"}
CONTINUE = {"ko": "이 답으로 계속 →", "en": "Continue with this answer →"}
BACK = {"ko": "← 이전 단계로", "en": "← Back one step"}
RESTART = {"ko": "처음부터 다시", "en": "Start over"}
LANGUAGE = {"ko": "한국어", "en": "English"}
CHECKLIST = {"ko": "내 체크리스트", "en": "Your checklist"}
PLACEHOLDER = {"ko": "— 하나를 고르세요 —", "en": "— Choose one —"}


def progress_text(lang: str, step: int, total: int) -> str:
    return f"{total}단계 중 {step}단계" if lang == "ko" else f"Step {step} of {total}"


# --------------------------------------------------------------------------- the server and its log


class LogStore:
    """Read-only view of the server's SQLite interaction log."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        if not self.path.exists():
            return []
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10)
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError as error:
            if "no such table" in str(error):
                return []
            raise
        finally:
            conn.close()

    def sessions(self) -> set[str]:
        return {row[0] for row in self._query("SELECT DISTINCT session FROM events")}

    def rows(self, session: str) -> list[tuple]:
        return self._query("SELECT node, action, option, lang FROM events WHERE session = ? "
                           "ORDER BY id", (session,))


@dataclass
class GuideServer:
    server: object  # voila_server.VoilaServer or solara_server.SolaraServer
    log: LogStore

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def host(self) -> str:
        return self.server.host


@pytest.fixture(scope="module")
def guide(guide_server) -> GuideServer:
    """The guide on each host (the session's server of that host) and its log."""
    return GuideServer(guide_server, LogStore(guide_server.log_store))


# --------------------------------------------------------------------------- what the walks saw


@dataclass
class Journal:
    """Module-wide record for one host: where each outline id's content was seen, which walks
    ran, and from which of the page factory's guards on the pages are this host's."""

    host: str
    first_guard: int = 0
    seen: dict[str, list[str]] = field(default_factory=dict)
    walks: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
@lanes.needs("browser", "server")
def journal(guide_host: str, page_factory: PageFactory) -> Journal:
    """What the walks on ``guide_host`` saw (the module-wide checks read it: they are browser
    tests too, run once per host)."""
    return Journal(guide_host, first_guard=len(page_factory.guards))


@pytest.fixture(scope="module", autouse=True)
def patient_expect() -> Iterator[None]:
    """Assertions wait up to 20 s (Playwright's default is 5): a click's answer comes from a
    kernel on a machine with two cores that may be busy with other things."""
    expect.set_options(timeout=20_000)
    yield
    expect.set_options(timeout=5_000)


# --------------------------------------------------------------------------- a visitor


class Walk:
    """One visitor's page plus the engine replaying what they did."""

    def __init__(self, name: str, factory: PageFactory, guide: GuideServer, journal: Journal,
                 lang: str = "ko") -> None:
        self.name = name
        self.guide = guide
        self.journal = journal
        self.page, self.guard = factory.new_page(name)
        self.factory = factory
        self.events: list[Interaction] = []
        self.engine = Engine(FLOW, lang=lang,
                             on_transition=EventStamper(on_event=self.events.append))
        self.sessions_before: set[str] = set()
        self.session: str | None = None
        journal.walks.append(name)

    # -- locators

    @property
    def lang(self) -> str:
        return self.engine.lang

    @property
    def heading(self):
        return self.page.locator(".guide .guide-body h2")

    def button(self, name: str):
        return self.page.get_by_role("button", name=name, exact=True)

    @property
    def kernel_id(self) -> str:
        return self.page.evaluate(
            "JSON.parse(document.getElementById('jupyter-config-data').textContent).kernelId")

    # -- actions

    def open(self, query: str = "", step: str | None = None) -> "Walk":
        """Open the guide (``query`` like ``?lang=en``); ``step``: the node the link opens."""
        self.sessions_before = self.guide.log.sessions()
        self.page.goto(self.guide.url + query, wait_until="commit")
        expect(self.page.locator(".guide")).to_be_visible(timeout=120_000)
        if step is None:
            self.engine.start()
        else:
            self.engine.go_to(step)
        self.expect_current()
        return self

    def choose(self, label: str) -> Node:
        """Pick the option shown as ``label`` at the current step, as a visitor would."""
        node = self.engine.node
        matches = [oid for oid, text in self.engine.options() if text == label]
        assert matches, (f"{self.name}: {label!r} is not an option of {node.id!r} in {self.lang}; "
                         f"options: {[text for _, text in self.engine.options()]}")
        if node.widget == "dropdown":
            select = self.page.get_by_label(node.prompt(self.lang), exact=True)
            expect(select).to_be_visible()
            select.select_option(label=label)
            go = self.button(CONTINUE[self.lang])
            expect(go).to_be_enabled()
            go.click()
        else:
            option = self.button(label)
            expect(option).to_have_class(_has("guide-option"))
            option.click()
        self.engine.choose(matches[0])
        return self.expect_current()

    def next(self) -> Node:
        self.button(NEXT[self.lang]).click()
        self.engine.advance()
        return self.expect_current()

    def back(self) -> Node:
        self.button(BACK[self.lang]).click()
        self.engine.back()
        return self.expect_current()

    def restart(self) -> Node:
        self.button(RESTART[self.lang]).click()
        self.engine.restart()
        return self.expect_current()

    def switch_language(self, lang: str) -> Node:
        self.button(LANGUAGE[lang]).click()
        self.engine.set_language(lang)
        return self.expect_current()

    # -- checks

    def expect_current(self) -> Node:
        """The page shows the engine's current step, in the engine's language."""
        node, lang, page = self.engine.node, self.lang, self.page
        expect(self.heading).to_have_text(node.title(lang))
        expect(self.heading).to_be_visible()
        progress = self.engine.progress()
        expect(page.locator(".guide").get_by_text(
            progress_text(lang, progress.step, progress.total), exact=True)).to_be_visible()
        expect(self.button(LANGUAGE[lang])).to_have_class(_has("mod-active"))
        back = self.button(BACK[lang])
        if self.engine.can_go_back:
            expect(back).to_be_enabled()
        else:
            expect(back).to_be_disabled()
        if node.kind == "info":
            expect(self.button(NEXT[lang])).to_be_visible()
        elif node.kind == "choice" and node.widget == "buttons":
            for _, label in self.engine.options():
                expect(self.button(label)).to_be_visible()
        elif node.kind == "choice":
            select = page.get_by_label(node.prompt(lang), exact=True)
            expect(select).to_be_visible()
            chosen = self.engine.selected
            shown = node.option(chosen).label(lang) if chosen else PLACEHOLDER[lang]
            expect(select.locator("option:checked")).to_have_text(shown)
        else:  # the end: the checklist of the path taken
            recap = page.locator(".guide .guide-recap")
            expect(recap.get_by_text(CHECKLIST[lang], exact=True)).to_be_visible()
            lines = self.engine.recap()
            assert lines, f"{node.id!r} has an empty recap"
            expect(recap.locator("li:not(.guide-phrase)")).to_have_text(lines)
            # and the English lines to say, in call order (with their meaning on Korean pages)
            phrases = self.engine.flow.phrases_for(self.engine.choices, node.say)
            expect(recap.locator("li.guide-phrase .guide-phrase-en")).to_have_text(
                [phrase.en for phrase in phrases])
        for outline_id in node.covers:
            self.journal.seen.setdefault(outline_id, []).append(f"{self.name}: {node.id} ({lang})")
        return node

    def expect_selected_option(self, label: str) -> None:
        """On a buttons step, the option chosen last time is the highlighted one."""
        expect(self.button(label)).to_have_class(_has("mod-info"))

    def screenshot(self, name: str) -> Path:
        return full_page_screenshot(self.page, artifact_path(name))

    def expect_logged(self, timeout: float = 15.0) -> str:
        """The page's log session holds exactly the replayed events, in order. Returns it."""
        expected = [(e.node, e.action, e.option, e.lang) for e in self.events]
        deadline = time.monotonic() + timeout
        while True:
            new = self.guide.log.sessions() - self.sessions_before
            rows = self.guide.log.rows(next(iter(new))) if len(new) == 1 else []
            if len(new) == 1 and rows == expected:
                self.session = next(iter(new))
                return self.session
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert len(new) == 1, f"{self.name}: expected one new log session, found {sorted(new)}"
        assert rows == expected, (f"{self.name}: the log session differs from the clicks\n"
                                  + _diff(expected, rows))
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.factory.close_page(self.page)


def _has(css_class: str) -> re.Pattern:
    return re.compile(rf"(^|\s){re.escape(css_class)}(\s|$)")


def _diff(expected: list[tuple], actual: list[tuple]) -> str:
    lines = []
    for i in range(max(len(expected), len(actual))):
        want = expected[i] if i < len(expected) else None
        got = actual[i] if i < len(actual) else None
        lines.append(f"  {'  ' if want == got else '!!'} {i:3d} expected {want}  logged {got}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- the walks


def test_korean_walk_to_the_checklist_with_back(page_factory, guide, journal):
    """A full Korean path through every kind of step (dropdown, buttons, info, end), with a
    Back on the way; screenshots of a step and of the checklist."""
    walk = Walk("korean walk", page_factory, guide, journal, lang="ko").open()
    expect(walk.heading).to_have_text("무엇을 도와드릴까요?")
    if guide.host == "voila":
        # in Voilà the guide is a centred column of 46rem (its styles leave JupyterLab's cells
        # be); Solara's page has no notebook cells around the guide
        cell = walk.page.locator(".jp-Cell", has=walk.page.locator(".guide")).first
        assert cell.evaluate("(c) => getComputedStyle(c).maxWidth") == "736px"
    expect(walk.page.locator(".guide .guide-fine-print")).to_contain_text("2024년 7월")

    walk.choose("환불받고 싶어요")
    assert walk.engine.node.id == "ready"
    walk.next()
    assert walk.engine.node.id == "reach"
    phone_link = walk.page.locator(".guide .guide-body a[href='tel:+12062662992']")
    expect(phone_link).to_have_text("+1 206 266 2992")
    walk.choose("로그인해서 온라인으로 문의할게요")
    walk.next()
    assert walk.engine.node.id == "select-order"  # a refund is about an order
    walk.next()
    assert walk.engine.node.id == "channel"
    walk.screenshot("e2e-ko-step.png")
    walk.choose("채팅 — 실시간 상담")
    walk.next()
    walk.back()
    assert walk.engine.node.id == "talk"
    walk.next()
    assert walk.engine.node.id == "escalate"
    walk.next()
    assert walk.engine.finished
    expect(walk.heading).to_have_text("준비가 끝났어요")
    recap = walk.page.locator(".guide .guide-recap")
    expect(recap.get_by_text("문의할 내용: 환불 (금액이 큰 환불은 보통 관리자와 상담해야 함)",
                             exact=True)).to_be_visible()
    expect(recap.get_by_text("전화: +1 206 266 2992 (영어 상담, 한국에서는 국제전화)",
                             exact=True)).to_be_visible()
    expect(recap.get_by_text("연락 방법: 채팅 (상담원과 실시간 상담)", exact=True)).to_be_visible()
    expect(recap.locator("input[type=checkbox]")).to_have_count(len(walk.engine.recap()))
    walk.screenshot("e2e-ko-recap.png")

    walk.expect_logged()
    walk.close()


def test_english_walk_from_a_link_then_start_over(page_factory, guide, journal):
    """?lang=en opens the guide in English; a full English path (a service problem: the
    'describe' step), the checklist, Start over, and Back to a remembered dropdown choice."""
    walk = Walk("english walk", page_factory, guide, journal, lang="en").open("?lang=en")
    expect(walk.heading).to_have_text("What do you need help with?")
    expect(walk.page.get_by_text("Your situation", exact=True)).to_be_visible()

    walk.choose("It’s about an Amazon service, not an order")
    walk.next()
    assert walk.engine.node.id == "reach"
    walk.choose("I’ll sign in and get in touch online")
    walk.next()
    assert walk.engine.node.id == "describe"
    walk.next()
    walk.choose("E-mail — a written answer")
    walk.next()
    walk.next()
    assert walk.engine.finished
    expect(walk.heading).to_have_text("You’re ready")
    expect(walk.page.get_by_text("Your checklist", exact=True)).to_be_visible()
    walk.screenshot("e2e-en-recap.png")

    walk.restart()
    assert walk.engine.path == ("problem",)
    expect(walk.page.locator(".guide .guide-recap")).to_be_hidden()
    expect(walk.button(CONTINUE["en"])).to_be_disabled()
    walk.choose("I received the wrong item")
    assert walk.engine.node.id == "ready"
    walk.back()  # the dropdown shows the choice made, and Continue takes it again
    expect(walk.button(CONTINUE["en"])).to_be_enabled()
    walk.choose("I received the wrong item")

    walk.expect_logged()
    walk.close()


def test_switching_language_mid_flow_keeps_the_step_and_the_path(page_factory, guide, journal):
    walk = Walk("language switch", page_factory, guide, journal, lang="ko").open()
    walk.choose("주문한 상품의 배송이 늦어지거나 아직 오지 않았어요")
    walk.next()
    walk.choose("로그인해서 온라인으로 문의할게요")
    assert walk.engine.node.id == "help"
    progress = walk.engine.progress()
    assert progress.step == 4
    expect(walk.page.get_by_text(f"{progress.total}단계 중 4단계", exact=True)).to_be_visible()
    # the browser tab names the step, in the guide's language
    expect(walk.page).to_have_title(
        "로그인하고 ‘Contact us’(문의하기)로 가기 · 아마존 고객 서비스 문의 안내")

    walk.switch_language("en")  # the same step, now in English, same progress
    expect(walk.heading).to_have_text("Sign in and go to “Contact us”")
    expect(walk.page.get_by_text(f"Step 4 of {progress.total}", exact=True)).to_be_visible()
    expect(walk.page).to_have_title(
        "Sign in and go to “Contact us” · Contacting Amazon customer service")

    walk.back()  # the path was kept: Back goes through the answers given in Korean
    expect(walk.heading).to_have_text("Two ways to reach a person")
    walk.expect_selected_option("I’ll sign in and get in touch online")
    walk.back()
    walk.back()
    walk.choose("It’s about an Amazon service, not an order")
    walk.next()
    walk.choose("I’ll sign in and get in touch online")
    walk.next()
    assert walk.engine.node.id == "describe"  # the route follows the new answer

    walk.switch_language("ko")
    expect(walk.heading).to_have_text("서비스 문제 알리기")
    walk.restart()
    expect(walk.heading).to_have_text("무엇을 도와드릴까요?")

    walk.expect_logged()
    walk.close()


def test_two_visitors_do_not_share_state(page_factory, guide, journal):
    """Two browser contexts at once: each has its own kernel, step and log session."""
    first = Walk("visitor A", page_factory, guide, journal).open()
    second = Walk("visitor B", page_factory, guide, journal).open()
    assert first.kernel_id != second.kernel_id

    first.choose("주문한 상품을 반품하고 싶어요")
    assert first.engine.node.id == "ready"
    second.expect_current()  # still the first screen, nothing selected
    expect(second.heading).to_have_text("무엇을 도와드릴까요?")

    second.choose("이미 문의했는데 해결되지 않았어요")
    assert second.engine.node.id == "ready-again"
    first.expect_current()
    first.next()
    second.expect_current()

    # both sessions are new since before the two pages; each holds exactly its own clicks
    deadline = time.monotonic() + 15
    while True:
        new = guide.log.sessions() - first.sessions_before
        logged = {session: guide.log.rows(session) for session in new}
        expected = {name: [(e.node, e.action, e.option, e.lang) for e in walk.events]
                    for name, walk in (("A", first), ("B", second))}
        if sorted(logged.values()) == sorted(expected.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(new) == 2, f"expected two new log sessions, found {len(new)}"
    assert sorted(logged.values()) == sorted(expected.values()), (
        "the two sessions' rows differ from the two visitors' clicks:\n"
        f"expected {expected}\nlogged {logged}")
    first.close()
    second.close()


GLYPH_PROBE = """(chars) => {
  // Each character alone in an integer-aligned white box, inside .guide so it inherits the
  // page's font stack: identical glyphs give identical pixels.
  const box = document.createElement('div');
  box.id = 'glyph-probe';
  box.style.cssText = 'position:fixed;left:0;top:0;z-index:99999;background:#fff;'
    + `width:${chars.length * 100}px;height:100px`;
  chars.forEach((c, i) => {
    const s = document.createElement('span');
    s.textContent = c;
    s.style.cssText = `position:absolute;left:${i * 100}px;top:0;width:96px;height:96px;`
      + 'display:block;font-size:64px;line-height:96px;text-align:center;color:#000;'
      + 'background:#fff;overflow:hidden;white-space:pre';
    box.appendChild(s);
  });
  document.querySelector('.guide').appendChild(box);
}"""
#: Unassigned code points: no font has them, so every browser draws its "missing glyph".
NO_GLYPH = ["\u0378", "\u0379", "\u0380"]


def test_hangul_renders_as_glyphs_not_tofu(page_factory, guide, journal):
    """Hangul in the page's font is drawn with real glyphs.

    Comparing against "the same text in a font without Hangul" cannot work in a browser:
    Chromium falls back to any system font that has the glyph, so both renderings would use
    the same CJK font. Missing glyphs are recognisable differently: a browser draws every
    character it has no glyph for with the same "missing glyph" (a box, or nothing), so
    different characters look identical. The probe draws each of several distinct Hangul
    syllables of the step heading alone, in the page's font, in identical integer-aligned
    boxes, and screenshots each box:

    * the syllables must give pairwise different images, and none may equal the image of
      an unassigned code point (U+0378: never in any font);
    * control, in the same page: the unassigned code points U+0378, U+0379, U+0380 give one
      identical image. This is exactly what the syllables would do without a Hangul font
      (e.g. without fonts-noto-cjk), so the check above can fail, and the control proves
      that identical missing glyphs do compare equal here.

    The page opens at a step through the app's ``?step=`` link (logged as entering there).
    """
    walk = Walk("hangul glyphs", page_factory, guide, journal, lang="ko").open(
        "?step=channel", step="channel")
    heading = walk.heading.inner_text()
    syllables = list(dict.fromkeys(c for c in heading if "\uac00" <= c <= "\ud7a3"))[:6]
    assert len(syllables) >= 4, f"the heading {heading!r} has too few Hangul syllables"
    chars = syllables + NO_GLYPH
    walk.page.evaluate(GLYPH_PROBE, chars)
    boxes = walk.page.locator("#glyph-probe > span")
    images = [boxes.nth(i).screenshot(animations="disabled") for i in range(len(chars))]
    walk.page.locator("#glyph-probe").screenshot(path=str(artifact_path("e2e-hangul-probe.png")))
    fonts = _platform_fonts(walk.page, "#glyph-probe > span")
    walk.page.evaluate("document.getElementById('glyph-probe').remove()")

    hangul, missing = images[:len(syllables)], images[len(syllables):]
    assert len(set(missing)) == 1, "control failed: missing glyphs do not render identically here"
    assert missing[0] not in hangul, (
        f"Hangul renders as the missing-glyph box (tofu); fonts used: {fonts}")
    assert len(set(hangul)) == len(hangul), (
        f"distinct Hangul syllables {syllables} render identically (tofu); fonts used: {fonts}")

    walk.expect_logged()
    walk.close()


def _platform_fonts(page: Page, selector: str) -> list[str]:
    """The system fonts Chromium used for the first node matching ``selector`` (for messages)."""
    try:
        cdp = page.context.new_cdp_session(page)
        cdp.send("DOM.enable")
        cdp.send("CSS.enable")
        root = cdp.send("DOM.getDocument", {"depth": -1})["root"]["nodeId"]
        node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
        fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
        cdp.detach()
        return [f"{f['familyName']} ({f['glyphCount']} glyphs)" for f in fonts]
    except Exception as error:  # noqa: BLE001 - only used to explain a failure
        return [f"unknown ({error})"]


# --------------------------------------------------------------------------- regressions
# Each reproduces a bug found while writing these tests.


def test_double_click_on_an_option_answers_only_that_question(page_factory, guide):
    page, _ = page_factory.new_page("double click")
    page.goto(guide.url + "?step=reach", wait_until="commit")
    heading = page.locator(".guide .guide-body h2")
    expect(heading).to_have_text("상담원과 연결되는 두 가지 방법", timeout=120_000)
    page.get_by_role("button", name="로그인해서 온라인으로 문의할게요", exact=True).dblclick()
    expect(heading).not_to_have_text("상담원과 연결되는 두 가지 방법")
    page.wait_for_timeout(1500)  # the second click has long been handled
    try:
        # the next step, not skipped: the second click of the pair is not taken for a click
        # on what the next step shows
        expect(heading).to_have_text("로그인하고 ‘Contact us’(문의하기)로 가기", timeout=1000)
    finally:
        page_factory.close_page(page)


def test_language_switch_keeps_an_unconfirmed_dropdown_choice(page_factory, guide):
    page, _ = page_factory.new_page("pending choice")
    page.goto(guide.url, wait_until="commit")
    expect(page.locator(".guide .guide-body h2")).to_have_text("무엇을 도와드릴까요?",
                                                               timeout=120_000)
    page.get_by_label("지금 상황", exact=True).select_option(label="환불받고 싶어요")
    expect(page.get_by_role("button", name=CONTINUE["ko"], exact=True)).to_be_enabled()
    page.get_by_role("button", name=LANGUAGE["en"], exact=True).click()
    expect(page.locator(".guide .guide-body h2")).to_have_text("What do you need help with?")
    try:
        select = page.get_by_label("Your situation", exact=True)
        expect(select.locator("option:checked")).to_have_text("I want a refund", timeout=2000)
        expect(page.get_by_role("button", name=CONTINUE["en"], exact=True)).to_be_enabled()
    finally:
        page_factory.close_page(page)


# --------------------------------------------------------------------------- module-wide checks

WALKS = ("korean walk", "english walk", "language switch")


def _require_walks(journal: Journal) -> None:
    missing = [name for name in WALKS if name not in journal.walks]
    if missing:
        pytest.fail(f"this check needs the walks of this module to run first; missing: {missing}",
                    pytrace=False)


def test_every_outline_id_was_shown(journal):
    _require_walks(journal)
    assert journal.seen, f"the walks on {journal.host} recorded nothing"
    unseen = [oid for oid in FLOW.outline if oid not in journal.seen]
    covering = {oid: [node.id for node in FLOW if oid in node.covers] for oid in unseen}
    assert not unseen, f"outline ids never shown in the walks (covered by nodes): {covering}"


def test_no_page_left_127_0_0_1_or_raised_a_js_error(page_factory, journal):
    _require_walks(journal)
    mine = page_factory.guards[journal.first_guard:]
    assert len(mine) >= len(WALKS), f"fewer pages than walks on {journal.host}"
    problems = []
    for guard in mine:
        try:
            check_guard(guard)
        except AssertionError as error:
            problems.append(str(error))
    assert not problems, ("pages made external requests (aborted) or had JavaScript errors:\n"
                          + "\n".join(problems))
