"""The flow map (widgets/flowmap.py), its numbers (widgets.summary.transitions and the funnel), its
part of the dashboard, and the content review (widgets/review.py, notebooks/content.ipynb).

The numbers are checked on the hand-made log of test_summary.py (seven sessions), against
counts worked out by hand from its listing, and against the summary's own tables.
"""

from __future__ import annotations

import base64
import html
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml
from test_summary import hand_events

from widgets import flowmap, review, style
from conftest import FLOW_2024
from widgets.flow import DEFAULT_PATH, FLOW_ENV, build_flow, load_flow
from widgets.flowmap import DROP_OFF_BANDS, Edge, Traffic, dot_source, edges, render_svg
from widgets.log import EventStore, open_store
from widgets.summary import summarize, transitions

#: the hand-made log walks the 2024 flow (see conftest), so the map is drawn from it
FLOW = load_flow(FLOW_2024)
pytestmark = pytest.mark.usefixtures("flow_2024")
SVG = "{http://www.w3.org/2000/svg}"
XLINK = "{http://www.w3.org/1999/xlink}"

#: Sessions (and moves, when a session made the move more than once) per arrow of the hand-made
#: log, worked out by hand from test_summary.SESSIONS.
HAND_SESSIONS = {
    ("problem", "return", "order"): 1,  # S4, twice (before and after Start over)
    ("problem", "refund", "order"): 1,  # S5
    ("problem", "late", "order"): 1,  # S2
    ("problem", "damaged", "order"): 0,
    ("problem", "service", "sign-in"): 2,  # S3, S7
    ("problem", "prepare", "goal"): 1,  # S1
    ("order", "yes", "sign-in"): 2,  # S2, S5
    ("order", "no", "sign-in"): 1,  # S4
    ("sign-in", "yes", "help"): 2,  # S3, S4
    ("sign-in", "no", "phone"): 3,  # S2, S5, S7
    ("phone", "call", "goal"): 1,  # S2 (a language switch before the answer)
    ("phone", "callback", "help"): 1,  # S5
    ("help", None, "need-more-help"): 3,
    ("need-more-help", None, "select-order"): 1,  # S5 (about an order)
    ("need-more-help", None, "describe"): 2,  # S3, S4
    ("select-order", None, "channel"): 1,
    ("describe", None, "channel"): 2,  # S3 twice (after Back), S4
    ("channel", "email", "goal"): 1,
    ("channel", "phone", "goal"): 1,
    ("channel", "chat", "goal"): 1,
    ("goal", None, "records"): 3,  # S1, S2, S4
    ("records", None, "fair"): 2,
    ("fair", None, "kind"): 2,
    ("kind", None, "helped"): 2,
    ("helped", "yes", "patience"): 1,
    ("helped", "no", "escalate"): 0,
    ("helped", "not-yet", "escalate"): 1,
    ("escalate", None, "patience"): 1,
    ("patience", None, "done"): 2,
}
HAND_MOVES = {**HAND_SESSIONS, ("problem", "return", "order"): 2, ("describe", None, "channel"): 3}


@pytest.fixture
def hand_store(store_url: str) -> Iterator[EventStore]:
    with open_store(store_url) as store:
        store.write(hand_events())
        yield store


def parse_svg(svg: str) -> ET.Element:
    """dot's SVG as XML (it must be well-formed)."""
    return ET.fromstring(svg.encode("utf-8"))


def part(root: ET.Element, element_id: str) -> ET.Element:
    found = [g for g in root.iter(f"{SVG}g") if g.get("id") == element_id]
    assert len(found) == 1, f"{element_id}: {len(found)} elements"
    return found[0]


def texts(element: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in element.iter(f"{SVG}text")]


def tooltip(element: ET.Element) -> str:
    return next(a.get(f"{XLINK}title") for a in element.iter(f"{SVG}a") if a.get(f"{XLINK}title"))


def edge_id(key: tuple) -> str:
    source, option, target = key
    return f"flowmap-edge-{source}-{option or ''}-{target}"


# --------------------------------------------------------------------------- the arrows


def test_edges_are_every_answer_and_next_to_every_target_its_rules_name() -> None:
    expected = set()
    for node in FLOW:
        for option in node.options:
            expected |= {(node.id, option.id, t) for t in option.next.targets}
        if node.next is not None:
            expected |= {(node.id, None, t) for t in node.next.targets}
    found = edges(FLOW)
    assert [e.key for e in found] == list(dict.fromkeys(e.key for e in found))  # no duplicates
    assert {e.key for e in found} == expected == set(HAND_SESSIONS)
    conditional = [e for e in found if e.when]
    assert conditional and all(isinstance(e, Edge) for e in conditional)
    # The rule of need-more-help: select-order only after "yes" at order; describe otherwise.
    rule = next(e for e in found if e.key == ("need-more-help", None, "select-order"))
    assert dict(rule.when) == {"order": frozenset({"yes"})}
    assert not next(e for e in found if e.key == ("need-more-help", None, "describe")).when


def test_transitions_on_the_hand_log(hand_store: EventStore) -> None:
    moves = transitions(hand_store)
    keys = [(n, o, t) for n, o, t in zip(moves["node"], moves["option"], moves["to"])]
    assert keys == [e.key for e in edges(FLOW)]  # every arrow, in flow order, nothing else
    assert dict(zip(keys, moves["sessions"])) == HAND_SESSIONS
    assert dict(zip(keys, moves["moves"])) == HAND_MOVES


def test_transitions_follow_the_filters(hand_store: EventStore) -> None:
    import datetime as dt

    english = transitions(hand_store, lang="en")  # S2, S4, S7
    got = {(n, o, t): s for n, o, t, s in zip(english["node"], english["option"], english["to"],
                                               english["sessions"]) if s}
    assert got == {
        ("problem", "late", "order"): 1, ("problem", "return", "order"): 1,
        ("problem", "service", "sign-in"): 1, ("order", "yes", "sign-in"): 1,
        ("order", "no", "sign-in"): 1, ("sign-in", "no", "phone"): 2,
        ("sign-in", "yes", "help"): 1, ("phone", "call", "goal"): 1,
        ("help", None, "need-more-help"): 1, ("need-more-help", None, "describe"): 1,
        ("describe", None, "channel"): 1, ("channel", "email", "goal"): 1,
        ("goal", None, "records"): 2, ("records", None, "fair"): 1, ("fair", None, "kind"): 1,
        ("kind", None, "helped"): 1, ("helped", "not-yet", "escalate"): 1,
        ("escalate", None, "patience"): 1, ("patience", None, "done"): 1,
    }
    # sessions starting on 3 March: S5, S6, S7 (S3 began before midnight and counts whole on the 2nd)
    march_3 = transitions(hand_store, start=dt.date(2025, 3, 3))
    assert int(march_3["sessions"].sum()) == 8 + 2
    assert transitions(hand_store, start=dt.date(2030, 1, 1))["sessions"].sum() == 0


def test_moves_the_flow_does_not_have_are_kept(sqlite_url: str) -> None:
    import datetime as dt

    from widgets.log import Event

    t0 = dt.datetime(2025, 3, 1, 12, tzinfo=dt.timezone.utc)
    events = [Event(t0, "x", "problem", "enter", None, "ko", None),
              Event(t0, "x", "problem", "choose", "gone", "ko", 5),
              Event(t0, "x", "old-step", "enter", None, "ko", 5)]
    with open_store(sqlite_url) as store:
        store.write(events)
        moves = transitions(store)
    assert moves.iloc[-1].tolist() == ["problem", "gone", "old-step", 1, 1]
    assert int(moves["sessions"].sum()) == 1


# --------------------------------------------------------------------------- the map's numbers


def traffic_of(store: EventStore, **filters) -> tuple[Traffic, pd.DataFrame, pd.DataFrame]:
    from widgets.dashboard import map_traffic

    s = summarize(store, **filters)
    moves = transitions(store, **filters)
    return map_traffic(s, moves), s.funnel, moves


def test_the_map_shows_the_summary_s_numbers(hand_store: EventStore) -> None:
    traffic, funnel, moves = traffic_of(hand_store)
    root = parse_svg(render_svg(dot_source(FLOW, "en", traffic)))
    # hand-computed: goal 5 views, 2 left (S3, S5); phone 3 views, 1 left; done 2 views, none left
    assert "5 views · 2 left (40.0%)" in texts(part(root, "flowmap-node-goal"))
    assert "3 views · 1 left (33.3%)" in texts(part(root, "flowmap-node-phone"))
    assert "7 views · 1 left (14.3%)" in texts(part(root, "flowmap-node-problem"))
    assert "2 views · 0 left (0.0%)" in texts(part(root, "flowmap-node-done"))
    # every step: the summary's funnel, as labels and on hover
    for node, views, exits, drop in zip(funnel["node"], funnel["views"], funnel["exits"],
                                        funnel["drop_off"]):
        g = part(root, f"flowmap-node-{node}")
        numbers = f"{views:,} views · {exits:,} left ({drop:.1%})"
        assert numbers in texts(g) and numbers in tooltip(g)
        fill = next(p.get("fill") for p in g.iter() if p.get("fill") not in (None, "none"))
        band = max((b for b in DROP_OFF_BANDS if drop >= b[0]), key=lambda b: b[0])
        assert fill == band[1], (node, drop, fill)
    # every arrow: the sessions of the transitions table, which are the hand-counted ones
    widths = {}
    for node, option, target, sessions in zip(moves["node"], moves["option"], moves["to"],
                                              moves["sessions"]):
        key = (node, option, target)
        assert sessions == HAND_SESSIONS[key]
        g = part(root, edge_id(key))
        assert f"{sessions} sessions" in texts(g) and f"{sessions} sessions" in tooltip(g)
        widths[key] = float(next(p.get("stroke-width") or 1 for p in g.iter(f"{SVG}path")))
    # width by sessions: the busiest arrows (3 sessions) the widest, unused ones the thinnest
    assert widths[("sign-in", "no", "phone")] == pytest.approx(flowmap.PEN_MAX)
    assert widths[("goal", None, "records")] == pytest.approx(flowmap.PEN_MAX)
    assert widths[("problem", "damaged", "order")] == pytest.approx(flowmap.PEN_MIN)
    assert widths[("describe", None, "channel")] == pytest.approx(
        flowmap.PEN_MIN + (flowmap.PEN_MAX - flowmap.PEN_MIN) * 2 / 3, abs=0.01)


def test_the_map_labels_steps_and_answers_in_the_chosen_language(hand_store: EventStore) -> None:
    traffic, _, _ = traffic_of(hand_store)
    for lang, views in (("ko", "5명 봄"), ("en", "5 views")):
        root = parse_svg(render_svg(dot_source(FLOW, lang, traffic)))
        goal = part(root, "flowmap-node-goal")
        assert " ".join(texts(goal)).startswith(FLOW["goal"].title(lang).split()[0])
        assert any(views in t for t in texts(goal))
        chat = part(root, edge_id(("channel", "chat", "goal")))
        assert FLOW["channel"].option("chat").label(lang) in tooltip(chat)


def test_labels_are_escaped_in_dot_and_in_svg() -> None:
    """A title, an answer and a rule that try to break out of DOT, of the HTML-like label and of
    the SVG: the SVG parses, holds no element they name, and shows them as they were written."""
    data = yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))
    hostile = '</TD></TR></TABLE>> ]; x [label="<script>alert(1)</script>" & \\N \\G\\'
    first = data["nodes"][0]
    first["title"]["en"] = hostile
    first["options"][0]["label"]["en"] = 'a"];b->c;//' + hostile
    flow = build_flow(data)
    dot = dot_source(flow, "en")
    svg = render_svg(dot)
    root = parse_svg(svg)
    assert not [e for e in root.iter() if e.tag.split("}")[-1] in ("script", "foreignObject")]
    assert "<script" not in svg and "alert(1)" in svg
    assert len([g for g in root.iter(f"{SVG}g") if g.get("class") == "node"]) == len(flow.nodes)
    assert len([g for g in root.iter(f"{SVG}g") if g.get("class") == "edge"]) == len(edges(flow))
    g = part(root, f"flowmap-node-{flow.start}")
    assert "".join(texts(g)).replace(" ", "") == hostile.replace(" ", "")
    assert tooltip(g).splitlines()[0] == hostile  # \N and \G stay as written
    html_part = flowmap.svg_for_html(svg)
    assert html_part.startswith("<svg") and "<?xml" not in html_part and "<!--" not in html_part


def test_without_dot_render_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(flowmap.DotMissing, match="apt-get install graphviz"):
        render_svg(dot_source(FLOW))


def test_a_slow_dot_is_stopped(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "dot"
    fake.write_text("#!/bin/sh\nexec /bin/sleep 30\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(flowmap.DotFailed, match="longer than"):
        render_svg(dot_source(FLOW), timeout=1)


# --------------------------------------------------------------------------- the dashboard part


def test_dashboard_map_follows_the_filters_and_downloads_as_svg(sqlite_url: str) -> None:
    from widgets.dashboard import Dashboard

    with open_store(sqlite_url) as store:
        store.write(hand_events())
    board = Dashboard(sqlite_url)
    board.refresh()
    value = board.flowmap.value
    assert "<svg" in value and "5 views · 2 left (40.0%)" in html.unescape(value)
    link = re.search(r'download="(guide-flow-map-labels-en\.svg)" href="data:image/svg\+xml;'
                     r'base64,([^"]+)"', value)
    assert link, value[-800:]
    svg = base64.b64decode(link[2]).decode("utf-8")
    assert svg.startswith("<?xml") and "5 views · 2 left (40.0%)" in texts(
        part(parse_svg(svg), "flowmap-node-goal"))
    assert "guide-transitions-labels-en.csv" in value
    # English sessions only (S2, S4, S7): goal seen by S2 and S4, nobody left there
    board.lang.value = "en"
    root = parse_svg(base64.b64decode(re.search(r'base64,([^"]+)" *>flow-map', board.flowmap.value)
                                      [1]).decode("utf-8"))
    assert "2 views · 0 left (0.0%)" in texts(part(root, "flowmap-node-goal"))
    assert "2 sessions" in texts(part(root, edge_id(("sign-in", "no", "phone"))))
    assert "guide-flow-map-en-labels-en.svg" in board.flowmap.value
    # Korean labels
    board.labels.value = "ko"
    assert html.escape(FLOW["goal"].title("ko").split()[0]) in board.flowmap.value
    assert "2명 봄" in board.flowmap.value


def test_dashboard_map_fails_alone(sqlite_url: str, monkeypatch: pytest.MonkeyPatch,
                                   tmp_path: Path) -> None:
    from widgets import dashboard

    with open_store(sqlite_url) as store:
        store.write(hand_events())
    # no Graphviz: the map part says how to install it; the rest is drawn
    monkeypatch.setenv("PATH", str(tmp_path))
    board = dashboard.Dashboard(sqlite_url)
    board.refresh()
    assert "apt-get install graphviz" in board.flowmap.value and "<svg" not in board.flowmap.value
    assert "<b>7</b>" in board.kpis.value and "<table" in board.tables.children[0].value
    monkeypatch.undo()
    # the transitions cannot be read: the map part's message, the rest is drawn
    monkeypatch.setattr(dashboard.widget, "transitions", lambda *a, **k: 1 / 0)
    board = dashboard.Dashboard(sqlite_url)
    board.refresh()
    assert "dash-failed" in board.flowmap.value and "flow map" in board.flowmap.value
    assert "<b>7</b>" in board.kpis.value and board.status.value == ""


# --------------------------------------------------------------------------- the content review


def test_review_shows_every_screen_side_by_side_every_path_and_the_map() -> None:
    page = review.review_html()
    assert page.count("<svg") == 1 and "flowmap-node-" in html.unescape(page)
    for node in FLOW:
        section = re.search(rf"<section class='review-screen' id='review-{re.escape(node.id)}'>"
                            r"(.*?)</section>", page, re.S)
        assert section, node.id
        for lang in ("ko", "en"):
            assert html.escape(node.title(lang)) in section[1]
            for option in node.options:
                assert html.escape(option.label(lang)) in section[1]
                if option.recap is not None:
                    assert html.escape(option.recap(lang)) in section[1]
            if node.recap is not None:
                assert html.escape(node.recap(lang)) in section[1]
            if node.fine_print is not None:
                assert html.escape(node.fine_print(lang)) in section[1]
        # Korean first, English second
        assert section[1].index("lang='ko'") < section[1].index("lang='en'")
    counts = [len(p) for p in FLOW.paths]
    assert f"{len(FLOW.paths)} paths, from {min(counts)} to {max(counts)} screens" in page
    assert page.count("<tr><td class='num'>") == len(FLOW.paths)
    first = FLOW.paths[0]
    assert f"<td class='num'>1</td><td class='num'>{len(first)}</td>" in page


def test_review_shows_the_current_flow_s_small_print_and_message_openings(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FLOW_ENV, str(DEFAULT_PATH))
    current = load_flow(DEFAULT_PATH)
    page = review.review_html()
    start = current[current.start]
    assert html.escape(start.fine_print("ko")) in page
    for option in start.options:
        assert html.escape(option.opening("en")) in page


def test_review_lists_the_content_checks_findings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "No findings" in review.review_html() or style.check(FLOW)
    finding = style.Finding("order", "title", "ko", "uses the word <b>\"주문\"</b> & more")
    monkeypatch.setattr(style, "check", lambda flow, extra=(): [finding])
    page = review.review_html()
    assert "1 findings." in page and html.escape(finding.message) in page
    assert "<td>order</td><td>title</td><td>ko</td>" in page


def test_review_shows_the_message_and_case_notes_texts_side_by_side() -> None:
    from widgets import messages
    from widgets.flow import section_texts

    page = review.review_html()
    part = page[page.index("메시지와 문의 기록"):]
    texts = list(section_texts(FLOW))
    assert len(texts) > 60
    for _, field, text, _ in texts:
        row = re.search(rf"<tr><td><code>{re.escape(field)}</code></td>(.*?)</tr>", part, re.S)
        assert row, field
        assert (f"<td lang='ko'>{html.escape(text.ko)}</td><td lang='en'>"
                f"{html.escape(text.en)}</td>") == row[1], field
    example = messages.build(messages.MessageInput(escalate=True, **review.EXAMPLE), "en")
    assert html.escape(example) in part and html.escape(messages.texts().lines["supervisor"]("ko")) in part


def test_review_names_the_section_and_key_of_a_broken_text(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    data = yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))
    data["casenotes"]["labels"]["loaded"]["en"] = "Notes loaded: {number}."
    path = tmp_path / "flow.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv(FLOW_ENV, str(path))
    page = review.review_html()
    assert "review-error" in page and "<section" not in page
    assert "<code>casenotes.labels.loaded.en</code>" in page
    assert html.escape("takes the fields {count}, not {number}") in page


def broken_flow(tmp_path: Path) -> tuple[Path, str]:
    """A copy of flow.yaml where one answer leads nowhere, and the loader's message for it."""
    data = yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))
    node = next(n for n in data["nodes"] if len(n.get("options", [])) > 1)
    node["options"][1]["next"] = "nowhere"
    path = tmp_path / "flow.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path, f"node {node['id']!r}, field 'options[1].next': unknown node 'nowhere'"


def test_review_shows_a_flow_error_plainly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, message = broken_flow(tmp_path)
    monkeypatch.setenv(FLOW_ENV, str(path))
    page = review.review_html()
    assert html.escape(message) in page and "review-error" in page
    assert "Traceback" not in page and "<svg" not in page and "<section" not in page
    # and once fixed, the same call shows the review (the file is read again)
    monkeypatch.setenv(FLOW_ENV, str(DEFAULT_PATH))
    assert "review-screen" in review.review_html()


def test_dashboard_map_with_odd_ids_in_the_log(tmp_path: Path) -> None:
    """Rows another writer could leave (ids with markup, formulas, TeX) make moves the flow does
    not have: the map draws the flow's steps only, and the CSV of the moves keeps them as text."""
    from test_dashboard_safety import ODD_IDS, odd_rows, store_with_rows

    from widgets.dashboard import Dashboard

    url = store_with_rows(tmp_path, odd_rows("odd-session"))
    board = Dashboard(url)
    board.refresh()
    value = board.flowmap.value
    assert "<svg" in value and "dash-failed" not in value
    assert "<b>bold" not in value and "HYPERLINK" not in html.unescape(value.split("</svg>")[0])
    csv = re.search(r'download="guide-transitions[^"]*" href="data:text/csv;charset=utf-8;base64,'
                    r'([^"]+)"', value)
    import csv as csv_module
    import io

    cells = [cell for row in csv_module.reader(io.StringIO(base64.b64decode(csv[1]).decode("utf-8-sig")))
             for cell in row]
    assert "'" + ODD_IDS[3] in cells and ODD_IDS[3] not in cells  # made safe, as the other CSV files
    assert ODD_IDS[1] in cells  # as text
