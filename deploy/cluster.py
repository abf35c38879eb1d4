"""The guide past one server, on this machine: nginx in front of N workers of the guide (Voilà
servers, or with ``--solara`` Solara servers), all writing to one PostgreSQL log, the dashboard
reading it. Everything listens on 127.0.0.1.

    python -m deploy.cluster 2            # what `./manage cluster 2` runs; Ctrl+C stops it all
    python -m deploy.cluster 2 --solara   # the same with Solara workers (`./manage cluster 2 --solara`)
    python -m deploy.cluster 4 --print-nginx --port=80 --server-name=guide.example.org

Started in this order (and stopped in the reverse one):

1. PostgreSQL (``deploy/postgres.py``) in ``<runtime>/postgres`` on 127.0.0.1 (port 8868),
   unless ``--log-url`` names a log store already;
2. N Voilà servers of ``notebooks/guide.ipynb`` on consecutive ports from 8870, each started
   from the project folder (so with its ``voila.json``) with ``GUIDE_LOG_URL`` pointing at
   the one log, as the systemd unit ``deploy/guide-voila@.service`` starts them; or, with
   ``--solara``, N Solara servers of the guide (``python -m widgets.hosts.solara``, the
   module :data:`SOLARA_MODULE`), each holding its visitors' virtual kernels in its own
   process, with the limits of :func:`solara_limits` (the same visitor cap and culling as
   the Voilà servers', from ``voila.json``);
3. the dashboard (``notebooks/summary.ipynb``) on 8867, reading the same log;
4. nginx on 8866 with ``deploy/nginx/guide.conf.in`` rendered for those N servers: cookie
   stickiness (a visitor's page, websocket and later requests reach one worker), websockets,
   per-IP limits, only the page's paths published (``deploy/nginx/<host>.locations.in``).

The same :class:`Cluster` is what the tests (``tests/test_cluster.py``) and the capacity
benchmark (``benchmarks/capacity_bench.py``) start, with free ports and a temporary folder.
Only the standard library is used here; the Voilà servers run in this interpreter's
environment (``./manage`` runs it from ``.venv``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from deploy.postgres import LocalPostgres, ServerError
from widgets.log.urls import redact as _redact

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
GUIDE_NOTEBOOK = "notebooks/guide.ipynb"
SUMMARY_NOTEBOOK = "notebooks/summary.ipynb"
#: The guide's Solara host: the module a Solara worker runs (``python -m``). The one place
#: that names it, for the cluster and the benchmarks.
SOLARA_MODULE = "widgets.hosts.solara"
#: The hosts a worker of the guide can be: Voilà servers of the notebook, or Solara servers.
HOSTS = ("voila", "solara")
HOST_NAMES = {"voila": "Voilà", "solara": "Solara"}
#: Log connections a Solara worker needs: its visitors share one log store, which holds one
#: connection (a second while a lost one is replaced).
SOLARA_CONNECTIONS = 2
SITE_TEMPLATE = HERE / "nginx" / "guide.conf.in"
MAIN_TEMPLATE = HERE / "nginx" / "nginx.conf.in"

DEFAULT_PORT = 8866
DEFAULT_SUMMARY_PORT = 8867
DEFAULT_PG_PORT = 8868
DEFAULT_BACKEND_PORT = 8870
START_TIMEOUT = 120.0  # for a Voilà server to answer (a loaded 2-core machine is slow)
STOP_TIMEOUT = 20.0  # for Voilà to shut its kernels down after SIGTERM

_PLACEHOLDER = re.compile(r"@@([A-Z_]+)@@")


class ClusterError(RuntimeError):
    """A part of the cluster did not start."""


# --------------------------------------------------------------------------- nginx config


def render(template: Path, values: Mapping[str, str]) -> str:
    """``template`` with every ``@@NAME@@`` replaced by ``values[NAME]`` (all must be given)."""
    text = template.read_text(encoding="utf-8")
    missing = sorted(set(_PLACEHOLDER.findall(text)) - set(values))
    if missing:
        raise KeyError(f"{template.name}: no value for {', '.join(missing)}")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


#: Page loads one address may make at once through nginx (then one every 5 s): below a
#: server's visitor cap, so that one address cannot take a server's every slot in one go.
DEFAULT_PAGE_BURST = 10


def site_config(backend_ports: Sequence[int], listen: str, access_log: str,
                server_name: str = "_", secure_cookie: bool = False,
                max_fails: int = 1, fail_timeout: str = "10s",
                page_burst: int = DEFAULT_PAGE_BURST, host: str = "voila") -> str:
    """The nginx site (``deploy/nginx/guide.conf.in``) for workers of ``host`` (``voila`` or
    ``solara``: the locations of ``deploy/nginx/<host>.locations.in``) on 127.0.0.1 at
    ``backend_ports``. ``page_burst``: page loads one address may make at once; it must stay
    below a server's visitor cap (:func:`visitor_cap`) in a deployment; the capacity
    benchmark, which sends its whole burst from this machine on purpose, raises it."""
    if host not in HOSTS:
        raise ValueError(f"host must be one of {', '.join(HOSTS)}")
    if not backend_ports:
        raise ValueError("at least one worker")
    if not 1 <= page_burst:
        raise ValueError("page_burst must be at least 1")
    servers = "\n".join(f"    server 127.0.0.1:{port} max_fails={max_fails} "
                        f"fail_timeout={fail_timeout};" for port in backend_ports)
    values = {"PAGE_BURST": str(page_burst)}
    return render(SITE_TEMPLATE, {
        "LOCATIONS": render(HERE / "nginx" / f"{host}.locations.in", values).rstrip("\n"),
        "UPSTREAM_SERVERS": servers,
        "LISTEN": listen,
        "SERVER_NAME": server_name,
        "ACCESS_LOG": access_log,
        "COOKIE_FLAGS": "; Secure" if secure_cookie else "",
        "PAGE_BURST": str(page_burst),
    })


def nginx_user() -> str:
    """The ``user`` line of the main configuration: the workers of a root-started nginx run
    as www-data (else nobody); started by anyone else, nginx stays that user (no line)."""
    if os.geteuid() != 0:
        return "# (not started as root: the workers run as the user who started nginx)"
    for name in ("www-data", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return f"user {name};"
    return "user nobody;"


def find_nginx() -> str:
    for candidate in (shutil.which("nginx"), "/usr/sbin/nginx"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise ClusterError("nginx not found: install Debian's 'nginx' package "
                       "(./manage cluster does it)")


# --------------------------------------------------------------------------- processes


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc; the kernels of a Voilà server)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rfind(")") + 2:].split()
        if len(fields) > 1 and fields[1] == str(pid):
            found.append(int(stat.parent.name))
    return found


def _terminate(process: subprocess.Popen, timeout: float, sig: int = signal.SIGTERM) -> None:
    """Signal ``process`` and wait; SIGKILL its process group after ``timeout``; then kill
    any child it left behind (kernels run in sessions of their own)."""
    children = _children(process.pid)
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _get(url: str, timeout: float = 5.0) -> int:
    """HTTP status of GET ``url`` (0 when nothing answers)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return 0


def _wait_answering(server: "Voila | Solara", path: str, timeout: float) -> None:
    """Until ``server`` (a Voilà or Solara worker) serves the static file ``path``; ClusterError
    with the end of its log when it exits or does not answer within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while _get(server.url + path) != 200:
        if not server.alive():
            raise ClusterError(f"{server!r} exited:\n{_tail(server.log())}")
        if time.monotonic() > deadline:
            raise ClusterError(f"{server!r} did not answer within {timeout:.0f} s:\n"
                               f"{_tail(server.log())}")
        time.sleep(0.25)


class Voila:
    """One Voilà server of a notebook, started from the project folder (its ``voila.json``),
    on 127.0.0.1:``port``, its output in ``log_path``."""

    def __init__(self, notebook: str, port: int, log_path: Path, env: Mapping[str, str],
                 extra_args: Sequence[str] = ()) -> None:
        self.notebook = notebook
        self.port = port
        self.log_path = log_path
        self.env = dict(env)
        self.extra_args = list(extra_args)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def __repr__(self) -> str:
        pid = self.process.pid if self.process else None
        return f"Voila({self.notebook!r}, port={self.port}, pid={pid})"

    def start(self) -> None:
        command = [sys.executable, "-m", "voila", self.notebook, f"--port={self.port}",
                   *self.extra_args]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def wait_answering(self, timeout: float = START_TIMEOUT) -> None:
        """Until a static file is served (never the notebook: that would take a kernel)."""
        _wait_answering(self, STATIC_PROBE["voila"], timeout)

    def kernel_pids(self) -> list[int]:
        return _children(self.process.pid) if self.alive() else []

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        if self.process is not None:
            _terminate(self.process, timeout)


class Solara:
    """One Solara server of the guide (``python -m widgets.hosts.solara``) on
    127.0.0.1:``port``, started from the project folder, its output in ``log_path``, with
    ``limits`` (:class:`widgets.hosts.solara.settings.Limits`' names: ``max_visitors``,
    ``idle_timeout``, ...) as its options. Every visitor's kernel is a virtual kernel inside
    this one process."""

    def __init__(self, port: int, log_path: Path, env: Mapping[str, str],
                 limits: Mapping[str, float] | None = None,
                 extra_args: Sequence[str] = ()) -> None:
        self.port = port
        self.log_path = log_path
        self.env = dict(env)
        self.limits = dict(solara_limits() if limits is None else limits)
        self.extra_args = list(extra_args)
        self.process: subprocess.Popen | None = None

    url = Voila.url
    alive = Voila.alive
    log = Voila.log
    stop = Voila.stop

    def __repr__(self) -> str:
        pid = self.process.pid if self.process else None
        return f"Solara(port={self.port}, pid={pid})"

    def command(self) -> list[str]:
        options = [f"--{name.replace('_', '-')}="
                   f"{int(value) if float(value).is_integer() else value}"
                   for name, value in self.limits.items()]
        return [sys.executable, "-m", SOLARA_MODULE, "--ip=127.0.0.1", f"--port={self.port}",
                *options, *self.extra_args]

    def start(self) -> None:
        command = self.command()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**self.env, "PYTHONPATH": os.pathsep.join(
            filter(None, [str(ROOT), self.env.get("PYTHONPATH", "")]))}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)

    def wait_answering(self, timeout: float = START_TIMEOUT) -> None:
        """Until a static file is served (a page would not start a kernel, but costs more)."""
        _wait_answering(self, STATIC_PROBE["solara"], timeout)

    def kernel_pids(self) -> list[int]:
        return []  # virtual kernels: threads of the server process

    def holds(self, kernel_id: str) -> bool:
        """Whether this worker holds the visit of ``kernel_id``, asked directly (the kernel
        probe the page's script uses: 200 while the visit lives, 404 once it ended)."""
        return self.alive() and _get(f"{self.url}jupyter/api/kernels/{kernel_id}") == 200


#: A static file each host serves without starting anything (to see that it answers).
STATIC_PROBE = {"voila": "voila/static/voila.js", "solara": "static/main-vuetify.js"}


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _voila_config() -> dict:
    try:
        config = json.loads((ROOT / "voila.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def visitor_cap() -> int:
    """Visitors one server of the guide serves at once, Voilà or Solara (``voila.json``'s
    ``GuideIdentityProvider.max_visitors``; 32 when not set)."""
    try:
        return int(_voila_config().get("GuideIdentityProvider", {}).get("max_visitors", 32)) or 32
    except (TypeError, ValueError):
        return 32


#: Each Solara worker's limit and where ``voila.json`` gives the Voilà servers' one:
#: (section, key) and, for the message size, the tornado setting.
SOLARA_FROM_VOILA = {
    "max_visitors": ("GuideIdentityProvider", "max_visitors"),
    "retry_after": ("GuideIdentityProvider", "retry_after"),
    "idle_timeout": ("GuideKernelManager", "cull_connected_after"),
    "disconnected_timeout": ("MappingKernelManager", "cull_idle_timeout"),
    "cull_interval": ("MappingKernelManager", "cull_interval"),
    "max_message_bytes": ("Voila", "tornado_settings.websocket_max_message_size"),
}


def solara_limits(**overrides: float) -> dict[str, float]:
    """The Solara workers' limits from the cluster's configuration, the one the Voilà
    servers read (``voila.json``): the visitor cap and busy page's Retry-After, the idle
    visit's end (Voilà's ``cull_connected_after``), a page gone's kernel (Voilà's
    ``cull_idle_timeout``), the culler's interval and the websocket message size; a limit
    ``voila.json`` does not give keeps the host's default. ``overrides`` win (the benchmarks
    lift the cap for their bursts)."""
    config = _voila_config()
    limits: dict[str, float] = {}
    for name, (section, key) in SOLARA_FROM_VOILA.items():
        value = config.get(section, {})
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
            limits[name] = value
    limits.update(overrides)
    return limits


def voila_env(log_url: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a Voilà server (and so of its kernels): ``GUIDE_LOG_URL``. The
    guide's page template comes with the installed package (its ``share/jupyter``)."""
    env = dict(os.environ if base is None else base)
    env["GUIDE_LOG_URL"] = log_url
    env.pop("GUIDE_LOG", None)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


# --------------------------------------------------------------------------- the cluster


class Cluster:
    """PostgreSQL + N Voilà servers of the guide + the dashboard + nginx, on 127.0.0.1.

    ``backend_ports`` default to ``servers`` consecutive ports from 8870. ``summary_port``
    None: no dashboard. ``log_url`` given: no PostgreSQL is started, that store is used.
    ``runtime`` holds everything the cluster writes (logs, nginx's files, the database).
    ``host``: ``voila`` or ``solara`` workers; ``solara_overrides``: limits of the Solara
    workers other than :func:`solara_limits`' (e.g. ``max_visitors=0`` for a benchmark).
    """

    def __init__(self, servers: int = 2, *, port: int = DEFAULT_PORT,
                 backend_ports: Sequence[int] | None = None,
                 summary_port: int | None = DEFAULT_SUMMARY_PORT,
                 pg_port: int = DEFAULT_PG_PORT, log_url: str | None = None,
                 runtime: Path = ROOT / "data" / "cluster", pg_fsync: bool = True,
                 env: Mapping[str, str] | None = None,
                 voila_args: Sequence[str] = (),
                 page_burst: int = DEFAULT_PAGE_BURST, host: str = "voila",
                 solara_overrides: Mapping[str, float] | None = None) -> None:
        if host not in HOSTS:
            raise ValueError(f"host must be one of {', '.join(HOSTS)}")
        self.host = host
        self.solara_limits = solara_limits(**dict(solara_overrides or {}))
        if backend_ports is None:
            backend_ports = [DEFAULT_BACKEND_PORT + i for i in range(servers)]
        if not backend_ports:
            raise ValueError("at least one Voilà server")
        self.port = port
        self.runtime = Path(runtime).resolve()
        self.nginx_dir = self.runtime / "nginx"
        self.access_log = self.nginx_dir / "access.log"
        self.pg_port = pg_port
        self.pg_fsync = pg_fsync
        self.postgres: LocalPostgres | None = None
        self.log_url = log_url
        self.base_env = dict(os.environ if env is None else env)
        self.voila_args = list(voila_args)
        self.page_burst = page_burst
        self.backend_ports = list(backend_ports)
        self.summary_port = summary_port
        self.backends: list[Voila | Solara] = []
        self.summary: Voila | None = None
        self.nginx: subprocess.Popen | None = None
        self.upstream_ports = list(backend_ports)

    # -- addresses

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def summary_url(self) -> str | None:
        return self.summary.url if self.summary else None

    # -- start and stop

    def __enter__(self) -> "Cluster":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, progress=lambda message: None) -> None:
        self.runtime.mkdir(parents=True, exist_ok=True)
        nginx = find_nginx()
        if self.log_url is None:
            progress(f"PostgreSQL on 127.0.0.1:{self.pg_port or '(free port)'}")
            # Voilà: one connection per visitor's kernel (from its first logged event on);
            # Solara: one log store per worker, shared by its visitors (SOLARA_CONNECTIONS)
            per_worker = SOLARA_CONNECTIONS if self.host == "solara" else visitor_cap()
            self.postgres = LocalPostgres(self.runtime / "postgres", port=self.pg_port,
                                          fsync=self.pg_fsync,
                                          max_connections=max(100, len(self.backend_ports)
                                                              * per_worker + 20))
            self.postgres.start()
            self.log_url = self.postgres.url
        env = voila_env(self.log_url, self.base_env)
        if self.host == "solara":
            self.backends = [Solara(port, self.runtime / f"solara-{port}.log", env,
                                    self.solara_limits) for port in self.backend_ports]
        else:
            self.backends = [Voila(GUIDE_NOTEBOOK, port, self.runtime / f"voila-{port}.log",
                                   env, self.voila_args) for port in self.backend_ports]
        progress(f"{len(self.backends)} {HOST_NAMES[self.host]} servers of the guide on "
                 f"{', '.join(str(b.port) for b in self.backends)}")
        for backend in self.backends:
            backend.start()
        if self.summary_port is not None:
            self.summary = Voila(SUMMARY_NOTEBOOK, self.summary_port,
                                 self.runtime / f"summary-{self.summary_port}.log", env)
            progress(f"the dashboard on {self.summary_port}")
            self.summary.start()
        for server in [*self.backends, *([self.summary] if self.summary else [])]:
            server.wait_answering()
        progress(f"nginx on {self.port}")
        self._start_nginx(nginx)

    def _write_nginx_config(self) -> Path:
        tmp = self.nginx_dir / "tmp"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (tmp / name).mkdir(parents=True, exist_ok=True)
        user = nginx_user()
        if user.startswith("user "):  # the workers write nginx's temporary files
            name = user.split()[1].rstrip(";")
            owner = pwd.getpwnam(name)
            for path in [tmp, *tmp.iterdir()]:
                os.chown(path, owner.pw_uid, owner.pw_gid)
            runuser = shutil.which("runuser")
            if runuser and subprocess.run([runuser, "-u", name, "--", "test", "-w",
                                           str(tmp / "proxy")], check=False).returncode:
                raise ClusterError(f"nginx's workers ({name}) cannot reach {tmp}: every folder "
                                   "above it must be searchable by others (chmod o+x), or give "
                                   "--runtime elsewhere")
        site = self.nginx_dir / "guide.conf"
        site.write_text(site_config(self.upstream_ports, f"127.0.0.1:{self.port}",
                                    str(self.access_log), page_burst=self.page_burst,
                                    host=self.host),
                        encoding="utf-8")
        main = self.nginx_dir / "nginx.conf"
        main.write_text(render(MAIN_TEMPLATE, {"USER": user, "RUNTIME": str(self.nginx_dir),
                                               "SITE": str(site)}), encoding="utf-8")
        return main

    def _nginx_command(self, nginx: str, *args: str) -> list[str]:
        return [nginx, "-p", str(self.nginx_dir), "-c", str(self.nginx_dir / "nginx.conf"),
                "-g", "daemon off;", *args]

    def _start_nginx(self, nginx: str) -> None:
        self._write_nginx_config()
        check = subprocess.run(self._nginx_command(nginx, "-t", "-q"), capture_output=True,
                               text=True)
        if check.returncode:
            raise ClusterError(f"nginx -t: {check.stderr.strip()}")
        with open(self.nginx_dir / "nginx.out", "ab") as out:
            self.nginx = subprocess.Popen(self._nginx_command(nginx), stdin=subprocess.DEVNULL,
                                          stdout=out, stderr=subprocess.STDOUT,
                                          start_new_session=True)
        deadline = time.monotonic() + 30
        while _get(self.url + STATIC_PROBE[self.host]) != 200:
            if self.nginx.poll() is not None or time.monotonic() > deadline:
                raise ClusterError("nginx did not start:\n" + _tail(self.nginx_error_log()))
            time.sleep(0.2)

    def set_upstreams(self, ports: Iterable[int]) -> None:
        """Proxy to the Voilà servers on ``ports`` only (a subset of the cluster's): the site
        is rendered again and nginx reloads it (new connections use it)."""
        self.upstream_ports = list(ports)
        self._write_nginx_config()
        check = subprocess.run(self._nginx_command(find_nginx(), "-t", "-q"),
                               capture_output=True, text=True)
        if check.returncode:
            raise ClusterError(f"nginx -t: {check.stderr.strip()}")
        assert self.nginx is not None
        self.nginx.send_signal(signal.SIGHUP)
        time.sleep(1.0)  # the master starts new workers, old ones finish their connections

    def stop_backend(self, index: int) -> Voila:
        """Stop one Voilà server (nginx keeps it in its upstream: it is found down)."""
        backend = self.backends[index]
        backend.stop()
        return backend

    def stop(self) -> None:
        """nginx, the Voilà servers, the dashboard, then PostgreSQL; each is stopped even if
        another one fails to."""
        if self.nginx is not None:
            _terminate(self.nginx, 15)
            self.nginx = None
        for server in [*self.backends, *([self.summary] if self.summary else [])]:
            with contextlib.suppress(Exception):
                server.stop()
        if self.postgres is not None:
            with contextlib.suppress(Exception):
                self.postgres.stop()

    # -- what happened

    def nginx_error_log(self) -> str:
        text = ""
        for name in ("nginx.out", "error.log"):
            with contextlib.suppress(OSError):
                text += (self.nginx_dir / name).read_text(errors="replace")
        return text

    def access_entries(self) -> list[dict[str, str]]:
        """nginx's access log as dicts: method, uri, status, upstream, upstream_status,
        route, new_route (see ``log_format guide``)."""
        entries = []
        with contextlib.suppress(OSError):
            for line in self.access_log.read_text(errors="replace").splitlines():
                match = _ACCESS.match(line)
                if match:
                    entries.append(match.groupdict())
        return entries


_ACCESS = re.compile(
    r'(?P<remote>\S+) \[(?P<time>[^\]]+)\] "(?P<method>\S+) (?P<uri>\S+)" (?P<status>\d+) '
    r'upstream=(?P<upstream>.*?) upstream_status=(?P<upstream_status>.*?) '
    r'route=(?P<route>\S*) new_route=(?P<new_route>\d) rt=(?P<rt>\S+)$')


# --------------------------------------------------------------------------- command line


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="./manage cluster",
        description="nginx + N Voilà (or Solara) servers of the guide + the dashboard + "
                    "PostgreSQL, all "
                    "on 127.0.0.1 (Ctrl+C stops everything).")
    parser.add_argument("servers", nargs="?", type=int, default=2,
                        help="workers of the guide (default 2)")
    parser.add_argument("--solara", action="store_const", const="solara", default="voila",
                        dest="host", help="Solara workers instead of Voilà servers")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"nginx's port, the guide's address (default {DEFAULT_PORT})")
    parser.add_argument("--backend-port", type=int, default=DEFAULT_BACKEND_PORT,
                        help=f"the first worker's port; the others follow "
                             f"(default {DEFAULT_BACKEND_PORT})")
    parser.add_argument("--summary-port", type=int, default=DEFAULT_SUMMARY_PORT,
                        help=f"the dashboard's port (default {DEFAULT_SUMMARY_PORT}; 0: none)")
    parser.add_argument("--pg-port", type=int, default=DEFAULT_PG_PORT,
                        help=f"the local PostgreSQL's port (default {DEFAULT_PG_PORT})")
    parser.add_argument("--log-url", help="use this log store (e.g. postgresql://...) instead "
                                          "of starting a local PostgreSQL")
    parser.add_argument("--runtime", type=Path, default=ROOT / "data" / "cluster",
                        help="folder for logs, nginx's files and the database "
                             "(default data/cluster)")
    parser.add_argument("--print-nginx", action="store_true",
                        help="only print the nginx site for these servers and exit")
    parser.add_argument("--listen", help="with --print-nginx: nginx's listen address "
                                         "(default 127.0.0.1:PORT)")
    parser.add_argument("--server-name", default="_", help="with --print-nginx: server_name")
    parser.add_argument("--secure-cookie", action="store_true",
                        help="with --print-nginx: the route cookie only over HTTPS")
    args = parser.parse_args(argv)
    if args.servers < 1:
        parser.error("at least one worker")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    ports = [args.backend_port + i for i in range(args.servers)]
    if args.print_nginx:
        print(site_config(ports, args.listen or f"127.0.0.1:{args.port}",
                          "/var/log/nginx/guide.access.log", server_name=args.server_name,
                          secure_cookie=args.secure_cookie, host=args.host), end="")
        return 0

    def say(message: str) -> None:
        print(f"\033[1m==> {message}\033[0m", file=sys.stderr, flush=True)

    def terminate(signum, frame):  # systemd, kill: stop like Ctrl+C
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started ignoring it
    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGHUP, terminate)
    cluster = Cluster(args.servers, port=args.port, backend_ports=ports,
                      summary_port=args.summary_port or None, pg_port=args.pg_port,
                      log_url=args.log_url, runtime=args.runtime, host=args.host)
    status = 0
    try:
        cluster.start(progress=lambda message: say(f"starting {message}"))
        lines = [f"the guide, through nginx:   {cluster.url}"]
        lines += [f"  {HOST_NAMES[args.host]} server {i + 1}:{' ' * (12 if args.host == 'voila' else 11)}"
                  f"{b.url}  (log {b.log_path})"
                  for i, b in enumerate(cluster.backends)]
        if cluster.summary:
            lines.append(f"the dashboard:               {cluster.summary.url}")
        lines.append(f"the log:                     {_redact(cluster.log_url or '')}")
        lines.append(f"nginx's access log:          {cluster.access_log}")
        say("running (Ctrl+C stops everything):")
        print("\n".join(lines), file=sys.stderr, flush=True)
        while True:  # report a server that dies; keep the others running
            time.sleep(2)
            for server in [*cluster.backends, *([cluster.summary] if cluster.summary else [])]:
                if server.process and server.process.poll() is not None and \
                        not getattr(server, "_reported", False):
                    server._reported = True  # type: ignore[attr-defined]
                    say(f"{server!r} exited with status {server.process.returncode} "
                        f"(see {server.log_path})")
            if cluster.nginx is not None and cluster.nginx.poll() is not None:
                say("nginx exited:\n" + _tail(cluster.nginx_error_log(), 10))
                status = 1
                break
    except KeyboardInterrupt:
        pass
    except (ClusterError, ServerError, OSError) as error:
        say(f"could not start: {error}")
        status = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl+C must not cut it short
        say(f"stopping nginx, the {HOST_NAMES[args.host]} servers, the dashboard and PostgreSQL")
        cluster.stop()
    return status


if __name__ == "__main__":
    raise SystemExit(main())
