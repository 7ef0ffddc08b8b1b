"""Pacing of webhook requests: a token bucket and capped exponential backoff with full jitter.

Both take the clock and the sleep as arguments so tests drive them in fake time. The bucket
reserves tokens synchronously (its balance may go negative: the debt is the queue), so
concurrent callers need no lock and each waits exactly until its own token is due.
"""

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from email.utils import parsedate_to_datetime

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class TokenBucket:
    """At most ``rate_per_second`` acquisitions a second on average, ``burst`` at once."""

    def __init__(
        self,
        rate_per_second: float,
        burst: float | None = None,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if rate_per_second < 0:
            raise ValueError(f"rate_per_second must be >= 0, got {rate_per_second}")
        self.rate_per_second = rate_per_second
        # One second's worth by default, at least one request.
        self.burst = max(1.0, rate_per_second if burst is None else burst)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._updated_at = clock()

    @property
    def unlimited(self) -> bool:
        return self.rate_per_second == 0

    def reserve(self) -> float:
        """Take one token now; the seconds to wait before using it (0 when one was there)."""
        if self.unlimited:
            return 0.0
        now = self._clock()
        refill = (now - self._updated_at) * self.rate_per_second
        self._tokens = min(self.burst, self._tokens + refill) - 1
        self._updated_at = now
        return max(0.0, -self._tokens / self.rate_per_second)

    async def acquire(self) -> None:
        """Wait until this caller's token is due."""
        wait = self.reserve()
        if wait > 0:
            await self._sleep(wait)


def backoff_delay(
    attempt: int, base_seconds: float, cap_seconds: float, rng: random.Random
) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based): full jitter.

    Uniform on [0, min(cap, base * 2**(attempt-1))] ("Exponential Backoff And Jitter", AWS
    Architecture Blog, 2015): spreads the retries of many failed requests apart.
    """
    ceiling = min(cap_seconds, base_seconds * 2 ** (attempt - 1))
    return rng.uniform(0.0, ceiling)


def retry_after_seconds(value: str | None, now_epoch_seconds: float) -> float | None:
    """The delay a Retry-After header asks for (delta-seconds or an HTTP date); None if absent
    or unreadable (RFC 9110 section 10.2.3)."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # an obsolete date format without a zone: HTTP dates are GMT
        return None
    return max(0.0, when.timestamp() - now_epoch_seconds)
