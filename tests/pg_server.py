"""A throw-away PostgreSQL server for the tests (session-scoped fixture ``pg_url``).

``GUIDE_TEST_POSTGRES_URL`` set: that server is used as it is. Otherwise a
temporary cluster is created with the installed server binaries
(``/usr/lib/postgresql/*/bin`` or ``PATH``), listening only on 127.0.0.1 on a
free port with its unix socket in the temporary folder, and removed afterwards.
When running as root the cluster belongs to the ``postgres`` OS user (the
server refuses to run as root) and its commands run through ``runuser``.

A server that cannot be started fails the tests that need it; it never skips them.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

START_TIMEOUT = 30.0
_USER = "guide"
_DATABASE = "guide_test"


class ServerError(RuntimeError):
    """The temporary server could not be set up."""


def _bin_dir() -> Path:
    """The folder holding initdb and pg_ctl: newest /usr/lib/postgresql/N/bin, else PATH."""
    candidates = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    candidates.sort(key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise ServerError("PostgreSQL server binaries (initdb, pg_ctl) not found: install the "
                      "'postgresql' Debian package or set GUIDE_TEST_POSTGRES_URL")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TemporaryServer:
    """initdb + pg_ctl start in a fresh temporary folder; ``stop()`` removes everything."""

    def __init__(self) -> None:
        self.bin = _bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="guide-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = 0
        self.started = False
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise ServerError("running as root but there is no 'postgres' OS user to run the server") from None
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            runuser = shutil.which("runuser")
            if runuser is None:
                raise ServerError("running as root but runuser is not available")
            self.as_user = [runuser, "-u", "postgres", "--"]

    @property
    def url(self) -> str:
        return f"postgresql://{_USER}@127.0.0.1:{self.port}/{_DATABASE}"

    def _run(self, *args: str, timeout: float = 60.0) -> str:
        cmd = [*self.as_user, *args]
        proc = subprocess.run(cmd, cwd=self.root, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise ServerError(f"{' '.join(args[:2])} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
        return proc.stdout

    def start(self) -> None:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", _USER, "--auth=trust",
                  "-E", "UTF8", "--no-locale", "--no-sync")
        last_error: ServerError | None = None
        for _ in range(3):  # the free port may be taken between probing and binding
            self.port = _free_port()
            options = (f"-h 127.0.0.1 -p {self.port} -k {self.root} "
                       "-c fsync=off -c max_connections=100")
            try:
                self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                          "-w", "-t", str(int(START_TIMEOUT)), "-o", options, "start",
                          timeout=START_TIMEOUT + 10)
            except (ServerError, subprocess.TimeoutExpired) as exc:
                last_error = ServerError(str(exc))
                self._pg_ctl_stop()
                continue
            self.started = True
            break
        else:
            raise last_error or ServerError("pg_ctl start failed")
        self._wait_ready()
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", _USER, _DATABASE)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            proc = subprocess.run([str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port),
                                   "-U", _USER, "-t", "2"], capture_output=True, text=True)
            if proc.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise ServerError(f"server not ready after {START_TIMEOUT:.0f} s: {proc.stdout}{proc.stderr}")
            time.sleep(0.2)

    def server_log(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-5000:]
        except OSError:
            return "(no server log)"

    def _pg_ctl_stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run([*self.as_user, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast",
                            "-w", "-t", "30", "stop"], cwd=self.root, capture_output=True, timeout=60)

    def stop(self) -> None:
        try:
            self._pg_ctl_stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A postgresql:// URL of an empty database, for the whole test session."""
    configured = os.environ.get("GUIDE_TEST_POSTGRES_URL")
    if configured:
        yield configured
        return
    server: TemporaryServer | None = None
    try:
        server = TemporaryServer()
        server.start()
    except (ServerError, OSError, subprocess.SubprocessError) as exc:
        log = server.server_log() if server else ""
        if server:
            server.stop()
        pytest.fail(f"cannot start the PostgreSQL test server: {exc}\n--- server log ---\n{log}", pytrace=False)
    try:
        yield server.url
    finally:
        server.stop()
