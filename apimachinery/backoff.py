"""Per-key exponential backoff for writes that a server refused.

A member that refuses a copy (a 4xx: too large, invalid) refuses it again on the next pass;
retrying every reconcile made 2,062 identical updates in 20 minutes (issue 19). Each key
waits :attr:`Backoff.initial` seconds after its first refusal, twice as long after each
next one, up to :attr:`Backoff.maximum`, as client-go's per-item exponential rate limiter
does. A success forgets the key; so does a new *fingerprint* (the desired object changed,
so the next attempt may well succeed). Pure bookkeeping with an injectable clock.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Generic, Hashable, TypeVar

K = TypeVar("K", bound=Hashable)


@dataclass
class _Entry:
    fingerprint: str
    delay: float
    next_at: float


class Backoff(Generic[K]):
    def __init__(self, *, initial: float = 1.0, maximum: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.initial = initial
        self.maximum = maximum
        self.clock = clock
        self._entries: dict[K, _Entry] = {}

    def ready(self, key: K, fingerprint: str) -> bool:
        """May ``key`` be tried now? Always, unless it was refused and its wait is not over."""
        entry = self._entries.get(key)
        if entry is None:
            return True
        if entry.fingerprint != fingerprint:
            del self._entries[key]
            return True
        return self.clock() >= entry.next_at

    def failed(self, key: K, fingerprint: str) -> float:
        """``key`` was refused: the seconds until it may be tried again."""
        entry = self._entries.get(key)
        delay = self.initial if entry is None or entry.fingerprint != fingerprint else min(entry.delay * 2, self.maximum)
        self._entries[key] = _Entry(fingerprint, delay, self.clock() + delay)
        return delay

    def wait(self, key: K) -> float | None:
        """Seconds until ``key`` may be tried again (0 if now), or None if it is not backing off."""
        entry = self._entries.get(key)
        return None if entry is None else max(0.0, entry.next_at - self.clock())

    def succeeded(self, key: K) -> None:
        self._entries.pop(key, None)

    def retain(self, keep: Callable[[K], bool]) -> None:
        """Forget every key ``keep`` rejects (objects that are gone)."""
        for key in [k for k in self._entries if not keep(k)]:
            del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)
