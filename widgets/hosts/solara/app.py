"""The page Solara shows each visitor: one guide per virtual kernel.

Solara loads this module once (``SOLARA_APP=widgets.hosts.solara.app``) and renders
:func:`Page` in each visitor's virtual kernel. The guide is :func:`widgets.app.guide`, as in
Voilà, given the query string of the page the visitor opened (Solara's router has it); its
per-visit logger is closed when the virtual kernel closes (the visitor left, or the gate culled
the visit), on a thread of its own so that a slow store holds up nothing.
"""

from __future__ import annotations

import logging
import threading

import ipywidgets as w
import solara
from solara.server import kernel_context

from widgets import app as guide_app

from . import gate

logger = logging.getLogger("widgets.hosts.solara")

#: Shown instead of the guide when it cannot be built (the reason goes to the server's log).
UNAVAILABLE = ('<div class="guide-unavailable" role="alert">'
               '<p lang="ko">지금은 안내서를 열 수 없습니다. 잠시 뒤에 다시 시도해 주세요.</p>'
               '<p lang="en">The guide cannot be opened right now. Please try again shortly.</p>'
               '</div>')


def visit(query: str) -> w.Widget:
    """The guide for this virtual kernel's visitor, with its logger tied to the kernel."""
    try:
        view = guide_app.guide(query=query)
    except Exception:  # noqa: BLE001 - the page never shows a traceback
        logger.exception("the guide could not be built for a visitor")
        return w.HTML(UNAVAILABLE)
    context = kernel_context.get_current_context()
    sink = getattr(view, "sink", None)
    comm = getattr(view, "comm", None)
    if comm is None or context.kernel.comm_manager.comms.get(comm.comm_id) is not comm:
        # the widgets' messages would not reach this visitor's kernel: the guide would show
        # but not answer (something replaced Solara's comm functions after it loaded)
        logger.error("the guide's widgets are not in the visitor's virtual kernel; not shown")
        if sink is not None and hasattr(sink, "close"):
            sink.close()
        return w.HTML(UNAVAILABLE)

    def closed() -> None:
        gate.forget_kernel(context.id)
        if sink is not None and hasattr(sink, "close"):
            # the last flush waits for the store at most the logger's close_timeout
            threading.Thread(target=sink.close, name=f"guide-log-close-{context.id[:8]}").start()

    context.on_close(closed)
    return view


@solara.component
def Page():  # noqa: N802 - the name Solara looks for
    """One visitor's guide: built once per virtual kernel, then updated in place."""
    search = solara.use_router().search or ""
    view = solara.use_memo(lambda: visit(search), dependencies=[])
    return solara.Column(children=[view], style={"padding": "0", "max-width": "100%"})
