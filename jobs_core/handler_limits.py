"""Per-handler limits, enforced through storage: ``max_concurrency`` (attempts running at once
across every slot, process and instance) and ``max_per_second`` (starts).

Where the truth lives: one empty block blob per limited handler, ``limits/<handler>``, whose
metadata holds the permits in use (``permits``: ``token:lease-end`` pairs, one per running
attempt) and a token bucket for the start rate (``tokens`` refilled at ``max_per_second`` up to
``max(1, max_per_second)``, as of ``at``). It changes only by a conditional write on its ETag
(the claim blob primitives: ``read_claim`` is one HEAD, ``write_claim`` one PUT with
``If-Match``), so two executors never hand out the same permit.

A permit is taken *before* an attempt's ``start`` is written, and carries that execution's
lease end (timeout + compensation + grace). It is given back once the outcome is recorded (or
the start did not apply). A permit whose lease has ended is free again whoever held it: a
crashed process never holds one longer than its attempt's lease, and an attempt past its lease
is abandoned (and re-run only with a new permit) anyway.

A job that gets no permit is not started: it stays ``scheduled`` (``BatchResult.throttled``)
and the next cycle tries again. Cost: per process and handler, the attempts asking at once
share one read and one write (a lock gathers them, as group commit does for appends); giving
permits back costs the same. A lone job of a limited handler: 4 requests more; a batch of 50:
still 4 (plus 2 per conflict with another process).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from .errors import ConcurrencyConflictError, JobsError
from .settings import SettingsError
from .store import JobStore

log = logging.getLogger(__name__)
PREFIX = "limits/"
MAX_CONCURRENCY = 100  # the permits fit in 8 KiB of metadata (~28 bytes each)
MAX_PER_SECOND = 1000.0
MAX_TRIES = 8  # conditional writes per round before the round gives up (nothing granted)


@dataclass(frozen=True)
class HandlerLimit:
    max_concurrency: int | None = None
    max_per_second: float | None = None

    def __post_init__(self) -> None:
        c, r = self.max_concurrency, self.max_per_second
        if c is not None and (isinstance(c, bool) or not isinstance(c, int)
                              or not 1 <= c <= MAX_CONCURRENCY):
            raise SettingsError(f"max_concurrency must be an integer in 1..{MAX_CONCURRENCY}, "
                                f"got {c!r}")
        if r is not None and (isinstance(r, bool) or not isinstance(r, int | float)
                              or not 0.01 <= r <= MAX_PER_SECOND):
            raise SettingsError(f"max_per_second must be in 0.01..{MAX_PER_SECOND:g}, "
                                f"got {r!r}")

    @property
    def limited(self) -> bool:
        return self.max_concurrency is not None or self.max_per_second is not None

    def to_dict(self) -> dict[str, float | int | None]:
        return {"max_concurrency": self.max_concurrency, "max_per_second": self.max_per_second}


def parse_limit_overrides(text: str) -> dict[str, HandlerLimit]:
    """``JOBS_HANDLER_LIMITS``: a JSON object ``{"handler": {"max_concurrency": n,
    "max_per_second": r}}``; a handler named here uses these limits instead of its
    registration's (``null`` values: no limit)."""
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise SettingsError(f"JOBS_HANDLER_LIMITS must be a JSON object: {exc}") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise SettingsError('JOBS_HANDLER_LIMITS must be like {"send_email": '
                            '{"max_concurrency": 5, "max_per_second": 2}}')
    out = {}
    for name, value in data.items():
        unknown = set(value) - {"max_concurrency", "max_per_second"}
        if unknown:
            raise SettingsError(f"JOBS_HANDLER_LIMITS[{name!r}]: unknown keys {sorted(unknown)}")
        try:
            out[name] = HandlerLimit(value.get("max_concurrency"), value.get("max_per_second"))
        except SettingsError as exc:
            raise SettingsError(f"JOBS_HANDLER_LIMITS[{name!r}]: {exc}") from None
    return out


@dataclass
class _Pending:
    asks: list[tuple[str, float, asyncio.Future[bool]]] = field(default_factory=list)
    gives: set[str] = field(default_factory=set)


@dataclass
class LimitState:
    """What ``limits/<handler>`` says: permits (token -> lease end, unix seconds) and the
    token bucket."""

    permits: dict[str, float]
    tokens: float
    at: float

    @classmethod
    def of(cls, meta: Mapping[str, str], now: float, limit: HandlerLimit) -> LimitState:
        permits = {}
        for pair in filter(None, meta.get("permits", "").split(",")):
            token, _, end = pair.partition(":")
            try:
                if float(end) > now:
                    permits[token] = float(end)
            except ValueError:
                continue
        cap = _capacity(limit)
        try:
            tokens, at = float(meta.get("tokens", cap)), float(meta.get("at", now))
        except ValueError:
            tokens, at = cap, now
        rate = limit.max_per_second or 0.0
        return cls(permits, min(cap, tokens + max(0.0, now - at) * rate), now)

    def free(self, limit: HandlerLimit) -> int:
        room = math.inf if limit.max_concurrency is None else \
            limit.max_concurrency - len(self.permits)
        rate = math.inf if limit.max_per_second is None else math.floor(self.tokens + 1e-9)
        return int(max(0, min(room, rate, 10**6)))

    def metadata(self) -> dict[str, str]:
        return {"permits": ",".join(f"{t}:{end:.3f}" for t, end in self.permits.items()),
                "tokens": f"{self.tokens:.3f}", "at": f"{self.at:.3f}"}


def _capacity(limit: HandlerLimit) -> float:
    return max(1.0, limit.max_per_second) if limit.max_per_second else 0.0


class HandlerPermits:
    """Per process: takes and gives back permits of limited handlers (see the module doc)."""

    def __init__(self, store: JobStore, limits: Mapping[str, HandlerLimit],
                 clock: Callable[[], datetime]) -> None:
        self._store = store
        self.limits = {name: limit for name, limit in limits.items() if limit.limited}
        self._clock = clock
        self._pending: dict[str, _Pending] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.requests = 0  # storage requests spent on permits (figures for the bench)
        self.throttled = 0  # attempts refused a permit

    def limited(self, handler: str) -> bool:
        return handler in self.limits

    async def acquire(self, handler: str, token: str, lease_end: datetime) -> bool:
        """Whether the attempt ``token`` may start now (False: stay scheduled, try later)."""
        if handler not in self.limits:
            return True
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(handler, _Pending()).asks.append(
            (token, lease_end.timestamp(), future))
        await self._round(handler, future)
        granted = future.result()
        if not granted:
            self.throttled += 1
        return granted

    async def release(self, handler: str, token: str) -> None:
        """Give the permit back (a failure to write leaves it to expire with its lease)."""
        if handler not in self.limits:
            return
        self._pending.setdefault(handler, _Pending()).gives.add(token)
        await self._round(handler, None)

    async def _round(self, handler: str, future: asyncio.Future[bool] | None) -> None:
        lock = self._locks.setdefault(handler, asyncio.Lock())
        async with lock:
            if future is not None and future.done():
                return  # an earlier round served this request with others
            pending = self._pending.pop(handler, _Pending())
            if not pending.asks and not pending.gives:
                return
            granted: set[str] = set()
            try:
                granted = await self._write(handler, pending)
            except JobsError as exc:
                # the write may still have landed (a lost answer): give these tokens back in
                # the next round, so no permit waits for its lease to end unused
                self._pending.setdefault(handler, _Pending()).gives.update(
                    token for token, _, _ in pending.asks)
                log.warning("permits of %s not written (%s): nothing granted this round",
                            handler, exc)
            finally:  # every waiter gets an answer, even if this round was cancelled
                for token, _, fut in pending.asks:
                    if not fut.done():
                        fut.set_result(token in granted)

    async def _write(self, handler: str, pending: _Pending) -> set[str]:
        limit = self.limits[handler]
        name = PREFIX + handler
        for _ in range(MAX_TRIES):
            current = await self._store.read_claim(name)
            self.requests += 1
            now = self._clock().timestamp()
            state = LimitState.of(current.metadata if current else {}, now, limit)
            for token in pending.gives:
                state.permits.pop(token, None)
            # our own tokens already there: an earlier try of this round landed, its answer lost
            held = {token for token, _, _ in pending.asks if token in state.permits}
            asks = [ask for ask in pending.asks if ask[0] not in held]
            room = state.free(limit)
            granted = held | {token for token, _, _ in asks[:room]}
            for token, end, _ in asks[:room]:
                state.permits[token] = end
            if limit.max_per_second is not None:
                state.tokens -= len(granted - held)
            try:
                await self._store.write_claim(name, state.metadata(),
                                              etag=current.etag if current else None)
                self.requests += 1
                return granted
            except ConcurrencyConflictError:
                self.requests += 1
                continue  # another process changed it first: read again
        raise ConcurrencyConflictError(f"{name}: still contended after {MAX_TRIES} tries")

    async def in_use(self, handler: str) -> int:
        """Permits held now (one HEAD request)."""
        current = await self._store.read_claim(PREFIX + handler)
        state = LimitState.of(current.metadata if current else {}, self._clock().timestamp(),
                              self.limits[handler])
        return len(state.permits)


__all__ = ["HandlerLimit", "HandlerPermits", "parse_limit_overrides"]
