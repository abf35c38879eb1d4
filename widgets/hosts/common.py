"""What every host of the guide does the same way, whatever its server (standard library only).

A public page is hostile: each host of the guide (the Voilà server, and any other server of
the same guide) admits visitors under a cap, answers a visitor beyond it with the same
bilingual busy page, counts clients by the address the shipped nginx forwards, sends the same
security headers and bounds what one connection may send. The pieces here are plain data and
functions, so that each host applies them with its own request and response objects:

* :func:`busy_page` and :func:`busy_response`: the page a visitor gets while the server is
  full, and the whole answer (status 503, ``Retry-After``, no caching) as data;
* :func:`client_address`: the client's address from the peer's address and the request's
  headers (``X-Real-IP`` only from a proxy on this machine);
* :func:`server_settings`, :func:`security_headers` and :func:`max_message_size`: the security
  headers and the largest websocket message, from the one place they are set, the guide's
  ``voila.json`` as installed in the environment (:func:`installed_config_path`);
* :class:`SocketCounts`: the websockets open per kernel and per client address, each under
  its limit, counted in before anything is made for a websocket and out when it closes;
* :class:`MessageGate`: the checks of one connection's incoming messages (size, rate through a
  :class:`~widgets.ratelimit.TokenBucket`, refusals counted until the connection is closed);
* :func:`check_offset_frame` and :func:`check_v1_frame`: the framing of a binary message (a
  part count, then that many offsets; Jupyter's v1 kernel-websocket protocol is one such
  framing, Solara's another), checked before anything reads a count or an offset from it;
* :func:`comm_open_refusal`: a page opens only the channels it needs, never a widget of its own;
* :func:`is_diagnostic`: the kernel messages a page is never sent (tracebacks, stderr).
"""

from __future__ import annotations

import collections
import html
import ipaddress
import json
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..ratelimit import TokenBucket

__all__ = [
    "BUSY_PAGE",
    "BUSY_STATUS",
    "SECURITY_HEADER_NAMES",
    "ConfigurationError",
    "MessageGate",
    "PAGE_COMM_TARGETS",
    "SocketCounts",
    "busy_page",
    "busy_response",
    "check_offset_frame",
    "check_v1_frame",
    "client_address",
    "comm_open_refusal",
    "installed_config_path",
    "is_diagnostic",
    "max_message_size",
    "security_headers",
    "server_settings",
]

#: The status a visitor beyond the cap gets.
BUSY_STATUS = 503
#: The security headers every page of every host carries (their values: :func:`security_headers`).
SECURITY_HEADER_NAMES = ("Content-Security-Policy", "Referrer-Policy", "X-Frame-Options")
#: The header in which the shipped nginx forwards the client's address.
REAL_IP_HEADER = "X-Real-IP"

#: The channels a page of the guide may open in its kernel: ipywidgets' state request. The
#: guide makes its widgets in the kernel; a page never needs to (a host may add its own).
PAGE_COMM_TARGETS = frozenset({"jupyter.widget.control"})

#: Parts of a v1 message: channel, header, parent header, metadata, content, then buffers.
_V1_MIN_PARTS = 5
#: More buffers than any widget of the guide sends (a file upload has one per file).
_V1_MAX_PARTS = 5 + 16

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


class ConfigurationError(RuntimeError):
    """The guide's server configuration cannot be read or lacks a setting the hosts need."""


# --------------------------------------------------------------------------- the busy page


def busy_page(url: str, seconds: int) -> str:
    """The busy page, asking to come back in ``seconds`` through ``url`` (the request's own
    path and query, escaped here: the page shows nothing else of the request)."""
    return BUSY_PAGE.format(seconds=int(seconds), url=html.escape(url or "/", quote=True))


def busy_response(url: str, seconds: int) -> tuple[int, dict[str, str], str]:
    """The whole answer to a visitor beyond the cap: ``(status, headers, body)``, the status
    :data:`BUSY_STATUS`, the headers ``Retry-After`` (``seconds``), the content type and no
    caching. The host adds its security headers as on every page."""
    headers = {
        "Retry-After": str(int(seconds)),
        "Content-Type": "text/html; charset=UTF-8",
        "Cache-Control": "no-store",
    }
    return BUSY_STATUS, headers, busy_page(url, seconds)


# --------------------------------------------------------------------------- the client


def client_address(peer: str | None, headers: Mapping[str, str]) -> str | None:
    """The client's address: the peer's, or, from a proxy on this machine (the shipped nginx),
    the address it forwards in ``X-Real-IP``; None for a process on this machine that forwards
    none (the server's own tests and benchmarks, a local browser), which is not counted.

    ``headers``: the request's headers (a case-insensitive mapping, as tornado's and
    Starlette's are; a plain dict is read under ``X-Real-IP`` as written)."""
    peer = peer or ""
    try:
        loopback = ipaddress.ip_address(peer).is_loopback
    except ValueError:
        return peer
    if not loopback:
        return peer
    forwarded = (headers.get(REAL_IP_HEADER) or "").strip()
    try:
        return str(ipaddress.ip_address(forwarded)) if forwarded else None
    except ValueError:
        return peer


#: :meth:`SocketCounts.admit`'s reasons
TOO_MANY_FOR_KERNEL = "too many websockets for this kernel"
TOO_MANY_FROM_CLIENT = "too many websockets from this client"


class SocketCounts:
    """The websockets open (or being opened) per kernel and per client address, each under its
    limit (0: none). Thread-safe; the host counts a websocket in before it makes anything for
    it and out exactly once when it closes or fails to open."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.per_kernel: collections.Counter[str] = collections.Counter()
        self.per_client: collections.Counter[str] = collections.Counter()

    def admit(self, kernel_id: str, client: str | None, max_per_kernel: int,
              max_per_client: int) -> str | None:
        """Count one websocket of ``kernel_id`` from ``client`` (None: not counted, see
        :func:`client_address`) in, or say why it is refused (nothing counted then)."""
        with self._lock:
            if self.per_kernel[kernel_id] >= max_per_kernel > 0:
                return TOO_MANY_FOR_KERNEL
            if client is not None and self.per_client[client] >= max_per_client > 0:
                return TOO_MANY_FROM_CLIENT
            self.per_kernel[kernel_id] += 1
            if client is not None:
                self.per_client[client] += 1
        return None

    def release(self, kernel_id: str, client: str | None) -> None:
        """Count one websocket :meth:`admit` admitted out."""
        with self._lock:
            for counter, key in ((self.per_kernel, kernel_id), (self.per_client, client)):
                if key is None:
                    continue
                counter[key] -= 1
                if counter[key] <= 0:
                    del counter[key]


# --------------------------------------------------------------------------- the settings


def installed_config_path() -> Path:
    """The guide's ``voila.json`` as installed in this environment (``etc/jupyter``): the one
    place the security headers and the websocket message size are set, for every host."""
    from jupyter_core.paths import ENV_CONFIG_PATH

    return Path(ENV_CONFIG_PATH[0]) / "voila.json"


def server_settings(path: Path | None = None) -> dict[str, Any]:
    """The guide's server settings (``Voila.tornado_settings`` of ``path``, by default the
    installed ``voila.json``); :class:`ConfigurationError` names the file if it cannot be read."""
    path = installed_config_path() if path is None else Path(path)
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))["Voila"]["tornado_settings"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ConfigurationError(
            f"the guide's server configuration {path} cannot be read ({error}); the guide "
            "needs it for its security headers (pip install the project)") from None
    if not isinstance(settings, dict):
        raise ConfigurationError(f"the guide's server configuration {path} has no "
                                 "Voila.tornado_settings object (pip install the project)")
    return settings


def security_headers(path: Path | None = None) -> dict[str, str]:
    """The security headers every page carries (:data:`SECURITY_HEADER_NAMES`, with the values
    of ``voila.json``'s ``Voila.tornado_settings.headers``); :class:`ConfigurationError` names
    a header the file does not set: a host serves no page without them."""
    path = installed_config_path() if path is None else Path(path)
    headers = server_settings(path).get("headers") or {}
    found = {}
    for name in SECURITY_HEADER_NAMES:
        value = headers.get(name) if isinstance(headers, dict) else None
        if not isinstance(value, str) or not value:
            raise ConfigurationError(f"the guide's server configuration {path} sets no {name} "
                                     "header; the guide needs the project's (pip install the "
                                     "project)")
        found[name] = value
    return found


def max_message_size(path: Path | None = None) -> int:
    """The largest websocket message a page may send, in bytes (``voila.json``'s
    ``Voila.tornado_settings.websocket_max_message_size``)."""
    path = installed_config_path() if path is None else Path(path)
    size = server_settings(path).get("websocket_max_message_size")
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise ConfigurationError(f"the guide's server configuration {path} sets no positive "
                                 "websocket_max_message_size (pip install the project)")
    return size


# --------------------------------------------------------------------------- messages


class MessageGate:
    """The checks of one connection's incoming messages, before the host reads one.

    ``bucket`` bounds the rate (a :class:`~widgets.ratelimit.TokenBucket`; hosts may share one
    among the connections of one visitor), ``max_size`` the length in bytes or characters
    (None: the host's server bounds it already), ``check`` is the host's own check of a message
    (it returns why the message is refused, or None). :meth:`refusal` gives the reason a
    message is refused; :meth:`refused` counts one refusal and tells when the connection must
    be closed (``abuse_limit`` refusals, at least one: a client that keeps sending what is
    refused).
    """

    __slots__ = ("bucket", "max_size", "abuse_limit", "check", "count")

    def __init__(self, bucket: TokenBucket, abuse_limit: int, max_size: int | None = None,
                 check: Callable[[Any], str | None] | None = None) -> None:
        self.bucket = bucket
        self.abuse_limit = abuse_limit
        self.max_size = max_size
        self.check = check
        #: messages refused so far
        self.count = 0

    def refusal(self, message: Any) -> str | None:
        """Why ``message`` is refused (over the rate, too long, or the host's check), or None
        to pass it on."""
        if not self.bucket.take():
            return "over the message rate"
        if self.max_size is not None:
            try:
                size = len(message)
            except TypeError:
                return "not a message"
            if size > self.max_size:
                return f"longer than {self.max_size}"
        return self.check(message) if self.check is not None else None

    def refused(self) -> bool:
        """Count one refused message; True when the connection must now be closed."""
        self.count += 1
        return self.count >= self.abuse_limit

    def worth_logging(self) -> bool:
        """True for the refusals worth a line in the server's log (the first, every 100th)."""
        return self.count == 1 or self.count % 100 == 0


def check_offset_frame(message: object, *, word: int, byteorder: str, parts: range) -> list[int]:
    """The offsets of a binary message framed as a part count then that many offsets, or
    ValueError if its framing is not sound.

    The framing: a ``word``-byte unsigned count ``n`` (``byteorder`` 'little' or 'big'), which
    must be in ``parts``, then ``n`` ``word``-byte offsets, the first pointing just past the
    offset table, non-decreasing and within the message. Nothing is read before the count is
    checked: the readers of both hosts' servers build a list or a format as long as it says.
    """
    if not isinstance(message, (bytes, bytearray, memoryview)):
        raise ValueError("a framed message is binary")
    data = bytes(message[:word])
    if len(data) < word:
        raise ValueError("message shorter than its offset count")
    count = int.from_bytes(data, byteorder)  # type: ignore[arg-type]
    if count not in parts:
        raise ValueError(f"offset count {count} out of range")
    end = word * (count + 1)
    if len(message) < end:
        raise ValueError("message shorter than its offset table")
    table = bytes(message[word:end])
    offsets = [int.from_bytes(table[word * i:word * (i + 1)], byteorder)  # type: ignore[arg-type]
               for i in range(count)]
    if offsets[0] != end or any(b < a for a, b in zip(offsets, offsets[1:])) \
            or offsets[-1] > len(message):
        raise ValueError("offsets out of order or past the end")
    return offsets


def check_v1_frame(message: object, size: int | None = None) -> list[int]:
    """The offsets of a v1 kernel-websocket message, or ValueError if its framing is not sound.

    v1 framing (:func:`check_offset_frame`): an 8-byte little-endian count ``n``, then ``n``
    8-byte little-endian offsets (channel, header, parent header, metadata, content, then the
    buffers). ``size`` limits ``n`` (default: those five parts and up to 16 buffers).
    """
    limit = _V1_MAX_PARTS + 1 if size is None else size
    return check_offset_frame(message, word=8, byteorder="little",
                              parts=range(_V1_MIN_PARTS + 1, limit + 1))


def comm_open_refusal(content: object, allowed: frozenset[str] = PAGE_COMM_TARGETS) -> str | None:
    """Why a page's ``comm_open`` with ``content`` is refused (a target not in ``allowed``: a
    widget created from the page), or None."""
    target = content.get("target_name") if isinstance(content, dict) else None
    return None if target in allowed else "the page may not create widgets"


def is_diagnostic(msg_type: object, content: object = None) -> bool:
    """True for a kernel message a page is never sent: an ``error`` (ipywidgets answers a bad
    value from the page with a traceback naming the server's files) or a ``stream`` other than
    stdout (``content``: the message's content, read for a stream only). The guide's page runs
    no code, so it needs neither."""
    if msg_type == "error":
        return True
    if msg_type == "stream":
        return not isinstance(content, dict) or content.get("name") != "stdout"
    return False
