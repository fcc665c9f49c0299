"""Data-plane probes: is a shard's load-balancer address answering clients? (issue 5)

Federation v1's design proposed, and never built, health checks of the data plane by
several probers that vote. Here the federation and every member cluster run the same
:class:`AddressProber`: it probes each target address (``ip:port``) every period with a real
HTTP request and folds the results into :mod:`federation.planners.health`'s run-length state
machine, so one lost probe does not flip an address. A TCP connect alone is not enough: a
black-holed listener accepts connections and never answers, so a probe counts as good only
when an HTTP status line comes back within the timeout (any status: a 503 means "no ready
endpoints", which the endpoint counts already say; here we ask whether the address answers).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from federation.planners import health


async def probe_address(target: str, *, timeout: float) -> tuple[bool, str]:
    """One HTTP probe of ``ip:port``: (answered, message)."""
    host, _, port = target.rpartition(":")
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host.strip("[]"), int(port))
            writer.write(f"GET /healthz HTTP/1.1\r\nHost: {target}\r\nUser-Agent: ubernetes-prober\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
            line = await reader.readline()
        if not line.startswith(b"HTTP/"):
            return False, f"{target}: no HTTP status line"
        return True, f"{target}: {line.decode(errors='replace').strip()}"
    except TimeoutError:
        return False, f"{target}: no answer within {timeout:g}s"
    except (OSError, ValueError) as err:
        return False, f"{target}: {getattr(err, 'strerror', None) or err}"
    finally:
        if writer is not None:
            writer.close()


@dataclass
class _Target:
    state: health.HealthState
    checked: float = 0.0
    message: str = ""
    last_ok: float | None = None  # wall time of the last good probe (issue 17)
    failed_at: float | None = None  # wall time of the first failed probe of the current run of failures


class AddressProber:
    """Probes a changing set of addresses; ``verdicts()`` says ``up``, ``down`` or ``""`` for each."""

    def __init__(self, *, period: float = 0.5, timeout: float = 0.5, failure_threshold: int = 2) -> None:
        self.period = period
        self.timeout = timeout
        self.failure_threshold = failure_threshold
        self._targets: dict[str, _Target] = {}

    def set_targets(self, targets: list[str] | set[str]) -> None:
        wanted = set(targets)
        for gone in set(self._targets) - wanted:
            del self._targets[gone]
        for new in wanted - set(self._targets):
            self._targets[new] = _Target(health.HealthState())

    def verdicts(self) -> dict[str, str]:
        return {t: health.probe_verdict(s.state) for t, s in self._targets.items()}

    def messages(self) -> dict[str, str]:
        return {t: s.message for t, s in self._targets.items()}

    def first_failures(self) -> dict[str, tuple[float, str]]:
        """Targets failing now: the wall time and message of the first failed probe of the run."""
        return {t: (s.failed_at, s.message) for t, s in self._targets.items() if s.failed_at is not None}

    def last_ok(self, target: str) -> float | None:
        entry = self._targets.get(target)
        return entry.last_ok if entry is not None else None

    async def step(self) -> None:
        """Probe every target once, concurrently."""
        targets = list(self._targets)
        results = await asyncio.gather(*(probe_address(t, timeout=self.timeout) for t in targets))
        now, wall = time.monotonic(), time.time()
        for target, (ok, message) in zip(targets, results):
            entry = self._targets.get(target)
            if entry is None:  # dropped while we probed
                continue
            entry.state = health.observe(
                entry.state,
                health.OK if ok else health.UNREACHABLE,
                message,
                failure_threshold=self.failure_threshold,
                success_threshold=1,
            )
            entry.checked, entry.message = now, message
            if ok:
                entry.last_ok, entry.failed_at = wall, None
            elif entry.failed_at is None and entry.last_ok is not None:
                entry.failed_at = wall

    async def run(self) -> None:
        while True:
            started = time.monotonic()
            await self.step()
            await asyncio.sleep(max(0.0, self.period - (time.monotonic() - started)))
