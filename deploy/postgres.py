"""A local PostgreSQL server in a folder of its own, on 127.0.0.1 only.

Used by ``./manage cluster`` (a log database for trying the cluster, kept in
``data/cluster/postgres`` between runs) and by the tests (a throw-away server in a temporary
folder, see ``tests/pg_server.py``)::

    server = LocalPostgres(Path("data/cluster/postgres"), port=8868)
    server.start()           # initdb on first use, pg_ctl start, createdb if missing
    server.url               # postgresql://guide@127.0.0.1:8868/guide
    server.stop()            # pg_ctl stop (the folder stays)

The server binaries come from Debian's ``postgresql`` package (the newest
``/usr/lib/postgresql/N/bin``) or ``PATH``. Authentication is ``trust`` for the one database
user, which is acceptable only because the server listens on 127.0.0.1 and its unix socket is
in the server's own folder: it is for trying the cluster and for tests. A real deployment uses
a managed or properly configured PostgreSQL (see docs/operators.md).

PostgreSQL refuses to run as root: when running as root the folder is given to the
``postgres`` OS user (which the Debian package creates) and every server command runs through
``runuser``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import time
from pathlib import Path

START_TIMEOUT = 30.0


class ServerError(RuntimeError):
    """The server could not be set up or started."""


def bin_dir() -> Path:
    """The folder holding initdb and pg_ctl: newest /usr/lib/postgresql/N/bin, else PATH."""
    candidates = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    candidates.sort(key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise ServerError("PostgreSQL server binaries (initdb, pg_ctl) not found: install the "
                      "'postgresql' Debian package")


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalPostgres:
    """A PostgreSQL cluster in ``root`` (data in ``root/data``, log in ``root/server.log``),
    listening on 127.0.0.1:``port`` (0: a free port, chosen at start) and on a unix socket in
    ``root``. ``fsync=False`` trades durability for speed (tests)."""

    def __init__(self, root: Path, port: int = 0, user: str = "guide", database: str = "guide",
                 fsync: bool = True, max_connections: int = 100) -> None:
        self.bin = bin_dir()
        self.root = Path(root).resolve()
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = port
        self.user = user
        self.database = database
        self.fsync = fsync
        self.max_connections = max_connections
        self.started = False
        self.as_user: list[str] = []
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise ServerError("running as root but there is no 'postgres' OS user to run "
                                  "the server") from None
            runuser = shutil.which("runuser")
            if runuser is None:
                raise ServerError("running as root but runuser is not available")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self.as_user = [runuser, "-u", "postgres", "--"]
            reach = subprocess.run([*self.as_user, "test", "-w", str(self.root)],
                                   capture_output=True, check=False)
            if reach.returncode:
                raise ServerError(f"the 'postgres' user cannot reach {self.root}: every folder "
                                  "above it must be searchable by others (chmod o+x), or put "
                                  "the server elsewhere")

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.database}"

    def _run(self, *args: str, timeout: float = 60.0) -> str:
        cmd = [*self.as_user, *args]
        proc = subprocess.run(cmd, cwd=self.root, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise ServerError(f"{' '.join(Path(a).name for a in args[:2])} failed "
                              f"({proc.returncode}):\n{proc.stdout}{proc.stderr}")
        return proc.stdout

    def running(self) -> bool:
        """A server of this folder is running (its pid file names a live postmaster)."""
        if not (self.data / "postmaster.pid").exists():
            return False
        proc = subprocess.run([*self.as_user, str(self.bin / "pg_ctl"), "-D", str(self.data),
                               "status"], cwd=self.root, capture_output=True, text=True)
        return proc.returncode == 0

    def start(self) -> None:
        """initdb (first time), start on 127.0.0.1, wait until ready, create the database."""
        if not (self.data / "PG_VERSION").exists():
            self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", self.user,
                      "--auth=trust", "-E", "UTF8", "--no-locale",
                      *([] if self.fsync else ["--no-sync"]))
        if self.running():  # left over from a run that was killed: start afresh
            self._pg_ctl_stop()
        fixed = bool(self.port)
        last_error: ServerError | None = None
        for _ in range(1 if fixed else 3):  # a free port may be taken before the server binds
            if not fixed:
                self.port = free_port()
            options = (f"-h 127.0.0.1 -p {self.port} -k {self.root} "
                       f"-c max_connections={self.max_connections}"
                       + ("" if self.fsync else " -c fsync=off"))
            try:
                self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                          "-w", "-t", str(int(START_TIMEOUT)), "-o", options, "start",
                          timeout=START_TIMEOUT + 10)
            except (ServerError, subprocess.TimeoutExpired) as exc:
                last_error = ServerError(f"{exc}\n--- server log ---\n{self.server_log()}")
                self._pg_ctl_stop()
                continue
            self.started = True
            break
        else:
            raise last_error or ServerError("pg_ctl start failed")
        self._wait_ready()
        exists = self._run(str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port),
                           "-U", self.user, "-d", "postgres", "-tAc",
                           f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'")
        if exists.strip() != "1":
            self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                      "-U", self.user, self.database)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            proc = subprocess.run([str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p",
                                   str(self.port), "-U", self.user, "-t", "2"],
                                  capture_output=True, text=True)
            if proc.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise ServerError(f"server not ready after {START_TIMEOUT:.0f} s: "
                                  f"{proc.stdout}{proc.stderr}")
            time.sleep(0.2)

    def server_log(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-5000:]
        except OSError:
            return "(no server log)"

    def _pg_ctl_stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run([*self.as_user, str(self.bin / "pg_ctl"), "-D", str(self.data),
                            "-m", "fast", "-w", "-t", "30", "stop"], cwd=self.root,
                           capture_output=True, timeout=60)

    def stop(self) -> None:
        """Stop the server (fast shutdown); the folder stays."""
        self._pg_ctl_stop()
        self.started = False
