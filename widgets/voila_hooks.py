"""Server-side hooks for the Voilà apps (the guide and the dashboard), named in ``voila.json``.

The guide is a public page: every request and every websocket message may be hostile. Voilà
0.5.13 and jupyter_server 2 are used as they are, with these classes plugged in through their
documented configuration (``voila.json``), and three upstream functions replaced by checked ones
(see :func:`install`):

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
    * bounds the message rate of each websocket (a burst, then a sustained rate); a client that
      keeps exceeding it is disconnected, and nothing it still sends is read (jupyter_server
      would read it with the legacy framing, as unchecked). Message size is bounded by tornado's
      ``websocket_max_message_size`` in ``voila.json``.

``GuideKernelManager`` (``VoilaConfiguration.multi_kernel_manager_class``)
    knows which kernels wait in Voilà's preheated pool and which belong to visitors (a kernel
    started for a page, or taken from the pool by one), for the cap above. It is
    jupyter_server's kernel manager, whose idle culler (``MappingKernelManager.cull_idle_timeout``
    in ``voila.json``: 60 s) only culls kernels with no open websocket. This one also culls a
    kernel whose websocket is open but that has been idle for ``cull_connected_after`` seconds
    (30 min): a page left open in a forgotten tab, or a client that holds a websocket to keep a
    kernel, gives its kernel back.

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

import html
import inspect
import ipaddress
import json
import logging
import time
import uuid
from contextvars import ContextVar
from datetime import timedelta
from typing import Any

from jupyter_server._tz import utcnow
from jupyter_server.auth.identity import PasswordIdentityProvider
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from tornado import web
from traitlets import Float, Int, default

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
    """jupyter_server's kernel websocket connection, v1 protocol only, with checked input."""

    message_burst = Int(200, config=True, help="Messages a page may send at once.")
    message_rate = Float(50.0, config=True, help="Messages per second a page may send, sustained.")
    abuse_limit = Int(
        200, config=True,
        help="Messages refused (over the rate, badly framed or not allowed) before the "
             "websocket is closed.")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._tokens = float(self.message_burst)
        self._refill_at = time.monotonic()
        self._refused = 0
        self._closing = False

    async def prepare(self) -> None:
        offered = self.websocket_handler.request.headers.get("Sec-WebSocket-Protocol", "")
        if V1_PROTOCOL not in {p.strip() for p in offered.split(",")}:
            raise web.HTTPError(400, f"kernel websockets must use the {V1_PROTOCOL} protocol")
        self.kernel_ws_protocol = V1_PROTOCOL
        await super().prepare()

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
        now = time.monotonic()
        self._tokens = min(float(self.message_burst),
                           self._tokens + (now - self._refill_at) * self.message_rate)
        self._refill_at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


# --------------------------------------------------------------------------- kernel culling


class GuideKernelManager(AsyncMappingKernelManager):
    """Culls connected kernels too, after ``cull_connected_after`` seconds of idleness."""

    cull_connected_after = Int(
        1800, config=True,
        help="Seconds of idleness after which a kernel is culled even with its page connected "
             "(0: never). Kernels without a connection follow cull_idle_timeout.")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: kernels started for Voilà's preheated pool and not taken by a page yet
        self._pool_ids: set[str] = set()
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
            else:
                self._pool_ids.add(kernel_id)
        try:
            return await super().start_kernel(*args, kernel_id=kernel_id, **kwargs)
        except BaseException:
            self._pool_ids.discard(kernel_id)
            raise

    async def shutdown_kernel(self, kernel_id: str, *args: Any, **kwargs: Any) -> None:
        self._pool_ids.discard(kernel_id)
        _forget_request_info(kernel_id)
        await super().shutdown_kernel(kernel_id, *args, **kwargs)

    def visitors(self, pages: set[_Page]) -> int:
        """Kernels not waiting in the pool, plus ``pages`` that have no running kernel yet."""
        ids = set(self.list_kernel_ids())
        return len(ids - self._pool_ids) + sum(1 for page in list(pages)
                                               if page.kernel_id not in ids)

    async def cull_kernel_if_idle(self, kernel_id: str) -> None:
        kernel = self._kernels.get(kernel_id)
        if (kernel is not None and self.cull_connected_after > 0
                and self._kernel_connections.get(kernel_id, 0)
                and getattr(kernel, "execution_state", None) != "busy"
                and hasattr(kernel, "last_activity")):
            idle = utcnow() - kernel.last_activity
            if idle > timedelta(seconds=self.cull_connected_after):
                self.log.warning("Culling kernel %s: connected but idle for %d s",
                                 kernel_id, int(idle.total_seconds()))
                await self.shutdown_kernel(kernel_id)
                return
        await super().cull_kernel_if_idle(kernel_id)


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


def install() -> None:
    """Replace the upstream functions described in the module docstring (idempotent).

    * ``voila.tornado.kernel_websocket_handler.read_header_from_binary_message`` by
      :func:`read_header_from_binary_message` (bounds-checked);
    * ``voila.request_info_handler.RequestInfoSocketHandler.prepare`` by a check that only
      the server's own kernels connect, and its ``open`` by one that hands a cached visitor
      request over once.
    """
    global _INSTALLED
    if _INSTALLED:
        return
    import voila.request_info_handler as request_info
    import voila.tornado.kernel_websocket_handler as kernel_ws

    kernel_ws.read_header_from_binary_message = read_header_from_binary_message
    request_info.RequestInfoSocketHandler.prepare = _request_info_prepare
    request_info.RequestInfoSocketHandler.open = _request_info_open
    _INSTALLED = True
