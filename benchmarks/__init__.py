"""Benchmarks of the guide: ``python -m benchmarks`` (see ``benchmarks/__main__.py``).

* ``voila_bench``     the guide against a bare widget app, both served by Voilà, in Chromium
* ``hosts_bench``     the guide under Voilà and under Solara side by side: browser timings,
                      memory and CPU per visitor, bursts of visitors (``ws_visitor``: a
                      visitor without a browser; the Solara server is the guide's own host,
                      ``python -m widgets.hosts.solara``)
* ``capacity_bench``  what a visitor costs through the cluster of ``./manage cluster``
* ``log_write.py``    interaction-log write latency with concurrent writers
* ``summary_bench.py`` the maintainers' summary on a large log

Results go to ``benchmarks/RESULTS.md``.
"""

from pathlib import Path


def cpu_model(default: str = "") -> str:
    """The CPU's model name from /proc/cpuinfo (``default`` where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return default
