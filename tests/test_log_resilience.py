"""The interaction log under abuse and accidents (widgets/log.py).

Every event a visitor's page sends is written to the store or counted in ``log_gaps`` (or, if
the store is still away when the session closes, reported in the server log), and the guide's
kernel never dies because of its log:

- a script clicking through the websocket is rate-limited, a fast human is not;
- events buffered during an outage are written when the store returns, even if the visitor
  does nothing more, and at the latest when the kernel exits;
- a store deleted or moved while pages are open is followed to the file at its path;
- a store overwritten while open is left untouched, and the sessions show their notice;
- an immutable data folder (``chattr +i``) does not kill the kernel with SIGBUS.

Scenarios that could crash a process, or need a process exit, run in a child process that
stands for a Voilà kernel (it sets up its logger with ``widgets.app.session_logger``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import multiprocessing
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from widgets.engine import Engine
from widgets.vocabulary import OUTCOMES
from widgets.log import (
    DEFAULT_BURST,
    DEFAULT_RATE,
    EventStore,
    SessionLogger,
    StoreCorrupt,
    StoreUnavailable,
    open_store,
)

ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- helpers


class Monotonic:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Switch:
    """A store factory whose target can be changed; ``None`` means unavailable."""

    def __init__(self, target: str | None) -> None:
        self.target = target
        self.calls = 0

    def __call__(self) -> EventStore:
        self.calls += 1
        if self.target is None:
            raise StoreUnavailable("switched off")
        return open_store(self.target, timeout=0.5)


def stored(path: Path) -> tuple[list[str], int]:
    """(the nodes of the stored events in order, the sum of log_gaps.dropped)."""
    with open_store(path) as store:
        nodes = [e.node for e in store.read_events()]
        gaps = store.query("SELECT coalesce(sum(dropped), 0) FROM log_gaps")[1][0][0]
    return nodes, gaps


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def wait_until(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


@pytest.fixture(autouse=True)
def default_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GUIDE_LOG_RATE", "GUIDE_LOG_BURST", "GUIDE_LOG", "GUIDE_LOG_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "events.sqlite3"


# A Voilà kernel, as far as the log is concerned: the guide's logger from widgets.app, driven
# by commands on stdin ("log N", "flush", "close", "exit"); it answers each with its state.
KERNEL = r"""
import json, sys
from widgets.app import session_logger

class View:
    def __init__(self):
        self.statuses = []
    def set_log_health(self, healthy):
        self.statuses.append(healthy)

view = View()
logger = session_logger(view)
n = int(sys.argv[1])
for line in sys.stdin:
    command, *args = line.split()
    if command == "log":
        for _ in range(int(args[0])):
            logger.log(f"n{n}", "next")
            n += 1
        logger.wait_idle(30)  # the writer thread has written them, or failed to
    elif command == "flush":
        logger.flush()
    elif command == "close":
        logger.close()
    elif command == "exit":
        break  # a normal exit, as when the server shuts the kernel down; close() is not called
    print(json.dumps({"healthy": logger.healthy, "pending": logger.pending, "dropped": logger.dropped,
                      "statuses": view.statuses, "session": logger.session}), flush=True)
"""


class Kernel:
    """A child process logging to ``url`` (its events are named n<first>, n<first+1>, ...)."""

    def __init__(self, url: str, stderr: Path, first: int = 0) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GUIDE_LOG")}
        env.update(GUIDE_LOG_URL=url, GUIDE_LOG_TIMEOUT="0.5", PYTHONDONTWRITEBYTECODE="1")
        self.stderr_path = stderr
        self._stderr = stderr.open("w")
        self.proc = subprocess.Popen([sys.executable, "-c", KERNEL, str(first)], cwd=ROOT, env=env, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr)

    def __call__(self, command: str) -> dict:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=60)
            raise AssertionError(f"the kernel died on {command!r}: {self.describe_exit()}\n{self.stderr()}")
        return json.loads(line)

    def exit(self) -> int:
        """Let the process end normally; its exit code (negative: killed by that signal)."""
        try:
            self.proc.communicate("exit\n", timeout=120)
        finally:
            self._stderr.close()
        return self.proc.returncode

    def describe_exit(self) -> str:
        rc = self.proc.returncode
        return f"killed by {signal.Signals(-rc).name}" if rc is not None and rc < 0 else f"exit code {rc}"

    def stderr(self) -> str:
        if not self._stderr.closed:
            self._stderr.flush()
        return self.stderr_path.read_text()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=60)
        if not self._stderr.closed:
            self._stderr.close()


@pytest.fixture
def kernels(tmp_path: Path) -> Iterator[Callable[..., Kernel]]:
    started: list[Kernel] = []

    def start(url: str, first: int = 0) -> Kernel:
        kernel = Kernel(url, tmp_path / f"kernel-{len(started)}.stderr", first)
        started.append(kernel)
        return kernel

    yield start
    for kernel in started:
        kernel.kill()


# --------------------------------------------------------------------------- rate limit


def test_clicks_sent_by_a_script_are_cut_at_the_limit_and_counted(db: Path) -> None:
    """1,000 clicks in 0.21 s (2,000 events) used to make 2,000 rows."""
    clock = Monotonic()
    statuses: list[bool] = []
    store = open_store(db)
    logger = SessionLogger(store, on_status=statuses.append, monotonic=clock)
    accepted = 0
    for i in range(1000):
        clock.advance(0.21 / 1000)
        accepted += logger.log("problem", "choose", option="return")
        accepted += logger.log("order", "enter")
    written = DEFAULT_BURST + int(0.21 * DEFAULT_RATE)
    assert accepted == written and logger.limited == 2000 - written
    assert logger.wait_idle(10)
    assert (logger.healthy, logger.pending, logger.dropped, statuses) == (True, 0, 0, [])  # no notice
    logger.close()
    nodes, gaps = stored(db)
    assert (len(nodes), gaps) == (written, 2000 - written)  # every event written or counted
    store.close()


def test_a_fast_human_never_reaches_the_limit(db: Path) -> None:
    """The longest path through the guide, double-clicking every button; then back to the start
    holding Enter on Back (key repeat, 30 per second), switching language back and forth and
    walking the whole path again, briskly, then once more double-clicking; then saying how it
    went."""
    clock = Monotonic()
    store = open_store(db)
    logger = SessionLogger(store, monotonic=clock)
    engine = Engine(on_transition=lambda i: logger.log(i.node, i.action, i.option, i.lang))
    path = max(engine.flow.paths, key=len)

    def walk(seconds_per_click: float, double_click: bool) -> None:
        for i, (node, option) in enumerate(path[:-1]):
            # a double-click: the second click lands on the next step 60 ms later
            clock.advance(0.06 if double_click and i % 2 else seconds_per_click)
            assert engine.node.id == node
            if option is None:
                engine.advance()
            else:
                engine.choose(option)

    def back_to_the_start() -> None:
        while engine.can_go_back:
            clock.advance(1 / 30)
            engine.back()

    engine.start()
    walk(0.25, double_click=True)
    back_to_the_start()
    for lang in ("en", "ko", "en", "ko"):
        clock.advance(0.3)
        engine.set_language(lang)
    walk(0.4, double_click=False)
    back_to_the_start()  # and once more, to log more than a burst on a short flow
    walk(0.25, double_click=True)
    clock.advance(0.5)
    engine.recall(dict((n, o) for n, o in path if n in engine.flow.role_nodes("subject")
                       + engine.flow.role_nodes("contact")))
    engine.record_followup(next(iter(OUTCOMES)))
    assert engine.finished
    assert logger.limited == 0 and logger.refused == 0
    assert logger.wait_idle(10)
    nodes, gaps = stored(db)
    assert len(nodes) > DEFAULT_BURST and gaps == 0  # more than a burst, and nothing cut
    logger.close()
    store.close()


def test_limits_come_from_the_environment(db: Path, monkeypatch: pytest.MonkeyPatch,
                                          caplog: pytest.LogCaptureFixture) -> None:
    clock = Monotonic()
    with open_store(db) as store:
        monkeypatch.setenv("GUIDE_LOG_RATE", "2")
        monkeypatch.setenv("GUIDE_LOG_BURST", "3")
        logger = SessionLogger(store, monotonic=clock)
        assert (logger.rate, logger.burst) == (2, 3)
        assert sum(logger.log("a", "next") for _ in range(5)) == 3
        clock.advance(1.0)  # two more tokens
        assert sum(logger.log("a", "next") for _ in range(5)) == 2
        assert SessionLogger(store, rate=7, burst=9).rate == 7  # arguments win

        monkeypatch.setenv("GUIDE_LOG_RATE", "off")
        unlimited = SessionLogger(store, monotonic=clock)
        assert all(unlimited.log("a", "next") for _ in range(500)) and unlimited.limited == 0

        monkeypatch.setenv("GUIDE_LOG_RATE", "fast")
        monkeypatch.setenv("GUIDE_LOG_BURST", "-4")
        with caplog.at_level(logging.WARNING, logger="widgets.log"):
            fallback = SessionLogger(store)
        assert (fallback.rate, fallback.burst) == (DEFAULT_RATE, DEFAULT_BURST)
        assert "GUIDE_LOG_RATE" in caplog.text and "GUIDE_LOG_BURST" in caplog.text
        with pytest.raises(ValueError):
            SessionLogger(store, rate=0)


def test_events_over_the_limit_are_counted_even_if_nothing_follows(db: Path) -> None:
    """The count is written in the background, without waiting for the next event or the close."""
    store = open_store(db)
    logger = SessionLogger(store, rate=1 / 3600, burst=2)
    results = [logger.log(f"n{i}", "next") for i in range(5)]
    assert results == [True, True, False, False, False]
    assert wait_until(lambda: stored(db) == (["n0", "n1"], 3), 10)
    logger.close()
    assert stored(db) == (["n0", "n1"], 3)  # counted once
    store.close()


# --------------------------------------------------------------------------- after an outage


def test_buffered_events_are_written_when_the_store_returns_without_another_click(tmp_path: Path) -> None:
    """The visitor stops clicking during the outage: the events used to wait for a click that never came."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the data folder should be")
    path = blocker / "events.sqlite3"
    statuses: list[bool] = []
    logger = SessionLogger(Switch(str(path)), on_status=statuses.append, retry_after=0.05)
    for node in ("a", "b", "c", "d"):
        assert logger.log(node, "next")
    assert logger.wait_idle(10)
    assert (logger.healthy, logger.pending, statuses) == (False, 4, [False])

    blocker.unlink()  # the store can be created now; nothing more is logged
    assert wait_until(lambda: logger.pending == 0, 10)
    assert (logger.healthy, statuses) == (True, [False, True])
    assert stored(path) == (["a", "b", "c", "d"], 0)
    logger.close()


def test_kernel_exit_writes_what_an_outage_left_buffered(tmp_path: Path, kernels: Callable[..., Kernel]) -> None:
    """A page closed right after an outage: its kernel exits, and the buffer used to go with it
    (0 of 4 events written, nothing in log_gaps)."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the data folder should be")
    path = blocker / "events.sqlite3"
    kernel = kernels(f"sqlite://{path}")
    state = kernel("log 4")
    assert (state["healthy"], state["pending"], state["statuses"]) == (False, 4, [False])
    blocker.unlink()  # the store is back, and the page is closed at once
    assert kernel.exit() == 0
    assert stored(path) == (["n0", "n1", "n2", "n3"], 0)


def test_kernel_exit_with_the_store_still_away_reports_the_loss(tmp_path: Path,
                                                                kernels: Callable[..., Kernel]) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the data folder should be")
    kernel = kernels(f"sqlite://{blocker / 'events.sqlite3'}")
    state = kernel("log 4")
    assert (state["healthy"], state["pending"]) == (False, 4)
    started = time.monotonic()
    assert kernel.exit() == 0
    assert time.monotonic() - started < 30  # the background retry does not keep it alive
    assert f"4 events of session {state['session']} are lost" in kernel.stderr()


def test_close_with_the_store_away_counts_the_loss_and_stops_retrying(caplog: pytest.LogCaptureFixture) -> None:
    factory = Switch(None)
    logger = SessionLogger(factory, buffer_limit=3, retry_after=0.05)
    for i in range(5):
        assert logger.log(f"n{i}", "next")
    assert logger.wait_idle(10)
    assert (logger.pending, logger.dropped) == (3, 2)  # two lost to the overflow so far
    with caplog.at_level(logging.ERROR, logger="widgets.log"):
        logger.close()
    assert (logger.pending, logger.dropped) == (0, 5)
    assert f"5 events of session {logger.session} are lost (3 never written, 2 dropped" in caplog.text
    calls = factory.calls
    time.sleep(0.5)
    assert factory.calls == calls  # no retries after close


def test_session_logger_closes_at_exit(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """widgets.app's logger is registered to close at exit, weakly (a dropped logger is freed)."""
    import gc

    from widgets import app, log

    class View:
        def set_log_health(self, healthy: bool) -> None:
            pass

    monkeypatch.setenv("GUIDE_LOG_URL", f"sqlite://{tmp_path / 'events.sqlite3'}")
    gc.collect()
    earlier = {id(x) for x in log._CLOSE_AT_EXIT}  # loggers of other tests still alive
    logger = app.session_logger(View())
    assert isinstance(logger, SessionLogger) and logger in log._CLOSE_AT_EXIT
    logger.close()
    assert logger not in log._CLOSE_AT_EXIT
    other = app.session_logger(View())
    assert other in log._CLOSE_AT_EXIT
    del other
    gc.collect()
    assert [x for x in log._CLOSE_AT_EXIT if id(x) not in earlier and x is not logger] == []


class GatedStore(EventStore):
    """A store that is down until ``up`` is set, then holds each write until ``gate`` opens."""

    dialect = "sqlite"
    placeholder = "?"

    def __init__(self) -> None:
        self.up = threading.Event()
        self.gate = threading.Event()
        self.writing = threading.Event()
        self.nodes: list[str] = []
        self.gaps = 0

    def write(self, events, gaps=()) -> None:  # type: ignore[no-untyped-def]
        if not self.up.is_set():
            raise StoreUnavailable("down")
        self.writing.set()
        assert self.gate.wait(10)
        self.nodes += [e.node for e in events]
        self.gaps += sum(g.dropped for g in gaps)

    def query(self, sql, params=()):  # type: ignore[no-untyped-def]
        raise StoreUnavailable("not here")

    def close(self) -> None:
        pass


def test_an_overflow_during_a_background_write_loses_nothing_uncounted() -> None:
    """Clicks arrive while the background retry is writing the buffer: the events being written
    are not dropped from under it, and every event ends up written or counted exactly once."""
    store = GatedStore()
    clock = Monotonic()  # frozen: log() itself never retries here, only the background does
    logger = SessionLogger(store, buffer_limit=3, retry_after=0.05, monotonic=clock)
    for i in range(3):
        assert logger.log(f"n{i}", "next")
    assert logger.wait_idle(10)
    assert (logger.healthy, logger.pending) == (False, 3)
    store.up.set()
    assert store.writing.wait(10)  # the background retry is writing n0..n2 now
    for i in range(3, 7):
        assert logger.log(f"n{i}", "next")  # over the limit: n3, n4, n5 are dropped, not n0..n2
    assert (logger.pending, logger.dropped) == (4, 3)
    store.gate.set()
    assert wait_until(lambda: logger.pending == 0 and store.gaps == 3, 10)
    assert store.nodes == ["n0", "n1", "n2", "n6"] and logger.healthy
    logger.close()


def test_a_status_callback_may_log(db: Path) -> None:
    """on_status runs inside a write; an event logged from it waits for the next write."""
    factory = Switch(None)
    seen: list[bool] = []

    def on_status(healthy: bool) -> None:
        seen.append(healthy)
        logger.log("status", "next")

    logger = SessionLogger(factory, on_status=on_status, retry_after=3600)
    done = threading.Event()

    def visit() -> None:
        logger.log("a", "next")
        logger.wait_idle(10)  # the writer failed: on_status(False) logged "status"
        factory.target = str(db)
        logger.flush()
        logger.flush()
        done.set()

    threading.Thread(target=visit, daemon=True).start()
    assert done.wait(10), "deadlock"
    assert seen == [False, True] and logger.pending == 0
    assert stored(db) == (["a", "status", "status"], 0)
    logger.close()


def _open_a_store(path: str) -> None:
    open_store(path, timeout=5).close()


@pytest.mark.slow
def test_forking_while_a_background_retry_uses_sqlite(tmp_path: Path) -> None:
    """A fork while another thread (a logger's background retry) is inside SQLite used to give a
    child that hung in its first SQLite call, on a copy of a mutex held by a thread it does not
    have."""
    stop = threading.Event()

    def busy() -> None:
        while not stop.is_set():
            open_store(tmp_path / "busy.sqlite3", timeout=5).close()

    thread = threading.Thread(target=busy, daemon=True)
    thread.start()
    ctx = multiprocessing.get_context("fork")
    try:
        for i in range(40):
            child = ctx.Process(target=_open_a_store, args=(str(tmp_path / f"child-{i}.sqlite3"),))
            child.start()
            child.join(20)
            if child.is_alive():
                child.kill()
                child.join()
                pytest.fail(f"child {i} hung")
            assert child.exitcode == 0
    finally:
        stop.set()
        thread.join(30)


# --------------------------------------------------------------------------- the file deleted or moved


@pytest.mark.parametrize("how", ["rename", "delete"])
@pytest.mark.parametrize("kind", ["factory", "store"])
def test_a_store_deleted_or_moved_while_in_use_is_followed_to_its_path(db: Path, how: str, kind: str) -> None:
    """Sessions used to keep writing into the unlinked or renamed file (11 clicks: none at the path)."""
    statuses: list[bool] = []
    store = open_store(db) if kind == "store" else None
    logger = SessionLogger(store or functools.partial(open_store, db), on_status=statuses.append)
    for i in range(3):
        logger.log(f"before{i}", "next")
    assert logger.wait_idle(10)
    if how == "rename":
        db.rename(db.with_name("archive.sqlite3"))  # the file only, its -wal and -shm stay
    else:
        db.unlink()
    for i in range(11):
        assert logger.log(f"after{i}", "next")
    assert logger.wait_idle(10)
    assert (logger.healthy, logger.pending, statuses) == (True, 0, [])  # nothing to notice
    assert stored(db) == ([f"after{i}" for i in range(11)], 0)
    if how == "rename":  # the moved file got everything committed to it before the move
        assert stored(db.with_name("archive.sqlite3")) == ([f"before{i}" for i in range(3)], 0)
    logger.close()
    if store is not None:
        store.close()


def test_two_kernels_and_a_store_moved_with_its_files(db: Path, tmp_path: Path,
                                                      kernels: Callable[..., Kernel]) -> None:
    """The store moved away with its -wal and -shm while a kernel has it open; a new kernel starts
    a new log at the path before the first one logs again: both end up there, and the moved
    store is complete."""
    first = kernels(f"sqlite://{db}")
    assert first("log 3")["healthy"]
    archive = tmp_path / "archive"
    archive.mkdir()
    for suffix in ("", "-wal", "-shm"):
        os.rename(f"{db}{suffix}", archive / f"events.sqlite3{suffix}")
    second = kernels(f"sqlite://{db}", first=100)
    assert second("log 2")["healthy"]
    state = first("log 11")
    assert (state["healthy"], state["pending"], state["statuses"]) == (True, 0, [])
    assert second("log 2")["healthy"]
    assert first.exit() == 0 and second.exit() == 0
    nodes, gaps = stored(db)
    assert sorted(nodes) == sorted([f"n{i}" for i in range(3, 14)] + [f"n{i}" for i in range(100, 104)])
    assert gaps == 0
    assert stored(archive / "events.sqlite3") == (["n0", "n1", "n2"], 0)
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    conn.close()


# --------------------------------------------------------------------------- the file overwritten


@pytest.mark.parametrize("kind", ["factory", "store"])
def test_random_bytes_over_an_open_store_stop_the_writes_and_stay_untouched(
        db: Path, kind: str, caplog: pytest.LogCaptureFixture) -> None:
    """The session used to keep writing into its WAL, with no notice, and closing it then copied
    the WAL into the overwritten file."""
    statuses: list[bool] = []
    store = open_store(db) if kind == "store" else None
    logger = SessionLogger(store or functools.partial(open_store, db), on_status=statuses.append)
    for i in range(3):
        logger.log(f"n{i}", "next")
    assert logger.wait_idle(10)
    db.write_bytes(random.Random(3).randbytes(16384))  # in place: the same inode
    before = sha256(db)

    for i in range(3, 7):
        assert logger.log(f"n{i}", "next")
    assert logger.wait_idle(10)
    assert (logger.healthy, logger.pending, statuses) == (False, 4, [False])  # the notice shows
    assert not logger.flush()
    with caplog.at_level(logging.ERROR, logger="widgets.log"):
        logger.close()
        if store is not None:
            store.close()
    assert f"4 events of session {logger.session} are lost" in caplog.text
    assert sha256(db) == before
    with pytest.raises(StoreCorrupt):
        open_store(db)
    assert sha256(db) == before


def test_after_the_overwritten_file_is_moved_away_the_log_continues(db: Path, tmp_path: Path) -> None:
    store = open_store(db)
    logger = SessionLogger(store, retry_after=3600)
    logger.log("n0", "next")
    assert logger.wait_idle(10)
    db.write_bytes(random.Random(4).randbytes(16384))
    before = sha256(db)
    logger.log("n1", "next")
    logger.log("n2", "next")
    assert logger.wait_idle(10)
    assert not logger.healthy and logger.pending == 2
    moved = tmp_path / "garbage.bin"
    db.rename(moved)
    assert logger.flush() and logger.healthy
    assert stored(db) == (["n1", "n2"], 0)
    assert sha256(moved) == before
    logger.close()
    store.close()
    assert sha256(moved) == before


# --------------------------------------------------------------------------- an immutable data folder


def _chattr(*args: str | Path) -> None:
    subprocess.run(["chattr", *map(str, args)], check=True, capture_output=True)


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    """A data folder whose files can be made immutable (skips where chattr +i does not work)."""
    folder = tmp_path / "data"
    folder.mkdir()
    probe = folder / "probe"
    probe.write_text("x")
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not installed")
    result = subprocess.run(["chattr", "+i", str(probe)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.skip(f"chattr +i does not work here: {result.stderr.strip()}")
    _chattr("-i", probe)
    probe.unlink()
    try:
        yield folder
    finally:
        subprocess.run(["chattr", "-R", "-i", str(folder)], capture_output=True, check=False)


@pytest.mark.parametrize("target", ["folder and files", "shm", "folder only"])
def test_an_immutable_data_folder_does_not_kill_the_kernel(data_dir: Path, target: str,
                                                           kernels: Callable[..., Kernel]) -> None:
    """``chattr -R +i`` on the data folder used to kill the kernel with SIGBUS (SQLite writes its
    -shm through a memory mapping). Now the sessions buffer, show their notice, and write
    everything once the folder is writable again. The folder alone (not its files) never stopped
    the writes."""
    db = data_dir / "events.sqlite3"
    kernel = kernels(f"sqlite://{db}")
    assert kernel("log 5")["healthy"]
    if target == "folder and files":
        _chattr("-R", "+i", data_dir)
    elif target == "shm":
        _chattr("+i", f"{db}-shm")
    else:
        _chattr("+i", data_dir)
    state = kernel("log 20")
    blocked = target != "folder only"
    assert (state["healthy"], state["pending"], state["statuses"]) == \
        ((False, 20, [False]) if blocked else (True, 0, []))
    _chattr("-R", "-i", data_dir)
    state = kernel("flush")
    assert (state["healthy"], state["pending"], state["dropped"]) == (True, 0, 0)
    assert state["statuses"] == ([False, True] if blocked else [])
    assert kernel.exit() == 0, kernel.stderr()
    assert stored(db) == ([f"n{i}" for i in range(25)], 0)


def test_kernel_exit_while_the_data_folder_is_immutable(data_dir: Path, kernels: Callable[..., Kernel]) -> None:
    """Closing the connection touches the -shm too: at exit the kernel leaves it alone, reports
    the events it could not write, and the store is intact afterwards."""
    db = data_dir / "events.sqlite3"
    kernel = kernels(f"sqlite://{db}")
    assert kernel("log 5")["healthy"]
    _chattr("-R", "+i", data_dir)
    state = kernel("log 3")
    assert (state["healthy"], state["pending"]) == (False, 3)
    assert kernel.exit() == 0, f"{kernel.describe_exit()}\n{kernel.stderr()}"
    assert f"3 events of session {state['session']} are lost" in kernel.stderr()
    _chattr("-R", "-i", data_dir)
    assert stored(db) == ([f"n{i}" for i in range(5)], 0)
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    conn.close()
