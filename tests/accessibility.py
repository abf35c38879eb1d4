"""Helpers for the accessibility browser tests (``test_accessibility.py``).

* :class:`GuideTab` is one visitor's browser context and page on the guide, at a given
  viewport. It opens deep links (``?step=<node>&lang=<ko|en>``), reusing its page: navigating
  away runs the page's ``beforeunload``, so Voilà's beacon gives the previous kernel back.
  ``close()`` closes the page the same way.
* :meth:`GuideTab.axe_problems` runs axe-core (from axe-playwright-python, no network) over
  the whole page and returns the serious and critical violations, plus any color-contrast
  node axe could not decide. The guide's page scrolls inside an element (Voilà's
  ``#rendered_cells``, Solara's application frame), not in the document; axe's color-contrast rule cannot look at text scrolled out of view, so the check
  first makes the viewport as tall as the content (the width, which is what the layout
  depends on, stays the same).
* :data:`LAYOUT_JS` / :meth:`GuideTab.layout_problems`: sideways scrolling, content cut off,
  controls smaller than 44 px.
* :meth:`GuideTab.focus_state` / :func:`focus_ring_problem`: what has the keyboard focus and
  whether its focus ring is visible (an outline at least 2 px wide, with at least 3:1
  contrast against the white page).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from browser import SCROLL_HEIGHT_JS
from playwright.sync_api import expect

from widgets.flow import default_flow

FLOW = default_flow()
LANGS = ("ko", "en")
PHONE = {"width": 375, "height": 800}
DESKTOP = {"width": 1280, "height": 800}
#: Smallest height (CSS px) of a button, choice or text field.
MIN_TARGET = 44
SERIOUS = ("serious", "critical")
LANGUAGE_BUTTON = {"ko": "한국어", "en": "English"}

HEADING = ".guide .guide-body h2"
#: A control in an aria snapshot: ``- button "name"``, ``- textbox "name": value``...
_CONTROL = re.compile(r'^\s*- (?P<role>button|checkbox|combobox|link|listbox|radio|slider|'
                      r'spinbutton|switch|textbox)\b(?: "(?P<name>(?:[^"\\]|\\.)*)")?',
                      re.MULTILINE)
CONTENT_HEIGHT_JS = f"() => {SCROLL_HEIGHT_JS.strip()}"

#: Waits (at most 3 s) for the page's finite CSS animations and transitions to finish.
FINISH_ANIMATIONS_JS = """async () => {
  const finite = document.getAnimations().filter((a) => {
    const timing = a.effect && a.effect.getComputedTiming();
    return timing && Number.isFinite(timing.endTime);
  });
  await Promise.race([Promise.all(finite.map((a) => a.finished.catch(() => null))),
                      new Promise((done) => setTimeout(done, 3000))]);
}"""

#: Layout problems at the current viewport (a list of strings, empty when all is well).
LAYOUT_JS = """(minTarget) => {
  const problems = [];
  const vw = window.innerWidth;
  const describe = (e) => {
    const cls = (e.className && e.className.toString ? e.className.toString() : '')
      .split(/\\s+/).filter((c) => c.startsWith('guide') || c.startsWith('widget-')).join('.');
    const text = (e.innerText || e.value || e.getAttribute('aria-label') || '')
      .trim().replace(/\\s+/g, ' ').slice(0, 40);
    return `<${e.tagName.toLowerCase()}${cls ? '.' + cls : ''}> "${text}"`;
  };
  const shown = (e) => {
    const r = e.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && getComputedStyle(e).visibility !== 'hidden';
  };
  const doc = document.documentElement;
  if (doc.scrollWidth > vw) {
    problems.push(`the page scrolls sideways: document scrollWidth ${doc.scrollWidth} > ${vw}`);
  }
  const guide = document.querySelector('.guide');
  if (!guide) {
    return ['no .guide on the page'];
  }
  const all = [document.body, document.getElementById('rendered_cells'),
               ...document.querySelectorAll('.guide, .guide *')].filter(Boolean);
  for (const e of all) {
    if (!shown(e)) continue;
    const s = getComputedStyle(e);
    const r = e.getBoundingClientRect();
    if (r.right > vw + 0.5 || r.left < -0.5) {
      problems.push(`${describe(e)} reaches beyond the screen (x ${Math.round(r.left)}..` +
                    `${Math.round(r.right)} of ${vw})`);
    }
    if (e.scrollWidth > e.clientWidth + 1 && s.overflowX !== 'visible') {
      const how = /auto|scroll/.test(s.overflowX) ? 'scrolls sideways' : 'cuts its text off';
      problems.push(`${describe(e)} ${how} (scrollWidth ${e.scrollWidth} > ${e.clientWidth})`);
    }
    if (e.scrollHeight > e.clientHeight + 1 && /hidden|clip/.test(s.overflowY)) {
      problems.push(`${describe(e)} cuts its content off at the bottom ` +
                    `(scrollHeight ${e.scrollHeight} > ${e.clientHeight})`);
    }
  }
  // Texts that must wrap and stay readable, whatever their overflow setting.
  const texts = '.guide-body .widget-html-content, .guide-recap .widget-html-content, ' +
    '.guide-message, .guide-message textarea, .guide-messages, .guide h2, .guide h3, ' +
    '.guide button, .guide label, .guide-option, .guide-action';
  for (const e of guide.querySelectorAll(texts)) {
    if (shown(e) && e.scrollWidth > e.clientWidth + 1) {
      problems.push(`${describe(e)} does not wrap its text (scrollWidth ${e.scrollWidth} > ` +
                    `${e.clientWidth})`);
    }
  }
  // Buttons, choices and text fields: at least minTarget px tall. A checkbox counts with
  // the label around it (clicking the label ticks it).
  const targets = 'button, select, input[type=text], input:not([type]), textarea, ' +
    '.guide-message-actions a, .guide-links a, label:has(> input[type=checkbox])';
  for (const e of guide.querySelectorAll(targets)) {
    if (!shown(e)) continue;
    const h = e.getBoundingClientRect().height;
    if (h < minTarget - 0.5) {
      problems.push(`${describe(e)} is ${h.toFixed(1)} px tall (< ${minTarget})`);
    }
  }
  for (const box of guide.querySelectorAll('input[type=checkbox]')) {
    if (shown(box) && !box.closest('label')) {
      problems.push(`${describe(box)}: a checkbox without a label around it`);
    }
  }
  return problems;
}"""

#: The focused element and its focus style.
FOCUS_JS = """() => {
  const e = document.activeElement;
  if (!e) return null;
  const s = getComputedStyle(e);
  let name = e.getAttribute('aria-label') || '';
  if (!name && e.labels && e.labels.length) name = e.labels[0].innerText;
  if (!name && e.tagName !== 'SELECT') name = e.innerText || e.value || '';
  return {
    tag: e.tagName.toLowerCase(),
    name: name.trim().replace(/\\s+/g, ' '),
    classes: e.className && e.className.toString ? e.className.toString() : '',
    isStepHeading: e.matches('.guide .guide-body h2'),
    inGuide: !!e.closest('.guide'),
    outlineStyle: s.outlineStyle,
    outlineWidth: parseFloat(s.outlineWidth) || 0,
    outlineColor: s.outlineColor,
    boxShadow: s.boxShadow,
    checked: e.type === 'checkbox' ? e.checked : null,
    value: e.tagName === 'SELECT' ? e.value : null,
  };
}"""


@dataclass
class Focus:
    tag: str
    name: str
    classes: str
    isStepHeading: bool  # noqa: N815 - the JS field name
    inGuide: bool  # noqa: N815
    outlineStyle: str  # noqa: N815
    outlineWidth: float  # noqa: N815
    outlineColor: str  # noqa: N815
    boxShadow: str  # noqa: N815
    checked: bool | None
    value: str | None

    def __str__(self) -> str:
        return f"<{self.tag}> {self.name!r}"


def _rgba(css: str) -> tuple[float, float, float, float] | None:
    match = re.match(r"rgba?\(([\d.]+),\s*([\d.]+),\s*([\d.]+)(?:,\s*([\d.]+))?\)", css)
    if not match:
        return None
    r, g, b, a = match.groups()
    return float(r), float(g), float(b), float(a) if a is not None else 1.0


def _luminance(rgb: tuple[float, float, float]) -> float:
    def channel(value: float) -> float:
        value /= 255
        return value / 12.92 if value <= 0.03928 else ((value + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(v) for v in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(first: tuple[float, float, float], second: tuple[float, float, float]) -> float:
    """WCAG contrast ratio of two sRGB colours."""
    high, low = sorted((_luminance(first), _luminance(second)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def focus_ring_problem(focus: Focus) -> str | None:
    """Why the focused element's focus is not visible enough (None when it is)."""
    if focus.outlineStyle in ("none", "hidden") or focus.outlineWidth < 2:
        return (f"{focus} has no visible focus ring (outline {focus.outlineStyle} "
                f"{focus.outlineWidth}px {focus.outlineColor})")
    color = _rgba(focus.outlineColor)
    if color is None or color[3] < 1:
        return f"{focus} has a transparent focus ring ({focus.outlineColor})"
    ratio = contrast(color[:3], (255, 255, 255))
    if ratio < 3:
        return f"{focus} has a focus ring of {ratio:.2f}:1 contrast against white (< 3:1)"
    return None


def format_violations(violations: list[dict]) -> str:
    lines = []
    for violation in violations:
        lines.append(f"  {violation['id']} ({violation.get('impact')}): {violation['help']}")
        for node in violation["nodes"][:8]:
            summary = (node.get("failureSummary") or "").replace("\n", " ")[:200]
            lines.append(f"      {node['target']}  {summary}")
        if len(violation["nodes"]) > 8:
            lines.append(f"      ... and {len(violation['nodes']) - 8} more")
    return "\n".join(lines)


class GuideTab:
    """One browser context + page on the guide server at a fixed viewport."""

    def __init__(self, browser, server, viewport: dict, name: str, locale: str = "ko-KR"):
        self.server = server
        self.viewport = dict(viewport)
        self.name = name
        self.context = browser.new_context(viewport=self.viewport, locale=locale)
        self.page = self.context.new_page()
        self.page.set_default_timeout(60_000)
        #: the host serving the page ("voila", "solara"), for its known bug (browser.py)
        self.host = getattr(server, "host", "voila")
        self.js_errors: list[str] = []
        self.page.on("pageerror", lambda error: self.js_errors.append(f"uncaught: {error}"))
        self.page.on("console", self._console)
        self._last_frame = time.monotonic()
        self.page.on("websocket", self._watch_websocket)
        from axe_playwright_python.sync_playwright import Axe

        self._axe = Axe()

    # ---------------------------------------------------------------- navigation

    @property
    def heading(self):
        return self.page.locator(HEADING)

    def open(self, step: str | None = None, lang: str | None = None) -> None:
        """Load the guide (``?step=..&lang=..``) and wait until it shows ``step``."""
        query = "&".join(f"{key}={value}" for key, value in (("step", step), ("lang", lang))
                         if value)
        self.page.goto(self.server.url + (f"?{query}" if query else ""), wait_until="commit")
        self.page.locator(HEADING).first.wait_for(timeout=120_000)
        self.expect_step(step or FLOW.start, lang or "ko")

    def expect_step(self, node_id: str, lang: str) -> None:
        """The page shows ``node_id`` in ``lang`` and the page has settled in that language."""
        expect(self.heading).to_have_text(FLOW[node_id].title(lang))
        expect(self.language_button(lang)).to_have_class(re.compile(r"\bmod-active\b"))
        self.wait_for_html_lang(lang)

    def wait_for_html_lang(self, lang: str, timeout: float = 10_000) -> None:
        with contextlib.suppress(Exception):
            self.page.wait_for_function("(lang) => document.documentElement.lang === lang",
                                        arg=lang, timeout=timeout)

    def html_lang(self) -> str:
        return self.page.evaluate("document.documentElement.lang")

    def button(self, name: str):
        return self.page.locator(".guide").get_by_role("button", name=name, exact=True)

    def language_button(self, lang: str):
        return self.button(LANGUAGE_BUTTON[lang])

    def switch_language(self, lang: str, node_id: str) -> None:
        """Click the language switch; the same step is shown in ``lang``."""
        self.language_button(lang).click()
        self.expect_step(node_id, lang)

    def _console(self, message) -> None:
        # a script the page's Content-Security-Policy blocked is an error of the page too
        if message.type == "error" and "Content Security Policy" in message.text:
            self.js_errors.append(f"console.error: {message.text}")

    def page_errors(self) -> list[str]:
        """The JavaScript errors so far; the list is emptied."""
        errors = list(self.js_errors)
        self.js_errors.clear()
        return errors

    def _watch_websocket(self, websocket) -> None:
        def seen(_payload) -> None:
            self._last_frame = time.monotonic()

        websocket.on("framesent", seen)
        websocket.on("framereceived", seen)

    def settle(self, quiet: float = 0.3, timeout: float = 15.0) -> None:
        """Wait until the kernel websocket has been quiet for ``quiet`` seconds.

        ipywidgets sends a widget's state changes one at a time (later ones wait in the page
        until the kernel is idle), while a button's click goes out at once: after several
        quick changes of a dropdown, wait for them all to reach the kernel before clicking.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() - self._last_frame < quiet and time.monotonic() < deadline:
            self.page.wait_for_timeout(50)

    # ---------------------------------------------------------------- checks

    @contextlib.contextmanager
    def full_height(self) -> Iterator[None]:
        """Make the viewport as tall as the content (same width) for the block."""
        try:
            for _ in range(3):
                height = self.page.evaluate(CONTENT_HEIGHT_JS)
                current = self.page.viewport_size["height"]
                if height <= current:
                    break
                self.page.set_viewport_size({"width": self.viewport["width"], "height": height})
            yield
        finally:
            self.page.set_viewport_size(self.viewport)

    def axe(self) -> dict:
        """axe-core's results for the whole page (violations and undecided nodes)."""
        with self.full_height():
            results = self._axe.run(self.page, options={"resultTypes": ["violations",
                                                                        "incomplete"]})
        return results.response

    def axe_problems(self) -> tuple[list[dict], list[dict]]:
        """(serious/critical violations and color-contrast nodes axe could not decide,
        the other violations).

        Finite CSS animations and transitions are let finish first. A page with serious
        violations is looked at again a second later and those are reported: a colour caught
        half-way through a change of the page (seen on Solara's page right after a language
        switch) is not what a visitor reads; a violation that stays fails."""
        serious, other = self._axe_problems()
        if serious:
            self.page.wait_for_timeout(1000)
            serious, other = self._axe_problems()
        return serious, other

    def _axe_problems(self) -> tuple[list[dict], list[dict]]:
        self.page.evaluate(FINISH_ANIMATIONS_JS)
        response = self.axe()
        serious = [v for v in response["violations"] if v.get("impact") in SERIOUS
                   or v["id"] == "color-contrast"]
        for violation in response["incomplete"]:
            if violation["id"] != "color-contrast":
                continue
            nodes = [node for node in violation["nodes"] if not self._select_contrast_ok(node)]
            if nodes:
                serious.append(dict(violation, id="color-contrast (undecided)", nodes=nodes))
        other = [v for v in response["violations"] if v not in serious]
        return serious, other

    def _select_contrast_ok(self, node: dict) -> bool:
        """axe cannot decide the contrast of a ``<select>``: the widgets draw its arrow as a
        background image (beside the text, not under it). Decide it from the select's own
        opaque background colour and its text colour, as axe would without the image."""
        reasons = {check.get("data", {}).get("messageKey") for check in node.get("any", [])
                   if isinstance(check.get("data"), dict)}
        if reasons != {"bgImage"} or len(node["target"]) != 1:
            return False
        colors = self.page.evaluate(
            """(selector) => {
                 const e = document.querySelector(selector);
                 if (!e || e.tagName !== 'SELECT') return null;
                 const s = getComputedStyle(e);
                 return [s.color, s.backgroundColor, parseFloat(s.fontSize), s.fontWeight];
               }""", node["target"][0])
        if not colors:
            return False
        fg, bg = _rgba(colors[0]), _rgba(colors[1])
        if fg is None or bg is None or bg[3] < 1:
            return False
        alpha = fg[3]  # translucent text: blended with the background it is drawn on
        fg = tuple(alpha * f + (1 - alpha) * b for f, b in zip(fg[:3], bg[:3])) + (1.0,)
        large = colors[2] >= 24 or (colors[2] >= 18.66 and int(colors[3]) >= 700)
        return contrast(fg[:3], bg[:3]) >= (3 if large else 4.5)

    def control_names(self) -> list[tuple[str, str | None]]:
        """(role, accessible name or None) of every control shown in the guide, from the
        browser's accessibility tree."""
        snapshot = self.page.locator(".guide").first.aria_snapshot()
        controls = []
        for match in _CONTROL.finditer(snapshot):
            name = match.group("name")
            controls.append((match.group("role"),
                             None if name is None else name.replace('\\"', '"')))
        return controls

    def name_problems(self) -> list[str]:
        """Controls without a name that says something, or two controls of a role with the
        same name."""
        problems, seen = [], set()
        for role, name in self.control_names():
            if not name or not re.search(r"\w", name):
                problems.append(f"a {role} has no accessible name that says what it does "
                                f"({name!r})")
            elif (role, name) in seen:
                problems.append(f"two {role}s are both named {name!r}")
            seen.add((role, name))
        return problems

    def layout_problems(self) -> list[str]:
        return self.page.evaluate(LAYOUT_JS, MIN_TARGET)

    def focus(self) -> Focus | None:
        state = self.page.evaluate(FOCUS_JS)
        return Focus(**state) if state else None

    def screenshot(self, path: Path) -> Path:
        """A screenshot of the whole guide page (the viewport made as tall as the content)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with self.full_height():
            self.page.screenshot(path=str(path), full_page=True, animations="disabled")
        return path

    def close(self) -> None:
        """Close like a visitor closing the tab (``beforeunload``: Voilà frees the kernel)."""
        with contextlib.suppress(Exception):
            with self.page.expect_event("close", timeout=10_000):
                self.page.close(run_before_unload=True)
        with contextlib.suppress(Exception):
            self.context.close()
