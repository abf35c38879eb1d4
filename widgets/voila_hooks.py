"""Server-side hooks for the Voilà app, referenced by name from ``voila.json``.

Kernel reclaim when a visitor closes the page
---------------------------------------------
Voilà's page shuts its kernel down from the browser: on ``beforeunload`` it
``navigator.sendBeacon``-s ``POST /voila/api/shutdown/<kernel id>`` with a form
field ``_xsrf`` copied from the ``_xsrf`` cookie. Voilà 0.5.13 never issues
that cookie, so the field is empty and jupyter_server (which checks XSRF on
every non-GET request) answers ``403 '_xsrf' argument missing from POST``
(voila-dashboards/voila#1458). Each visit then leaves its kernel (about
100 MB RSS for the guide) running until something else removes it.

:class:`BeaconXsrfIdentityProvider` makes the notebook page response set the
``_xsrf`` cookie (tornado's standard, unsigned double-submit token), so the
beacon carries a token matching its cookie and the shutdown is accepted. XSRF
protection stays on for every other request; the alternative,
``tornado_settings.disable_check_xsrf``, would switch it off for the whole
server.

The idle culler configured in ``voila.json`` (``MappingKernelManager``) is the
backstop for pages that go away without a beacon (crashed or killed browsers,
lost connections, clients that never open the kernel websocket). It only
culls kernels without an open websocket (``cull_connected`` false), so a
visitor reading one step for a long time keeps the session, and it never
touches Voilà's preheated pool (skipped by Voilà's kernel manager, and busy
in ``wait_for_request`` anyway). Its timeout (60 s of idleness, checked every
15 s) is deliberately not shorter: a page's kernel has no websocket yet while
the browser loads the page's scripts (up to ~30 s seen on a loaded 2-core
machine), nor during a short network drop, and a culled kernel cannot come back.

This module must stay importable in the Voilà server process without
side effects (only jupyter_server, tornado and voila are imported).
"""

from __future__ import annotations

import inspect

from jupyter_server.auth.identity import PasswordIdentityProvider

__all__ = ["BeaconXsrfIdentityProvider"]


class BeaconXsrfIdentityProvider(PasswordIdentityProvider):
    """Voilà's default identity provider, plus the ``_xsrf`` cookie on notebook pages.

    ``get_user`` runs for every request before the handler; for a ``GET`` of a
    Voilà notebook page it reads ``handler.xsrf_token``, which makes tornado
    add ``Set-Cookie: _xsrf=...`` when the browser does not have one yet.
    """

    async def get_user(self, handler):  # type: ignore[override]
        user = super().get_user(handler)
        if inspect.isawaitable(user):
            user = await user
        if user is not None and handler.request.method == "GET" and _is_voila_page(handler):
            # tornado's xsrf_token consults current_user (to choose the cookie's lifetime);
            # jupyter_server only assigns it after get_user returns, with this same value.
            handler.current_user = user
            handler.xsrf_token  # noqa: B018 - read for its side effect (the Set-Cookie header)
        return user


def _is_voila_page(handler) -> bool:
    from voila.handler import VoilaHandler  # the Voilà server has it imported already

    return isinstance(handler, VoilaHandler)
