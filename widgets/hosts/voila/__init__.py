"""The Voilà host of the guide: server-side hooks for the Voilà apps (the guide and the
dashboard), named in ``voila.json``, and the kernel-side pieces.

The guide is a public page: every request and every websocket message may be hostile. Voilà
0.5.13 and jupyter_server 2 are used as they are, with these classes plugged in through their
documented configuration (``voila.json``), and a few upstream functions replaced by checked ones
(see :func:`install`, which first checks that the pinned versions and every target are there,
and stops the server otherwise). One module per job:

``admission`` (``GuideIdentityProvider``, ``Voila.identity_provider_class``)
    runs before every HTTP request and websocket upgrade the Voilà app handles: the visitor
    cap and its bilingual busy page (HTTP 503 and ``Retry-After``), no theme or template from
    the link, the ``_xsrf`` cookie that lets a closed page's beacon reclaim its kernel, and a
    ``/logout`` that works. It also runs :func:`install` and the settings' self-check.
``websocket`` (``GuideKernelWebsocketConnection``, ``Voila.kernel_websocket_connection_class``)
    the bridge between a page's websocket and its kernel: v1 protocol only, every incoming
    message's framing checked, no widgets created from the page, a message rate per kernel,
    websockets counted per kernel and per client, a bound on what waits unsent, no tracebacks
    or stderr passed to the page.
``kernels`` (``GuideKernelManager``, ``VoilaConfiguration.multi_kernel_manager_class``)
    tells the preheated pool's kernels from visitors' (for the cap) and culls a visitor's
    kernel without a guide action for ``cull_connected_after``, or after ``max_visit``.
``query``
    Voilà's ``/voila/query/<kernel id>``, through which a preheated kernel learns its visitor's
    query string: only a direct loopback connection of a kernel of this server, and a visitor's
    request handed over once.
``static``
    the template's static files answer 404 outside a template's ``static`` folder, and no
    response names the server in a ``Server`` header.
``upstream``
    the pinned versions of Voilà and jupyter_server and every upstream target the hooks replace
    or read; :func:`install` refuses to start when one differs.
``settings_check``
    the server's self-check of its settings, and the kernel's check that its server ran it.
``request``
    the kernel's side of ``/voila/query``, with the standard library only.

The host-neutral pieces (busy page, client address, security headers, message checks) are in
:mod:`widgets.hosts.common`. Voilà starts a preheated kernel's notebook before any visitor
arrives, and the guide's page script, template and settings are unchanged by all this. Every
module stays importable in the Voilà server process without side effects: :func:`install` runs
when the identity provider is created (once, at server start), never at import. This package's
own import loads nothing: a guide kernel imports ``request`` and ``settings_check`` from it.
"""

from __future__ import annotations

import logging

__all__ = ["install"]

_log = logging.getLogger(__name__)

_INSTALLED = False


def install() -> None:
    """Replace the upstream functions the hooks replace (idempotent). First checks that the
    pinned upstream versions and every target are there (:func:`.upstream.check_upstream`):
    the server refuses to start otherwise, with the reason in its log, rather than run without
    a protection.

    * ``voila.tornado.kernel_websocket_handler.read_header_from_binary_message`` by
      :func:`.websocket.read_header_from_binary_message` (bounds-checked);
    * ``voila.request_info_handler.RequestInfoSocketHandler.prepare`` by a check that only
      the server's own kernels connect, and its ``open`` by one that hands a cached visitor
      request over once (:mod:`.query`);
    * ``voila.static_file_handler.TemplateStaticFileHandler``'s path parsing by one that
      answers 404 to anything outside a template's ``static`` folder (:mod:`.static`);
    * ``tornado.web.RequestHandler.clear`` by one that sends no ``Server`` header.
    """
    global _INSTALLED
    if _INSTALLED:
        return
    from .upstream import UpstreamChanged, check_upstream

    try:
        check_upstream()
    except UpstreamChanged as exc:
        _log.error("guide: %s", exc)
        raise
    from tornado import web

    import voila.request_info_handler as request_info
    import voila.static_file_handler as static_files
    import voila.tornado.kernel_websocket_handler as kernel_ws

    from . import query, static, websocket

    kernel_ws.read_header_from_binary_message = websocket.read_header_from_binary_message
    request_info.RequestInfoSocketHandler.prepare = query.request_info_prepare
    request_info.RequestInfoSocketHandler.open = query.request_info_open
    handler = static_files.TemplateStaticFileHandler
    handler.get_absolute_path = static.template_static_path(handler.get_absolute_path)
    handler.parse_url_path = static.template_static_parse(handler.parse_url_path)
    web.RequestHandler.clear = static.clear_without_banner(web.RequestHandler.clear)
    _INSTALLED = True
