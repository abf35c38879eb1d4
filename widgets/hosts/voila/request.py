"""A preheated Voilà kernel's wait for its visitor's request, with the standard library only.

Voilà starts a preheated kernel's notebook before anyone visits. When a visitor arrives, the
server hands that visit's request (the query string, the page's path, the server's name and
protocol: a JSON object of strings) to the kernel over a websocket the kernel itself opens
to ``/voila/query/<kernel id>`` on its own server. Voilà's helper for this,
``voila.utils.wait_for_request``, imports Voilà's whole server side into the kernel
(jupyter_server, jupyterlab_server, websockets...): about 700 modules and 40 MB for every
visitor's kernel. :func:`wait_for_request` does the same exchange with ``socket``, ``hashlib``
and ``base64``, and sets ``os.environ`` from the request the same way.

The address is Voilà's: ``VOILA_WS_PROTOCOL`` (``ws``; ``wss`` with the ``ssl`` module)
``://VOILA_APP_IP`` (``127.0.0.1``) ``:VOILA_APP_PORT`` (``8866``), then ``VOILA_WS_BASE_URL``
(default ``VOILA_SERVER_URL``, default ``/``) ``voila/query/VOILA_KERNEL_ID``; Voilà sets the
port, server URL and kernel id in the environment of the kernels it preheats. The handshake
sends no ``Origin`` and no proxy header (the server's ``/voila/query`` accepts only a direct
connection from its own kernels, see ``widgets/hosts/voila/query.py``), asks for no extension, and
the message may not exceed :data:`MAX_MESSAGE` bytes. Connecting, the handshake and reading
a message once its first byte has arrived are bounded by ``timeout``; the wait for the
visitor is not (a kernel may wait in the pool for hours). Pings are answered.

Anything that goes wrong raises :class:`RequestInfoError`, whose message names the address
and what failed, and leaves ``os.environ`` as it was.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import struct
import time
from urllib.parse import quote, urlsplit

#: The largest request accepted (bytes of the JSON text): a query string is at most what the
#: server accepts in a request line (tornado: 64 KiB of headers), plus a few short values.
MAX_MESSAGE = 256 * 1024
#: Seconds allowed to connect, for the handshake, and to read a message once it has started.
TIMEOUT = 5.0
_MAX_RESPONSE_HEAD = 16 * 1024
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455, section 1.3

_CONTINUATION, _TEXT, _BINARY, _CLOSE, _PING, _PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class RequestInfoError(RuntimeError):
    """The visitor's request could not be received from the Voilà server."""


def query_url(environ: os._Environ | dict | None = None) -> str:
    """The ``/voila/query`` address of this kernel's server, without the kernel id, built
    from the environment exactly as ``voila.utils.wait_for_request`` builds it."""
    env = os.environ if environ is None else environ
    protocol = env.get("VOILA_WS_PROTOCOL", "ws")
    server_ip = env.get("VOILA_APP_IP", "127.0.0.1")
    server_port = env.get("VOILA_APP_PORT", "8866")
    server_url = env.get("VOILA_SERVER_URL", "/")
    ws_base_url = env.get("VOILA_WS_BASE_URL", server_url)
    return f"{protocol}://{server_ip}:{server_port}{ws_base_url}voila/query"


def receive(url: str, timeout: float = TIMEOUT) -> dict[str, str]:
    """Connect to the websocket ``url`` and return the first message it sends, a JSON object
    of strings. Blocks until the message comes; see the module for the bounds."""
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss"):
        raise RequestInfoError(f"{url}: not a ws:// or wss:// address")
    try:
        host, port = parts.hostname, parts.port or (443 if parts.scheme == "wss" else 80)
    except ValueError as error:
        raise RequestInfoError(f"{url}: {error}") from None
    if not host:
        raise RequestInfoError(f"{url}: no host")
    target = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    if parts.query:
        target += "?" + quote(parts.query, safe="/%:@!$&'()*+,;=-._~?")
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as error:
        raise RequestInfoError(f"cannot connect to {url}: {error}") from None
    try:
        if parts.scheme == "wss":
            import ssl

            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
        connection = _Connection(sock, url, timeout)
        connection.handshake(_host_header(host, parts.port), target)
        text = connection.read_message()
        connection.close()
    except OSError as error:
        raise RequestInfoError(f"{url}: {error or type(error).__name__}") from None
    finally:
        sock.close()
    try:
        payload = json.loads(text)
    except ValueError:
        raise RequestInfoError(f"{url}: the message is not JSON") from None
    if not isinstance(payload, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and k and "=" not in k
            and "\0" not in k + v for k, v in payload.items()):
        raise RequestInfoError(f"{url}: the message is not an object of environment strings")
    return payload


def wait_for_request(url: str | None = None, timeout: float = TIMEOUT) -> None:
    """What ``voila.utils.wait_for_request`` does: in a preheated kernel (``VOILA_PREHEAT``
    other than ``False``), block until the server sends this kernel's visitor's request and
    put each of its entries into ``os.environ``; elsewhere, return at once. ``url``: the
    ``/voila/query`` address without the kernel id (default: :func:`query_url`)."""
    if os.getenv("VOILA_PREHEAT", "False") == "False":
        return
    if url is None:
        url = query_url()
    kernel_id = os.getenv("VOILA_KERNEL_ID")
    if not kernel_id:
        raise RequestInfoError("VOILA_KERNEL_ID is not set: not a kernel Voilà preheated")
    for key, value in receive(f"{url}/{kernel_id}", timeout).items():
        os.environ[key] = value


def _host_header(host: str, port: int | None) -> str:
    name = f"[{host}]" if ":" in host else host
    return name if port is None else f"{name}:{port}"


class _Connection:
    """The client side of one websocket (RFC 6455) over a connected socket."""

    def __init__(self, sock: socket.socket, url: str, timeout: float) -> None:
        self.sock, self.url, self.timeout = sock, url, timeout
        self.buffer = b""
        self.deadline: float | None = None  # None: wait as long as it takes

    def fail(self, what: str) -> RequestInfoError:
        return RequestInfoError(f"{self.url}: {what}")

    def handshake(self, host: str, target: str) -> None:
        key = base64.b64encode(os.urandom(16))
        self.deadline = time.monotonic() + self.timeout
        self.sock.settimeout(self.timeout)  # for sendall
        self.sock.sendall(
            f"GET {target} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key.decode()}\r\n"
            f"Sec-WebSocket-Version: 13\r\n\r\n".encode("ascii"))
        while b"\r\n\r\n" not in self.buffer:
            if len(self.buffer) > _MAX_RESPONSE_HEAD:
                raise self.fail("the handshake's answer is too long")
            self._receive_some("during the handshake")
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = lines[0].split(" ", 2)
        if len(status) < 2 or status[1] != "101":
            raise self.fail(f"the server refused the websocket: {lines[0][:100]}")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        expected = base64.b64encode(hashlib.sha1(key + _GUID).digest()).decode()
        if (headers.get("upgrade", "").lower() != "websocket"
                or headers.get("sec-websocket-accept") != expected):
            raise self.fail("the server's handshake answer is not a websocket's")
        if headers.get("sec-websocket-extensions"):
            raise self.fail("the server chose an extension that was not asked for")

    def read_message(self) -> str:
        """The next text message (pings answered on the way)."""
        parts: list[bytes] = []
        size = 0
        while True:
            if not self.buffer and not parts:
                self.deadline = None  # the visitor may come any time
                self._receive_some("before the visitor's request came")
            if not parts:
                self.deadline = time.monotonic() + self.timeout
            fin, opcode, data = self._read_frame(MAX_MESSAGE - size)
            if opcode == _PING:
                self._send(_PONG, data)
            elif opcode == _PONG:
                pass
            elif opcode == _CLOSE:
                code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
                raise self.fail(f"the server closed the websocket (code {code}) "
                                f"before sending the visitor's request")
            elif opcode in (_TEXT, _BINARY, _CONTINUATION):
                if (opcode == _CONTINUATION) != bool(parts):
                    raise self.fail("a message frame out of sequence")
                if opcode == _BINARY:
                    raise self.fail("a binary message where a text message was expected")
                parts.append(data)
                size += len(data)
                if fin:
                    try:
                        return b"".join(parts).decode("utf-8")
                    except UnicodeDecodeError:
                        raise self.fail("the message is not UTF-8 text") from None
            else:
                raise self.fail(f"a frame of unknown type {opcode:#x}")

    def close(self) -> None:
        """Send a normal close frame (the server forgets this kernel's waiter)."""
        try:
            self._send(_CLOSE, struct.pack("!H", 1000))
        except OSError:
            pass

    def _read_frame(self, room: int) -> tuple[bool, int, bytes]:
        first, second = self._take(2)
        fin, opcode = bool(first & 0x80), first & 0x0F
        if first & 0x70:
            raise self.fail("a frame with extension bits set")
        if second & 0x80:
            raise self.fail("a masked frame from the server")
        length = second & 0x7F
        if opcode >= 0x8 and (length > 125 or not fin):
            raise self.fail("a malformed control frame")
        if length == 126:
            length = struct.unpack("!H", self._take(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", self._take(8))[0]
        if opcode < 0x8 and length > room:
            raise self.fail(f"the message is longer than {MAX_MESSAGE} bytes")
        return fin, opcode, self._take(length)

    def _take(self, count: int) -> bytes:
        while len(self.buffer) < count:
            self._receive_some("in the middle of a message")
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def _receive_some(self, when: str) -> None:
        if self.deadline is None:
            self.sock.settimeout(None)
        else:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise self.fail(f"no answer within {self.timeout:g} s {when}")
            self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            raise self.fail(f"no answer within {self.timeout:g} s {when}") from None
        if not chunk:
            raise self.fail(f"the server closed the connection {when}")
        self.buffer += chunk

    def _send(self, opcode: int, payload: bytes) -> None:
        self.sock.settimeout(self.timeout)
        self.sock.sendall(client_frame(opcode, payload))


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One final websocket frame as a client sends it: masked, with its length in 7, 16 or
    64 bits (RFC 6455, section 5.2)."""
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    elif size < 2**16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
