"""The gate in front of Solara's server (an ASGI middleware): what the Voilà host's hooks do
for Voilà, for the guide on Solara's virtual kernels.

- **Headers**: every response carries the security headers of the guide's ``voila.json``
  (Content-Security-Policy, Referrer-Policy, X-Frame-Options) and no ``Server`` header.
- **Visitor cap**: a page is answered with the bilingual busy page (HTTP 503, Retry-After)
  when ``max_visitors`` visitors hold a virtual kernel or were served a page in the last
  ``page_grace`` seconds; a websocket for a new kernel beyond the cap is refused.
- **Links**: the page answers only the guide's own path; Solara's own link parameters
  (``kernelid``, ``modelid``, ...) are dropped by a redirect to the same link without them.
  Routes the guide does not use (``/resourcez``, the eviction and login routes) answer 404.
- **Websockets**: the kernel id must be one the page makes (a UUID) and not one that closed;
  at most ``max_per_kernel`` per kernel and ``max_per_client`` per client address
  (:func:`widgets.hosts.common.client_address`; :class:`widgets.hosts.common.SocketCounts`);
  each message passes a :class:`widgets.hosts.common.MessageGate`: at most
  ``max_message_bytes`` (the server's own limit, checked here as well), ``message_burst`` at
  once and ``message_rate`` a second per kernel; binary messages must be soundly framed
  (:func:`widgets.hosts.common.check_offset_frame`: Solara's reader trusts the part count);
  only the message types the page needs pass: no code (Solara runs none
  anyway), no widget created from the page (``comm_open`` only for Solara's control channel
  and ipywidgets' state request), Solara's ``run`` once per kernel and never its ``reload``
  or ``evict``. A websocket is closed after ``abuse_limit`` refused messages.
- **A page that does not read**: a message that waits ``send_timeout`` seconds to be sent
  drops the websocket (see :meth:`Gate._checked_send`).
- **To the page**: no ``error`` message and no stderr stream (tracebacks stay in the log;
  :func:`widgets.hosts.common.is_diagnostic`, as under Voilà).
- **Idle visits**: a visit without an action from its page for ``idle_timeout`` seconds, or
  older than ``max_visit``, is closed (its logger closes with it); the page then says so.
- **Kernel probe**: ``GET /jupyter/api/kernels/<id>`` answers 404 once that visit has ended
  (the page's script asks it when its connection drops).
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import math
import re
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from widgets.ratelimit import TokenBucket
from widgets.hosts import common

from .settings import Limits

logger = logging.getLogger("widgets.hosts.solara.gate")

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: the guide's link parameters (widgets/app.py); any other makes the page redirect without it
LINK_PARAMETERS = ("lang", "step", "followup")
#: the page's path and the static files Solara's page loads; anything else of Solara's
#: answers 404 (see :data:`CLOSED_PATHS`)
CLOSED_PATHS = re.compile(r"^/(resourcez|_solara/api/evict/|_solara/auth/)")
KERNEL_SOCKET = re.compile(r"^/jupyter/api/kernels/([^/]+)/([^/]+)$")
KERNEL_PROBE = re.compile(r"^/jupyter/api/kernels/([^/]+)$")
#: a kernel id as Solara's page makes it (a version-4 UUID)
KERNEL_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
#: what a page may send, by message type; comm_open by target
ALLOWED_TYPES = frozenset({"kernel_info_request", "comm_info_request", "comm_msg", "comm_close",
                           "comm_open", "shutdown_request"})
ALLOWED_TARGETS = common.PAGE_COMM_TARGETS | {"solara.control"}
#: Solara's control-channel methods a page may call (``run`` once per kernel)
ALLOWED_METHODS = frozenset({"run", "app-status"})
#: channels (comm_open) a page may open in one kernel: one per (re)connection is what it needs
MAX_COMM_OPENS = 16
#: more parts than any message of the guide has (a file upload has one per file)
MAX_PARTS = 1 + 16
#: kernels that closed, remembered so that a page cannot bring a culled visit back
CLOSED_REMEMBERED = 4096
#: Solara takes a RuntimeError naming "websocket.close" as the page gone (its WebSocketDisconnect)
NOT_READING = "websocket.close: the page does not read what it is sent"
#: the scripts the page gets: the guide's page script (the Voilà template's guide.js) and
#: the Solara host's own (assets/solara-host.js)
SCRIPT_PATH = "/_guide/"
ASSETS = Path(__file__).with_name("assets")


# ------------------------------------------------------------------------- kernels' state


class _Kernels:
    """What the gate knows of the virtual kernels (one lock, held briefly)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.buckets: dict[str, TokenBucket] = {}
        self.runs: collections.Counter[str] = collections.Counter()
        self.opened: collections.defaultdict[str, dict[str, str]] = collections.defaultdict(dict)
        self.started: dict[str, float] = {}
        self.last_action: dict[str, float] = {}
        self.closed: collections.OrderedDict[str, float] = collections.OrderedDict()
        self.pages: collections.deque[float] = collections.deque()

    def forget(self, kernel_id: str) -> None:
        with self.lock:
            for table in (self.buckets, self.runs, self.opened, self.started, self.last_action):
                table.pop(kernel_id, None)
            self.closed[kernel_id] = time.monotonic()
            while len(self.closed) > CLOSED_REMEMBERED:
                self.closed.popitem(last=False)


KERNELS = _Kernels()
#: the websockets open per kernel and per client address
SOCKETS = common.SocketCounts()


def forget_kernel(kernel_id: str) -> None:
    """A virtual kernel closed: its state goes, its id may not connect again."""
    KERNELS.forget(kernel_id)


def live_contexts() -> dict[str, Any]:
    from solara.server import kernel_context

    return {kid: c for kid, c in list(kernel_context.contexts.items())
            if not (c.closed_event.is_set() or c._teardown_done)}


# ------------------------------------------------------------------------- checks


def read_message(data: str | bytes) -> dict:
    """The kernel message in a websocket frame (ValueError if it cannot be read). A binary
    frame is checked first (:func:`widgets.hosts.common.check_offset_frame`, Solara's framing:
    a 4-byte big-endian part count, then that many offsets): Solara's reader builds a format
    as long as the count says, before any check."""
    if isinstance(data, bytes):
        offsets = common.check_offset_frame(data, word=4, byteorder="big",
                                            parts=range(1, MAX_PARTS + 1))
        end = offsets[1] if len(offsets) > 1 else len(data)
        data = data[offsets[0]:end].decode("utf-8")
    message = json.loads(data)
    if not isinstance(message, dict) or not isinstance(message.get("header"), dict):
        raise ValueError("not a kernel message")
    return message


def refusal(message: dict, kernel_id: str) -> str | None:
    """Why the page's ``message`` is refused, or None to pass it to Solara."""
    msg_type = message["header"].get("msg_type")
    if msg_type not in ALLOWED_TYPES:
        return f"message type {str(msg_type)[:40]!r} is not allowed"
    content = message.get("content")
    if not isinstance(content, dict):
        return "no content"
    comm_id = content.get("comm_id")
    if msg_type == "comm_open":
        refused = common.comm_open_refusal(content, ALLOWED_TARGETS)
        if refused is not None:
            return refused
        target = content["target_name"]
        with KERNELS.lock:
            opened = KERNELS.opened[kernel_id]
            if len(opened) >= MAX_COMM_OPENS:
                return "too many channels opened"
            opened[str(comm_id)] = target
        return None
    if msg_type == "comm_msg":
        data = content.get("data")
        method = data.get("method") if isinstance(data, dict) else None
        with KERNELS.lock:
            target = KERNELS.opened[kernel_id].get(str(comm_id))
            if target == "solara.control":
                if method not in ALLOWED_METHODS:
                    return f"control method {str(method)[:40]!r} is not allowed"
                if method == "run":
                    KERNELS.runs[kernel_id] += 1
                    if KERNELS.runs[kernel_id] > 1:
                        return "the guide already runs in this kernel"
            elif target is None and method in ("update", "custom"):
                KERNELS.last_action[kernel_id] = time.monotonic()  # a visitor's action
    return None


def _refusal(data: str | bytes, kernel_id: str) -> str | None:
    """Why the page's websocket frame ``data`` is refused (unreadable, or :func:`refusal`)."""
    try:
        message = read_message(data)
    except (ValueError, UnicodeDecodeError) as exc:
        return f"unreadable: {str(exc)[:80]}"
    return refusal(message, kernel_id)


def socket_client(scope: Scope) -> str | None:
    """The client address a websocket counts under (:func:`widgets.hosts.common.client_address`
    of the peer and the ``X-Real-IP`` header the shipped nginx sets)."""
    name = common.REAL_IP_HEADER.lower().encode("latin-1")
    forwarded = [v.decode("latin-1") for k, v in scope.get("headers") or () if k.lower() == name]
    peer = (scope.get("client") or (None,))[0]
    return common.client_address(peer, {common.REAL_IP_HEADER: forwarded[0]} if forwarded else {})


def _is_diagnostic(text: str) -> bool:
    """A message the page is never sent (:func:`widgets.hosts.common.is_diagnostic`)."""
    if '"error"' not in text and '"stream"' not in text:
        return False  # most messages: not parsed again
    try:
        message = json.loads(text)
        msg_type = message["header"]["msg_type"]
        content = message.get("content")
    except (ValueError, KeyError, TypeError):
        return False
    return common.is_diagnostic(msg_type, content)


# ------------------------------------------------------------------------- the gate


#: The sources the Solara page needs beyond voila.json's policy. ``'unsafe-eval'``: Vue, in
#: Solara's page bundle, compiles the page's template and ipyvue's widget templates in the
#: browser (``new Function``); without it the page stays blank. ``blob:`` (scripts, and fetching
#: them): ipyvue loads its module loader (es-module-shims) at start-up as a script made by the
#: page itself; without it every page throws an error. Only a script already running on the
#: page can make a ``blob:`` URL, so neither lets a link or another site bring code.
EXTRA_SOURCES: dict[str, tuple[str, ...]] = {
    "script-src": ("'unsafe-eval'", "blob:"),
    "connect-src": ("blob:",),
}


def security_headers() -> dict[str, str]:
    """The headers of the guide's voila.json (:func:`widgets.hosts.common.security_headers`),
    its Content-Security-Policy with :data:`EXTRA_SOURCES` added and nothing else changed.
    RuntimeError when they cannot be read (the host then does not start)."""
    try:
        headers = common.security_headers()
    except common.ConfigurationError as exc:
        raise RuntimeError(str(exc)) from exc
    policy = headers["Content-Security-Policy"]
    directives = [d.split() for d in policy.split(";") if d.strip()]
    for name in EXTRA_SOURCES:
        if not any(d[0] == name for d in directives):
            raise RuntimeError(f"the guide's Content-Security-Policy (voila.json) has no {name}")
    headers["Content-Security-Policy"] = "; ".join(
        " ".join(d + [source for source in EXTRA_SOURCES.get(d[0], ()) if source not in d])
        for d in directives)
    return headers


class Gate:
    """The ASGI middleware around Solara's Starlette app (see the module's docstring)."""

    def __init__(self, app: Callable, limits: Limits, headers: dict[str, str],
                 scripts: dict[str, bytes]) -> None:
        self.app = app
        self.limits = limits
        self.headers = [(k.lower().encode("latin-1"), v.encode("latin-1"))
                        for k, v in headers.items()]
        self.scripts = scripts
        self._culler: threading.Thread | None = None
        self._stop = threading.Event()

    # -- counting

    def visitors(self) -> int:
        """Live virtual kernels, and pages served lately whose websocket has not come."""
        now = time.monotonic()
        with KERNELS.lock:
            while KERNELS.pages and KERNELS.pages[0] < now - self.limits.page_grace:
                KERNELS.pages.popleft()
            pending = len(KERNELS.pages)
        return len(live_contexts()) + pending

    def full(self) -> bool:
        return 0 < self.limits.max_visitors <= self.visitors()

    # -- ASGI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(scope, receive, send)
        elif kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._start_culler()
        try:
            await self.app(scope, receive, send)
        finally:
            self._stop.set()

    # -- HTTP

    def _with_headers(self, send: Send, extra: list | None = None) -> Send:
        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", [])
                        if k.lower() not in {b"server"} | {k2 for k2, _ in self.headers}]
                message = dict(message, headers=kept + self.headers + (extra or []))
            await send(message)
        return sending

    async def _respond(self, send: Send, status: int, body: bytes, content_type: str,
                       extra: list | None = None) -> None:
        headers = [(b"content-type", content_type.encode()),
                   (b"content-length", str(len(body)).encode()),
                   (b"cache-control", b"no-store")] + (extra or [])
        await self._with_headers(send)({"type": "http.response.start", "status": status,
                                        "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        method = scope.get("method", "GET")
        if CLOSED_PATHS.match(path):
            await self._respond(send, 404, b"Not Found", "text/plain; charset=utf-8")
            return
        if path.startswith(SCRIPT_PATH):
            body = self.scripts.get(path[len(SCRIPT_PATH):])
            if body is None or method not in ("GET", "HEAD"):
                await self._respond(send, 404, b"Not Found", "text/plain; charset=utf-8")
            else:
                await self._respond(send, 200, body, "text/javascript; charset=utf-8")
            return
        probe = KERNEL_PROBE.match(path)
        if probe:
            kernel_id = probe.group(1)
            if kernel_id in live_contexts():
                body = json.dumps({"id": kernel_id, "execution_state": "idle"}).encode()
                await self._respond(send, 200, body, "application/json")
            else:
                await self._respond(send, 404, b'{"message": "no such kernel"}', "application/json")
            return
        if path == "/" and method in ("GET", "HEAD"):
            await self._page(scope, receive, send)
            return
        await self.app(scope, receive, self._with_headers(send))

    async def _page(self, scope: Scope, receive: Receive, send: Send) -> None:
        query = scope.get("query_string", b"").decode("latin-1")
        pairs = parse_qsl(query, keep_blank_values=True)
        kept = [(k, v) for k, v in pairs if k in LINK_PARAMETERS]
        if len(kept) != len(pairs):
            location = "/" + ("?" + urlencode(kept) if kept else "")
            await self._respond(send, 303, b"", "text/plain; charset=utf-8",
                                [(b"location", location.encode("latin-1"))])
            return
        if self.full():
            seconds = self.limits.retry_after
            logger.warning("busy: %d visitors already (the cap); a page was refused",
                           self.limits.max_visitors)
            status, headers, page = common.busy_response(
                "/" + ("?" + urlencode(kept) if kept else ""), seconds)
            await self._respond(send, status, page.encode("utf-8"), headers["Content-Type"],
                                [(b"retry-after", headers["Retry-After"].encode())])
            return
        with KERNELS.lock:
            KERNELS.pages.append(time.monotonic())
        # uncompressed, so that the page's scripts can be added (it is some 40 kB)
        scope = dict(scope, headers=[(k, v) for k, v in scope.get("headers", [])
                                     if k.lower() != b"accept-encoding"])
        start: Message = {}
        chunks: list[bytes] = []

        async def buffering(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    body = self._dress(b"".join(chunks)) if start.get("status") == 200 else b"".join(chunks)
                    headers = [(k, v) for k, v in start.get("headers", [])
                               if k.lower() != b"content-length"]
                    headers.append((b"content-length", str(len(body)).encode()))
                    headers.append((b"cache-control", b"no-store"))
                    await self._with_headers(send)(dict(start, headers=headers))
                    await send({"type": "http.response.body", "body": body})
            else:
                await send(message)

        await self.app(scope, receive, buffering)

    def _dress(self, page: bytes) -> bytes:
        """Solara's page with the guide's language and page scripts (before Solara's own,
        which open the kernel's websocket)."""
        scripts = "".join(f'<script src="{SCRIPT_PATH}{name}"></script>'
                          for name in ("solara-host.js", "guide.js")).encode()
        page = page.replace(b"<html>", b'<html lang="ko">', 1)
        return page.replace(b"</head>", scripts + b"\n</head>", 1)

    # -- websockets

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = KERNEL_SOCKET.match(scope.get("path", ""))
        if not match:
            await self._deny(send, "not a kernel websocket")
            return
        kernel_id, name = match.groups()
        reason = None
        with KERNELS.lock:
            if name != "channels" or not KERNEL_ID.match(kernel_id):
                reason = "not a kernel of the page"
            elif kernel_id in KERNELS.closed:
                reason = "that visit has ended"
        if reason is None and kernel_id not in live_contexts():
            if self.limits.max_visitors > 0 and len(live_contexts()) >= self.limits.max_visitors:
                reason = "the visitor cap is reached"
        client = socket_client(scope)
        if reason is None:
            reason = SOCKETS.admit(kernel_id, client, self.limits.max_per_kernel,
                                   self.limits.max_per_client)
        if reason is not None:
            logger.warning("kernel websocket refused: %s", reason)
            await self._deny(send, reason)
            return
        try:
            with KERNELS.lock:
                if kernel_id not in KERNELS.started:
                    KERNELS.started[kernel_id] = KERNELS.last_action[kernel_id] = time.monotonic()
                    if KERNELS.pages:
                        KERNELS.pages.popleft()  # the page served for this visit has connected
                bucket = KERNELS.buckets.setdefault(
                    kernel_id, TokenBucket(self.limits.message_rate or float("inf"),
                                           max(1, self.limits.message_burst)))
            gate = common.MessageGate(bucket, self.limits.abuse_limit or math.inf,
                                      self.limits.max_message_bytes or None,
                                      check=lambda data: _refusal(data, kernel_id))
            stuck = asyncio.Event()  # set when the page stopped reading
            await self.app(scope,
                           self._checked_receive(receive, send, kernel_id, gate, stuck),
                           self._checked_send(send, kernel_id, stuck))
        finally:
            SOCKETS.release(kernel_id, client)

    async def _deny(self, send: Send, reason: str) -> None:
        # closing before accepting: the handshake is answered with HTTP 403
        await send({"type": "websocket.close", "code": 1008, "reason": reason[:100]})

    def _checked_receive(self, receive: Receive, send: Send, kernel_id: str,
                         gate: common.MessageGate, stuck: asyncio.Event) -> Receive:
        """The page's messages that pass ``gate`` (all of them are received on the server's
        event loop, one at a time: the kernel's bucket needs no lock of its own); a
        disconnect once ``stuck`` is set (Solara then lets the websocket go)."""

        async def next_message() -> Message:
            if stuck.is_set():
                return {"type": "websocket.disconnect", "code": 1011}
            received = asyncio.ensure_future(receive())
            halted = asyncio.ensure_future(stuck.wait())
            try:
                await asyncio.wait({received, halted}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                halted.cancel()
                if not received.done():
                    received.cancel()
            if received.cancelled() or not received.done():
                return {"type": "websocket.disconnect", "code": 1011}
            return received.result()

        async def receiving() -> Message:
            while True:
                message = await next_message()
                if message["type"] != "websocket.receive":
                    return message
                data = message.get("text")
                if data is None:
                    data = message.get("bytes") or b""
                reason = gate.refusal(data)
                if reason is None:
                    return message
                closing = gate.refused()
                if gate.worth_logging():
                    logger.warning("kernel websocket %s: refused a message (%s); %d so far",
                                   kernel_id[:8], reason, gate.count)
                if closing:
                    logger.warning("kernel websocket %s: closed (%s, %d refused)",
                                   kernel_id[:8], reason, gate.count)
                    try:
                        await send({"type": "websocket.close", "code": 1008,
                                    "reason": "policy violation"})
                    except Exception:  # noqa: BLE001 - already closing
                        pass
                    return {"type": "websocket.disconnect", "code": 1008}

        return receiving

    def _checked_send(self, send: Send, kernel_id: str, stuck: asyncio.Event) -> Send:
        """What goes to the page: no diagnostics; a message that waits more than
        ``send_timeout`` seconds to be sent (the server's buffer for this client is full: the
        page does not read) drops the websocket. Solara's sending thread is then told the
        page has gone, nothing more is queued for it and its receive ends; what stays is the
        connection's own buffer (uvicorn stops taking messages past asyncio's high-water mark,
        64 KiB)."""
        timeout = self.limits.send_timeout or None

        async def sending(message: Message) -> None:
            if message["type"] == "websocket.send":
                text = message.get("text")
                if text is not None and _is_diagnostic(text):
                    return
            if stuck.is_set():
                if message["type"] == "websocket.send":
                    raise RuntimeError(NOT_READING)
                return  # closing: nothing more can reach this page
            try:
                await asyncio.wait_for(send(message), timeout)
            except asyncio.TimeoutError:
                stuck.set()
                logger.warning("kernel websocket %s: dropped, a message waited %g s to be "
                               "sent (the page does not read)", kernel_id[:8], timeout)
                raise RuntimeError(NOT_READING) from None
        return sending

    # -- culling

    def _start_culler(self) -> None:
        if self._culler is None and self.limits.cull_interval > 0:
            self._culler = threading.Thread(target=self._cull_loop, name="guide-culler",
                                            daemon=True)
            self._culler.start()

    def _cull_loop(self) -> None:
        while not self._stop.wait(self.limits.cull_interval):
            try:
                self.cull()
            except Exception:  # noqa: BLE001 - logged; the next round tries again
                logger.exception("culling idle visits failed")

    def cull_reason(self, kernel_id: str, now: float) -> str | None:
        with KERNELS.lock:
            started = KERNELS.started.get(kernel_id)
            last = KERNELS.last_action.get(kernel_id)
        if started is None:
            return None
        if self.limits.max_visit > 0 and now - started > self.limits.max_visit:
            return "the longest visit"
        if self.limits.idle_timeout > 0 and last is not None and now - last > self.limits.idle_timeout:
            return "idle"
        return None

    def cull(self) -> list[str]:
        """Close the visits that are idle or too long; their ids."""
        now = time.monotonic()
        culled = []
        for kernel_id, context in live_contexts().items():
            reason = self.cull_reason(kernel_id, now)
            if reason is None:
                continue
            logger.info("closing visit %s: %s", kernel_id[:8], reason)
            forget_kernel(kernel_id)
            try:
                # the page's connection goes first: closing the kernel closes its widgets, and
                # the page would remove them (the guide with its "stopped" notice) on hearing it
                sockets = context.kernel.session.websockets
                for socket in list(sockets):
                    sockets.discard(socket)
                    try:
                        socket.close()
                    except Exception:  # noqa: BLE001 - already closed
                        pass
                context.close(reason="cull")
            except Exception:  # noqa: BLE001 - logged; the others are still culled
                logger.exception("closing visit %s failed", kernel_id[:8])
            culled.append(kernel_id)
        return culled


def page_scripts() -> dict[str, bytes]:
    """The page's scripts: the Solara host's, and the guide's guide.js from the installed
    Voilà template (one script for both hosts). RuntimeError when guide.js is not found."""
    from jupyter_core.paths import jupyter_path

    scripts = {"solara-host.js": (ASSETS / "solara-host.js").read_bytes()}
    for folder in jupyter_path("voila", "templates", "guide", "static"):
        candidate = Path(folder) / "guide.js"
        if candidate.is_file():
            scripts["guide.js"] = candidate.read_bytes()
            break
    else:
        raise RuntimeError("the guide's page script (voila/templates/guide/static/guide.js) is "
                           "not installed: install the project (pip install -e .)")
    return scripts
