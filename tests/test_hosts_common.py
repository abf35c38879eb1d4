"""The host-neutral protections every host of the guide applies (widgets/hosts/common.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from widgets.hosts import common
from widgets.ratelimit import TokenBucket

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def test_the_busy_page_is_bilingual_and_shows_nothing_of_the_request_but_its_escaped_path():
    status, headers, body = common.busy_response('/guide?step="><script>x</script>', 7)
    assert status == 503
    assert headers == {"Retry-After": "7", "Content-Type": "text/html; charset=UTF-8",
                       "Cache-Control": "no-store"}
    assert "지금 이용하는 분이 많습니다" in body and "The guide is busy right now" in body
    assert "7초쯤" in body and "about 7 seconds" in body
    assert "<script" not in body.lower()
    assert 'href="/guide?step=&quot;&gt;&lt;script&gt;' in body
    assert 'href="/"' in common.busy_page("", 20)


def test_the_client_address_is_the_forwarded_one_only_from_this_machine():
    real_ip = {"X-Real-IP": "198.51.100.1"}
    assert common.client_address("203.0.113.9", {}) == "203.0.113.9"
    assert common.client_address("203.0.113.9", real_ip) == "203.0.113.9"
    assert common.client_address("127.0.0.1", real_ip) == "198.51.100.1"
    assert common.client_address("127.0.0.1", {"X-Real-IP": " 2001:db8::1 "}) == "2001:db8::1"
    assert common.client_address("127.0.0.1", {"X-Real-IP": "not an address"}) == "127.0.0.1"
    assert common.client_address("::1", {}) is None  # a local process: not counted
    assert common.client_address(None, real_ip) == ""  # no peer (a unix socket): one client
    assert common.client_address("not an ip", real_ip) == "not an ip"


def test_the_security_headers_and_message_size_are_voila_json_s(tmp_path):
    project = json.loads((PROJECT_ROOT / "voila.json").read_text(encoding="utf-8"))
    settings = project["Voila"]["tornado_settings"]
    path = tmp_path / "voila.json"
    path.write_text(json.dumps(project), encoding="utf-8")
    assert common.security_headers(path) == {
        name: settings["headers"][name] for name in common.SECURITY_HEADER_NAMES}
    assert "frame-ancestors 'none'" in common.security_headers(path)["Content-Security-Policy"]
    assert common.max_message_size(path) == settings["websocket_max_message_size"]

    del project["Voila"]["tornado_settings"]["headers"]["X-Frame-Options"]
    path.write_text(json.dumps(project), encoding="utf-8")
    with pytest.raises(common.ConfigurationError, match="sets no X-Frame-Options header"):
        common.security_headers(path)
    path.write_text("{", encoding="utf-8")
    with pytest.raises(common.ConfigurationError, match="cannot be read"):
        common.max_message_size(path)
    with pytest.raises(common.ConfigurationError, match="cannot be read"):
        common.security_headers(tmp_path / "missing.json")


def test_the_message_gate_bounds_rate_and_size_and_closes_after_the_abuse_limit():
    now = [0.0]
    gate = common.MessageGate(TokenBucket(rate=1, burst=2, monotonic=lambda: now[0]),
                              abuse_limit=3, max_size=4,
                              check=lambda message: "no x" if "x" in message else None)
    assert gate.refusal("ab") is None
    assert gate.refusal("abcde") == "longer than 4"
    assert gate.refusal("ab") == "over the message rate"
    now[0] += 1
    assert gate.refusal("x") == "no x"
    now[0] += 1
    assert gate.refusal(5) == "not a message"
    assert [gate.refused(), gate.worth_logging()] == [False, True]
    assert [gate.refused(), gate.worth_logging()] == [False, False]
    assert gate.refused() is True
    assert common.MessageGate(TokenBucket(1, 1), abuse_limit=0).refused() is True


def test_the_v1_frame_check_refuses_hostile_counts_and_offsets():
    good = (6).to_bytes(8, "little") + b"".join(
        (56 + i).to_bytes(8, "little") for i in range(6)) + b"abcde"
    assert common.check_v1_frame(good) == [56, 57, 58, 59, 60, 61]
    for bad in (b"", b"\x00" * 7, (2**40).to_bytes(8, "little"), good[:40],
                good[:8] + (57).to_bytes(8, "little") + good[16:], good[:-5], "text"):
        with pytest.raises(ValueError):
            common.check_v1_frame(bad)


def test_the_common_pieces_load_no_server():
    import subprocess
    import sys

    code = ("import sys, widgets.hosts.common as c; c.busy_response('/', 1); "
            "c.client_address('::1', {}); "
            "bad = {'tornado', 'jupyter_server', 'voila', 'starlette', 'solara'} "
            "& {n.split('.')[0] for n in sys.modules}; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=PROJECT_ROOT)


def test_solara_s_framing_is_checked_like_v1_with_its_own_word():
    good = (2).to_bytes(4, "big") + (12).to_bytes(4, "big") + (14).to_bytes(4, "big") + b"{}xy"
    assert common.check_offset_frame(good, word=4, byteorder="big", parts=range(1, 18)) == [12, 14]
    for bad in (b"\x7f\xff\xff\xff" + b"\x00" * 12,  # Solara's reader: a format of 2**31 parts
                b"\xff\xff\xff\xff" + b"\x00" * 12,  # a negative count, read unsigned
                good[:4] + (13).to_bytes(4, "big") + good[8:],  # not just past the table
                good[:8] + (99).to_bytes(4, "big") + good[12:],  # past the end
                b"\x00\x00\x00"):
        with pytest.raises(ValueError):
            common.check_offset_frame(bad, word=4, byteorder="big", parts=range(1, 18))


def test_sockets_are_counted_per_kernel_and_per_client_and_released():
    counts = common.SocketCounts()
    assert counts.admit("k1", "198.51.100.1", 2, 3) is None
    assert counts.admit("k1", "198.51.100.1", 2, 3) is None
    assert counts.admit("k1", "198.51.100.2", 2, 3) == common.TOO_MANY_FOR_KERNEL
    assert counts.admit("k2", "198.51.100.1", 2, 3) is None
    assert counts.admit("k3", "198.51.100.1", 2, 3) == common.TOO_MANY_FROM_CLIENT
    assert counts.admit("k3", None, 2, 3) is None  # a local process: not counted by address
    assert counts.admit("k3", "198.51.100.2", 0, 0) is None  # 0: no limit
    assert counts.per_kernel == {"k1": 2, "k2": 1, "k3": 2}
    assert counts.per_client == {"198.51.100.1": 3, "198.51.100.2": 1}
    counts.release("k1", "198.51.100.1")
    assert counts.admit("k4", "198.51.100.1", 2, 3) is None
    for kernel, client in (("k1", "198.51.100.1"), ("k2", "198.51.100.1"), ("k3", None),
                           ("k3", "198.51.100.2"), ("k4", "198.51.100.1")):
        counts.release(kernel, client)
    assert not counts.per_kernel and not counts.per_client


def test_a_page_opens_no_widget_and_is_sent_no_traceback():
    assert common.comm_open_refusal({"target_name": "jupyter.widget.control"}) is None
    assert common.comm_open_refusal({"target_name": "jupyter.widget"}) == \
        "the page may not create widgets"
    assert common.comm_open_refusal("not content") == "the page may not create widgets"
    assert common.comm_open_refusal({"target_name": "solara.control"},
                                    common.PAGE_COMM_TARGETS | {"solara.control"}) is None
    assert common.is_diagnostic("error")
    assert common.is_diagnostic("stream", {"name": "stderr", "text": "Traceback"})
    assert common.is_diagnostic("stream", None)
    assert not common.is_diagnostic("stream", {"name": "stdout", "text": "ok"})
    assert not common.is_diagnostic("comm_msg", {"data": {"error": 1}})
