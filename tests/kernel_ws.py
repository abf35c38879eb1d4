"""A hand-made kernel websocket client, as an attacker (or a test) would write one.

It speaks both framings jupyter_server knows: ``v1.kernel.websocket.jupyter.org`` (what Voilà's
page uses) and the legacy protocol (no subprotocol: JSON text frames, and binary frames with
4-byte big-endian offsets when a message has buffers)::

    with KernelClient.connect(server.url, kernel_id, protocol=V1) as client:
        comm_id = client.open_widget_control()
        states = client.request_states(comm_id)

Messages are built with jupyter_server's own (de)serializers, so the bytes are exactly what a
client of either protocol sends.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
import uuid
from typing import Any

from jupyter_server.services.kernels.connection.base import (
    deserialize_binary_message,
    serialize_binary_message,
    serialize_msg_to_ws_v1,
)
from websockets.sync.client import connect as ws_connect

from widgets.hosts.voila.request import client_frame

V1 = "v1.kernel.websocket.jupyter.org"
_KERNEL_ID = re.compile(r'"kernelId":\s*"([0-9a-f-]{36})"')


def kernel_id_of(page_html: str) -> str:
    """The kernel id Voilà wrote into a served page."""
    match = _KERNEL_ID.search(page_html)
    assert match, "the page names no kernel"
    return match.group(1)


def decode_v1(data: bytes) -> tuple[str, dict]:
    """(channel, message with ``buffers``) of a v1 frame the server sent."""
    count = int.from_bytes(data[:8], "little")
    offsets = [int.from_bytes(data[8 * (i + 1):8 * (i + 2)], "little") for i in range(count)]
    parts = [data[offsets[i]:offsets[i + 1]] for i in range(count - 1)]
    channel = parts[0].decode()
    header, parent, metadata, content = (json.loads(p or b"{}") for p in parts[1:5])
    return channel, {"header": header, "parent_header": parent, "metadata": metadata,
                     "content": content, "buffers": parts[5:]}


class KernelClient:
    """One kernel websocket; ``protocol`` is :data:`V1` or None (legacy)."""

    def __init__(self, socket, protocol: str | None) -> None:
        self.socket = socket
        self.protocol = protocol
        self.session = uuid.uuid4().hex

    @classmethod
    def connect(cls, base_url: str, kernel_id: str, protocol: str | None = V1,
                timeout: float = 30.0, headers: dict[str, str] | None = None) -> KernelClient:
        url = base_url.replace("http://", "ws://") + f"api/kernels/{kernel_id}/channels"
        socket = ws_connect(f"{url}?session_id={uuid.uuid4().hex}",
                            subprotocols=[protocol] if protocol else None,
                            additional_headers=headers,
                            open_timeout=timeout, max_size=None, close_timeout=2, legacy=True)
        return cls(socket, protocol)

    def __enter__(self) -> KernelClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.socket.close()
        except Exception:  # noqa: BLE001 - already gone
            pass

    # -- sending

    def message(self, msg_type: str, content: dict, metadata: dict | None = None) -> dict:
        return {
            "header": {"msg_id": uuid.uuid4().hex, "msg_type": msg_type, "session": self.session,
                       "username": "visitor", "date": dt.datetime.now(dt.UTC).isoformat(),
                       "version": "5.3"},
            "parent_header": {}, "metadata": metadata or {}, "content": content,
        }

    def encode(self, msg: dict, channel: str = "shell", buffers: list[bytes] = ()) -> bytes | str:
        if self.protocol == V1:
            parts = [json.dumps(msg[key]).encode() for key in
                     ("header", "parent_header", "metadata", "content")]
            return serialize_msg_to_ws_v1([*parts, *buffers], channel)
        if buffers:
            return serialize_binary_message({**msg, "channel": channel, "buffers": list(buffers)})
        return json.dumps({**msg, "channel": channel})

    def send(self, msg_type: str, content: dict, buffers: list[bytes] = (),
             metadata: dict | None = None) -> dict:
        msg = self.message(msg_type, content, metadata)
        self.socket.send(self.encode(msg, buffers=buffers))
        return msg

    def comm_msg(self, comm_id: str, data: dict, buffers: list[bytes] = ()) -> dict:
        return self.send("comm_msg", {"comm_id": comm_id, "data": data}, buffers)

    # -- receiving

    def receive(self, timeout: float) -> tuple[str, dict]:
        frame = self.socket.recv(timeout=timeout)
        if self.protocol == V1:
            return decode_v1(frame)
        msg = deserialize_binary_message(frame) if isinstance(frame, bytes) else json.loads(frame)
        msg.setdefault("buffers", [])
        return msg.pop("channel", ""), msg

    def wait_for(self, predicate, timeout: float = 30.0) -> dict:
        """The first message (from now) for which ``predicate(channel, msg)`` holds."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no such message from the kernel")
            channel, msg = self.receive(left)
            if predicate(channel, msg):
                return msg

    # -- widgets

    def open_widget_control(self) -> str:
        comm_id = uuid.uuid4().hex
        self.send("comm_open", {"comm_id": comm_id, "target_name": "jupyter.widget.control",
                                "data": {}}, metadata={"version": "1.0.0"})
        return comm_id

    def request_states(self, control_id: str, timeout: float = 30.0) -> dict:
        """Every widget model's state, as the kernel reports it (model id -> state)."""
        request = self.comm_msg(control_id, {"method": "request_states"})
        reply = self.wait_for(
            lambda _c, m: m["header"].get("msg_type") == "comm_msg"
            and m["parent_header"].get("msg_id") == request["header"]["msg_id"]
            and m["content"].get("data", {}).get("method") == "update_states", timeout)
        return reply["content"]["data"]["states"]


def find_model(states: dict, model_name: str, **state: Any) -> str:
    """The id of the one model of ``model_name`` whose state has ``state``'s values."""
    found = [model_id for model_id, model in states.items()
             if model.get("model_name") == model_name
             and all(model.get("state", {}).get(k) == v for k, v in state.items())]
    assert len(found) == 1, f"expected one {model_name} with {state}, found {len(found)}"
    return found[0]


class SilentClient:
    """A kernel websocket that never reads what the server sends (a raw socket with a small
    receive buffer): what the server sends it waits in the server's memory."""

    def __init__(self, base_url: str, kernel_id: str, headers: dict[str, str] | None = None) -> None:
        import base64
        import os
        import socket
        from urllib.parse import urlsplit

        address = urlsplit(base_url)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(30)
        self.sock.connect((address.hostname, address.port))
        key = base64.b64encode(os.urandom(16)).decode()
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        self.sock.sendall(
            (f"GET /api/kernels/{kernel_id}/channels?session_id={uuid.uuid4().hex} HTTP/1.1\r\n"
             f"Host: {address.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
             f"Sec-WebSocket-Protocol: {V1}\r\n{extra}\r\n").encode())
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = self.sock.recv(1)
            if not chunk:
                break
            response += chunk
        self.status = int(response.split(b" ", 2)[1]) if response else 0
        self.encoder = KernelClient(None, V1)

    def send(self, msg_type: str, content: dict, metadata: dict | None = None,
             buffers: list[bytes] = ()) -> dict:
        """Send one message as a masked binary frame; raises OSError once the server closed."""
        msg = self.encoder.message(msg_type, content, metadata)
        self.sock.sendall(client_frame(0x2, self.encoder.encode(msg, buffers=buffers)))
        return msg

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
