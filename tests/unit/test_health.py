"""Table-driven tests of the cluster health state machine (pure)."""

import pytest

from federation.planners.health import (
    NOT_OK, NOT_READY, OFFLINE, OK, READY, UNKNOWN, UNREACHABLE, HealthState, conditions_for, observe,
    phase_from_conditions,
)


def run(results, start=UNKNOWN, failure=3, success=1):
    state = HealthState(phase=start)
    phases = []
    for r in results:
        state = observe(state, r, "msg", failure_threshold=failure, success_threshold=success)
        phases.append(state.phase)
    return phases


CASES = [
    ("first ok makes a new cluster Ready", [OK], UNKNOWN, 3, 1, [READY]),
    ("one lost probe does not flip a Ready cluster", [UNREACHABLE, OK, UNREACHABLE, UNREACHABLE, OK], READY, 3, 1,
     [READY] * 5),
    ("three unreachable in a row make it Offline", [UNREACHABLE] * 3, READY, 3, 1, [READY, READY, OFFLINE]),
    ("reachable but not ok makes it NotReady", [NOT_OK] * 3, READY, 3, 1, [READY, READY, NOT_READY]),
    ("mixed failures do not add up", [NOT_OK, UNREACHABLE, NOT_OK, UNREACHABLE], READY, 3, 1, [READY] * 4),
    ("recovery needs the success threshold", [OK, OK, OK], OFFLINE, 3, 2, [OFFLINE, READY, READY]),
    ("an unknown cluster that never answers goes Offline", [UNREACHABLE] * 3, UNKNOWN, 3, 1,
     [UNKNOWN, UNKNOWN, OFFLINE]),
    ("threshold 1 flips at once", [UNREACHABLE, OK], READY, 1, 1, [OFFLINE, READY]),
]


@pytest.mark.parametrize("title,results,start,failure,success,expected", CASES, ids=[c[0] for c in CASES])
def test_observe(title, results, start, failure, success, expected):
    assert run(results, start, failure, success) == expected


@pytest.mark.parametrize(
    "phase,ready,offline",
    [(READY, "True", "False"), (NOT_READY, "False", "False"), (OFFLINE, "Unknown", "True"), (UNKNOWN, "Unknown", "Unknown")],
)
def test_conditions_follow_federation_v1(phase, ready, offline):
    conds = conditions_for(phase, "")
    assert conds["Ready"][0] == ready and conds["Offline"][0] == offline
    as_list = [{"type": t, "status": s} for t, (s, _, _) in conds.items()]
    assert phase_from_conditions(as_list) == phase
