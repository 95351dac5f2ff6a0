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

- Several processes of one org (the sensor's webhook re-fetches, a scheduled sync, a replay)
  draw from one `SharedBudget`: a token bucket in a small file under
  `$DRIFT_PIPELINE_HOME/state/`, keyed by org and updated under an exclusive `flock`, so their
  sum stays under the limit (no 429s) and each gets its turn (neither starves: every waiter
  asks again within a quarter second, whoever asks first after a refill gets the token). A
  429's `Retry-After` is written there too, so every process pauses, not only the one that
  was told.

Everything here is plain data and arithmetic except `RateLimiter.acquire`, which sleeps, and
`SharedBudget`, which reads and writes its file.
"""

from __future__ import annotations

import asyncio
import email.utils
import fcntl
import os
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path
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


class SharedBudget:
    """A token bucket several processes share through one file: `tokens updated blocked_until`
    (wall-clock seconds, the clock every process agrees on), read and rewritten under an
    exclusive `flock` held for a few microseconds. Refilled at the rate the caller passes (all
    processes of an org learn the same limit from the same headers); at most `burst_seconds`
    of it is saved up."""

    def __init__(self, path: Path | str, *, burst_seconds: float = 1.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.burst_seconds = burst_seconds
        self._clock = clock
        self._fd: int | None = None

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        return self._fd

    def _update(self, change: Callable[[float, float, float, float], tuple[float, float, float, float]]) -> float:
        """Apply `change(now, tokens, updated, blocked_until)` -> (result, tokens, updated,
        blocked_until) to the file under the lock; returns the result."""
        fd = self._open()
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            now = self._clock()
            raw = os.pread(fd, 128, 0).split()
            try:
                tokens, updated, blocked = (float(x) for x in raw[:3])
            except ValueError:  # a new (or damaged) file: one request's worth to start
                tokens, updated, blocked = 1.0, now, 0.0
            result, tokens, updated, blocked = change(now, tokens, updated, blocked)
            text = f"{tokens:.6f} {updated:.6f} {blocked:.6f}\n".encode("ascii")
            os.pwrite(fd, text.ljust(64), 0)
            return result
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def take(self, rate_per_second: float) -> float:
        """Take one request's token: 0.0 when taken, else the seconds until one may be."""
        capacity = max(1.0, rate_per_second * self.burst_seconds)

        def change(now, tokens, updated, blocked):
            if blocked > now:
                return blocked - now, tokens, updated, blocked
            # A clock that stepped back refills nothing rather than going negative.
            tokens = min(capacity, tokens + max(0.0, now - updated) * rate_per_second)
            if tokens >= 1.0 - 1e-6:
                return 0.0, tokens - 1.0, now, blocked
            return (1.0 - tokens) / max(rate_per_second, 1e-6), tokens, now, blocked

        return self._update(change)

    def block_for(self, seconds: float) -> None:
        """Hold every process's requests for `seconds` (a `Retry-After`)."""
        def change(now, tokens, updated, blocked):
            return 0.0, min(tokens, 0.0), updated, max(blocked, now + max(0.0, seconds))

        self._update(change)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class RateLimiter:
    """Paces requests to stay under a per-minute limit that it learns from response headers.

    With `shared` set, every request also takes a token from that `SharedBudget`, so the
    processes sharing it stay under the limit together."""

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
        self.shared: SharedBudget | None = None

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
            while self.shared is not None:
                wait = self.shared.take(self.drain_per_second * self.utilization)
                if wait <= 0:
                    break
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
            if self.shared is not None:
                self.shared.block_for(retry_after)

    def __repr__(self) -> str:
        return (
            f"RateLimiter(limit_per_minute={self.limit_per_minute:g}, rate={self.rate():.2f}/s, "
            f"remaining={self._remaining!r})"
        )
