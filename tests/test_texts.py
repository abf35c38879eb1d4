"""The texts of the ready-to-send message and of the case notes live in flow.yaml (``messages:``,
``casenotes:``), checked by the loader like the steps' texts: a missing or unknown key, a
missing language, a ``{field}`` the code does not fill in, is refused with the section and the
key named. The code reads them from the flow: a wording change, or a new thing to ask for, is
an edit of flow.yaml alone.
"""

from __future__ import annotations

import ast
import dataclasses
import copy
from pathlib import Path

import pytest
import yaml

from conftest import FLOW_2024
from widgets import casenotes, messages
from widgets.flow import DEFAULT_PATH, FlowError, Text, build_flow, default_flow, load_flow
from widgets.flow import texts as flow_texts

ROOT = Path(__file__).resolve().parents[1]
PACKAGED = yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))


@pytest.fixture()
def data() -> dict:
    return copy.deepcopy(PACKAGED)


def error_of(data: dict) -> FlowError:
    with pytest.raises(FlowError) as info:
        build_flow(data)
    return info.value


# ------------------------------------------------------------------ what the loader refuses


@pytest.mark.parametrize("edit, field, message", [
    (lambda d: d["messages"]["lines"].pop("thanks"), "messages.lines.thanks", "missing text"),
    (lambda d: d["messages"]["lines"].update(bye={"ko": "안녕히", "en": "Bye"}),
     "messages.lines.bye", "unknown text"),
    (lambda d: d["messages"]["labels"]["copy"].pop("ko"), "messages.labels.copy.ko",
     "missing or empty 'ko'"),
    (lambda d: d["messages"]["labels"]["copy"].update(ko="  "), "messages.labels.copy.ko",
     "missing or empty 'ko'"),
    (lambda d: d["messages"]["labels"]["copy"].update(fr="Copier"), "messages.labels.copy",
     "unknown language 'fr'"),
    (lambda d: d["messages"].pop("labels"), "messages.labels", "missing"),
    (lambda d: d["messages"].update(footer={}), "messages.footer", "unknown key 'footer'"),
    (lambda d: d.update(messages=["x"]), "messages", "must be a mapping"),
    (lambda d: d["messages"]["lines"]["order_line"].update(en="Order: {order}"),
     "messages.lines.order_line.en", "takes the fields {order_number}, not {order}"),
    (lambda d: d["messages"]["lines"]["order_line"].update(ko="주문 번호"),
     "messages.lines.order_line.ko", "takes the fields {order_number}, not none"),
    (lambda d: d["messages"]["lines"]["thanks"].update(en="Thanks {name}"),
     "messages.lines.thanks.en", "takes the fields none, not {name}"),
    (lambda d: d["messages"]["lines"]["thanks"].update(en="Thanks {"),
     "messages.lines.thanks.en", "a brace out of place"),
    (lambda d: d["casenotes"]["labels"]["full"].update(ko="기록은 200개까지"),
     "casenotes.labels.full.ko", "takes the fields {limit}"),
    (lambda d: d["casenotes"]["reasons"].pop("too_many"), "casenotes.reasons.too_many",
     "missing text"),
    (lambda d: d["casenotes"]["headers"].pop("agent"), "casenotes.headers.agent", "missing text"),
    (lambda d: d["casenotes"]["channels"].clear(), "casenotes.channels", "at least one"),
    (lambda d: d["casenotes"]["channels"].update({"Fax Line": {"ko": "팩스", "en": "Fax"}}),
     "casenotes.channels.Fax Line", "not a valid id"),
    (lambda d: d["casenotes"].pop("title"), "casenotes.title", "missing"),
])
def test_a_broken_text_is_refused_naming_section_and_key(data, edit, field, message):
    edit(data)
    error = error_of(data)
    assert error.node is None and error.field == field and message in error.message, str(error)
    assert f"field {field!r}" in str(error)


@pytest.mark.parametrize("edit, field, message", [
    (lambda w: w.append({"id": "information", "label": {"ko": "가", "en": "a"},
                         "request": {"ko": "가", "en": "a"}}),
     "messages.wants.information.id", "duplicate want id"),
    (lambda w: w[0].update(default=True), "messages.wants", "not 2"),
    (lambda w: w[-1].pop("default"), "messages.wants", "not 0"),
    (lambda w: w[0].update(default="yes"), "messages.wants.return.default", "true or false"),
    (lambda w: w[0].pop("request"), "messages.wants.return.request", "every language"),
    (lambda w: w[0].update(price=3), "messages.wants.return.price", "unknown key 'price'"),
    (lambda w: w[0].update(id="A return"), "messages.wants[0].id", "invalid want id"),
    (lambda w: w.clear(), "messages.wants", "at least one"),
])
def test_a_broken_want_is_refused(data, edit, field, message):
    edit(data["messages"]["wants"])
    error = error_of(data)
    assert error.field == field and message in error.message, str(error)


def test_an_answer_can_ask_only_for_a_listed_want(data):
    subject = next(n for n in data["nodes"] if "subject" in n.get("roles", []))
    subject["options"][0]["want"] = "revenge"
    error = error_of(data)
    assert (error.node, error.field) == (subject["id"], "options[0].want")
    assert "'information'" in error.message and "'revenge'" in error.message


def test_a_flow_file_without_the_sections_uses_the_packaged_texts():
    old = load_flow(FLOW_2024)
    assert old.messages == default_flow().messages and old.casenotes == default_flow().casenotes
    assert "messages" not in yaml.safe_load(FLOW_2024.read_text(encoding="utf-8"))


# ------------------------------------------------------------------ the code reads the data


def test_the_columns_of_the_case_notes_are_the_headers_the_loader_asks_for():
    assert casenotes.COLUMNS == flow_texts.NOTE_COLUMNS == tuple(casenotes.texts().headers)


def test_the_modules_read_the_texts_of_the_flow_they_are_given():
    texts = default_flow().messages
    assert messages.texts() is texts and messages.MessageInput().want == texts.default_want
    notes = default_flow().casenotes
    assert casenotes.texts() is notes
    labels = casenotes.labels()
    assert labels["full"] == notes.labels["full"].format(limit=casenotes.MAX_ROWS)
    assert str(casenotes.MAX_ROWS) in labels["full"]("ko")
    assert all(labels[key] is text for key, text in notes.labels.items() if key != "full")
    # no second home of the packaged flow's texts: a flow file's own are read through it
    for module, name in ((messages, "WANTS"), (messages, "LABELS"), (casenotes, "LABELS"),
                         (casenotes, "HEADERS")):
        with pytest.raises(AttributeError):
            getattr(module, name)
    flow = dataclasses.replace(default_flow(), casenotes=dataclasses.replace(
        notes, title=Text(ko="기록", en="Records"),
        channels={**notes.channels, "chat": Text(ko="대화", en="Talk")},
        reasons={**notes.reasons, "not_text": Text(ko="글이 아니에요.", en="Not words.")}))
    assert casenotes.texts(flow) is flow.casenotes
    note = casenotes.Note(channel="chat")
    markdown = casenotes.to_markdown([note], "en", flow=flow)
    assert markdown.startswith("# Records\n") and "| Talk |" in markdown
    assert casenotes.parse(markdown, flow) == [note]
    assert casenotes.cell(note, "channel", "ko", flow) == "대화"
    with pytest.raises(casenotes.CaseNotesError, match="Not words."):
        casenotes.parse(b"\xff\xfe", flow)


def test_a_new_want_and_new_words_need_no_code(data):
    """Add something to ask for, have an answer ask for it, and reword a line: the message
    follows the data."""
    data["messages"]["wants"].insert(0, {
        "id": "apology", "label": {"ko": "사과", "en": "An apology"},
        "request": {"ko": "사과를 받고 싶습니다.", "en": "I would like an apology."}})
    data["messages"]["lines"]["thanks"] = {"ko": "고맙습니다.", "en": "Many thanks."}
    data["messages"]["lines"]["order_line"]["en"] = "Order: {order_number} (see my account)"
    subject = next(n for n in data["nodes"] if "subject" in n.get("roles", []))
    subject["options"][0]["want"] = "apology"
    flow = build_flow(data)
    assert list(flow.messages.wants)[0] == "apology"
    chosen = messages.from_choices({subject["id"]: subject["options"][0]["id"]}, flow,
                                   order_number="123")
    assert chosen.want == "apology"
    en = messages.build(chosen, "en", flow)
    assert "I would like an apology." in en and en.endswith("Many thanks.")
    assert "Order: 123 (see my account)" in en
    assert messages.build(chosen, "ko", flow).endswith("고맙습니다.")
    with pytest.raises(ValueError, match="apology"):
        messages.build(chosen, "en")  # the packaged flow has no such want


def test_typed_braces_are_kept_as_typed():
    text = messages.build(messages.MessageInput(order_number="{0} {order_number}", detail="{}"),
                          "en")
    assert "{0} {order_number}" in text and "{}" in text


def test_text_format_fills_every_language():
    assert Text(ko="{n}개", en="{n} notes").format(n=3) == Text(ko="3개", en="3 notes")


# ------------------------------------------------------------------ no visitor text in Python


def text_literals(path: Path) -> list[int]:
    """Lines of ``Text(...)`` calls with a string literal argument in a Python file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Text" and any(
                isinstance(arg, ast.Constant) and isinstance(arg.value, str)
                for arg in [*node.args, *(k.value for k in node.keywords)]):
            found.append(node.lineno)
    return found


@pytest.mark.parametrize("name", ["messages.py", "casenotes.py", "flow", "dashboard",
                                  "review.py", "flowmap.py", "vocabulary.py"])
def test_no_visitor_text_is_written_in_these_modules(name):
    path = ROOT / "widgets" / name
    files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
    assert files and all(not text_literals(f) for f in files), \
        {f.name: text_literals(f) for f in files if text_literals(f)}


def test_the_scan_finds_a_text_written_in_python(tmp_path):
    path = tmp_path / "x.py"
    path.write_text('A = Text(ko="가", en="a")\nB = Text(**values)\n', encoding="utf-8")
    assert text_literals(path) == [1]
