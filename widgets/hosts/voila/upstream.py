"""The upstream the Voilà hooks were made for: pinned versions and every target they touch.

The hooks replace a few functions of Voilà, jupyter_server and tornado, subclass others, and
read some of their private attributes. If one of these is gone or moved after an upgrade, a
protection would silently stop applying; so :func:`check_upstream` runs before
:func:`widgets.hosts.voila.install` changes anything, and the server refuses to start,
naming each difference, when a pinned version differs or a target is missing.

A target is ``(module, attribute path)``: each class along the path must define the attribute
itself (an inherited one is not the code the hook was made for). An attribute that exists only
on instances (set in ``__init__``) or a class made by a factory cannot be looked up that way:
its target adds a third element, a text that must appear in the source of what the path names
(``self._write_buffer =`` in tornado's ``BaseIOStream.__init__``, for example).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
from typing import Any

__all__ = ["PINNED", "UPSTREAM_TARGETS", "UpstreamChanged", "check_upstream"]

#: The upstream versions the hooks were written and tested against (pyproject.toml's pins;
#: tests/test_server_limits.py checks that the two agree).
PINNED = {"voila": "0.5.13", "jupyter_server": "2.21.1"}

_CHANNELS = "jupyter_server.services.kernels.connection.channels"
_KERNELS = "jupyter_server.services.kernels.kernelmanager"

#: What the hooks replace, subclass or read upstream: (module, attribute path) or (module,
#: attribute path, text its source must hold). If one is missing, a protection would silently
#: not apply.
UPSTREAM_TARGETS: tuple[tuple[str, ...], ...] = (
    # replaced by install()
    ("voila.tornado.kernel_websocket_handler", "read_header_from_binary_message"),
    ("voila.request_info_handler", "RequestInfoSocketHandler"),
    ("voila.request_info_handler", "RequestInfoSocketHandler.open"),
    ("voila.static_file_handler", "TemplateStaticFileHandler.get_absolute_path"),
    ("voila.static_file_handler", "TemplateStaticFileHandler.parse_url_path"),
    ("tornado.web", "RequestHandler.clear"),
    # private attributes the hooks read (query.py, kernels.py, websocket.py)
    ("voila.request_info_handler", "RequestInfoSocketHandler._cache"),
    ("voila.request_info_handler", "RequestInfoSocketHandler._waiters"),
    ("jupyter_client.multikernelmanager", "MultiKernelManager._kernels"),
    (_KERNELS, "MappingKernelManager._kernel_connections"),
    ("jupyter_server._tz", "utcnow"),
    ("tornado.iostream", "BaseIOStream.__init__", "self._write_buffer ="),
    ("tornado.websocket", "WebSocketHandler.__init__", "self.ws_connection"),
    ("tornado.websocket", "WebSocketProtocol.__init__", "self.stream"),
    # the method of Voilà's kernel manager (a class made at start-up) that hands a pool
    # kernel to a page: kernels.py wraps it to count the page's visitor
    ("voila.voila_kernel_manager", "voila_kernel_manager_factory",
     "def get_rendered_notebook("),
    # what the hooks subclass, call or rely on
    ("voila.handler", "VoilaHandler"),
    ("voila.utils", "wait_for_request"),
    ("tornado.websocket", "WebSocketHandler.on_connection_close"),
    (_CHANNELS, "ZMQChannelsWebsocketConnection.prepare"),
    (_CHANNELS, "ZMQChannelsWebsocketConnection.connect"),
    (_CHANNELS, "ZMQChannelsWebsocketConnection.disconnect"),
    (_CHANNELS, "ZMQChannelsWebsocketConnection.handle_incoming_message"),
    (_CHANNELS, "ZMQChannelsWebsocketConnection.handle_outgoing_message"),
    (_KERNELS, "MappingKernelManager.cull_kernel_if_idle"),
    (_KERNELS, "MappingKernelManager.cull_kernel_if_idle", "last_activity"),
    (_KERNELS, "MappingKernelManager.start_kernel"),
    (_KERNELS, "MappingKernelManager.shutdown_kernel"),
    (_KERNELS, "MappingKernelManager.notify_connect"),
)


class UpstreamChanged(RuntimeError):
    """Voilà or jupyter_server is not what the guide's hooks were written for."""


def _missing(target: tuple[str, ...]) -> str | None:
    """What is missing of ``target``, or None if it is there."""
    module_name, path, *source_text = target
    try:
        found: Any = importlib.import_module(module_name)
        for name in path.split("."):
            # a class's own attribute: an inherited one is not the code the hook was made for
            if inspect.isclass(found) and name not in vars(found):
                raise AttributeError(name)
            found = getattr(found, name)
    except (ImportError, AttributeError):
        return f"{module_name}.{path} is missing"
    for text in source_text:
        try:
            source = inspect.getsource(found)
        except (OSError, TypeError):
            source = ""
        if text not in source:
            return f"{module_name}.{path} no longer holds {text!r}"
    return None


def check_upstream(version: Any = None) -> None:
    """Raise :class:`UpstreamChanged`, naming each difference, if a pinned package has another
    version or a target of the hooks is missing (``version``: ``importlib.metadata.version``)."""
    version = version or importlib.metadata.version
    problems = []
    for package, pinned in PINNED.items():
        try:
            found = version(package)
        except importlib.metadata.PackageNotFoundError:
            found = "not installed"
        if found != pinned:
            problems.append(f"{package} is {found}; the guide's server hooks are made for {pinned}")
    problems.extend(problem for target in UPSTREAM_TARGETS
                    if (problem := _missing(target)) is not None)
    if problems:
        raise UpstreamChanged(
            "not serving the guide: " + "; ".join(problems) + ". Install the versions pinned in "
            "pyproject.toml, or review widgets/hosts/voila/ against the new versions.")
