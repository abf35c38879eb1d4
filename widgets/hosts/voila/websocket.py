"""Server-side hooks for the Voilà apps (the guide and the dashboard), named in ``voila.json``.

The guide is a public page: every request and every websocket message may be hostile. Voilà
0.5.13 and jupyter_server 2 are used as they are, with these classes plugged in through their
documented configuration (``voila.json``), and a few upstream functions replaced by checked ones
(see :func:`install`, which first checks that the pinned versions and every target are there,
and stops the server otherwise):

``GuideIdentityProvider`` (``Voila.identity_provider_class``)
    runs before every HTTP request and websocket upgrade the Voilà app handles:

    * **capacity**: a notebook page is refused with a small bilingual "busy" page (HTTP 503 and
      ``Retry-After``) when ``max_visitors`` visitors already hold a kernel in this server (or are
      being served one). Without it, 40 simultaneous visits start 40 kernels (about 100 MB each)
      and every visitor waits for all of them. Each visitor counts once: a page being served
      counts until it has its kernel, then its kernel counts (``GuideKernelManager`` tells the
      preheated pool's kernels from visitors'), so a burst fills the cap exactly;
    * **no theme or template from the link**: ``?theme=`` and ``?template=`` are removed from
      the request (``voila.json`` also sets ``allow_theme_override`` and
      ``allow_template_override`` to ``NO``), so a link can neither inject markup through the
      theme nor switch to another template, nor skip the preheated kernels;
    * **kernel reclaim**: the notebook page sets the ``_xsrf`` cookie. Voilà's page shuts its
      kernel down on ``beforeunload`` with ``navigator.sendBeacon`` to
      ``/voila/api/shutdown/<id>``, sending the ``_xsrf`` cookie's value as a form field; Voilà
      never issues that cookie (voila-dashboards/voila#1458), so jupyter_server answered 403 and
      every visit left its kernel behind. XSRF checks stay on for every other request;
    * **no broken logout**: jupyter_server's ``/logout`` renders a template Voilà does not have
      (HTTP 500). It is served only where a login exists (the dashboard with a token), and then
      clears the login cookie and returns to the page.

``GuideKernelWebsocketConnection`` (``Voila.kernel_websocket_connection_class``)
    the bridge between a page's websocket and its kernel:

    * refuses a websocket that does not speak the ``v1.kernel.websocket.jupyter.org`` protocol
      (HTTP 400 before the upgrade). Voilà's ``read_header_from_binary_message`` parses every
      outgoing binary message as v1; on a legacy-protocol socket the first 8 bytes of a message
      with buffers read as a count of billions and the server froze (100 % CPU, memory growing by
      gigabytes, every other visitor and even static files unanswered, SIGTERM ignored);
    * checks every incoming message's v1 framing before jupyter_server's
      ``deserialize_msg_from_ws_v1`` reads it (that function builds a list as long as the count
      in the message's first 8 bytes, so 8 hostile bytes froze the server the same way);
    * refuses widgets created from the page (``comm_open`` for a widget): the guide creates its
      widgets in the kernel; a page never needs to, and a visitor's own widgets grew a kernel
      from 142 to 359 MB;
    * bounds the message rate of each kernel, all its websockets together (a burst, then a
      sustained rate); a client that keeps exceeding it is disconnected, and nothing it still
      sends is read (jupyter_server would read it with the legacy framing, as unchecked).
      Message size is bounded by tornado's ``websocket_max_message_size`` in ``voila.json``;
    * counts websockets per kernel (``max_per_kernel``) and per client address
      (``max_per_client``) and refuses one more (HTTP 429) before any ZMQ socket is made (each
      websocket costs four from a context of 1,023); the count jupyter_server keeps for its
      culler stays exact through refusals and failed opens;
    * closes a websocket for which more than ``max_unsent_bytes`` wait unsent (a client that
      does not read would grow the server's memory without bound);
    * passes the page no ``error`` message and no stderr stream of the kernel (ipywidgets
      answers a bad value from the page with a traceback naming the server's files).

``GuideKernelManager`` (``VoilaConfiguration.multi_kernel_manager_class``)
    knows which kernels wait in Voilà's preheated pool and which belong to visitors (a kernel
    started for a page, or taken from the pool by one), for the cap above. It is
    jupyter_server's kernel manager, whose idle culler (``MappingKernelManager.cull_idle_timeout``
    in ``voila.json``: 60 s) only culls kernels with no open websocket. This one also culls a
    visitor's kernel whose page is connected but whose visitor has done nothing in the guide (a
    step, an answer, a button: the kernel touches a file, see ``widgets/activity.py``) for
    ``cull_connected_after`` seconds (30 min), since any widget message would otherwise keep a
    kernel forever, and every visitor's kernel after ``max_visit`` seconds (2 h).

``/voila/query/<kernel id>`` (Voilà's ``RequestInfoSocketHandler``)
    is how a preheated kernel learns its visitor's query string: the kernel itself connects to
    it. It took anonymous websockets from anywhere for any id; now it accepts only a direct
    loopback connection (no ``Origin``, no proxy forwarding headers) for a kernel this server
    runs that has no waiter yet. A reverse proxy should not publish the path at all.
    Voilà keeps a visitor's request for a kernel that has not connected yet in a class-level
    cache and never removes it: it was sent again to every later connection for that kernel,
    and the cache grew with every such visit for the server's lifetime. The request is now
    handed over once, and forgotten when its kernel shuts down.

Voilà starts a preheated kernel's notebook before any visitor arrives, and the guide's page
script, template and settings are unchanged by all this. The module must stay importable in
the Voilà server process without side effects: :func:`install` runs when the identity
provider is created (once, at server start), never at import.
"""

from __future__ import annotations

import collections
import contextlib
import html
import inspect
import ipaddress
import json
import logging
import os
import tempfile
import time
import uuid
import weakref
from contextvars import ContextVar
from typing import Any, ClassVar

from jupyter_server.auth.identity import PasswordIdentityProvider
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from tornado import web
from traitlets import Float, Int, default

from . import activity
from .ratelimit import TokenBucket
from . import server_check

__all__ = [
    "GuideIdentityProvider",
    "GuideKernelManager",
    "GuideKernelWebsocketConnection",
    "BUSY_PAGE",
    "install",
    "read_header_from_binary_message",
    "check_v1_frame",
]

_log = logging.getLogger("widgets.voila_hooks")

V1_PROTOCOL = "v1.kernel.websocket.jupyter.org"
#: The environment variable naming the file on which a guide kernel marks its visitor's actions;
#: set by :class:`GuideKernelManager` for each kernel it starts.
ACTIVITY_ENV = activity.ENV
#: Query arguments a link may not use to change how the page is rendered.
_RENDERING_ARGUMENTS = ("theme", "template")
#: Parts of a v1 message: channel, header, parent header, metadata, content, then buffers.
_V1_MIN_PARTS = 5
#: More buffers than any widget of the guide sends (a file upload has one per file).
_V1_MAX_PARTS = 5 + 16
#: Headers a reverse proxy adds; a request carrying one did not come straight from a kernel.
_FORWARDING_HEADERS = ("X-Forwarded-For", "X-Real-Ip", "Forwarded", "X-Forwarded-Host")

#: The page a visitor gets while the server is full (HTTP 503). No script, no outside request.
BUSY_PAGE = """<!DOCTYPE html>
<html lang="ko">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>잠시 후 다시 시도해 주세요 · Please try again shortly</title>
<style>
  body {{ font-family: system-ui, "Noto Sans CJK KR", "Apple SD Gothic Neo", sans-serif;
         max-width: 36rem; margin: 3rem auto; padding: 0 1rem; line-height: 1.6; color: #1a1a1a; }}
  h1, h2 {{ font-size: 1.4rem; }}
  a.retry {{ display: inline-block; min-height: 44px; line-height: 44px; padding: 0 1.2rem;
            border-radius: 6px; background: #0a58ca; color: #fff; text-decoration: none; }}
</style>
</head>
<body>
<main>
<h1>지금 이용하는 분이 많습니다</h1>
<p>안내서를 바로 열 수 없습니다. {seconds}초쯤 뒤에 다시 시도해 주세요.</p>
<section lang="en">
<h2>The guide is busy right now</h2>
<p>Too many people are using it at the moment. Please try again in about {seconds} seconds.</p>
</section>
<p><a class="retry" href="{url}">다시 시도 · Try again</a></p>
</main>
</body>
</html>
"""


# --------------------------------------------------------------------------- request gate


class LogoutRedirectHandler(JupyterHandler):
    """``/logout``: forget the login cookie and go back to the app (no template needed)."""

    def get(self) -> None:
        self.identity_provider.clear_login_cookie(self)
        self.redirect(self.base_url)


class GuideIdentityProvider(PasswordIdentityProvider):
    """Voilà's default identity provider, plus the guide's gate on every request (see module)."""

    max_visitors = Int(
        32,
        config=True,
        help="The most visitors this server serves at once (each holds one kernel); a page "
             "request beyond it gets the bilingual busy page (HTTP 503). 0 disables the cap.",
    )
    retry_after = Int(
        20, config=True, help="Seconds a refused visitor is asked to wait (Retry-After)."
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        install()
        server_check.check_server(self.parent, self)  # the guide's settings, or no guide
        #: page requests admitted and not finished yet
        self._pages: set[_Page] = set()

    @property
    def logout_available(self) -> bool:  # type: ignore[override]
        """A logout page only where there is a login (a token or password is set)."""
        return bool(self.login_available)

    @default("logout_handler_class")
    def _default_logout_handler_class(self) -> type:
        return LogoutRedirectHandler

    async def get_user(self, handler):  # type: ignore[override]
        user = super().get_user(handler)
        if inspect.isawaitable(user):
            user = await user
        if server_check.refuse(handler, self.parent):  # settings not the guide's: 503
            return user
        if user is None or not _is_voila_page(handler):
            return user
        _drop_rendering_arguments(handler)
        if handler.request.method != "GET":
            return user
        # tornado's xsrf_token consults current_user (to choose the cookie's lifetime);
        # jupyter_server only assigns it after get_user returns, with this same value.
        handler.current_user = user
        if not self._admit(handler):
            return user  # the busy page is written; the handler stops after prepare()
        handler.xsrf_token  # noqa: B018 - read for its side effect (the Set-Cookie header)
        return user

    # -- capacity

    def visitors(self, handler) -> int:
        """Visitors this server serves now: kernels that are not waiting in the preheated
        pool, plus pages being served that have no kernel yet."""
        manager = handler.settings.get("kernel_manager")
        if isinstance(manager, GuideKernelManager):
            return manager.visitors(self._pages)
        # another kernel manager cannot tell pool kernels apart: count every kernel and page
        kernels = len(manager.list_kernel_ids()) if manager is not None else 0
        return kernels + len(self._pages)

    def _admit(self, handler) -> bool:
        if self.max_visitors > 0 and self.visitors(handler) >= self.max_visitors:
            self.log.warning("guide: %d visitors (the cap); answered 503 to a new visit",
                             self.max_visitors)
            _write_busy_page(handler, self.retry_after)
            return False
        page = _Page()
        self._pages.add(page)
        _PAGE.set(page)  # the request's task: the kernel manager sees which page it serves
        finish = handler.on_finish

        def on_finish() -> None:
            self._pages.discard(page)
            finish()

        handler.on_finish = on_finish
        return True


class _Page:
    """A page request admitted under the cap, until it finishes; ``kernel_id``: the kernel it
    got (started for it, or taken from the pool), once it has one."""

    __slots__ = ("kernel_id",)

    def __init__(self) -> None:
        self.kernel_id: str | None = None


#: The page request the running task serves (set by :class:`GuideIdentityProvider`; tasks
#: started while serving it, such as the pool's refills, inherit it).
_PAGE: ContextVar[_Page | None] = ContextVar("guide_page", default=None)


def _is_voila_page(handler) -> bool:
    from voila.handler import VoilaHandler  # the Voilà server has it imported already

    return isinstance(handler, VoilaHandler)


def _drop_rendering_arguments(handler) -> None:
    for name in _RENDERING_ARGUMENTS:
        handler.request.arguments.pop(name, None)
        handler.request.query_arguments.pop(name, None)


def _write_busy_page(handler, seconds: int) -> None:
    url = html.escape(handler.request.uri or "/", quote=True)
    handler.clear()
    handler.set_status(503)
    handler.set_header("Retry-After", str(seconds))
    handler.set_header("Content-Type", "text/html; charset=UTF-8")
    handler.set_header("Cache-Control", "no-store")
    handler.finish(BUSY_PAGE.format(seconds=seconds, url=url))


# --------------------------------------------------------------------------- kernel websockets


def check_v1_frame(message: object, size: int | None = None) -> list[int]:
    """The offsets of a v1 kernel-websocket message, or ValueError if its framing is not sound.

    v1 framing: an 8-byte little-endian count ``n``, then ``n`` 8-byte little-endian offsets
    (the first pointing just past the offset table), non-decreasing and within the message.
    ``size`` limits ``n`` (default: channel, four message parts and up to 16 buffers).
    """
    if not isinstance(message, (bytes, bytearray, memoryview)):
        raise ValueError("a v1 message is binary")
    data = bytes(message[:8])
    if len(data) < 8:
        raise ValueError("message shorter than its offset count")
    count = int.from_bytes(data, "little")
    limit = _V1_MAX_PARTS + 1 if size is None else size
    if not _V1_MIN_PARTS + 1 <= count <= limit:
        raise ValueError(f"offset count {count} out of range")
    end = 8 * (count + 1)
    if len(message) < end:
        raise ValueError("message shorter than its offset table")
    table = bytes(message[8:end])
    offsets = [int.from_bytes(table[8 * i:8 * (i + 1)], "little") for i in range(count)]
    if offsets[0] != end or any(b < a for a, b in zip(offsets, offsets[1:])) \
            or offsets[-1] > len(message):
        raise ValueError("offsets out of order or past the end")
    return offsets


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
    _per_kernel: ClassVar[collections.Counter[str]] = collections.Counter()
    _per_client: ClassVar[collections.Counter[str]] = collections.Counter()
    #: each kernel's message budget, shared by its websockets; gone with the kernel
    _buckets: ClassVar[weakref.WeakKeyDictionary[Any, TokenBucket]] = weakref.WeakKeyDictionary()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._refused = 0
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
        if self._per_kernel[kernel_id] >= self.max_per_kernel > 0:
            self.log.warning("kernel websocket %s: refused, %d already open for this kernel",
                             kernel_id, self.max_per_kernel)
            raise web.HTTPError(429, "too many websockets for this kernel")
        if client is not None and self._per_client[client] >= self.max_per_client > 0:
            self.log.warning("kernel websocket %s: refused, %d already open from one client",
                             kernel_id, self.max_per_client)
            raise web.HTTPError(429, "too many websockets from this client")
        self._per_kernel[kernel_id] += 1
        if client is not None:
            self._per_client[client] += 1
        self._counted = (kernel_id, client)

    def _count_out(self) -> None:
        counted, self._counted = self._counted, None
        if counted is None:
            return
        for counter, key in zip((self._per_kernel, self._per_client), counted):
            if key is None:
                continue
            counter[key] -= 1
            if counter[key] <= 0:
                del counter[key]

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
        reason = self._refusal(incoming_msg)
        if reason is None:
            super().handle_incoming_message(incoming_msg)
            return
        self._refused += 1
        if self._refused == 1 or self._refused % 100 == 0:
            self.log.warning("kernel websocket %s: refused a message (%s); %d so far",
                             self.kernel_id, reason, self._refused)
        if self._refused >= self.abuse_limit:
            self.log.warning("kernel websocket %s: closed after %d refused messages",
                             self.kernel_id, self._refused)
            self._closing = True
            self.websocket_handler.close(1008, "policy violation")

    def _refusal(self, message: Any) -> str | None:
        """Why ``message`` is refused, or None to pass it to the kernel."""
        if not self._take_token():
            return "over the message rate"
        try:
            offsets = check_v1_frame(message)
        except ValueError as exc:
            return f"bad framing: {exc}"
        try:
            header = json.loads(message[offsets[1]:offsets[2]])
            msg_type = header.get("msg_type")
            if msg_type == "comm_open":
                content = json.loads(message[offsets[4]:offsets[5]])
                if content.get("target_name") != "jupyter.widget.control":
                    return "the page may not create widgets"
        except (ValueError, AttributeError, UnicodeDecodeError):
            return "unreadable header"
        return None

    def _take_token(self) -> bool:
        """The kernel's message budget (all its websockets share it)."""
        kernel = self.kernel_manager
        bucket = self._buckets.get(kernel)
        if bucket is None:
            bucket = self._buckets[kernel] = TokenBucket(self.message_rate, self.message_burst)
        return bucket.take()

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


def _is_diagnostic(session: Any, msg_list: list[Any]) -> bool:
    """True for a kernel message that would show the page a traceback or the kernel's stderr:
    an ``error`` (ipywidgets reports a bad value from the page with one, naming the server's
    files) or a ``stream`` to stderr. The guide's page runs no code, so it needs neither."""
    try:
        _, parts = session.feed_identities(msg_list)
        header = json.loads(bytes(parts[1]))
        msg_type = header.get("msg_type")
        if msg_type == "error":
            return True
        if msg_type == "stream":
            return json.loads(bytes(parts[4])).get("name") != "stdout"
    except Exception:  # noqa: BLE001 - not a message we can read: jupyter_server decides
        return False
    return False


def unsent_bytes(handler: Any) -> int:
    """Bytes tornado holds for ``handler``'s websocket that the client has not taken yet."""
    stream = getattr(getattr(handler, "ws_connection", None), "stream", None)
    buffer = getattr(stream, "_write_buffer", None)
    try:
        return len(buffer) if buffer is not None else 0
    except TypeError:
        return 0


def client_address(request: Any) -> str | None:
    """The client's address: the peer's, or, from a proxy on this machine (the shipped nginx),
    the address it forwards in ``X-Real-IP``; None for a process on this machine that forwards
    none (the server's own tests and benchmarks, a local browser), which is not counted."""
    peer = request.remote_ip or ""
    try:
        loopback = ipaddress.ip_address(peer).is_loopback
    except ValueError:
        return peer
    if not loopback:
        return peer
    forwarded = request.headers.get("X-Real-IP", "").strip()
    try:
        return str(ipaddress.ip_address(forwarded)) if forwarded else None
    except ValueError:
        return peer


# --------------------------------------------------------------------------- kernel culling


class GuideKernelManager(AsyncMappingKernelManager):
    """Knows the preheated pool's kernels from visitors'; culls a visitor's kernel, connected
    or not, after ``cull_connected_after`` seconds without a step, an answer or a button in
    the guide, and after ``max_visit`` seconds in any case."""

    cull_connected_after = Int(
        1800, config=True,
        help="Seconds without an action in the guide (a step, an answer, a button) after which "
             "a visitor's kernel is culled even with its page connected (0: never). Widget "
             "messages that are not guide actions do not count. Kernels without a connection "
             "follow cull_idle_timeout.")
    max_visit = Int(
        7200, config=True,
        help="Seconds a visitor may hold a kernel at most, active or not (0: no limit); then "
             "the kernel is culled and the page offers to start again.")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: kernels started for Voilà's preheated pool and not taken by a page yet
        self._pool_ids: set[str] = set()
        #: when each visitor's kernel was given to its visitor (time.time())
        self._visit_started: dict[str, float] = {}
        #: the guide's kernels mark each action of their visitor on a file here (its mtime)
        self.activity_dir = tempfile.mkdtemp(prefix="guide-activity-")
        # Voilà's kernel manager is a subclass made at start-up (voila_kernel_manager_factory)
        # whose get_rendered_notebook hands a pool kernel to a page: note which page took it.
        taking = getattr(self, "get_rendered_notebook", None)
        if taking is not None:
            async def get_rendered_notebook(*args: Any, **kw: Any) -> Any:
                result = await taking(*args, **kw)
                self._taken(result[2])
                return result

            self.get_rendered_notebook = get_rendered_notebook

    def _taken(self, kernel_id: str) -> None:
        self._pool_ids.discard(kernel_id)
        self._visit_started[kernel_id] = time.time()
        # The idle culler measures from the kernel's last message; a notebook that does not
        # wait for its visitor went quiet when it finished in the pool, maybe long ago: the
        # page gets the whole cull_idle_timeout to connect, as for a newly started kernel.
        kernel = self._kernels.get(kernel_id)
        if kernel is not None:
            from jupyter_server._tz import utcnow

            kernel.last_activity = utcnow()
        page = _PAGE.get()
        if page is not None:
            page.kernel_id = kernel_id

    async def start_kernel(self, *args: Any, kernel_id: str | None = None, **kwargs: Any) -> str:
        """Start a kernel, noting before it starts whether it is the kernel of the page being
        served (Voilà without a pool) or one for the pool (the start-up fill, or a refill, which
        runs in a task started by a page that already has its kernel)."""
        if kernel_id is None or kernel_id not in self:
            kernel_id = kernel_id or str(uuid.uuid4())
            page = _PAGE.get()
            if page is not None and page.kernel_id is None:
                page.kernel_id = kernel_id
                self._visit_started[kernel_id] = time.time()
            else:
                self._pool_ids.add(kernel_id)
        env = dict(kwargs.get("env") or os.environ)
        env[ACTIVITY_ENV] = self.activity_file(kernel_id)
        server_check.mark_kernel(self, env)  # a kernel of a server that passed its check
        kwargs["env"] = env
        try:
            return await super().start_kernel(*args, kernel_id=kernel_id, **kwargs)
        except BaseException:
            self._pool_ids.discard(kernel_id)
            self._visit_started.pop(kernel_id, None)
            raise

    def activity_file(self, kernel_id: str) -> str:
        """The file whose modification time is the last action of ``kernel_id``'s visitor."""
        return os.path.join(self.activity_dir, kernel_id)

    def last_action(self, kernel_id: str) -> float | None:
        """When ``kernel_id``'s visitor last acted in the guide, or was given the kernel
        (time.time()); None for a kernel in the pool."""
        started = self._visit_started.get(kernel_id)
        if started is None:
            return None
        try:
            return max(started, os.stat(self.activity_file(kernel_id)).st_mtime)
        except OSError:
            return started

    async def shutdown_kernel(self, kernel_id: str, *args: Any, **kwargs: Any) -> None:
        self._pool_ids.discard(kernel_id)
        self._visit_started.pop(kernel_id, None)
        with contextlib.suppress(OSError):
            os.unlink(self.activity_file(kernel_id))
        _forget_request_info(kernel_id)
        await super().shutdown_kernel(kernel_id, *args, **kwargs)

    def visitors(self, pages: set[_Page]) -> int:
        """Kernels not waiting in the pool, plus ``pages`` that have no running kernel yet."""
        ids = set(self.list_kernel_ids())
        return len(ids - self._pool_ids) + sum(1 for page in list(pages)
                                               if page.kernel_id not in ids)

    async def cull_kernel_if_idle(self, kernel_id: str) -> None:
        reason = self.cull_reason(kernel_id)
        if reason is not None:
            self.log.warning("Culling kernel %s: %s", kernel_id, reason)
            await self.shutdown_kernel(kernel_id)
            return
        await super().cull_kernel_if_idle(kernel_id)

    def cull_reason(self, kernel_id: str, now: float | None = None) -> str | None:
        """Why a visitor's kernel is culled now (its visit is over its maximum length, or it
        is connected with no guide action for ``cull_connected_after``), or None."""
        started = self._visit_started.get(kernel_id)
        if started is None or kernel_id not in self._kernels:
            return None
        now = time.time() if now is None else now
        if self.max_visit > 0 and now - started > self.max_visit:
            return f"the visit reached its maximum length ({self.max_visit} s)"
        last = self.last_action(kernel_id)
        if (self.cull_connected_after > 0 and self._kernel_connections.get(kernel_id, 0)
                and last is not None and now - last > self.cull_connected_after):
            return f"connected but no action in the guide for {int(now - last)} s"
        return None


# --------------------------------------------------------------------------- /voila/query


def _request_info_prepare(self) -> None:
    """``RequestInfoSocketHandler.prepare``: only the server's own kernels may connect."""
    request = self.request
    kernel_id = self.path_kwargs.get("kernel_id") or (self.path_args or [""])[0]
    manager = self.settings.get("kernel_manager")
    waiters = getattr(type(self), "_waiters", {})
    try:
        loopback = ipaddress.ip_address(request.remote_ip).is_loopback
    except ValueError:
        loopback = False
    if (not loopback or "Origin" in request.headers
            or any(name in request.headers for name in _FORWARDING_HEADERS)
            or manager is None or kernel_id not in manager.list_kernel_ids()
            or kernel_id in waiters):
        raise web.HTTPError(403)


def _request_info_open(self, kernel_id: str) -> None:
    """``RequestInfoSocketHandler.open``: the kernel waits here for its visitor's request; one
    that arrived before the kernel connected is handed over once and removed from the cache."""
    from voila.request_info_handler import RequestInfoSocketHandler as handler

    handler._waiters[kernel_id] = self
    payload = handler._cache.pop(kernel_id, None)
    if payload is not None:
        self.write_message(payload)


def _forget_request_info(kernel_id: str) -> None:
    """Drop what Voilà still holds for ``kernel_id``'s visitor (its kernel has ended)."""
    from voila.request_info_handler import RequestInfoSocketHandler

    RequestInfoSocketHandler._cache.pop(kernel_id, None)


# --------------------------------------------------------------------------- installation

_INSTALLED = False


def _template_static_path(original: Any) -> Any:
    """``TemplateStaticFileHandler.get_absolute_path``, answering 404 to a path that is not
    ``<template>/static/<file>`` once normalised (``guide/static/..%2fconf.json`` failed with
    an HTTP 500 and a traceback in the server log)."""

    def get_absolute_path(cls, root: str, path: str) -> str:
        parts = os.path.normpath(path).split(os.sep, 2)
        if len(parts) != 3 or parts[1] != "static" or ".." in parts or not parts[2]:
            raise web.HTTPError(404)
        return original(root, path)

    return classmethod(get_absolute_path)


def _template_static_parse(original: Any) -> Any:
    def parse_url_path(self, path: str) -> str:
        if path.count("/") < 2 or path.split("/", 2)[1] != "static":
            raise web.HTTPError(404)
        return original(self, path)

    return parse_url_path


def _clear_without_banner(original: Any) -> Any:
    """``RequestHandler.clear`` without tornado's ``Server`` header (it named the server and
    its version on every response)."""

    def clear(self) -> None:
        original(self)
        self.clear_header("Server")

    return clear


#: The upstream versions this module was written and tested against (pyproject.toml's pins;
#: tests/test_server_limits.py checks that the two agree).
PINNED = {"voila": "0.5.13", "jupyter_server": "2.21.1"}

#: What the hooks replace or rely on upstream, as (module, attribute path): if one is missing,
#: a protection would silently not apply.
UPSTREAM_TARGETS = (
    ("voila.tornado.kernel_websocket_handler", "read_header_from_binary_message"),
    ("voila.request_info_handler", "RequestInfoSocketHandler"),
    ("voila.request_info_handler", "RequestInfoSocketHandler.open"),
    ("voila.request_info_handler", "RequestInfoSocketHandler._cache"),
    ("voila.request_info_handler", "RequestInfoSocketHandler._waiters"),
    ("voila.static_file_handler", "TemplateStaticFileHandler.get_absolute_path"),
    ("voila.static_file_handler", "TemplateStaticFileHandler.parse_url_path"),
    ("voila.handler", "VoilaHandler"),
    ("voila.utils", "wait_for_request"),
    ("tornado.web", "RequestHandler.clear"),
    ("tornado.websocket", "WebSocketHandler.on_connection_close"),
    ("jupyter_server.services.kernels.connection.channels",
     "ZMQChannelsWebsocketConnection.prepare"),
    ("jupyter_server.services.kernels.connection.channels",
     "ZMQChannelsWebsocketConnection.connect"),
    ("jupyter_server.services.kernels.connection.channels",
     "ZMQChannelsWebsocketConnection.disconnect"),
    ("jupyter_server.services.kernels.connection.channels",
     "ZMQChannelsWebsocketConnection.handle_incoming_message"),
    ("jupyter_server.services.kernels.connection.channels",
     "ZMQChannelsWebsocketConnection.handle_outgoing_message"),
    ("jupyter_server.services.kernels.kernelmanager", "MappingKernelManager.cull_kernel_if_idle"),
    ("jupyter_server.services.kernels.kernelmanager", "MappingKernelManager.start_kernel"),
    ("jupyter_server.services.kernels.kernelmanager", "MappingKernelManager.shutdown_kernel"),
    ("jupyter_server.services.kernels.kernelmanager", "MappingKernelManager.notify_connect"),
)


class UpstreamChanged(RuntimeError):
    """Voilà or jupyter_server is not what the guide's hooks were written for."""


def check_upstream(version: Any = None) -> None:
    """Raise :class:`UpstreamChanged`, naming each difference, if a pinned package has another
    version or a target of the hooks is missing (``version``: ``importlib.metadata.version``)."""
    import importlib
    import importlib.metadata

    version = version or importlib.metadata.version
    problems = []
    for package, pinned in PINNED.items():
        try:
            found = version(package)
        except importlib.metadata.PackageNotFoundError:
            found = "not installed"
        if found != pinned:
            problems.append(f"{package} is {found}; the guide's server hooks are made for {pinned}")
    for module_name, path in UPSTREAM_TARGETS:
        try:
            target: Any = importlib.import_module(module_name)
            for name in path.split("."):
                # a class's own attribute: an inherited one is not the code the hook was made for
                if inspect.isclass(target) and name not in vars(target):
                    raise AttributeError(name)
                target = getattr(target, name)
        except (ImportError, AttributeError):
            problems.append(f"{module_name}.{path} is missing")
    if problems:
        raise UpstreamChanged(
            "not serving the guide: " + "; ".join(problems) + ". Install the versions pinned in "
            "pyproject.toml, or review widgets/voila_hooks.py against the new versions.")


def install() -> None:
    """Replace the upstream functions described in the module docstring (idempotent). First
    checks that the pinned upstream versions and every target are there
    (:func:`check_upstream`): the server refuses to start otherwise, with the reason in its
    log, rather than run without a protection.

    * ``voila.tornado.kernel_websocket_handler.read_header_from_binary_message`` by
      :func:`read_header_from_binary_message` (bounds-checked);
    * ``voila.request_info_handler.RequestInfoSocketHandler.prepare`` by a check that only
      the server's own kernels connect, and its ``open`` by one that hands a cached visitor
      request over once;
    * ``voila.static_file_handler.TemplateStaticFileHandler``'s path parsing by one that
      answers 404 to anything outside a template's ``static`` folder;
    * ``tornado.web.RequestHandler.clear`` by one that sends no ``Server`` header.
    """
    global _INSTALLED
    if _INSTALLED:
        return
    try:
        check_upstream()
    except UpstreamChanged as exc:
        _log.error("guide: %s", exc)
        raise
    import voila.request_info_handler as request_info
    import voila.static_file_handler as static
    import voila.tornado.kernel_websocket_handler as kernel_ws

    kernel_ws.read_header_from_binary_message = read_header_from_binary_message
    request_info.RequestInfoSocketHandler.prepare = _request_info_prepare
    request_info.RequestInfoSocketHandler.open = _request_info_open
    handler = static.TemplateStaticFileHandler
    handler.get_absolute_path = _template_static_path(handler.get_absolute_path)
    handler.parse_url_path = _template_static_parse(handler.parse_url_path)
    web.RequestHandler.clear = _clear_without_banner(web.RequestHandler.clear)
    _INSTALLED = True
