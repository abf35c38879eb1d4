"""Benchmarks of the guide: ``python -m benchmarks`` (see ``benchmarks/__main__.py``).

* ``voila_bench``     the guide against a bare widget app, both served by Voilà, in Chromium
* ``log_write.py``    interaction-log write latency with concurrent writers
* ``summary_bench.py`` the maintainers' summary on a large log

Results go to ``benchmarks/RESULTS.md``.
"""
