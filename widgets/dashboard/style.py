"""How the dashboard looks: its stylesheet, and the short message shown in place of a part that
could not be drawn (:func:`failed`, :func:`attempt`: one part never takes the dashboard down)."""

from __future__ import annotations

import html
import logging

logger = logging.getLogger("widgets.dashboard")

CSS = """
<style>
.guide-dash { max-width: 72rem; margin: 0 auto; font-family: system-ui, -apple-system, "Segoe UI",
  "Noto Sans CJK KR", "Noto Sans KR", sans-serif; color: #1b1b1b; }
.guide-dash .dash-kpis { display: flex; flex-wrap: wrap; gap: 0.75rem; margin: 0.5rem 0; }
.guide-dash .dash-kpi { border: 1px solid #d0d7de; border-radius: 6px; padding: 0.5rem 0.9rem;
  min-width: 9rem; }
.guide-dash .dash-kpi b { display: block; font-size: 1.4rem; }
.guide-dash .dash-kpi span { color: #404040; font-size: 0.85rem; }
.guide-dash .dash-status { color: #7a2e00; }
.guide-dash table { border-collapse: collapse; font-size: 0.9rem; margin: 0.4rem 0; }
.guide-dash th, .guide-dash td { padding: 0.2rem 0.6rem; border-bottom: 1px solid #e5e5e5;
  text-align: right; }
.guide-dash th.row_heading, .guide-dash td.col0, .guide-dash th.col_heading { text-align: left; }
.guide-dash caption { caption-side: top; text-align: left; font-weight: 600; padding: 0.3rem 0; }
.guide-dash .dash-downloads a { margin-right: 1rem; }
.guide-dash .dash-chart { max-width: 100%; }
.guide-dash .dash-map { overflow: auto; max-height: 60rem; border: 1px solid #d0d7de;
  border-radius: 6px; padding: 0.4rem; margin: 0.4rem 0; }
.guide-dash .dash-map-head { font-weight: 600; margin: 0.6rem 0 0.2rem; }
.guide-dash .dash-failed { color: #7a2e00; border: 1px dashed #c0392b; padding: 0.5rem 0.9rem;
  margin: 0.4rem; }
</style>
"""


def failed(what: str) -> str:
    """The short message shown in place of a part of the dashboard that could not be drawn."""
    return (f"<p class='dash-failed' role='status'>{html.escape(what[:1].upper() + what[1:])} "
            "cannot be shown: the log holds something unexpected (see the server log). "
            "· 이 부분은 표시할 수 없습니다.</p>")


def attempt(what: str, draw, *args):
    """``draw(*args)``, or :func:`failed`'s message when it raises (logged with the details)."""
    try:
        return draw(*args)
    except Exception:  # noqa: BLE001 - one part must never take the whole dashboard down
        logger.exception("summary dashboard: %s failed", what)
        return failed(what)

