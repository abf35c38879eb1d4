"""The visitor's last action in the guide, for the server that decides when a visit is idle.

A Voilà server running the guide's kernel manager (``widgets.hosts.voila.kernels.GuideKernelManager``)
gives each kernel a file in ``$GUIDE_ACTIVITY_FILE``; the guide touches it on every action of
its visitor (a step, an answer, a button: each of the view's callbacks), and the server culls
a kernel whose file has not changed for ``cull_connected_after`` seconds. Widget messages that
are not actions (asking for a widget's state, a value set to what it was) do not touch it, so
a page cannot hold its kernel by sending them. Elsewhere (JupyterLab, tests) it does nothing.
Only the standard library is imported here: it runs in every visitor's kernel.
"""

from __future__ import annotations

import os
import time

__all__ = ["touch", "ENV"]

ENV = "GUIDE_ACTIVITY_FILE"
#: Touch the file at most this often (seconds): the server judges idleness in minutes.
_EVERY = 1.0
_last = 0.0


def touch() -> None:
    """Mark an action of the visitor now (never raises)."""
    global _last
    path = os.environ.get(ENV)
    if not path:
        return
    now = time.monotonic()
    if now - _last < _EVERY:
        return
    _last = now
    try:
        with open(path, "a"):
            pass
        os.utime(path)
    except OSError:
        pass
