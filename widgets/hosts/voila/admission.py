"""Admission: the guide's gate on every HTTP request and websocket upgrade of the Voilà app.

``GuideIdentityProvider`` (``Voila.identity_provider_class``) runs before every request:

* **capacity**: a notebook page is refused with the bilingual busy page of
  :mod:`widgets.hosts.common` (HTTP 503 and ``Retry-After``) when ``max_visitors`` visitors
  already hold a kernel in this server (or are being served one). Without it, 40 simultaneous
  visits start 40 kernels (about 100 MB each) and every visitor waits for all of them. Each
  visitor counts once: a page being served counts until it has its kernel, then its kernel
  counts (:class:`~widgets.hosts.voila.kernels.GuideKernelManager` tells the preheated pool's
  kernels from visitors'), so a burst fills the cap exactly;
* **no theme or template from the link**: ``?theme=`` and ``?template=`` are removed from the
  request (``voila.json`` also sets ``allow_theme_override`` and ``allow_template_override``
  to ``NO``), so a link can neither inject markup through the theme nor switch to another
  template, nor skip the preheated kernels;
* **kernel reclaim**: the notebook page sets the ``_xsrf`` cookie. Voilà's page shuts its
  kernel down on ``beforeunload`` with ``navigator.sendBeacon`` to
  ``/voila/api/shutdown/<id>``, sending the ``_xsrf`` cookie's value as a form field; Voilà
  never issues that cookie (voila-dashboards/voila#1458), so jupyter_server answered 403 and
  every visit left its kernel behind. XSRF checks stay on for every other request;
* **no broken logout**: jupyter_server's ``/logout`` renders a template Voilà does not have
  (HTTP 500). It is served only where a login exists (the dashboard with a token), and then
  clears the login cookie and returns to the page.

Creating the provider (once, at server start) runs :func:`widgets.hosts.voila.install` and the
server's self-check (:mod:`widgets.hosts.voila.settings_check`).
"""

from __future__ import annotations

import inspect
from contextvars import ContextVar
from typing import Any

from jupyter_server.auth.identity import PasswordIdentityProvider
from jupyter_server.base.handlers import JupyterHandler
from traitlets import Int, default

from .. import common
from . import install, settings_check

__all__ = ["GuideIdentityProvider", "LogoutRedirectHandler", "write_busy_page"]

#: Query arguments a link may not use to change how the page is rendered.
_RENDERING_ARGUMENTS = ("theme", "template")


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
        settings_check.check_server(self.parent, self)  # the guide's settings, or no guide
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
        if settings_check.refuse(handler, self.parent):  # settings not the guide's: 503
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
        from .kernels import GuideKernelManager

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
            write_busy_page(handler, self.retry_after)
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


def write_busy_page(handler, seconds: int) -> None:
    """Answer ``handler``'s request with the busy page (:func:`widgets.hosts.common.busy_response`);
    tornado adds the security headers of ``voila.json`` as to every response."""
    status, headers, body = common.busy_response(handler.request.uri or "/", seconds)
    handler.clear()
    handler.set_status(status)
    for name, value in headers.items():
        handler.set_header(name, value)
    handler.finish(body)
