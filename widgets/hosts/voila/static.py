"""The Voilà server's plain HTTP answers: the template's static files and the ``Server`` header.

:func:`template_static_path` and :func:`template_static_parse` wrap Voilà's
``TemplateStaticFileHandler`` so that a path outside a template's ``static`` folder answers
404 (``guide/static/..%2fconf.json`` failed with an HTTP 500 and a traceback in the server
log); :func:`clear_without_banner` wraps tornado's ``RequestHandler.clear`` so that no
response names the server and its version. Applied by :func:`widgets.hosts.voila.install`.
"""

from __future__ import annotations

import os
from typing import Any

from tornado import web

__all__ = ["clear_without_banner", "template_static_parse", "template_static_path"]


def template_static_path(original: Any) -> Any:
    """``TemplateStaticFileHandler.get_absolute_path``, answering 404 to a path that is not
    ``<template>/static/<file>`` once normalised."""

    def get_absolute_path(cls, root: str, path: str) -> str:
        parts = os.path.normpath(path).split(os.sep, 2)
        if len(parts) != 3 or parts[1] != "static" or ".." in parts or not parts[2]:
            raise web.HTTPError(404)
        return original(root, path)

    return classmethod(get_absolute_path)


def template_static_parse(original: Any) -> Any:
    """``TemplateStaticFileHandler.parse_url_path``, answering 404 to a URL path that is not
    ``<template>/static/<file>``."""

    def parse_url_path(self, path: str) -> str:
        if path.count("/") < 2 or path.split("/", 2)[1] != "static":
            raise web.HTTPError(404)
        return original(self, path)

    return parse_url_path


def clear_without_banner(original: Any) -> Any:
    """``RequestHandler.clear`` without tornado's ``Server`` header (it named the server and
    its version on every response)."""

    def clear(self) -> None:
        original(self)
        self.clear_header("Server")

    return clear
