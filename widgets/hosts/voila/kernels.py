"""Kernel counting and culling: ``GuideKernelManager`` (``VoilaConfiguration.multi_kernel_manager_class``).

It knows which kernels wait in Voilà's preheated pool and which belong to visitors (a kernel
started for a page, or taken from the pool by one), for the visitor cap of
:mod:`widgets.hosts.voila.admission`. It is jupyter_server's kernel manager, whose idle culler
(``MappingKernelManager.cull_idle_timeout`` in ``voila.json``: 60 s) only culls kernels with no
open websocket. This one also culls a visitor's kernel whose page is connected but whose
visitor has done nothing in the guide (a step, an answer, a button: the kernel touches a file,
see ``widgets/activity.py``) for ``cull_connected_after`` seconds (30 min), since any widget
message would otherwise keep a kernel forever, and every visitor's kernel after ``max_visit``
seconds (2 h).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import uuid
from typing import Any

from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from traitlets import Int

from ... import activity
from . import settings_check
from .admission import _PAGE, _Page
from .query import forget_request_info

__all__ = ["ACTIVITY_ENV", "GuideKernelManager"]

#: The environment variable naming the file on which a guide kernel marks its visitor's actions;
#: set by :class:`GuideKernelManager` for each kernel it starts.
ACTIVITY_ENV = activity.ENV


class GuideKernelManager(AsyncMappingKernelManager):
    """Knows the preheated pool's kernels from visitors'; culls a visitor's kernel, connected
    or not, after ``cull_connected_after`` seconds without a step, an answer or a button in
    the guide, and after ``max_visit`` seconds in any case."""

    cull_connected_after = Int(
        1800, config=True,
        help="Seconds without an action in the guide (a step, an answer, a button) after which "
             "a visitor's kernel is culled even with its page connected (0: never). Widget "
             "messages that are not guide actions do not count. Kernels without a connection "
             "follow cull_idle_timeout.")
    max_visit = Int(
        7200, config=True,
        help="Seconds a visitor may hold a kernel at most, active or not (0: no limit); then "
             "the kernel is culled and the page offers to start again.")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: kernels started for Voilà's preheated pool and not taken by a page yet
        self._pool_ids: set[str] = set()
        #: when each visitor's kernel was given to its visitor (time.time())
        self._visit_started: dict[str, float] = {}
        #: the guide's kernels mark each action of their visitor on a file here (its mtime)
        self.activity_dir = tempfile.mkdtemp(prefix="guide-activity-")
        # Voilà's kernel manager is a subclass made at start-up (voila_kernel_manager_factory)
        # whose get_rendered_notebook hands a pool kernel to a page: note which page took it.
        taking = getattr(self, "get_rendered_notebook", None)
        if taking is not None:
            async def get_rendered_notebook(*args: Any, **kw: Any) -> Any:
                result = await taking(*args, **kw)
                self._taken(result[2])
                return result

            self.get_rendered_notebook = get_rendered_notebook

    def _taken(self, kernel_id: str) -> None:
        self._pool_ids.discard(kernel_id)
        self._visit_started[kernel_id] = time.time()
        # The idle culler measures from the kernel's last message; a notebook that does not
        # wait for its visitor went quiet when it finished in the pool, maybe long ago: the
        # page gets the whole cull_idle_timeout to connect, as for a newly started kernel.
        kernel = self._kernels.get(kernel_id)
        if kernel is not None:
            from jupyter_server._tz import utcnow

            kernel.last_activity = utcnow()
        page = _PAGE.get()
        if page is not None:
            page.kernel_id = kernel_id

    async def start_kernel(self, *args: Any, kernel_id: str | None = None, **kwargs: Any) -> str:
        """Start a kernel, noting before it starts whether it is the kernel of the page being
        served (Voilà without a pool) or one for the pool (the start-up fill, or a refill, which
        runs in a task started by a page that already has its kernel)."""
        if kernel_id is None or kernel_id not in self:
            kernel_id = kernel_id or str(uuid.uuid4())
            page = _PAGE.get()
            if page is not None and page.kernel_id is None:
                page.kernel_id = kernel_id
                self._visit_started[kernel_id] = time.time()
            else:
                self._pool_ids.add(kernel_id)
        env = dict(kwargs.get("env") or os.environ)
        env[ACTIVITY_ENV] = self.activity_file(kernel_id)
        settings_check.mark_kernel(self, env)  # a kernel of a server that passed its check
        kwargs["env"] = env
        try:
            return await super().start_kernel(*args, kernel_id=kernel_id, **kwargs)
        except BaseException:
            self._pool_ids.discard(kernel_id)
            self._visit_started.pop(kernel_id, None)
            raise

    def activity_file(self, kernel_id: str) -> str:
        """The file whose modification time is the last action of ``kernel_id``'s visitor."""
        return os.path.join(self.activity_dir, kernel_id)

    def last_action(self, kernel_id: str) -> float | None:
        """When ``kernel_id``'s visitor last acted in the guide, or was given the kernel
        (time.time()); None for a kernel in the pool."""
        started = self._visit_started.get(kernel_id)
        if started is None:
            return None
        try:
            return max(started, os.stat(self.activity_file(kernel_id)).st_mtime)
        except OSError:
            return started

    async def shutdown_kernel(self, kernel_id: str, *args: Any, **kwargs: Any) -> None:
        self._pool_ids.discard(kernel_id)
        self._visit_started.pop(kernel_id, None)
        with contextlib.suppress(OSError):
            os.unlink(self.activity_file(kernel_id))
        forget_request_info(kernel_id)
        await super().shutdown_kernel(kernel_id, *args, **kwargs)

    def visitors(self, pages: set[_Page]) -> int:
        """Kernels not waiting in the pool, plus ``pages`` that have no running kernel yet."""
        ids = set(self.list_kernel_ids())
        return len(ids - self._pool_ids) + sum(1 for page in list(pages)
                                               if page.kernel_id not in ids)

    async def cull_kernel_if_idle(self, kernel_id: str) -> None:
        reason = self.cull_reason(kernel_id)
        if reason is not None:
            self.log.warning("Culling kernel %s: %s", kernel_id, reason)
            await self.shutdown_kernel(kernel_id)
            return
        await super().cull_kernel_if_idle(kernel_id)

    def cull_reason(self, kernel_id: str, now: float | None = None) -> str | None:
        """Why a visitor's kernel is culled now (its visit is over its maximum length, or it
        is connected with no guide action for ``cull_connected_after``), or None."""
        started = self._visit_started.get(kernel_id)
        if started is None or kernel_id not in self._kernels:
            return None
        now = time.time() if now is None else now
        if self.max_visit > 0 and now - started > self.max_visit:
            return f"the visit reached its maximum length ({self.max_visit} s)"
        last = self.last_action(kernel_id)
        if (self.cull_connected_after > 0 and self._kernel_connections.get(kernel_id, 0)
                and last is not None and now - last > self.cull_connected_after):
            return f"connected but no action in the guide for {int(now - last)} s"
        return None
