"""Voilà's ``/voila/query/<kernel id>`` (``RequestInfoSocketHandler``), checked.

It is how a preheated kernel learns its visitor's query string: the kernel itself connects to
it (:mod:`widgets.hosts.voila.request`). It took anonymous websockets from anywhere for any
id; now it accepts only a direct loopback connection (no ``Origin``, no proxy forwarding
headers) for a kernel this server runs that has no waiter yet. A reverse proxy should not
publish the path at all. Voilà keeps a visitor's request for a kernel that has not connected
yet in a class-level cache and never removes it: it was sent again to every later connection
for that kernel, and the cache grew with every such visit for the server's lifetime. The
request is now handed over once, and forgotten when its kernel shuts down
(:func:`forget_request_info`, called by the kernel manager).

:func:`request_info_prepare` and :func:`request_info_open` replace the handler's ``prepare``
and ``open`` (see :func:`widgets.hosts.voila.install`).
"""

from __future__ import annotations

import ipaddress

from tornado import web

__all__ = ["forget_request_info", "request_info_open", "request_info_prepare"]

#: Headers a reverse proxy adds; a request carrying one did not come straight from a kernel.
_FORWARDING_HEADERS = ("X-Forwarded-For", "X-Real-Ip", "Forwarded", "X-Forwarded-Host")


def request_info_prepare(self) -> None:
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


def request_info_open(self, kernel_id: str) -> None:
    """``RequestInfoSocketHandler.open``: the kernel waits here for its visitor's request; one
    that arrived before the kernel connected is handed over once and removed from the cache."""
    from voila.request_info_handler import RequestInfoSocketHandler as handler

    handler._waiters[kernel_id] = self
    payload = handler._cache.pop(kernel_id, None)
    if payload is not None:
        self.write_message(payload)


def forget_request_info(kernel_id: str) -> None:
    """Drop what Voilà still holds for ``kernel_id``'s visitor (its kernel has ended)."""
    from voila.request_info_handler import RequestInfoSocketHandler

    RequestInfoSocketHandler._cache.pop(kernel_id, None)
