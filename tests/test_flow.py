"""The flow file: validation errors name the node and field; the real flow is complete.

The loader's tests break a copy of the guide's 2024 flow (``tests/fixtures``), so that they
keep testing the loader whatever the current content is; the tests of the real flow read the
packaged flow.yaml."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from conftest import FLOW_2024
from widgets import style
from widgets.flow import (DEFAULT_PATH, STAGES, FlowError, build_flow, default_flow, load_flow,
                          parse_flow)

ROOT = Path(__file__).resolve().parents[1]
HANGUL = re.compile(r"[\uac00-\ud7a3]")


@pytest.fixture()
def data():
    return yaml.safe_load(FLOW_2024.read_text(encoding="utf-8"))


def node(data, node_id):
    return next(n for n in data["nodes"] if n["id"] == node_id)


def error_of(data) -> FlowError:
    with pytest.raises(FlowError) as info:
        build_flow(data)
    return info.value


# ------------------------------------------------------------------ malformed files


def test_unknown_next(data):
    node(data, "help")["next"] = "hepl"
    err = error_of(data)
    assert (err.node, err.field) == ("help", "next")
    assert "unknown node 'hepl'" in str(err) and "node 'help'" in str(err)


def test_unknown_next_in_an_option(data):
    node(data, "phone")["options"][1]["next"] = "nowhere"
    err = error_of(data)
    assert (err.node, err.field) == ("phone", "options[1].next")


def test_unknown_next_in_a_rule(data):
    node(data, "need-more-help")["next"][0]["to"] = "nowhere"
    err = error_of(data)
    assert (err.node, err.field) == ("need-more-help", "next[0]")


def test_rule_naming_an_unknown_option(data):
    node(data, "need-more-help")["next"][0]["when"] = {"order": ["maybe"]}
    err = error_of(data)
    assert err.node == "need-more-help" and err.field == "next[0].when.order"
    assert "maybe" in str(err)


def test_unreachable_node(data):
    extra = copy.deepcopy(node(data, "patience"))
    extra["id"] = "orphan"
    data["nodes"].append(extra)
    err = error_of(data)
    assert (err.node, err.field) == ("orphan", "id")
    assert "unreachable" in str(err)


def test_choice_without_options_has_no_way_forward(data):
    node(data, "channel")["options"] = []
    err = error_of(data)
    assert (err.node, err.field) == ("channel", "options")
    assert "no way forward" in str(err)


def test_info_without_next_has_no_way_forward(data):
    del node(data, "records")["next"]
    err = error_of(data)
    assert (err.node, err.field) == ("records", "next")


def test_end_with_next_is_refused(data):
    node(data, "done")["next"] = "problem"
    err = error_of(data)
    assert (err.node, err.field) == ("done", "next")


def test_missing_translation(data):
    del node(data, "goal")["body"]["en"]
    err = error_of(data)
    assert (err.node, err.field) == ("goal", "body.en")
    assert "missing or empty 'en' translation" in str(err)


def test_empty_translation(data):
    node(data, "channel")["options"][2]["label"]["ko"] = "   "
    err = error_of(data)
    assert (err.node, err.field) == ("channel", "options[2].label.ko")


def test_missing_interface_translation(data):
    data["ui"]["back"] = {"ko": "이전"}
    err = error_of(data)
    assert err.field == "ui.back.en"


def test_duplicate_node_id(data):
    twin = copy.deepcopy(node(data, "goal"))
    data["nodes"].append(twin)
    err = error_of(data)
    assert (err.node, err.field) == ("goal", "id")
    assert "duplicate" in str(err)


def test_duplicate_option_id(data):
    options = node(data, "channel")["options"]
    options[1]["id"] = options[0]["id"]
    err = error_of(data)
    assert (err.node, err.field) == ("channel", "options[1].id")


def test_duplicate_yaml_key_is_refused():
    text = DEFAULT_PATH.read_text(encoding="utf-8").replace(
        "    kind: info\n", "    kind: info\n    kind: info\n", 1)
    with pytest.raises(FlowError, match="duplicate key 'kind'"):
        parse_flow(text, source="flow.yaml")


def test_unknown_outline_id(data):
    node(data, "goal")["covers"] = ["m2.know-goal", "m9.teleport"]
    err = error_of(data)
    assert (err.node, err.field) == ("goal", "covers[1]")
    assert "m9.teleport" in str(err)


def test_outline_id_covered_by_no_node(data):
    node(data, "patience")["covers"] = []
    err = error_of(data)
    assert err.field == "outline" and "tip.patience" in str(err)


def test_loop_is_refused(data):
    node(data, "patience")["next"] = "goal"
    node(data, "done")  # still present but now unreachable too; the loop is found first
    err = error_of(data)
    assert "loop" in str(err)


def test_unknown_kind(data):
    node(data, "goal")["kind"] = "quiz"
    err = error_of(data)
    assert (err.node, err.field) == ("goal", "kind")


def test_last_rule_must_be_unconditional(data):
    node(data, "need-more-help")["next"][1]["when"] = {"order": ["no"]}
    err = error_of(data)
    assert (err.node, err.field) == ("need-more-help", "next[1]")


def test_bad_yaml_names_the_file(tmp_path):
    bad = tmp_path / "flow.yaml"
    bad.write_text("nodes: [\n", encoding="utf-8")
    with pytest.raises(FlowError, match=re.escape(str(bad))):
        load_flow(bad)


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(FlowError, match="cannot read"):
        load_flow(tmp_path / "absent.yaml")


def test_errors_from_a_file_name_the_file_node_and_field(tmp_path, data):
    node(data, "help")["next"] = "hepl"
    path = tmp_path / "flow.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(FlowError) as info:
        load_flow(path)
    assert str(info.value).startswith(f"{path}, node 'help', field 'next': unknown node")


# ------------------------------------------------------------------ the real flow


def outline_ids() -> list[str]:
    text = (ROOT / "docs" / "source" / "outline.md").read_text(encoding="utf-8")
    return re.findall(r"^\| `([a-z0-9.-]+)` \|", text, flags=re.M)


def test_flow_outline_is_the_articles_outline():
    ids = outline_ids()
    assert len(ids) == 12 and ids[0] == "intro" and ids[-1] == "tip.patience"
    assert list(default_flow().outline) == ids


def test_every_path_ends_at_an_end_node():
    flow = default_flow()
    assert len(flow.paths) > 10
    for path in flow.paths:
        assert flow[path[-1][0]].kind == "end"
        assert all(flow[n].kind != "end" for n, _ in path[:-1])


def test_every_outline_id_is_reachable_in_both_languages():
    flow = default_flow()
    reached = {oid for path in flow.paths for n, _ in path for oid in flow[n].covers}
    assert reached == set(outline_ids())
    for oid in outline_ids():
        nodes = [n for n in flow if oid in n.covers]
        for lang in ("ko", "en"):
            assert any(n.body(lang) and n.title(lang) for n in nodes), (oid, lang)


def test_decisions_the_guide_must_offer():
    flow = default_flow()
    assert set(flow["problem"].option_ids) == {"return", "refund", "late", "damaged", "wrong",
                                               "service", "again"}
    assert set(flow["reach"].option_ids) == {"call", "online"}
    assert set(flow["channel"].option_ids) == {"email", "phone", "chat"}


def test_korean_has_hangul_and_english_has_none():
    for node, field, text, _ in style.texts(default_flow()):
        where = f"{node or ''}.{field}"
        assert HANGUL.search(text.ko), f"{where}: Korean text without Hangul"
        if field == "fine_print":
            continue  # it names the source article by its Korean title
        assert not HANGUL.search(text.en), f"{where}: Hangul in the English text"


def test_facts_of_the_article_are_kept():
    flow = default_flow()
    for lang in ("ko", "en"):
        body = lambda node_id: flow[node_id].body(lang)  # noqa: E731
        assert "+1 206 266 2992" in body("problem") and "+1 206 266 2992" in body("reach")
        for label in ("Help", "Need more help?", "Contact us"):
            assert label in body("reach") and label in body("help")
        assert "2024" in flow["problem"].fine_print(lang)
    # the article's example phrases are phrases to say, in English, on the conversation screens
    said = " ".join(p.en for path in flow.paths for node_id, _ in path
                    for p in flow.phrases_for({n: c for n, c in path if c}, flow[node_id].say))
    for words in ("sort this out fairly", "I'm not blaming you", "isn't your fault",
                  "resolve it fairly", "someone else who can help me with this",
                  "really happy with Amazon so far", "Thank you for your help so far"):
        assert words in said, words


def test_every_answer_to_the_subject_opens_the_message():
    flow = default_flow()
    (subject,) = flow.role_nodes("subject")
    for option in flow[subject].options:
        assert option.opening is not None and option.want in flow.messages.wants, option.id


def test_opening_and_want_belong_to_the_subject(data):
    node(data, "channel")["options"][0]["want"] = "refund"
    err = error_of(data)
    assert (err.node, err.field) == ("channel", "options[0].want")
    assert "role 'subject'" in str(err)


def test_want_must_be_known(data):
    node(data, "problem")["options"][0]["want"] = "cash"
    err = error_of(data)
    assert (err.node, err.field) == ("problem", "options[0].want")
    assert "'cash'" in str(err)


def test_fine_print_needs_both_languages(data):
    node(data, "problem")["fine_print"] = {"ko": "출처"}
    err = error_of(data)
    assert (err.node, err.field) == ("problem", "fine_print.en")


@pytest.mark.parametrize("entry, field, message", [
    ({"id": "x", "ko": "가"}, "glossary[0].en", "missing or empty 'en'"),
    ({"id": "Bad Id", "ko": "가", "en": "a"}, "glossary[0].id", "invalid term id"),
    ({"id": "x", "ko": "가", "en": "a", "button": "yes"}, "glossary[0].button", "true or false"),
    ({"id": "x", "ko": "가", "en": "a", "avoid": {"fr": ["b"]}}, "glossary[0].avoid", "language"),
    ({"id": "x", "ko": "가", "en": "a", "avoid": {"en": "b"}}, "glossary[0].avoid.en", "list"),
    ({"id": "x", "ko": "가", "en": "a", "gloss": "b"}, "glossary[0].gloss", "unknown key"),
])
def test_malformed_glossary(data, entry, field, message):
    data["glossary"] = [entry]
    err = error_of(data)
    assert err.field == field and message in str(err)


def test_a_term_given_twice(data):
    data["glossary"] = [{"id": "x", "ko": "가", "en": "a"}, {"id": "x", "ko": "나", "en": "b"}]
    err = error_of(data)
    assert err.field == "glossary[1].id" and "duplicate" in str(err)


# ------------------------------------------------------------------ roles and demo data


def test_the_packaged_flow_declares_its_roles():
    flow = default_flow()
    assert flow.role_nodes("contact") == ("reach", "channel")
    assert flow.role_nodes("path") == ("problem", "reach")
    assert flow.role_nodes("subject") == ("problem",)
    assert flow.role_nodes("message") == ("channel", "done")
    assert flow.role_nodes("outcome") == ()  # never asked before contact
    assert flow.role_nodes("callsheet") == ("done",)
    assert flow.role_nodes("followup") == ("done",)
    assert flow.role_nodes("escalation") == ("escalate",)
    assert flow["channel"].roles == frozenset({"contact", "message"})
    assert [o.id for o in flow["problem"].options if o.escalate] == ["again"]
    assert flow["channel"].option("chat").weight == 45.0
    assert flow["ready"].roles == frozenset() and flow["done"].drop_off is None


def test_role_nodes_refuses_an_unknown_role():
    with pytest.raises(ValueError, match="unknown role 'channel'"):
        default_flow().role_nodes("channel")


def test_role_nodes_follow_the_node_order(data):
    node(data, "helped")["roles"] = ["path"]
    flow = build_flow(data)
    assert flow.role_nodes("path") == ("problem", "order", "helped")


@pytest.mark.parametrize("node_id, roles, field, message", [
    ("goal", ["contakt"], "roles[0]", "unknown role 'contakt'"),
    ("goal", "contact", "roles", "must be a list of role names"),
    ("goal", ["contact"], "roles[0]", "only a decision (kind: choice) can have the role 'contact'"),
    ("done", ["message", "path"], "roles[1]", "only a decision"),
    ("records", ["subject"], "roles[0]", "only a decision"),
    ("channel", ["message", "message"], "roles[1]", "twice"),
    ("goal", [None], "roles[0]", "unknown role None"),
])
def test_malformed_roles(data, node_id, roles, field, message):
    node(data, node_id)["roles"] = roles
    err = error_of(data)
    assert (err.node, err.field) == (node_id, field)
    assert message in str(err) and f"node {node_id!r}" in str(err)


def test_a_single_role_given_twice(data):
    node(data, "order")["roles"] = ["subject"]
    err = error_of(data)
    assert (err.node, err.field) == ("order", "roles")
    assert "'subject' is already on node 'problem'" in str(err)


@pytest.mark.parametrize("value", [0, -3, "heavy", True, None, float("nan"), float("inf"), [1]])
def test_a_weight_must_be_a_positive_number(data, value):
    node(data, "channel")["options"][2]["weight"] = value
    err = error_of(data)
    assert (err.node, err.field) == ("channel", "options[2].weight")
    assert "positive number" in str(err)


def test_a_weight_defaults_to_one(data):
    del node(data, "channel")["options"][2]["weight"]
    node(data, "channel")["options"][0]["weight"] = 2.5
    flow = build_flow(data)
    assert [o.weight for o in flow["channel"].options] == [2.5, 31.0, 1.0]


@pytest.mark.parametrize("value", ["yes", 1, 0, None, "true"])
def test_escalate_must_be_a_boolean(data, value):
    node(data, "helped")["options"][2]["escalate"] = value
    err = error_of(data)
    assert (err.node, err.field) == ("helped", "options[2].escalate")
    assert "true or false" in str(err)


def test_escalate_follows_the_data(data):
    node(data, "helped")["options"][1]["escalate"] = False
    node(data, "sign-in")["options"][1]["escalate"] = True
    flow = build_flow(data)
    assert not flow.escalates({"helped": "no"})
    assert flow.escalates({"problem": "late", "sign-in": "no"})
    assert not flow.escalates({"sign-in": "yes", "nowhere": "no"})


@pytest.mark.parametrize("value", [1, 1.5, -0.1, "often", True])
def test_drop_off_must_be_a_probability(data, value):
    node(data, "goal")["drop_off"] = value
    err = error_of(data)
    assert (err.node, err.field) == ("goal", "drop_off")
    assert "probability" in str(err)


def test_a_copied_flow_file_loads(tmp_path):
    copy_path = tmp_path / "flow.yaml"
    copy_path.write_text(DEFAULT_PATH.read_text(encoding="utf-8").replace(
        "roles: [contact, message]", "roles: [message]"), encoding="utf-8")
    flow = load_flow(copy_path)
    assert flow.role_nodes("contact") == ("reach",)
    assert default_flow().role_nodes("contact") == ("reach", "channel")


# ------------------------------------------------------------------ phrases to say


@pytest.fixture()
def current():
    return yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))


def phrase(data, phrase_id):
    return next(p for p in data["phrases"] if p["id"] == phrase_id)


@pytest.mark.parametrize("change, field, message", [
    (lambda p: p.update(stage="goodbye"), "phrases.{id}.stage", "unknown stage"),
    (lambda p: p.pop("en"), "phrases.{id}.en", "missing or empty 'en'"),
    (lambda p: p.update(ko=" "), "phrases.{id}.ko", "missing or empty 'ko'"),
    (lambda p: p.update(when={"ready": ["x"]}), "phrases.{id}.when", "not a decision node"),
    (lambda p: p.update(when={"problem": ["lost"]}), "phrases.{id}.when.problem",
     "has no option 'lost'"),
    (lambda p: p.update(when=[{"reach": ["call"]}, {"channel": ["fax"]}]),
     "phrases.{id}.when[1].channel", "has no option 'fax'"),
    (lambda p: p.update(tone="warm"), "phrases.{id}.tone", "unknown key"),
])
def test_a_malformed_phrase_is_named_with_its_field(current, change, field, message):
    target = current["phrases"][0]
    change(target)
    error = error_of(current)
    assert error.field == field.format(id=target["id"]) and message in error.message
    assert target["id"] in str(error)


def test_a_phrase_given_twice(current):
    current["phrases"].append(dict(current["phrases"][0]))
    error = error_of(current)
    assert "duplicate phrase id" in error.message


@pytest.mark.parametrize("say, field, message", [
    (["opening", "smalltalk"], "say[1]", "unknown stage 'smalltalk'"),
    (["opening", "opening"], "say", "twice"),
    ("opening", "say", "must be a list"),
])
def test_a_node_saying_an_unknown_stage(current, say, field, message):
    target = next(n for n in current["nodes"] if n.get("say"))
    target["say"] = say
    error = error_of(current)
    assert (error.node, error.field) == (target["id"], field) and message in error.message


def test_phrases_for_a_path_come_in_call_order():
    flow = default_flow()
    for path in flow.paths:
        answers = {n: c for n, c in path if c}
        said = flow.phrases_for(answers)
        order = [STAGES.index(p.stage) for p in said]
        assert order == sorted(order)
        assert all(p.applies(answers) for p in said)
        assert flow.phrases_for(answers, ["supervisor"]) == [p for p in said
                                                             if p.stage == "supervisor"]
    with pytest.raises(ValueError):
        flow.phrases_for({}, ["goodbye"])


def test_a_flow_without_phrases_still_loads(data):
    assert load_flow(FLOW_2024).phrases == ()
