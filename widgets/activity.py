"""The visitor's last action in the guide, for the server that decides when a visit is idle.

A Voilà server running the guide's kernel manager (``widgets.hosts.voila.kernels.GuideKernelManager``)
gives each kernel a file in ``$GUIDE_ACTIVITY_FILE``, and culls a kernel whose file has not
changed for ``cull_connected_after`` seconds. The guide's view knows nothing of it: it calls its
``on_activity`` hook (None by default) on every action of its visitor (a step, an answer, a
button: each of the view's callbacks), and the Voilà entry point (widgets/app.py) sets that hook
to :func:`from_environment`'s :class:`FileMark`. Widget messages that are not actions (asking
for a widget's state, a value set to what it was) call no callback, so a page cannot hold its
kernel by sending them. Elsewhere (JupyterLab, tests) there is no file and nothing is marked.
Only the standard library is imported here: it runs in every visitor's kernel.
"""

from __future__ import annotations

import os
import time
from typing import Mapping

__all__ = ["ENV", "FileMark", "from_environment"]

ENV = "GUIDE_ACTIVITY_FILE"


class FileMark:
    """Marks an action of the visitor by touching ``path`` (a view's ``on_activity``), at most
    every :attr:`every` seconds: the server judges idleness in minutes. Never raises."""

    every = 1.0

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._last = float("-inf")

    def __call__(self) -> None:
        now = time.monotonic()
        if now - self._last < self.every:
            return
        self._last = now
        try:
            with open(self.path, "a"):
                pass
            os.utime(self.path)
        except OSError:
            pass


def from_environment(environ: Mapping[str, str] | None = None) -> FileMark | None:
    """The mark of the file the server gave this kernel (``$GUIDE_ACTIVITY_FILE``), or None
    when it gave none."""
    path = (os.environ if environ is None else environ).get(ENV)
    return FileMark(path) if path else None
