"""Pacing of a client's requests: how many in flight, how fast, until when, how long between retries.

AdaptiveLimiter is the AIMD concurrency limit (starts at the candidate's level, halves on a 429,
recovers by one slot per window of successes); TokenBucket caps requests or tokens per minute;
Pacing bundles them with the run's overall deadline (DeadlineExceeded once it has passed);
backoff_delay is the jittered exponential backoff, honouring a Retry-After parsed by
_parse_retry_after (capped at RETRY_AFTER_CAP_S).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

BACKOFF_BASE_S = 0.05
BACKOFF_CAP_S = 5.0
RETRY_AFTER_CAP_S = 60.0  # never sleep longer than this on a server's say-so


class AdaptiveLimiter:
    """AIMD concurrency limit on requests in flight.

    Starts at `initial`, never exceeds `maximum` or drops below `minimum`. A throttle (429)
    halves the limit, at most once per round trip: a 429 for a request that started before
    the last cut is the same congestion signal and is ignored. Each success adds 1/limit,
    so the limit grows by one slot per window of successes.
    """

    def __init__(self, initial: int, maximum: int | None = None, minimum: int = 1) -> None:
        self.maximum = max(maximum or initial, 1)
        self.minimum = max(min(minimum, self.maximum), 1)
        self.limit = float(min(max(initial, self.minimum), self.maximum))
        self.in_flight = 0
        self.cuts = 0
        self._epoch = 0
        self._cond = asyncio.Condition()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[int]:
        """Hold one in-flight slot; yields the epoch to pass to throttled()."""
        async with self._cond:
            await self._cond.wait_for(lambda: self.in_flight < int(self.limit))
            self.in_flight += 1
            epoch = self._epoch
        try:
            yield epoch
        finally:
            async with self._cond:
                self.in_flight -= 1
                self._cond.notify_all()

    def throttled(self, epoch: int) -> None:
        if epoch == self._epoch:
            self.limit = max(self.minimum, self.limit / 2)
            self._epoch += 1
            self.cuts += 1

    def succeeded(self) -> None:
        before = int(self.limit)
        self.limit = min(self.maximum, self.limit + 1 / self.limit)
        if int(self.limit) > before:
            asyncio.get_running_loop().create_task(self._wake())

    async def _wake(self) -> None:
        async with self._cond:
            self._cond.notify_all()


class TokenBucket:
    """A per-minute budget (requests or tokens) refilled continuously; burst = one minute's worth."""

    def __init__(self, per_minute: float) -> None:
        if per_minute <= 0:
            raise ValueError("a per-minute limit must be positive")
        self.rate = per_minute / 60.0
        self.capacity = float(per_minute)
        self.level = self.capacity
        self.taken = 0.0  # total units spent (take + spend)
        self._t = time.monotonic()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self._t) * self.rate)
        self._t = now

    async def take(self, n: float) -> None:
        """Wait until n units are available (n is capped at the capacity), then spend them."""
        n = min(n, self.capacity)
        async with self._lock:  # FIFO: one waiter at a time
            self._refill()
            while self.level < n:
                await asyncio.sleep((n - self.level) / self.rate)
                self._refill()
            self.level -= n
            self.taken += n

    def spend(self, n: float) -> None:
        """Spend after the fact (e.g. completion tokens); the level may go negative."""
        self._refill()
        self.level -= n
        self.taken += n


class DeadlineExceeded(Exception):
    pass


@dataclass
class Pacing:
    """What a client must respect across all its requests."""

    limiter: AdaptiveLimiter
    requests: TokenBucket | None = None
    tokens: TokenBucket | None = None
    deadline: float | None = None  # time.monotonic() value

    def remaining(self) -> float:
        if self.deadline is None:
            return math.inf
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded()
        return left


def backoff_delay(attempt: int, retry_after: float | None = None) -> float:
    """Seconds to wait before retry number `attempt` (1-based): Retry-After if given, else full jitter."""
    if retry_after is not None:
        return min(max(retry_after, 0.0), RETRY_AFTER_CAP_S)
    return random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (attempt - 1)))


def _parse_retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to backoff
