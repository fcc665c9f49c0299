"""The cluster health state machine: pure, so its rules read as a table and test as one.

Federation v1's semantics for the conditions (unreachable: ``Offline=True``; reachable but
``/healthz`` not ``ok``: ``Ready=False, Offline=False``; ``ok``: ``Ready=True``), with
KubeFed's thresholds on top: the state changes only after a run of ``failure_threshold``
bad probes or ``success_threshold`` good ones, so one lost probe does not flip a cluster.
A cluster seen for the first time is ``Unknown`` until a run decides it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

OK = "ok"  # reachable and /healthz said ok
NOT_OK = "not-ok"  # reachable, /healthz said something else
UNREACHABLE = "unreachable"  # no answer in time, or the lease expired

READY = "Ready"
NOT_READY = "NotReady"
OFFLINE = "Offline"
UNKNOWN = "Unknown"


@dataclass(frozen=True)
class HealthState:
    phase: str = UNKNOWN
    # The result of the current run and how long it is.
    run_result: str = ""
    run_length: int = 0
    message: str = ""


def target_phase(result: str) -> str:
    return {OK: READY, NOT_OK: NOT_READY, UNREACHABLE: OFFLINE}[result]


def observe(state: HealthState, result: str, message: str, *, failure_threshold: int, success_threshold: int) -> HealthState:
    """Fold one probe result into the state."""
    run = state.run_length + 1 if result == state.run_result else 1
    new = replace(state, run_result=result, run_length=run)
    target = target_phase(result)
    if target == state.phase:
        return replace(new, message=message)
    needed = success_threshold if result == OK else failure_threshold
    if run >= needed:
        return replace(new, phase=target, message=message)
    return new


def conditions_for(phase: str, message: str) -> dict[str, tuple[str, str, str]]:
    """The Ready and Offline conditions for a phase: type -> (status, reason, message)."""
    if phase == READY:
        return {
            "Ready": ("True", "ClusterReady", message or "/healthz responded with ok"),
            "Offline": ("False", "ClusterReachable", "cluster is reachable"),
        }
    if phase == NOT_READY:
        return {
            "Ready": ("False", "ClusterNotReady", message or "/healthz responded without ok"),
            "Offline": ("False", "ClusterReachable", "cluster is reachable"),
        }
    if phase == OFFLINE:
        return {
            "Ready": ("Unknown", "ClusterNotReachable", message or "cluster is not reachable"),
            "Offline": ("True", "ClusterNotReachable", message or "cluster is not reachable"),
        }
    return {
        "Ready": ("Unknown", "ClusterStatusUnknown", "no probe has decided yet"),
        "Offline": ("Unknown", "ClusterStatusUnknown", "no probe has decided yet"),
    }


def phase_from_conditions(conditions: list[dict] | None) -> str:
    """Recover the phase from stored conditions (after an API server restart)."""
    by_type = {c.get("type"): c.get("status") for c in conditions or [] if isinstance(c, dict)}
    if by_type.get("Offline") == "True":
        return OFFLINE
    if by_type.get("Ready") == "True":
        return READY
    if by_type.get("Ready") == "False":
        return NOT_READY
    return UNKNOWN


def is_ready(cluster: dict) -> bool:
    return phase_from_conditions((cluster.get("status") or {}).get("conditions")) == READY


# ---------------------------------------------------------------- data-plane votes (issue 5)

UP = "up"
DOWN = "down"


def majority_down(votes: dict[str, str]) -> bool:
    """True when more than half of the probers that have a view call the address down.

    ``votes`` maps a prober (``federation``, or a member cluster's name) to ``up``,
    ``down`` or anything else (no view yet, which does not count). No view at all is not
    a reason to remove anything: the address stays.
    """
    counted = [v for v in votes.values() if v in (UP, DOWN)]
    return bool(counted) and 2 * counted.count(DOWN) > len(counted)


def majority_up(votes: dict[str, str]) -> bool:
    """True when more than half of the probers that have a view call the address up (bounded
    keep, issue 16: an Offline cluster's address stays past the bound only on this)."""
    counted = [v for v in votes.values() if v in (UP, DOWN)]
    return bool(counted) and 2 * counted.count(UP) > len(counted)


def probe_verdict(state: HealthState) -> str:
    """One prober's view of one address, from its run of probes (see :func:`observe`)."""
    return {READY: UP, OFFLINE: DOWN}.get(state.phase, "")
