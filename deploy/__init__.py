"""Running the guide past one Voilà server: nginx in front of N Voilà processes, one
PostgreSQL log, the dashboard reading it.

* ``nginx.conf.in``         the proxy's configuration (a template; ``cluster.py`` renders it)
* ``guide-voila@.service``  systemd unit template: one Voilà server of the guide per port
* ``guide-summary.service`` systemd unit: the maintainers' dashboard on 127.0.0.1
* ``guide.env.example``     the environment file both units read (``GUIDE_LOG_URL``)
* ``cluster.py``            ``./manage cluster N``: all of it on this machine, for trying it
                            and for the tests and benchmarks
* ``postgres.py``           a local PostgreSQL server in a folder of its own (127.0.0.1)

Nothing here is imported by the guide or the dashboard.
"""
