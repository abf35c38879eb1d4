"""The content serves a person in a hurry, on every path of the packaged flow.

* a screen saying how to reach a person (the phone number, or Help → Need more help? →
  Contact us) within the first three screens, whatever the problem;
* preparation (what you want, your records) before the steps of getting in touch, the advice
  for the conversation after them;
* no question asked twice, and no question whose answers all lead to the same thing;
* every final checklist carries the phone number (and that the line is in English) and the
  Help → Need more help? → Contact us route;
* one voice per language: the glossary's words, the speech levels (widgets/style.py);
* the progress total never grows (tests/test_engine.py checks it on every path).

What is checked is read from the flow: outline ids (``covers``), the glossary and the texts; no
rule here names a step.
"""

from __future__ import annotations

import statistics

import pytest

from conftest import FLOW_2024
from widgets import casenotes, messages
from widgets.engine import Engine
from widgets.flow import Flow, FlowError, default_flow, load_flow, section_texts
from widgets.style import LABEL, SAY, VOICE, Finding, check

FLOW = default_flow()
TERMS = {term.id: term for term in FLOW.glossary}
PHONE = TERMS["phone-number"].ko
ROUTE = [TERMS[t].en for t in ("help-button", "need-more-help-button", "contact-us-button")]
PREPARE = {"m2.know-goal", "m2.gather-records"}
GET_IN_TOUCH = {"m1.help", "m1.need-more-help", "m1.select-order", "m1.contact-method"}
CONVERSATION = {"m2.fair-solution", "m2.be-kind", "m2.escalate", "tip.patience"}


def says_how_to_reach_a_person(flow: Flow, node_id: str, lang: str) -> bool:
    body = flow[node_id].body(lang)
    return PHONE in body or all(label in body for label in ROUTE)


def walk(flow: Flow, path) -> Engine:
    engine = Engine(flow)
    for node_id, choice in path[:-1]:
        assert engine.node.id == node_id
        engine.choose(choice) if choice else engine.advance()
    return engine


def screens_to_reach(flow: Flow) -> dict[str, int]:
    """The most screens, from the start, to the first one saying how to reach a person, per
    answer to the first question."""
    worst: dict[str, int] = {}
    for path in flow.paths:
        first = next(i for i, (n, _) in enumerate(path, 1)
                     if all(says_how_to_reach_a_person(flow, n, lang) for lang in ("ko", "en")))
        worst[path[0][1]] = max(worst.get(path[0][1], 0), first)
    return worst


@pytest.mark.parametrize("path", FLOW.paths, ids=lambda p: "-".join(c or "" for _, c in p if c))
def test_a_way_to_reach_a_person_within_three_screens(path):
    screens = [n for n, _ in path]
    first = next((i for i, n in enumerate(screens, 1)
                  if all(says_how_to_reach_a_person(FLOW, n, lang) for lang in ("ko", "en"))),
                 None)
    assert first is not None and first <= 3, screens
    # and the screen that gives both ways (the number and the route) comes by the third too
    both = next(i for i, n in enumerate(screens, 1)
                if PHONE in FLOW[n].body("en") and all(l in FLOW[n].body("en") for l in ROUTE))
    assert both <= 3, screens


def test_the_check_counts_screens_as_the_2024_flow_had_them():
    """The 2024 flow showed the route (Help → … → Contact us) only after the order and
    sign-in questions: the measure sees it."""
    old = load_flow(FLOW_2024)
    both = [next((i for i, (n, _) in enumerate(p, 1)
                  if PHONE in old[n].body("en") and all(l in old[n].body("en") for l in ROUTE)),
                 None) for p in old.paths]
    assert any(b is None or b > 3 for b in both)


@pytest.mark.parametrize("path", FLOW.paths, ids=lambda p: "-".join(c or "" for _, c in p if c))
def test_preparation_first_then_getting_in_touch_then_the_conversation(path):
    order = [set(FLOW[n].covers) for n, _ in path]

    def positions(ids):
        return [i for i, covers in enumerate(order) if covers & ids]

    prepare, touch, talk = positions(PREPARE), positions(GET_IN_TOUCH), positions(CONVERSATION)
    assert prepare and talk, "every path prepares and advises on the conversation"
    assert max(prepare) < min(touch + talk)
    if touch:
        assert max(touch) < min(talk)


@pytest.mark.parametrize("path", FLOW.paths, ids=lambda p: "-".join(c or "" for _, c in p if c))
def test_no_question_twice(path):
    asked = [n for n, c in path if c is not None]
    assert len(asked) == len(set(asked))


def test_every_answer_changes_what_follows():
    """Two answers of one question differ in where they lead, in the checklist or in the
    message: otherwise the question need not be asked."""
    for node in FLOW:
        seen = set()
        for option in node.options:
            effect = (repr(option.next), option.recap, option.opening, option.want,
                      option.escalate)
            assert effect not in seen, (node.id, option.id)
            seen.add(effect)


@pytest.mark.parametrize("path", FLOW.paths, ids=lambda p: "-".join(c or "" for _, c in p if c))
def test_every_checklist_has_the_number_and_the_route(path):
    engine = walk(FLOW, path)
    assert engine.finished
    for lang, english in (("ko", "영어"), ("en", "English")):
        engine.set_language(lang)
        recap = engine.recap()
        phone = [line for line in recap if PHONE in line]
        assert phone and english in phone[0], recap
        route = [line for line in recap if all(label in line for label in ROUTE)]
        assert route, recap


def test_the_2024_checklists_missed_the_number():
    old = load_flow(FLOW_2024)
    missing = [p for p in old.paths if not any(PHONE in line for line in walk(old, p).recap())]
    assert missing


# ------------------------------------------------------------------ voice and glossary


def test_the_checks_read_every_text_of_the_message_and_the_case_notes():
    """Every text the message builder and the case notes show is among the checked texts
    (flow.yaml's messages: and casenotes:; the outcome texts are ui: texts), each once."""
    read = list(style.texts(FLOW))
    keys = [(node, field) for node, field, _, _ in read]
    assert len(keys) == len(set(keys))  # every text exactly once
    sections = [entry for entry in read if entry[0] is None
                and entry[1].startswith(("messages.", "casenotes."))]
    assert sections == list(section_texts(FLOW))
    checked = {text for _, _, text, _ in sections}
    words, notes = messages.texts(FLOW), casenotes.texts(FLOW)
    shown = [*(want.label for want in words.wants.values()),
             *(want.request for want in words.wants.values()), *words.labels.values(),
             *words.lines.values(), notes.title, *notes.headers.values(),
             *notes.channels.values(), *notes.reasons.values(),
             *(text for key, text in casenotes.labels(FLOW).items() if key != "full")]
    assert shown and all(text in checked for text in shown)
    fields = {field for _, field, _, _ in sections}
    assert {"messages.lines.order_line", "casenotes.labels.full", "casenotes.channels.chat"} <= fields


def test_the_sections_are_read_as_the_checks_name_their_readings():
    from widgets.flow import texts

    assert (texts.VOICE, texts.SAY, texts.LABEL) == (VOICE, SAY, LABEL)


def test_one_voice_and_the_glossary_everywhere():
    findings = check(FLOW)
    assert not findings, "\n".join(map(str, findings))


def test_the_checks_find_what_the_2024_text_got_wrong():
    old = load_flow(FLOW_2024)
    with_glossary = Flow(start=old.start, nodes=old.nodes, outline=old.outline, ui=old.ui,
                         paths=old.paths, glossary=FLOW.glossary)
    found = [str(f) for f in check(with_glossary)]
    assert any("'추적 번호'" in f for f in found)          # the reference number
    assert any("'tracking number'" in f for f in found)
    assert any("잖아요" in f for f in found)                # pushy
    assert any("해요체" in f and "node 'records'" in f for f in found)  # 합쇼체 in the voice
    assert any("'manager'" in f for f in found)


@pytest.mark.parametrize("text, reading, expected", [
    ("전화하세요. 상담은 영어로 합니다.", VOICE, "해요체"),
    ("> 도와주셔서 감사해요.", VOICE, "합쇼체"),
    ("기록을 모으기", "item", None),
    ("기록을 모아요.", "item", "phrase"),
    ("**Contact us**를 누르세요.", VOICE, "gloss"),
    ("**Contact us**(문의하기)를 누르고, 다시 **Contact us**를 누르세요.", VOICE, None),
    ("당신의 주문이에요.", VOICE, "당신"),
])
def test_the_rules_one_by_one(text, reading, expected):
    from widgets.flow import Text

    found = check(Flow(start=FLOW.start, nodes={}, outline=(), ui={}, paths=(),
                       glossary=FLOW.glossary), extra=[(None, "x", Text(ko=text, en="x"), reading)])
    if expected is None:
        assert found == []
    else:
        assert any(expected in f.message for f in found), found


def test_a_finding_names_node_and_field():
    assert str(Finding("ready", "body", "ko", "says 'x'")) == \
        "node 'ready', field 'body' (ko): says 'x'"


# ------------------------------------------------------------------ the numbers for the notes


def shape(flow: Flow) -> dict:
    lengths = sorted(len(p) for p in flow.paths)
    return {"paths": len(flow.paths), "screens": (lengths[0], statistics.median(lengths),
                                                   lengths[-1]),
            "to_reach": screens_to_reach(flow)}


def test_the_flow_is_shorter_than_in_2024():
    new, old = shape(FLOW), shape(load_flow(FLOW_2024))
    assert new["screens"][2] < old["screens"][2] and new["screens"][1] < old["screens"][1]
    assert max(new["to_reach"].values()) <= 3


# ------------------------------------------------------------------ what to say, in English


from widgets import style  # noqa: E402


def answers_of(path) -> dict[str, str]:
    return {node_id: choice for node_id, choice in path if choice is not None}


def test_every_phrase_has_both_languages_and_a_plain_english_line():
    assert FLOW.phrases
    for phrase in FLOW.phrases:
        assert phrase.en.strip() and phrase.ko.strip(), phrase.id
        assert not list(style.english_line(phrase.en)), phrase.id


def test_no_korean_phrase_to_say_without_its_english_line():
    """A "> " line in a text is a phrase to say given in one language only; every phrase to
    say is in phrases: (English line and Korean meaning)."""
    for node, field, text, _ in style.texts(FLOW):
        for lang in ("ko", "en"):
            assert not any(line.strip().startswith("> ") for line in text(lang).splitlines()), \
                (node, field, lang)


@pytest.mark.parametrize("path", FLOW.paths, ids=lambda p: "-".join(c or "" for _, c in p if c))
def test_every_screen_that_says_what_to_say_shows_the_english_line(path):
    """On every path, each step with ``say:`` has phrases to show, and the Korean screen shows
    each English line in its own element with lang="en", its Korean meaning under it."""
    from widgets.view import phrases_markup

    engine = walk(FLOW, path)
    stages_said = set()
    for i, (node_id, choice) in enumerate(path):
        node = FLOW[node_id]
        phrases = FLOW.phrases_for(answers_of(path[:i]), node.say)
        assert bool(phrases) == bool(node.say), node_id
        stages_said |= {p.stage for p in phrases}
    assert {"opening", "request", "reference", "supervisor"} <= stages_said
    engine.set_language("ko")
    html_ko = phrases_markup(engine)
    for phrase in FLOW.phrases_for(engine.choices, engine.node.say):
        en = phrase.en.replace("'", "&#x27;")
        assert f"lang='en'" in html_ko and en in html_ko and phrase.ko in html_ko
    engine.set_language("en")
    assert all(p.ko not in phrases_markup(engine)
               for p in FLOW.phrases_for(engine.choices, engine.node.say))


@pytest.mark.parametrize("path", FLOW.paths, ids=lambda p: "-".join(c or "" for _, c in p if c))
def test_every_checklist_has_the_name_and_reference_line(path):
    engine = walk(FLOW, path)
    for lang in ("ko", "en"):
        engine.set_language(lang)
        agent, number = getattr(TERMS["agent"], lang), getattr(TERMS["reference-number"], lang)
        lines = engine.recap()
        assert any(agent in line and number in line for line in lines), (lang, lines)
    said = FLOW.phrases_for(engine.choices, engine.node.say)
    assert any(p.stage == "reference" and "name" in p.en and TERMS["reference-number"].en in p.en
               for p in said)


def test_the_2024_checklists_missed_the_name_and_reference_line():
    old = load_flow(FLOW_2024)
    missing = [p for p in old.paths
               if not any(TERMS["agent"].ko in line and TERMS["reference-number"].ko in line
                          for line in walk(old, p).recap())]
    assert missing


@pytest.mark.parametrize("path", FLOW.paths, ids=lambda p: "-".join(c or "" for _, c in p if c))
def test_nothing_an_answer_ruled_out_is_shown_later_on_its_path(path):
    """e.g. no order confirmations, receipts or "your order" after "not about an order"."""
    findings = style.ruled_out(FLOW, path)
    assert not findings, "\n".join(map(str, findings))


def test_an_answer_rules_out_order_records():
    subject = FLOW[FLOW.role_nodes("subject")[0]]
    assert any("order confirmation" in o.rules_out.get("en", ()) for o in subject.options)


def test_the_ruled_out_check_finds_order_records_on_the_path_that_ruled_them_out():
    """Send the answer that rules out order records to where the other answers go (as the
    guide did before): the check finds the contradiction."""
    import yaml

    from widgets.flow import DEFAULT_PATH, build_flow

    data = yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))
    subject = next(n for n in data["nodes"] if "subject" in n.get("roles", []))
    ruling = next(o for o in subject["options"] if o.get("rules_out"))
    ruling["next"] = next(o["next"] for o in subject["options"] if o is not ruling)
    while True:  # drop the steps no longer reached
        try:
            flow = build_flow(data)
            break
        except FlowError as exc:
            assert "unreachable" in exc.message
            data["nodes"] = [n for n in data["nodes"] if n["id"] != exc.node]
    assert any(style.ruled_out(flow, p) for p in flow.paths)
