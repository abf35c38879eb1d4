"""One token bucket, for every rate limit of the guide: the events a visit may log
(``widgets/log/session.py``) and the messages a visitor's kernel may receive
(``widgets/hosts/voila/websocket.py``). Only the standard library is imported here."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

__all__ = ["TokenBucket"]


class TokenBucket:
    """``burst`` at once, then ``rate`` per second (``math.inf``: no limit).

    ``monotonic`` is the clock (default ``time.monotonic``); the bucket starts full. Not
    thread-safe: callers hold their own lock.
    """

    __slots__ = ("rate", "burst", "_tokens", "_refilled", "_monotonic")

    def __init__(self, rate: float, burst: float,
                 monotonic: Callable[[], float] | None = None) -> None:
        if not rate > 0 or not burst >= 1:  # also refuses NaN
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = float(rate)
        self.burst = float(burst)
        self._monotonic = monotonic or time.monotonic
        self._tokens = self.burst
        self._refilled = self._monotonic()

    def take(self, count: int = 1) -> bool:
        """True, using ``count`` tokens, if ``count`` more are within the limit (a full bucket
        always takes them, even more than ``burst``, owing the rest); else False, using none."""
        if math.isinf(self.rate):
            return True
        now = self._monotonic()
        self._tokens = min(self.burst, self._tokens + max(0.0, now - self._refilled) * self.rate)
        self._refilled = now
        if self._tokens >= min(float(count), self.burst):
            self._tokens -= count
            return True
        return False
