"""Benchmarks of the guide: ``python -m benchmarks`` (see ``benchmarks/__main__.py``).

* ``voila_bench``     the guide against a bare widget app, both served by Voilà, in Chromium
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
