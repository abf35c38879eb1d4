"""Start the cluster of ``./manage cluster`` (nginx in front of Voilà servers of the guide,
one PostgreSQL log, optionally the dashboard) for the tests and the benchmarks::

    with start_cluster(2) as cluster:
        cluster.url                      # nginx, on a free 127.0.0.1 port
        cluster.backends                 # the Voilà servers, their preheated pools filled

It runs :class:`deploy.cluster.Cluster`, the code ``./manage cluster`` runs, on free ports,
in a temporary folder that others can traverse (PostgreSQL runs as ``postgres``, nginx's
workers as ``www-data``), removed afterwards. Tests get it through the fixture factory
``cluster_servers`` (registered by ``conftest.py``; it marks a test ``server``,
``postgres`` and ``cluster``): ``with cluster_servers.serve(2) as cluster: ...``, which
fails the test (never skips it) when the cluster does not start.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from lanes import needs, refuse_in_quick_lane
from pg_server import PROJECT_ROOT  # noqa: F401  (puts the project root on sys.path)
from voila_server import free_port

from deploy.cluster import Cluster, ClusterError, ServerError

POOL_TIMEOUT = 180.0  # for each server's preheated pool (a loaded 2-core machine is slow)


class ClusterStartError(RuntimeError):
    """The cluster did not start (the message holds the Voilà servers' logs)."""


def _free_ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


def wait_for_pools(cluster: Cluster, timeout: float = POOL_TIMEOUT) -> None:
    """Wait until every Voilà server of ``cluster`` has filled its preheated pool once."""
    for backend in cluster.backends:
        deadline = time.monotonic() + timeout
        while "Kernel pool of" not in backend.log():
            if not backend.alive():
                raise ClusterStartError(f"{backend!r} exited:\n{backend.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise ClusterStartError(f"{backend!r}: no preheated pool within {timeout:.0f} s")
            time.sleep(0.5)


@contextlib.contextmanager
def start_cluster(servers: int = 2, *, summary: bool = True, pg_fsync: bool = False,
                  wait_pools: bool = True, progress: Callable[[str], None] | None = None,
                  **cluster_args) -> Iterator[Cluster]:
    """nginx, ``servers`` Voilà servers of the guide, PostgreSQL and (``summary``) the
    dashboard, on free 127.0.0.1 ports; with ``wait_pools`` yielded once every server has
    filled its preheated pool. ``cluster_args`` go to :class:`Cluster` (e.g. ``page_burst``).
    Everything is stopped and removed on exit."""
    refuse_in_quick_lane("the nginx cluster")
    runtime = Path(tempfile.mkdtemp(prefix="guide-cluster-"))
    runtime.chmod(0o755)
    proxy, *rest = _free_ports(1 + servers + (1 if summary else 0))
    backend_ports, summary_port = rest[:servers], (rest[servers] if summary else None)
    cluster = Cluster(servers, port=proxy, backend_ports=backend_ports,
                      summary_port=summary_port, pg_port=0, runtime=runtime,
                      pg_fsync=pg_fsync, **cluster_args)
    try:
        try:
            cluster.start(**({"progress": progress} if progress else {}))
        except (ClusterError, ServerError, OSError) as error:
            logs = "\n".join(f"--- {b.log_path.name}\n{b.log()[-3000:]}" for b in cluster.backends)
            raise ClusterStartError(f"{error}\n{logs}") from error
        if wait_pools:
            wait_for_pools(cluster)
        yield cluster
    finally:
        try:
            cluster.stop()
        finally:
            shutil.rmtree(runtime, ignore_errors=True)


class ClusterServers:
    """The fixture factory of clusters (fixture ``cluster_servers``)."""

    @contextlib.contextmanager
    def serve(self, servers: int = 2, **start_args) -> Iterator[Cluster]:
        """:func:`start_cluster`; a cluster that does not start fails the test."""
        stack = contextlib.ExitStack()
        try:
            cluster = stack.enter_context(start_cluster(servers, **start_args))
        except ClusterStartError as error:
            stack.close()
            pytest.fail(f"cannot start the cluster: {error}", pytrace=False)
        with stack:
            yield cluster


@pytest.fixture(scope="session")
@needs("server", "postgres", "cluster")
def cluster_servers() -> ClusterServers:
    """The factory: ``with cluster_servers.serve(2) as cluster: ...``."""
    return ClusterServers()
