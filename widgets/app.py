"""Build the guide for one visitor: the notebook's single code cell calls :func:`guide`.

Under Voilà with preheated kernels the notebook runs before anyone visits, so everything that
belongs to a visit (the session id, the first event's time, the link's query string) is taken
after :func:`wait_for_request` returns.
"""

from __future__ import annotations

import logging
import os
from urllib.parse import parse_qs

from .flow import LANGUAGES
from .view import GuideView

logger = logging.getLogger(__name__)

NOTES = {
    "lang": {"ko": "알 수 없는 언어 설정 ‘{value}’은(는) 무시했습니다.",
             "en": "Ignored the unknown language setting “{value}”."},
    "step": {"ko": "알 수 없는 단계 ‘{value}’은(는) 무시하고 처음부터 시작합니다.",
             "en": "Ignored the unknown step “{value}”; starting from the beginning."},
}


def wait_for_request() -> None:
    """With a preheated Voilà kernel, block until a visitor's request arrives (no-op elsewhere).

    Voilà's helper is imported only when preheating is on, to keep other kernels light.
    """
    if os.environ.get("VOILA_PREHEAT", "False") == "False":
        return
    from voila.utils import wait_for_request as voila_wait

    voila_wait()


def guide(lang: str | None = None, step: str | None = None, log: bool | None = None) -> GuideView:
    """The guide for one visitor, ready to display.

    ``lang`` and ``step`` default to the page's query string (``?lang=en&step=channel``);
    unknown values are ignored with a visible note. ``log`` defaults to on unless the
    environment sets ``GUIDE_LOG=off``.
    """
    view = GuideView(lang=lang or "ko")
    wait_for_request()

    query = parse_qs(os.environ.get("QUERY_STRING", ""))
    notes = []
    want_lang = lang or (query.get("lang") or [None])[0]
    if want_lang is not None and want_lang not in LANGUAGES:
        notes.append(("lang", want_lang))
        want_lang = None
    if want_lang:
        view.engine.set_language(want_lang)
    want_step = step or (query.get("step") or [None])[0]
    if want_step is not None and want_step not in view.engine.flow.nodes:
        notes.append(("step", want_step))
        want_step = None

    if log is None:
        log = os.environ.get("GUIDE_LOG", "on").lower() not in {"off", "0", "false", "no"}
    if log:
        view.sink = session_logger(view)
    view.start(step=want_step)
    if notes:
        view.set_note(" ".join(NOTES[key][view.engine.lang].format(value=value[:40])
                               for key, value in notes))
    return view


def session_logger(view: GuideView):
    """A per-visit interaction logger for ``view``, or None if the log module cannot load."""
    try:
        from .log import SessionLogger, open_store

        return SessionLogger(open_store, on_status=view.set_log_health)
    except Exception:  # noqa: BLE001 - the guide works without its log
        logger.exception("cannot set up the interaction log; continuing without it")
        return None
