"""The guide is served with its settings and protections, or not at all.

Voilà reads ``voila.json`` from its working folder and from the Jupyter configuration path.
Installing the project puts the guide's ``voila.json`` into ``<environment>/etc/jupyter``
(shared data, see pyproject.toml), so a Voilà started anywhere in the environment finds it.
Another file can still override a setting (a ``voila.json`` or ``voila.py`` in the working
folder or in the per-user ``~/.jupyter``), and so can the command line. Two checks make sure
a server whose settings are not the guide's never serves the guide:

**The server's self-check** (:func:`check_server`, run once when the guide's identity
provider is created at server start). It compares the settings in force with what the
guide needs: its template (installed), no theme or template from the link, no tracebacks
and no sources on the page, the guide's identity provider (visitor cap), websocket
connection (protocol and message checks) and kernel manager (culling), a visitor cap and
culling that are on, and the security headers and websocket message size of the installed
``voila.json``. A server that fails it writes an ERROR line per setting to its log, naming
the setting and the value the guide needs, and answers every request with a plain
bilingual page (HTTP 503, no script) or a bare 503 (:func:`refuse`); it never serves the
guide.

**The kernel's check** (:func:`unavailable_notice`, the first thing ``widgets.app.guide()``
does), for a server where the guide's hooks are not loaded at all (a configuration that
replaced the identity provider, so no self-check ran). A kernel started by a standalone
Voilà server has its connection file in the server's ``voila_*`` folder (Voilà's app makes
it with ``tempfile.mkdtemp(prefix="voila_")`` at start; JupyterLab, its Voilà preview and
a plain Jupyter kernel keep connection files in Jupyter's runtime folder). The guide's
kernel manager, on a server that passed the self-check, gives each kernel it starts (the
preheated pool's and visitors' alike) :data:`MARK_ENV` set to that folder. A kernel in a
``voila_*`` folder without that mark shows a bilingual "not available here" notice instead
of the guide and writes the reason to the server's log. Everywhere else (JupyterLab, Lab's
Voilà preview, ``jupyter execute``, tests) the guide runs as usual. The mark names the
server's own fresh temporary folder, so a value inherited from the shell never matches.
"""

from __future__ import annotations

import logging
import os
import weakref
from pathlib import Path
from typing import Any

from .. import common
from ..common import installed_config_path

__all__ = [
    "MARK_ENV",
    "UNAVAILABLE_PAGE",
    "check_server",
    "installed_config_path",
    "kernel_refusal",
    "mark_kernel",
    "passed",
    "problems",
    "refuse",
    "unavailable_notice",
]

logger = logging.getLogger(__name__)

#: Set by the guide's kernel manager, on a server that passed the self-check, for each kernel
#: it starts: the server's connection-file folder.
MARK_ENV = "GUIDE_CHECKED_SERVER"
#: Voilà's app keeps its kernels' connection files in a new folder named ``voila_*``.
VOILA_CONNECTION_PREFIX = "voila_"
#: The guide's settings that are not tunables: (setting, value the guide needs).
REQUIRED = {
    "VoilaConfiguration.template": "guide",
    "VoilaConfiguration.allow_template_override": "NO",
    "VoilaConfiguration.allow_theme_override": "NO",
    "VoilaConfiguration.show_tracebacks": False,
    "VoilaConfiguration.strip_sources": True,
}
#: Tornado settings whose value must be the installed voila.json's (every host's security
#: headers, read from that one file by widgets.hosts.common).
TORNADO_HEADERS = common.SECURITY_HEADER_NAMES

#: What a server that failed the self-check answers to a page request (HTTP 503).
UNAVAILABLE_PAGE = """<!DOCTYPE html>
<html lang="ko">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>안내서를 열 수 없습니다 · The guide is not available</title>
<style>
  body { font-family: system-ui, "Noto Sans CJK KR", "Apple SD Gothic Neo", sans-serif;
         max-width: 36rem; margin: 3rem auto; padding: 0 1rem; line-height: 1.6; color: #1a1a1a; }
  h1, h2 { font-size: 1.4rem; }
</style>
</head>
<body>
<main>
<h1>이 서버에서는 안내서를 열 수 없습니다</h1>
<p>서버 설정이 안내서에 필요한 설정과 달라 안내서를 보여 드리지 않습니다.
서버를 운영하는 분에게 알려 주세요. 자세한 내용은 서버 기록에 있습니다.</p>
<section lang="en">
<h2>The guide is not available on this server</h2>
<p>This server's settings are not the ones the guide needs, so the guide is not shown.
Please tell the people who run it; the details are in the server's log.</p>
</section>
</main>
</body>
</html>
"""

#: What a kernel of an unchecked standalone Voilà server shows instead of the guide.
UNAVAILABLE_NOTICE = """<div class="guide-unavailable" lang="ko">
<p><strong>이 안내서는 여기에서 제공되지 않습니다.</strong>
서버를 운영하는 분에게 알려 주세요. 자세한 내용은 서버 기록에 있습니다.</p>
<p lang="en"><strong>This guide is not available here.</strong>
Please tell the people who run this server; the details are in the server's log.</p>
</div>"""

#: The self-check's findings for each Voilà app that ran it (empty: passed).
_VERDICTS: weakref.WeakKeyDictionary[Any, list[str]] = weakref.WeakKeyDictionary()


# --------------------------------------------------------------------------- the server


def _name(cls: Any) -> str:
    return f"{cls.__module__}.{cls.__qualname__}" if isinstance(cls, type) else repr(cls)


def problems(app: Any, provider: Any = None) -> list[str]:
    """What is wrong with the Voilà ``app``'s settings for serving the guide: one sentence per
    setting, naming it, its value and the value the guide needs. Empty: all is well.
    ``provider``: the identity provider being created (the app does not hold it yet)."""
    from .admission import GuideIdentityProvider
    from .kernels import GuideKernelManager
    from .websocket import GuideKernelWebsocketConnection

    found: list[str] = []
    conf = getattr(app, "voila_configuration", None)
    if conf is None:
        return ["the server is not a Voilà app (no voila_configuration)"]
    for setting, needed in REQUIRED.items():
        value = getattr(conf, setting.partition(".")[2], None)
        if value != needed:
            found.append(f"{setting} is {value!r}; the guide needs {needed!r}")
    templates = [Path(p) for p in getattr(app, "template_paths", [])]
    installed = any(p.name == "guide" and p.parent.name == "templates"
                    and (p / "index.html.j2").is_file() for p in templates)
    if conf.template == REQUIRED["VoilaConfiguration.template"] and not installed:
        found.append("the guide's Voilà template (share/jupyter/voila/templates/guide) is not "
                     "installed in this environment; the guide needs it (pip install the project)")

    classes = (
        ("Voila.identity_provider_class", getattr(app, "identity_provider_class", None),
         GuideIdentityProvider),
        ("Voila.kernel_websocket_connection_class",
         getattr(app, "kernel_websocket_connection_class", None), GuideKernelWebsocketConnection),
    )
    for setting, cls, needed in classes:
        if not (isinstance(cls, type) and issubclass(cls, needed)):
            found.append(f"{setting} is {_name(cls)}; the guide needs {_name(needed)}")
    manager = getattr(app, "kernel_manager", None)
    if not isinstance(manager, GuideKernelManager):
        found.append(f"VoilaConfiguration.multi_kernel_manager_class is "
                     f"{_name(getattr(conf, 'multi_kernel_manager_class', None))}; "
                     f"the guide needs {_name(GuideKernelManager)}")
    else:
        for setting in ("cull_idle_timeout", "cull_interval"):
            if not getattr(manager, setting, 0) > 0:
                found.append(f"MappingKernelManager.{setting} is {getattr(manager, setting)!r}; "
                             "the guide needs a number of seconds above 0 (idle kernels culled)")
    if provider is not None and not getattr(provider, "max_visitors", 0) >= 1:
        found.append(f"GuideIdentityProvider.max_visitors is {provider.max_visitors!r}; the guide "
                     "needs at least 1 (the visitor cap)")
    found.extend(_tornado_problems(getattr(app, "tornado_settings", {}) or {}))
    return found


def _tornado_problems(settings: dict) -> list[str]:
    """The security headers and websocket message size against the installed voila.json."""
    path = installed_config_path()
    try:
        expected = common.server_settings(path)
    except common.ConfigurationError as error:
        return [str(error)]
    found = []
    headers = settings.get("headers") or {}
    for name in TORNADO_HEADERS:
        needed = (expected.get("headers") or {}).get(name)
        if needed is None:
            found.append(f"the guide's server configuration {path} sets no {name} header; "
                         "the guide needs the project's (pip install the project)")
        elif headers.get(name) != needed:
            found.append(f"Voila.tornado_settings.headers[{name!r}] is {headers.get(name)!r}; "
                         f"the guide needs {needed!r} (as in {path})")
    needed_size = expected.get("websocket_max_message_size")
    size = settings.get("websocket_max_message_size")
    if needed_size is not None and not (isinstance(size, int) and 0 < size <= needed_size):
        found.append(f"Voila.tornado_settings.websocket_max_message_size is {size!r}; the guide "
                     f"needs at most {needed_size!r} (as in {path})")
    return found


def check_server(app: Any, provider: Any = None) -> bool:
    """Run the self-check for ``app`` (once; later calls return the first verdict) and log
    it: an ERROR line per setting that is not the guide's, or one INFO line. True if the
    server may serve the guide."""
    if app in _VERDICTS:
        return not _VERDICTS[app]
    try:
        found = problems(app, provider)
    except Exception as error:  # noqa: BLE001 - a check that cannot run does not pass
        found = [f"the settings could not be checked ({type(error).__name__}: {error})"]
    try:
        _VERDICTS[app] = found
    except TypeError:  # not an app object: nothing will pass
        pass
    log = getattr(app, "log", None) or logger
    if found:
        for problem in found:
            log.error("guide: not serving the guide: %s", problem)
        log.error("guide: every page of this server answers HTTP 503 until it is started with "
                  "the guide's settings: %d setting(s) above; the guide's configuration is %s",
                  len(found), installed_config_path())
    else:
        log.info("guide: server settings checked: the guide's template, headers, visitor cap, "
                 "websocket checks and kernel culling are in force")
    return not found


def passed(app: Any) -> bool:
    """True if ``app`` ran the self-check and passed it (False if it never ran it)."""
    return app in _VERDICTS and not _VERDICTS[app]


def refuse(handler: Any, app: Any) -> bool:
    """On a server that did not pass the self-check, answer ``handler``'s request: a page
    request gets :data:`UNAVAILABLE_PAGE` (and True is returned: the handler stops there),
    any other request (API, websocket, form) a bare HTTP 503. False on a server that passed."""
    if passed(app):
        return False
    from tornado import web

    request = handler.request
    if request.method != "GET" or request.headers.get("Upgrade", "").lower() == "websocket":
        raise web.HTTPError(503, "the guide's server settings are not in force (see the log)")
    handler.clear()
    handler.set_status(503)
    handler.set_header("Content-Type", "text/html; charset=UTF-8")
    handler.set_header("Cache-Control", "no-store")
    handler.finish(UNAVAILABLE_PAGE)
    return True


def mark_kernel(manager: Any, env: dict[str, str]) -> None:
    """Mark (or unmark) the environment ``env`` of a kernel ``manager`` is starting: the mark
    goes only to kernels of a server that passed the self-check."""
    env.pop(MARK_ENV, None)
    app = getattr(manager, "parent", None)
    if app is not None and passed(app) and getattr(manager, "connection_dir", ""):
        env[MARK_ENV] = os.path.realpath(manager.connection_dir)


# --------------------------------------------------------------------------- the kernel


def _connection_file() -> str | None:
    """This IPython kernel's connection file, or None outside a kernel."""
    try:
        from ipykernel.kernelapp import IPKernelApp
    except ImportError:
        return None
    if not IPKernelApp.initialized():
        return None
    app = IPKernelApp.instance()
    return getattr(app, "abs_connection_file", None) or app.connection_file or None


def kernel_refusal() -> str | None:
    """Why the guide may not run in this kernel, or None: a kernel started by a standalone
    Voilà server that is not the guide's checked server."""
    connection_file = _connection_file()
    if not connection_file:
        return None
    folder = os.path.realpath(os.path.dirname(os.path.abspath(connection_file)))
    if not os.path.basename(folder).startswith(VOILA_CONNECTION_PREFIX):
        return None  # JupyterLab, its Voilà preview, a plain Jupyter kernel
    mark = os.environ.get(MARK_ENV)
    if mark and os.path.realpath(mark) == folder:
        return None
    return ("this kernel was started by a Voilà server that did not run or did not pass the "
            "guide's server check (its identity provider, websocket connection or kernel "
            "manager is not the guide's, or its settings are not; see the server's log at "
            "start). Start Voilà in the environment where the project is installed, without "
            "settings that replace the guide's (voila.json in the working folder or in "
            f"~/.jupyter, or the command line); the guide's configuration is "
            f"{installed_config_path()}")


def unavailable_notice() -> Any:
    """What the guide's kernel shows instead of the guide when :func:`kernel_refusal` gives a
    reason (which goes to the server's log), or None when the guide may run."""
    reason = kernel_refusal()
    if reason is None:
        return None
    logger.error("guide: not shown in this kernel: %s", reason)
    from IPython.display import HTML

    return HTML(UNAVAILABLE_NOTICE)
