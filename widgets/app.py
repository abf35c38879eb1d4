"""Build the guide for one visitor: the notebook's single code cell calls :func:`guide`.

Under Voilà with preheated kernels the notebook runs before anyone visits, so everything that
belongs to a visit (the session id, the first event's time, the link's query string) is taken
after :func:`wait_for_request` returns.

Diagnostics (the log's warnings, the traceback of a failed callback) never reach the visitor's
page: :func:`keep_diagnostics_off_the_page` sends them to the kernel process's own stderr,
which is the server's log (Voilà's, or JupyterLab's terminal).
"""

from __future__ import annotations

import io
import logging
import os
import sys
from urllib.parse import parse_qs

from . import activity
from .hosts.voila import settings_check as server_check
from .flow import LANGUAGES
from .followup import PARAM as FOLLOWUP_PARAM
from .view import GuideView

logger = logging.getLogger(__name__)

#: The notice for each link parameter the guide cannot follow: a flow interface text (ui).
#: It says what was ignored, never the value itself: anyone can write a link, and its words
#: (a fake support number, say) would appear on the page as the guide's own.
NOTES = {"lang": "link_language", "step": "link_step", "followup": "link_followup"}


#: Loggers whose records go to the server's log: the guide's own, and Python warnings.
DIAGNOSTIC_LOGGERS = ("widgets", "py.warnings")


def server_stderr() -> io.TextIOBase:
    """The kernel process's own stderr, as the server that started the kernel sees it.

    In an IPython kernel ``sys.stderr`` is sent to the page, and so is file descriptor 2
    (ipykernel captures it and forwards it to the page as well); the stream ipykernel itself
    keeps for the terminal is a copy of the original descriptor. Elsewhere: ``sys.__stderr__``.
    """
    fd = getattr(sys.stderr, "_original_stdstream_copy", None)
    if isinstance(fd, int):
        return io.TextIOWrapper(io.FileIO(os.dup(fd), "w"), encoding="utf-8",
                                errors="replace", line_buffering=True)
    return sys.__stderr__


class _ServerLogHandler(logging.StreamHandler):
    """A handler writing to :func:`server_stderr` (marked, so it is installed once)."""


def keep_diagnostics_off_the_page() -> None:
    """Send the guide's log records and Python warnings to the server's log, not the page.

    Idempotent. Without it, Python's last-resort handler writes warnings and tracebacks to
    ``sys.stderr``, which the kernel forwards to the visitor's page.
    """
    logging.captureWarnings(True)
    if not isinstance(logging.lastResort, _ServerLogHandler):
        # records of loggers without a handler (the kernel's comm manager: "No such comm",
        # a failed comm_open's traceback) would go to sys.stderr, i.e. to the page
        last = _ServerLogHandler(server_stderr())
        last.setLevel(logging.WARNING)
        logging.lastResort = last
    for name in DIAGNOSTIC_LOGGERS:
        target = logging.getLogger(name)
        if any(isinstance(h, _ServerLogHandler) for h in target.handlers):
            continue
        handler = _ServerLogHandler(server_stderr())
        handler.setFormatter(logging.Formatter("[guide] %(levelname)s %(name)s: %(message)s"))
        target.addHandler(handler)
        target.propagate = False
        if target.level == logging.NOTSET:
            target.setLevel(logging.INFO)


def wait_for_request() -> None:
    """With a preheated Voilà kernel, block until a visitor's request arrives (no-op elsewhere).

    The request comes through :mod:`widgets.hosts.voila.request`, not Voilà's own helper, which
    would load Voilà's server side into every visitor's kernel. When it cannot be received,
    the server's log says why and the guide starts as for a link without parameters (Voilà's
    helper, too, only warns).
    """
    if os.environ.get("VOILA_PREHEAT", "False") == "False":
        return
    from .hosts.voila.request import RequestInfoError
    from .hosts.voila.request import wait_for_request as receive_request

    try:
        receive_request()
    except RequestInfoError as error:
        logger.warning("the visitor's request did not arrive: %s", error)


def guide(lang: str | None = None, step: str | None = None, log: bool | None = None,
          followup: str | None = None, query: str | None = None) -> GuideView:
    """The guide for one visitor, ready to display.

    ``query`` is the page's query string (``lang=en&step=channel``, with or without the
    leading ``?``), as the host read it from the visitor's request; by default the one Voilà
    gives the kernel (``QUERY_STRING``, taken once the visitor's request has arrived).
    ``lang`` and ``step`` default to the query string's;
    unknown values are ignored with a visible note that does not repeat them. ``followup``
    (default: the query string's, the return link of widgets/followup.py) marks a visit that
    comes back after contacting Amazon: the guide asks how it went, logged with the earlier
    visit's answers the link carries (ids, checked against the flow; anything else is ignored
    with the same kind of note). ``log`` defaults
    to on unless the environment sets ``GUIDE_LOG=off``.
    """
    keep_diagnostics_off_the_page()
    if (notice := server_check.unavailable_notice()) is not None:
        return notice  # a Voilà server without the guide's checked settings: no guide
    view = GuideView(lang=lang if lang in LANGUAGES else "ko",
                     on_activity=activity.from_environment())  # the host's idle culling
    wait_for_request()

    if query is None:
        query = os.environ.get("QUERY_STRING", "")
    query = parse_qs(query.removeprefix("?"))
    notes = []
    want_lang = lang or (query.get("lang") or [None])[0]
    if want_lang is not None and want_lang not in LANGUAGES:
        notes.append("lang")
        want_lang = None
    if want_lang:
        view.engine.set_language(want_lang)
    want_step = step or (query.get("step") or [None])[0]
    if want_step is not None and want_step not in view.engine.flow.nodes:
        notes.append("step")
        want_step = None

    if log is None:
        log = os.environ.get("GUIDE_LOG", "on").lower() not in {"off", "0", "false", "no"}
    if log:
        view.sink = session_logger(view)
    view.start(step=want_step)
    want_followup = followup or (query.get(FOLLOWUP_PARAM) or [None])[0]
    if want_followup is not None and not view.follow_up(want_followup):
        notes.append("followup")
    if notes:
        view.set_note(*(view.engine.flow.ui[NOTES[key]] for key in notes))
    return view


def session_logger(view: GuideView):
    """A per-visit interaction logger for ``view``, or None if the log module cannot load.

    It is closed when the kernel exits normally (the server shuts the kernel down when the
    page closes): its last attempt writes what an outage left buffered, or reports the loss.
    """
    try:
        from .log import SessionLogger, open_store

        # The view's relay makes the visit's events with its session id; the logger takes those only.
        return SessionLogger(open_store, session_id=getattr(view, "session", None),
                             on_status=view.set_log_health).close_at_exit()
    except Exception:  # noqa: BLE001 - the guide works without its log
        logger.exception("cannot set up the interaction log; continuing without it")
        return None
