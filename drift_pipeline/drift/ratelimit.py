"""Client-side pacing for Drift's leaky-bucket rate limit.

Drift limits each org with a leaky bucket (600 requests/minute by default, 60/minute for the
reports endpoint) and says where we stand in `X-RateLimit-*` headers. Backing off only after
a 429 wastes the time spent waiting, so the client paces itself instead:

- A token bucket refills at `utilization * limit / 60` per second, where `limit` is the last
  `X-RateLimit-Limit` seen. Slightly under the server's drain rate, the server's bucket
  stays near empty and `Remaining` near its maximum.
- When `Remaining` falls below a low watermark (about two seconds of traffic), somebody else is
  spending the same org's budget (another process, a replay): the refill rate is scaled down
  in proportion, so several clients sharing one org settle on a total below the limit instead
  of taking turns at 429s. `Remaining == 0` also pauses for one drain interval.
- A 429 pauses every request of this client for `Retry-After` (the bucket is per org, so all
  requests would hit it) and cuts the rate multiplicatively; healthy answers restore it a
  little at a time (AIMD).

Everything here is plain data and arithmetic except `RateLimiter.acquire`, which sleeps.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import re
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, Mapping

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


@dataclass(frozen=True)
class RateLimitInfo:
    """What one response said about the rate limit; every field is optional."""

    limit: float | None = None
    remaining: float | None = None
    reset: float | None = None  # epoch seconds
    retry_after: float | None = None  # seconds from now

    @property
    def empty(self) -> bool:
        return self.limit is None and self.remaining is None and self.reset is None and self.retry_after is None


def _first_number(value: str | None) -> float | None:
    # Tolerates "600", "600.0", " 600 " and the draft-standard "600, 600;w=60".
    if value is None:
        return None
    match = _NUMBER.search(value)
    return float(match.group()) if match else None


def _header(headers: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = headers.get(name)
        if value is not None and value.strip() != "":
            return value
    return None


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` value: delta-seconds or an HTTP date."""
    if value is None or not value.strip():
        return None
    number = _first_number(value) if not any(c.isalpha() for c in value) else None
    if number is not None:
        return max(0.0, number)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment is None:
        return None
    now = time.time() if now is None else now
    return max(0.0, moment.timestamp() - now)


def parse_rate_limit_headers(headers: Mapping[str, str], *, now: float | None = None) -> RateLimitInfo:
    """Read `X-RateLimit-Limit/Remaining/Reset` and `Retry-After`, accepting the common spellings.

    `headers` should be case-insensitive (httpx.Headers is). Unparseable values are ignored.
    `Reset` is taken as epoch seconds; a small number (under ten years of seconds) is read as
    "seconds from now", which some services send instead.
    """
    limit = _first_number(_header(headers, "x-ratelimit-limit", "ratelimit-limit", "x-rate-limit-limit"))
    remaining = _first_number(
        _header(headers, "x-ratelimit-remaining", "ratelimit-remaining", "x-rate-limit-remaining")
    )
    reset = _first_number(_header(headers, "x-ratelimit-reset", "ratelimit-reset", "x-rate-limit-reset"))
    now = time.time() if now is None else now
    if reset is not None and reset < 315_360_000:
        reset = now + reset
    retry_after = parse_retry_after(headers.get("retry-after"), now=now)
    if limit is not None and limit <= 0:
        limit = None
    if remaining is not None and remaining < 0:
        remaining = 0.0
    return RateLimitInfo(limit=limit, remaining=remaining, reset=reset, retry_after=retry_after)


def backoff_delay(attempt: int, *, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
    ceiling = min(cap, base * (2 ** max(0, attempt)))
    return (rng or random).uniform(0.0, ceiling)


class RateLimiter:
    """Paces requests to stay under a per-minute limit that it learns from response headers."""

    def __init__(
        self,
        limit_per_minute: float = 600.0,
        *,
        utilization: float = 0.97,
        burst_seconds: float = 1.0,
        low_watermark: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if limit_per_minute <= 0:
            raise ValueError("limit_per_minute must be positive")
        if not 0 < utilization <= 1:
            raise ValueError("utilization must be in (0, 1]")
        self.limit_per_minute = float(limit_per_minute)
        self.utilization = utilization
        self.burst_seconds = burst_seconds
        self._fixed_watermark = low_watermark
        self._clock = clock
        self._sleep = sleep
        self._multiplier = 1.0
        self._remaining: float | None = None
        self._remaining_seen_at = 0.0
        self._blocked_until = 0.0
        # One request before the first answer: another process may have emptied the org's bucket,
        # and the first answer's headers tell us.
        self._tokens = 1.0
        self._updated = clock()
        self._lock = asyncio.Lock()
        self.waited_seconds = 0.0

    # -- the rate ----------------------------------------------------------------------------
    @property
    def drain_per_second(self) -> float:
        return self.limit_per_minute / 60.0

    @property
    def low_watermark(self) -> float:
        if self._fixed_watermark is not None:
            return self._fixed_watermark
        return max(4.0, 2.0 * self.drain_per_second)

    def _estimated_remaining(self, now: float) -> float | None:
        # The server keeps draining after it told us `Remaining`, so an old figure understates.
        if self._remaining is None:
            return None
        return self._remaining + max(0.0, now - self._remaining_seen_at) * self.drain_per_second

    def rate(self, now: float | None = None) -> float:
        """Requests per second allowed right now."""
        now = self._clock() if now is None else now
        rate = self.drain_per_second * self.utilization * self._multiplier
        remaining = self._estimated_remaining(now)
        if remaining is not None and remaining < self.low_watermark:
            rate *= max(0.1, remaining / self.low_watermark)
        return rate

    def _capacity(self) -> float:
        return max(1.0, self.drain_per_second * self.utilization * self.burst_seconds)

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(self._capacity(), self._tokens + elapsed * self.rate(now))
        self._updated = now

    # -- waiting -----------------------------------------------------------------------------
    async def acquire(self) -> float:
        """Wait for a slot; returns the seconds waited. Waiters are served first come, first served."""
        started = self._clock()
        async with self._lock:
            while True:
                now = self._clock()
                blocked = self._blocked_until - now
                if blocked > 0:
                    await self._sleep(min(blocked, 1.0))
                    continue
                self._refill(now)
                if self._tokens >= 1.0 - 1e-6:
                    self._tokens -= 1.0
                    break
                wait = (1.0 - self._tokens) / max(self.rate(now), 1e-6)
                # Re-evaluate at least every 250 ms (a fresh header may change the rate); never
                # spin on sleeps shorter than the clock can tell apart.
                await self._sleep(min(max(wait, 0.001), 0.25))
        waited = self._clock() - started
        self.waited_seconds += waited
        return waited

    # -- learning ----------------------------------------------------------------------------
    def observe(self, info: RateLimitInfo, status: int) -> None:
        """Adapt to one response's headers."""
        now = self._clock()
        self._refill(now)  # settle tokens at the old rate before it changes
        if info.limit is not None and info.limit != self.limit_per_minute:
            self.limit_per_minute = info.limit
            self._tokens = min(self._tokens, self._capacity())
        if info.remaining is not None:
            self._remaining = info.remaining
            self._remaining_seen_at = now
            if info.remaining < 1 and status != 429:
                # The next request would overflow: let one slot drain first.
                self.block_for(1.0 / self.drain_per_second)
        if status == 429:
            return
        if self._remaining is None or self._remaining >= self.low_watermark:
            self._multiplier = min(1.0, self._multiplier + 0.02)

    def block_for(self, seconds: float) -> None:
        """Hold every request for `seconds` (a `Retry-After`)."""
        until = self._clock() + max(0.0, seconds)
        if until > self._blocked_until:
            self._blocked_until = until

    def on_rate_limited(self, retry_after: float | None) -> None:
        """A 429: slow down multiplicatively and pause everyone for `retry_after` if given."""
        self._multiplier = max(0.2, self._multiplier * 0.7)
        self._tokens = min(self._tokens, 0.0)
        if retry_after is not None:
            self.block_for(retry_after)

    def __repr__(self) -> str:
        return (
            f"RateLimiter(limit_per_minute={self.limit_per_minute:g}, rate={self.rate():.2f}/s, "
            f"remaining={self._remaining!r})"
        )
