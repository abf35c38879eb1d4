"""The kernel websockets: the bridge between a page's websocket and its kernel.

``GuideKernelWebsocketConnection`` (``Voila.kernel_websocket_connection_class``):

* refuses a websocket that does not speak the ``v1.kernel.websocket.jupyter.org`` protocol
  (HTTP 400 before the upgrade). Voilà's ``read_header_from_binary_message`` parses every
  outgoing binary message as v1; on a legacy-protocol socket the first 8 bytes of a message
  with buffers read as a count of billions and the server froze (100 % CPU, memory growing by
  gigabytes, every other visitor and even static files unanswered, SIGTERM ignored);
* checks every incoming message's v1 framing (:func:`widgets.hosts.common.check_v1_frame`)
  before jupyter_server's ``deserialize_msg_from_ws_v1`` reads it (that function builds a list
  as long as the count in the message's first 8 bytes, so 8 hostile bytes froze the server
  the same way);
* refuses widgets created from the page (``comm_open`` for a widget): the guide creates its
  widgets in the kernel; a page never needs to, and a visitor's own widgets grew a kernel from
  142 to 359 MB;
* bounds the message rate of each kernel, all its websockets together (a burst, then a
  sustained rate); a client that keeps exceeding it is disconnected, and nothing it still sends
  is read (jupyter_server would read it with the legacy framing, as unchecked). Message size
  is bounded by tornado's ``websocket_max_message_size`` in ``voila.json``;
* counts websockets per kernel (``max_per_kernel``) and per client address (``max_per_client``,
  :func:`widgets.hosts.common.client_address`) and refuses one more (HTTP 429) before any ZMQ
  socket is made (each websocket costs four from a context of 1,023); the count jupyter_server
  keeps for its culler stays exact through refusals and failed opens;
* closes a websocket for which more than ``max_unsent_bytes`` wait unsent (a client that does
  not read would grow the server's memory without bound);
* passes the page no ``error`` message and no stderr stream of the kernel (ipywidgets answers
  a bad value from the page with a traceback naming the server's files).

:func:`read_header_from_binary_message` replaces Voilà's function of the same name
(see :func:`widgets.hosts.voila.install`).
"""

from __future__ import annotations

import json
import weakref
from typing import Any, ClassVar

from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection
from tornado import web
from traitlets import Float, Int

from ...ratelimit import TokenBucket
from .. import common
from ..common import check_v1_frame

__all__ = [
    "V1_PROTOCOL",
    "GuideKernelWebsocketConnection",
    "client_address",
    "read_header_from_binary_message",
    "unsent_bytes",
]

V1_PROTOCOL = "v1.kernel.websocket.jupyter.org"


def read_header_from_binary_message(ws_msg: bytes) -> dict | None:
    """Voilà's function of the same name, bounds-checked: the header of a v1 binary message,
    or None for anything else (Voilà reads it only to drop ``execute_input`` messages)."""
    try:
        offsets = check_v1_frame(ws_msg, size=1024)
        return json.loads(ws_msg[offsets[1]:offsets[2]].decode("utf-8"))
    except Exception:  # noqa: BLE001 - not a v1 message: no header to read
        return None


class GuideKernelWebsocketConnection(ZMQChannelsWebsocketConnection):
    """jupyter_server's kernel websocket connection, v1 protocol only, with checked input,
    a bounded number of websockets per kernel and per client, a message rate per kernel, and
    a bound on what waits unsent for a client."""

    message_burst = Int(200, config=True, help="Messages a page may send at once.")
    message_rate = Float(50.0, config=True,
                         help="Messages per second a page may send, sustained (all the "
                              "websockets of one kernel together).")
    abuse_limit = Int(
        200, config=True,
        help="Messages refused (over the rate, badly framed or not allowed) before the "
             "websocket is closed.")
    max_per_kernel = Int(
        2, config=True,
        help="Websockets one kernel may have open at once (a page needs one; a reconnecting "
             "page briefly two). More are refused (HTTP 429) before any ZMQ socket is made.")
    max_per_client = Int(
        16, config=True,
        help="Websockets one client address may have open at once on this server (behind "
             "the shipped nginx, the address nginx forwards in X-Real-IP; a process on this "
             "machine that forwards no address is not counted).")
    max_unsent_bytes = Int(
        2 * 2**20, config=True,
        help="Bytes that may wait unsent for a client; a websocket past it is closed (a "
             "client that does not read would otherwise grow the server's memory).")

    #: open (or being opened) websockets per kernel id and per client address
    _counts: ClassVar[common.SocketCounts] = common.SocketCounts()
    #: each kernel's message budget, shared by its websockets; gone with the kernel
    _buckets: ClassVar[weakref.WeakKeyDictionary[Any, TokenBucket]] = weakref.WeakKeyDictionary()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._gate: common.MessageGate | None = None  # made with the first message
        self._closing = False
        self._counted: tuple[str, str | None] | None = None  # (kernel id, client) while counted

    # -- admission

    async def prepare(self) -> None:
        offered = self.websocket_handler.request.headers.get("Sec-WebSocket-Protocol", "")
        if V1_PROTOCOL not in {p.strip() for p in offered.split(",")}:
            raise web.HTTPError(400, f"kernel websockets must use the {V1_PROTOCOL} protocol")
        self.kernel_ws_protocol = V1_PROTOCOL
        self._count_in()
        handler = self.websocket_handler
        finish = handler.on_finish

        def on_finish() -> None:
            # tornado finishes the handshake request too (status 101): the websocket then
            # counts until it closes; any other status means it never opened
            if handler.get_status() != 101:
                self._count_out()
            finish()

        handler.on_finish = on_finish
        try:
            await super().prepare()
        except BaseException:
            self._count_out()
            raise

    def _count_in(self) -> None:
        kernel_id = self.kernel_id
        client = client_address(self.websocket_handler.request)
        refused = self._counts.admit(kernel_id, client, self.max_per_kernel, self.max_per_client)
        if refused is not None:
            per_kernel = refused == common.TOO_MANY_FOR_KERNEL
            self.log.warning("kernel websocket %s: refused, %d already open %s", kernel_id,
                             self.max_per_kernel if per_kernel else self.max_per_client,
                             "for this kernel" if per_kernel else "from one client")
            raise web.HTTPError(429, refused)
        self._counted = (kernel_id, client)

    def _count_out(self) -> None:
        counted, self._counted = self._counted, None
        if counted is not None:
            self._counts.release(*counted)

    def connect(self):  # type: ignore[override]
        """jupyter_server's connect, whose failures (other than an HTTP error, which it
        handles) left the kernel counted as connected: the culler then never saw it idle."""
        try:
            return super().connect()
        except Exception:
            self.log.exception("kernel websocket %s: could not connect to the kernel",
                               self.kernel_id)
            self.disconnect()
            self._closing = True
            self.websocket_handler.close(1011, "cannot connect to the kernel")
            return None

    def disconnect(self) -> None:
        try:
            super().disconnect()
        finally:
            self._count_out()

    # -- from the page

    def handle_incoming_message(self, incoming_msg: Any) -> None:
        if self._closing or self.subprotocol != V1_PROTOCOL:
            # Once the websocket is closing, jupyter_server no longer sees its subprotocol and
            # would parse what is still queued with the legacy framing, whose offset count is
            # unchecked too (a v1 message read that way asked for gigabytes). Drop it.
            return
        gate = self._message_gate()
        reason = gate.refusal(incoming_msg)
        if reason is None:
            super().handle_incoming_message(incoming_msg)
            return
        closing = gate.refused()
        if gate.worth_logging():
            self.log.warning("kernel websocket %s: refused a message (%s); %d so far",
                             self.kernel_id, reason, gate.count)
        if closing:
            self.log.warning("kernel websocket %s: closed after %d refused messages",
                             self.kernel_id, gate.count)
            self._closing = True
            self.websocket_handler.close(1008, "policy violation")

    def _message_gate(self) -> common.MessageGate:
        """This websocket's checks: the kernel's message budget (all its websockets share it),
        the v1 framing and no widget from the page; the size is tornado's to bound."""
        if self._gate is None:
            self._gate = common.MessageGate(self._kernel_bucket(), self.abuse_limit,
                                            check=_refusal)
        return self._gate

    def _kernel_bucket(self) -> TokenBucket:
        """The kernel's message budget (all its websockets share it)."""
        kernel = self.kernel_manager
        bucket = self._buckets.get(kernel)
        if bucket is None:
            bucket = self._buckets[kernel] = TokenBucket(self.message_rate, self.message_burst)
        return bucket

    # -- to the page

    def handle_outgoing_message(self, stream: str, outgoing_msg: list[Any]) -> None:
        if self._closing:
            return
        unsent = unsent_bytes(self.websocket_handler)
        if unsent > self.max_unsent_bytes:
            self.log.warning("kernel websocket %s: closed, %d bytes wait unsent for a client "
                             "that does not read", self.kernel_id, unsent)
            self._closing = True
            self.websocket_handler.close(1008, "not reading")
            return
        if _is_diagnostic(self.session, outgoing_msg):
            return
        super().handle_outgoing_message(stream, outgoing_msg)


def _refusal(message: Any) -> str | None:
    """Why a message within the rate is refused (its framing, or a widget created from the
    page), or None to pass it to the kernel."""
    try:
        offsets = check_v1_frame(message)
    except ValueError as exc:
        return f"bad framing: {exc}"
    try:
        header = json.loads(message[offsets[1]:offsets[2]])
        if header.get("msg_type") == "comm_open":
            return common.comm_open_refusal(json.loads(message[offsets[4]:offsets[5]]))
    except (ValueError, AttributeError, UnicodeDecodeError):
        return "unreadable header"
    return None


def _is_diagnostic(session: Any, msg_list: list[Any]) -> bool:
    """True for a kernel message the page is never sent (:func:`widgets.hosts.common.is_diagnostic`)."""
    try:
        _, parts = session.feed_identities(msg_list)
        msg_type = json.loads(bytes(parts[1])).get("msg_type")
        content = json.loads(bytes(parts[4])) if msg_type == "stream" else None
    except Exception:  # noqa: BLE001 - not a message we can read: jupyter_server decides
        return False
    return common.is_diagnostic(msg_type, content)


def unsent_bytes(handler: Any) -> int:
    """Bytes tornado holds for ``handler``'s websocket that the client has not taken yet
    (``ws_connection.stream._write_buffer``: checked by :mod:`.upstream`)."""
    stream = getattr(getattr(handler, "ws_connection", None), "stream", None)
    buffer = getattr(stream, "_write_buffer", None)
    try:
        return len(buffer) if buffer is not None else 0
    except TypeError:
        return 0


def client_address(request: Any) -> str | None:
    """The client's address for a tornado ``request`` (:func:`widgets.hosts.common.client_address`
    of its peer and headers)."""
    return common.client_address(request.remote_ip, request.headers)
