"""Leader election over one registry: two candidates, a clock the test moves (client-go's rules)."""

from __future__ import annotations

import asyncio

import pytest

from federation.api.events import EVENT_NAMESPACE
from federation.api.leaderelection import ElectionConfig, LeaderElector
from federation.api.registry import Registry, WatchHub
from federation.resources import EVENTS, LEASES
from federation.storage.store import SQLiteStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def candidates(registry: Registry, clock: Clock, *names: str) -> tuple[list[LeaderElector], list[str]]:
    log: list[str] = []

    def hooks(name: str):  # type: ignore[no-untyped-def]
        async def started() -> None:
            log.append(f"{name} started")

        async def stopped() -> None:
            log.append(f"{name} stopped")

        return started, stopped

    electors = []
    for name in names:
        started, stopped = hooks(name)
        electors.append(LeaderElector(registry, ElectionConfig(identity=name), on_started=started,
                                      on_stopped=stopped, clock=clock))
    return electors, log


async def step(*electors: LeaderElector) -> None:
    """One retry period of each, in turn, letting a controller start run (it runs beside the campaign)."""
    for elector in electors:
        await elector.step()
        await asyncio.sleep(0)


def lease_spec(registry: Registry) -> dict:
    return registry.get(LEASES, "federation-system", "federation-controller-manager")["spec"]


async def test_one_leads_the_other_takes_over_only_after_the_lease_duration():
    registry, clock = Registry(SQLiteStore(":memory:"), WatchHub()), Clock()
    (a, b), log = candidates(registry, clock, "a", "b")
    await step(a)
    await step(b)
    assert (a.leading, b.leading) == (True, False) and log == ["a started"]
    assert lease_spec(registry)["holderIdentity"] == "a" and lease_spec(registry)["leaseDurationSeconds"] == 4
    for _ in range(5):  # a renews every second; b never gets it
        clock.now += 1
        await step(a)
        await step(b)
    assert not b.leading and lease_spec(registry)["holderIdentity"] == "a"
    # a stops renewing (it hangs, or lost etcd). b saw the last renewal at its own time t:
    clock.now += 3.9
    await step(b)
    assert not b.leading  # not yet: 4 s since b saw the record change
    clock.now += 0.2
    await step(b)
    assert b.leading and lease_spec(registry)["holderIdentity"] == "b" and lease_spec(registry)["leaseTransitions"] == 1
    # a comes back: its deadline (3 s) passed long ago, so it stops; it cannot take the lease back.
    await step(a)
    assert not a.leading and log == ["a started", "b started", "a stopped"]
    messages = [e["message"] for e in registry.list(EVENTS, "federation-system")[0]]
    assert sorted(messages) == ["a became leader", "a stopped leading", "b became leader"]
    assert all(e["reason"] == "LeaderElection" for e in registry.list(EVENTS, "federation-system")[0])
    assert registry.list(EVENTS, EVENT_NAMESPACE)[0] == []


async def test_a_leader_that_cannot_renew_stops_before_the_lease_can_pass_on():
    registry, clock = Registry(SQLiteStore(":memory:"), WatchHub()), Clock()
    (a, b), log = candidates(registry, clock, "a", "b")
    await step(a)
    await step(b)
    # Another writer changes the lease under a (as a partition would make a's writes fail):
    # a's renewals conflict from now on.
    real = a.try_acquire_or_renew
    a.try_acquire_or_renew = lambda: False  # type: ignore[method-assign]
    stopped_at = None
    for tick in range(1, 10):
        clock.now += 0.5
        await step(a)
        await step(b)
        if not a.leading and stopped_at is None:
            stopped_at = tick * 0.5
        if b.leading:
            assert stopped_at is not None and stopped_at <= tick * 0.5 - 1.0  # a stopped a second before b led
            break
    else:
        pytest.fail("b never led")
    assert stopped_at == 3.0 and log == ["a started", "a stopped", "b started"]
    a.try_acquire_or_renew = real  # type: ignore[method-assign]


async def test_release_lets_a_standby_lead_at_its_next_try():
    registry, clock = Registry(SQLiteStore(":memory:"), WatchHub()), Clock()
    (a, b), _ = candidates(registry, clock, "a", "b")
    await step(a)
    await step(b)
    a.release()
    await step(b)
    assert b.leading and lease_spec(registry)["holderIdentity"] == "b"
    assert lease_spec(registry)["leaseTransitions"] == 0  # an empty holder hands over without a transition


def test_the_timings_must_leave_a_leader_time_to_stop():
    with pytest.raises(ValueError, match="lease duration > renew deadline > retry period"):
        ElectionConfig(identity="x", lease_duration=3, renew_deadline=3).check()
