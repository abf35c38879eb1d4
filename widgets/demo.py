"""Seeded demo data for the interaction log: plausible visits walking the real flow.

Each simulated visit drives a real :class:`~widgets.engine.Engine` over the packaged flow (or
another), so every event is one the guide itself could have logged: options picked with the
weights flow.yaml gives them, some Back, Start over and language switches, drop-offs at every
step (flow.yaml's ``drop_off``), a mix of Korean and English, and now and then a visit that
comes back with the return link after contacting Amazon and says how it went (``recall`` and
``followup`` events; an older flow that asks on its last screen gets ``outcome`` answers there). Time spent on a screen grows with the
length of its text (reading) and with the number of options (deciding).

Visits start at random moments over a date range (busier in the Korean evening); the events of
all visits are merged into one stream in time order, as a live log would hold them, and written
through the store's batch ``write`` in transactions of thousands of events::

    python -m widgets.demo 20000                       # into the configured store (open_store())
    python -m widgets.demo 1000000 --url /tmp/demo.sqlite3 --seed 7 --days 60

Everything is derived from the seed (and the date range): the same arguments give the same log.
"""

from __future__ import annotations

import argparse
import datetime as dt
import heapq
import math
import random
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from . import followup
from .engine import Engine
from .eventlog import EventStamper
from .flow import Flow, default_flow
from .log import Event, EventStore, open_store
from .vocabulary import OUTCOMES

__all__ = ["OUTCOMES", "DemoConfig", "generate", "fill", "main"]

#: Chance of leaving the guide for good while on a node whose flow entry gives no ``drop_off``.
#: (The options' relative weights are their ``weight`` in flow.yaml, 1 by default; a node's own
#: chance of leaving is its ``drop_off``.)
DEFAULT_DROP_OFF = 0.035

#: How an outcome depends on the way Amazon was contacted, i.e. the answer at the last decision
#: with the role ``contact`` on the visitor's path (relative weights of OUTCOMES; keys are option
#: ids of those decisions, "" for none).
OUTCOME_WEIGHTS: dict[str, tuple[float, ...]] = {
    "chat": (55, 25, 12, 8),
    "phone": (50, 22, 14, 14),
    "email": (35, 28, 27, 10),
    "call": (48, 22, 15, 15),
    "callback": (40, 25, 25, 10),
    "": (30, 25, 35, 10),
}

# Reading speed (characters per second), and how busy each hour of the day is (UTC; Korea is
# UTC+9: daytime 00-09 UTC, the evening peak 10-14 UTC, quiet nights 15-22 UTC).
_READ_CPS = {"ko": 9.0, "en": 16.0}
_HOUR_WEIGHTS = (8, 9, 10, 10, 10, 10, 9, 9, 9, 10, 12, 13, 13, 12, 10, 7, 4, 2, 1, 1, 1, 2, 4, 6)
_MS = dt.timedelta(milliseconds=1)


@dataclass(frozen=True)
class DemoConfig:
    """Knobs of the simulation (probabilities per step of a visit)."""

    ko_share: float = 0.68
    switch_language: float = 0.025
    back: float = 0.05
    restart: float = 0.008
    outcome: float = 0.35
    #: share of visits that come back with the return link after contacting Amazon and say how
    #: it went (the flow gives the link on a step with the role ``followup``)
    comes_back: float = 0.12
    again_after_end: float = 0.06
    max_steps: int = 80


def _weighted(rng: random.Random, items: Sequence[str], weights: Sequence[float]) -> str:
    return rng.choices(items, weights=weights)[0]


class _Visit:
    """One simulated visit: collects the events the engine makes, on the visit's simulated clock."""

    def __init__(self, flow: Flow, rng: random.Random, config: DemoConfig, session: str,
                 start: dt.datetime) -> None:
        self.flow, self.rng, self.config = flow, rng, config
        self.session = session
        self.now = start
        self.previous: dt.datetime | None = None
        self.events: list[Event] = []
        # A visitor's own pace: some read faster than others.
        self.pace = rng.lognormvariate(0.0, 0.35)

    def record(self, event: Event) -> None:
        """An event the engine made (at ``now``): its time since the previous one is counted from
        where _act put that one."""
        elapsed = None
        if self.previous is not None:
            elapsed = int((event.ts - self.previous) / _MS)
        self.events.append(event if event.elapsed_ms == elapsed else event._replace(elapsed_ms=elapsed))
        self.previous = event.ts

    def wait_ms(self, ms: float) -> None:
        self.now += dt.timedelta(milliseconds=max(0, int(ms)))

    def screen_ms(self, engine: Engine) -> float:
        """Time spent on the current screen before acting on it."""
        node = engine.node
        chars = len(node.title(engine.lang)) + len(node.body(engine.lang))
        read = chars / _READ_CPS[engine.lang] * 1000
        decide = 1500 * math.log2(1 + len(node.options)) if node.options else 600
        return (read * self.rng.uniform(0.15, 0.9) + decide) * self.pace * self.rng.lognormvariate(0, 0.45)

    def run(self) -> list[Event]:
        rng, config = self.rng, self.config
        lang = "ko" if rng.random() < config.ko_share else "en"
        stamp = EventStamper(self.session, clock=lambda: self.now, on_event=self.record)
        engine = Engine(self.flow, lang=lang, on_transition=stamp)
        engine.start()
        if self.flow.role_nodes("followup") and rng.random() < config.comes_back:
            self._come_back(engine)
        for _ in range(config.max_steps):
            node = engine.node
            # Each action below happens after some time on the screen; the enter (and finish)
            # events that follow an action are logged a few milliseconds later.
            if rng.random() < config.switch_language:
                self.wait_ms(self.screen_ms(engine) * 0.3)
                engine.set_language("en" if engine.lang == "ko" else "ko")
            if node.kind == "end":
                self.wait_ms(self.screen_ms(engine))
                self._maybe_outcome(engine)
                if rng.random() >= config.again_after_end:
                    break
                self.wait_ms(rng.uniform(500, 4000))
                self._act(engine.restart)
                continue
            if rng.random() < (node.drop_off if node.drop_off is not None
                               else DEFAULT_DROP_OFF):
                break
            self.wait_ms(self.screen_ms(engine))
            self._maybe_outcome(engine)
            roll = rng.random()
            if engine.can_go_back and roll < config.back:
                self._act(engine.back)
            elif engine.can_go_back and roll < config.back + config.restart:
                self._act(engine.restart)
            elif node.kind == "choice":
                option = _weighted(rng, node.option_ids, [o.weight for o in node.options])
                self._act(engine.choose, option)
            else:
                self._act(engine.advance)
        return self.events

    def _maybe_outcome(self, engine: Engine) -> None:
        """At a node with the role ``outcome``, now and then answer how it went, more or less
        happily depending on the way Amazon was contacted."""
        node = engine.node
        if "outcome" not in node.roles or self.rng.random() >= self.config.outcome:
            return
        contact = [engine.choices[n] for n in self.flow.role_nodes("contact")
                   if n in engine.choices]
        weights = OUTCOME_WEIGHTS.get(contact[-1] if contact else "", OUTCOME_WEIGHTS[""])
        engine.record_outcome(_weighted(self.rng, OUTCOMES, weights))

    def _come_back(self, engine: Engine) -> None:
        """A visit that came back with the return link of an earlier one (a path's answers at
        the decisions the link carries) and says how it went, more or less happily depending on
        the way Amazon was contacted."""
        path = self.rng.choice(self.flow.paths)
        answers = followup.decode(self.flow, followup.encode(
            self.flow, {node: option for node, option in path if option is not None}))
        if not answers:
            return
        self._act(engine.recall, answers)
        self.wait_ms(self.screen_ms(engine))
        contact = [answers[n] for n in self.flow.role_nodes("contact") if n in answers]
        weights = OUTCOME_WEIGHTS.get(contact[-1] if contact else "", OUTCOME_WEIGHTS[""])
        self._act(engine.record_followup, _weighted(self.rng, OUTCOMES, weights))

    def _act(self, action, *args) -> None:
        """Perform an engine action; the events it triggers get close, increasing timestamps."""
        start = len(self.events)
        action(*args)
        # The first event (the action) is logged now; the follow-ups (enter, finish) a moment later.
        for i in range(start + 1, len(self.events)):
            delay = dt.timedelta(milliseconds=self.rng.randint(1, 40))
            event = self.events[i]
            ts = self.events[i - 1].ts + delay
            self.events[i] = event._replace(ts=ts, elapsed_ms=int((ts - self.events[i - 1].ts) / _MS))
        if len(self.events) > start:
            self.now = self.previous = self.events[-1].ts


def _session_starts(rng: random.Random, start: dt.datetime, days: int,
                    per_day: float) -> Iterator[dt.datetime]:
    """An endless, increasing sequence of visit start times from ``start``: about ``per_day``
    a day on average over the first ``days`` days (slowly growing over the range), busier in
    the Korean evening; it goes on past the range at the same pace if more are needed."""
    hours = list(range(24))
    day = 0
    while True:
        growth = 0.7 + 0.6 * (min(day, days - 1) / max(1, days - 1))
        mean = per_day * growth
        n = max(1, round(rng.gauss(mean, math.sqrt(mean))))
        yield from sorted(
            start + dt.timedelta(days=day, hours=rng.choices(hours, _HOUR_WEIGHTS)[0],
                                 seconds=rng.uniform(0, 3600))
            for _ in range(n))
        day += 1


def _events_per_visit(flow: Flow, config: DemoConfig, seed: int, visits: int = 500) -> float:
    """The mean number of events of a visit, from a small pilot run."""
    rng = random.Random(f"pilot-{seed}")
    epoch = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
    total = sum(len(_Visit(flow, rng, config, "pilot", epoch).run()) for _ in range(visits))
    return total / visits


def generate(n_events: int, seed: int = 0, start: dt.date | dt.datetime | None = None,
             days: int = 30, flow: Flow | None = None,
             config: DemoConfig | None = None) -> Iterator[Event]:
    """Yield exactly ``n_events`` demo events in timestamp order.

    Visits start over ``days`` days from ``start`` (a UTC date; default 2025-01-01), as many a
    day as needed for ``n_events`` (estimated from a pilot run, so the last visits may end a
    little before or after the range). The visits still going on when ``n_events`` is reached
    are cut short, like visitors leaving.
    """
    flow = flow if flow is not None else default_flow()
    config = config or DemoConfig()
    if days < 1:
        raise ValueError("days must be at least 1")
    if start is None:
        start = dt.date(2025, 1, 1)
    if not isinstance(start, dt.datetime):
        start = dt.datetime(start.year, start.month, start.day)
    if start.tzinfo is None:
        start = start.replace(tzinfo=dt.timezone.utc)
    start = start.astimezone(dt.timezone.utc)
    if n_events <= 0:
        return
    per_day = max(1.0, n_events / days / _events_per_visit(flow, config, seed))
    rng = random.Random(seed)

    # Events of overlapping visits are merged through a heap keyed by (ts, sequence); an event is
    # released once no visit starting later can precede it.
    pending: list[tuple[dt.datetime, int, Event]] = []
    seq = produced = generated = 0
    for visit_start in _session_starts(rng, start, days, per_day):
        while pending and pending[0][0] <= visit_start:
            yield heapq.heappop(pending)[2]
            produced += 1
            if produced >= n_events:
                return
        if generated >= n_events:
            break
        session = f"{rng.getrandbits(128):032x}"
        for event in _Visit(flow, rng, config, session, visit_start).run():
            heapq.heappush(pending, (event.ts, seq, event))
            seq += 1
            generated += 1
    while pending and produced < n_events:
        yield heapq.heappop(pending)[2]
        produced += 1


def fill(store: EventStore, n_events: int, seed: int = 0, start: dt.date | None = None,
         days: int = 30, batch: int = 20_000, progress: bool = False) -> int:
    """Write ``n_events`` demo events into ``store`` in transactions of ``batch`` events."""
    buffer: list[Event] = []
    written = 0
    began = time.monotonic()
    for event in generate(n_events, seed=seed, start=start, days=days):
        buffer.append(event)
        if len(buffer) >= batch:
            store.write(buffer)
            written += len(buffer)
            buffer = []
            if progress:
                rate = written / max(1e-9, time.monotonic() - began)
                print(f"\r{written:,} events ({rate:,.0f}/s)", end="", file=sys.stderr, flush=True)
    if buffer:
        store.write(buffer)
        written += len(buffer)
    if progress:
        print(f"\r{written:,} events in {time.monotonic() - began:.1f} s", file=sys.stderr)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m widgets.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("n", nargs="?", type=int, default=20_000, help="number of events (default 20000)")
    parser.add_argument("--url", help="log store URL or SQLite path (default: the configured store)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--days", type=int, default=30, help="length of the date range in days (default 30)")
    parser.add_argument("--start", type=dt.date.fromisoformat,
                        help="first day, YYYY-MM-DD (default: DAYS days before today, UTC)")
    parser.add_argument("--batch", type=int, default=20_000, help="events per transaction (default 20000)")
    args = parser.parse_args(argv)
    if args.n < 0 or args.days < 1 or args.batch < 1:
        parser.error("N must be >= 0, --days and --batch >= 1")
    start = args.start or (dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=args.days))
    with open_store(args.url) as store:
        written = fill(store, args.n, seed=args.seed, start=start, days=args.days,
                       batch=args.batch, progress=sys.stderr.isatty())
        print(f"wrote {written:,} demo events ({start} to {start + dt.timedelta(days=args.days)}) "
              f"into {store!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
