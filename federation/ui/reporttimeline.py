"""An experiment's events as the report viewer draws them: lanes of segments and, per
incident, its steps with the latency between them (issue 17).

An events file holds every DNS query and client request (thousands of points); the page
needs what changed and when. Each lane (a cluster's condition, a watched name's answers,
the clients' outcomes) becomes run-length segments of one state, so the model grows with
the changes, not with the probe rate. Each fault is an *incident*: its window (fault to
heal, or the end) and the steps a reader follows, in time order, each with its time since
the fault and since the step before: fault injected, condition changed, data plane voted
down, DNS changed (every watched name answered without the dead address), clients
recovered (the first good request after the last failed one), healed, back in DNS.

The step times are the figures of :mod:`federation.experiments.analysis` (one definition
of detection, convergence and recovery), placed on the run's clock. Pure: events in, a
JSON-able dict out.
"""

from __future__ import annotations

from typing import Any, Callable

from federation.experiments import analysis

# (step, label) in the order a failover goes through them
STEPS: tuple[tuple[str, str], ...] = (
    ("fault", "fault injected"),
    ("condition", "condition changed"),
    ("verdict", "data plane voted down"),
    ("dns", "DNS changed"),
    ("clients", "clients recovered"),
    ("heal", "healed"),
    ("recovered", "back in DNS"),
)
LABELS = dict(STEPS)


def segments(samples: list[tuple[float, str, Any]], *, end: float) -> list[dict[str, Any]]:
    """Run-length segments of ``(t, state, detail)`` samples in time order: one segment per
    run of equal states, from its first sample to the next run's first sample (the last to
    ``end``), with how many samples it holds and the first one's detail."""
    out: list[dict[str, Any]] = []
    for t, state, detail in samples:
        if out and out[-1]["state"] == state:
            out[-1]["samples"] += 1
            continue
        if out:
            out[-1]["to"] = t
        out.append({"from": t, "to": end, "state": state, "samples": 1, "detail": detail})
    if out:
        out[-1]["to"] = max(end, out[-1]["from"])
    return out


def _dead_at(windows: list[dict[str, Any]]) -> Callable[[float], set[str]]:
    """The addresses a fault has killed at time t: from its fault to its heal (or the end)."""
    def dead(t: float) -> set[str]:
        return {ip for w in windows if w["start"] <= t < w["end"] for ip in w.get("addresses") or []}
    return dead


def _condition_lane(events: list[dict[str, Any]], name: str, end: float) -> list[dict[str, Any]]:
    samples: list[tuple[float, str, Any]] = [(0.0, "Ready", None)]  # the runner starts the clock once all are Ready
    for e in events:
        if e.get("kind") == "condition" and e.get("cluster") == name:
            samples.append((float(e["t"]), str(e.get("phase") or "Unknown"), None))
    return segments(samples, end=end)


def _dns_state(e: dict[str, Any], dead: set[str]) -> str:
    if e.get("rcode") != "NOERROR":
        return "failed"
    return "dead" if dead & set(e.get("addrs") or []) else "clean"


def _dns_lane(events: list[dict[str, Any]], name: str, dead: Callable[[float], set[str]], end: float) -> list[dict[str, Any]]:
    samples = [(float(e["t"]), _dns_state(e, dead(e["t"])), {"rcode": e.get("rcode"), "addrs": e.get("addrs") or []})
               for e in events if e.get("kind") == "dns" and e.get("name") == name]
    return segments(samples, end=end)


def _client_lane(events: list[dict[str, Any]], end: float) -> list[dict[str, Any]]:
    cs = sorted((e for e in events if e.get("kind") == "client"), key=lambda e: e["t"])
    samples = [(float(e["t"]), "ok" if e.get("ok") else "failed",
                {"cluster": e.get("cluster")} if e.get("ok") else {"error": e.get("error")}) for e in cs]
    return segments(samples, end=end)


def _step(kind: str, t: float | None, t0: float, detail: str = "") -> dict[str, Any] | None:
    if t is None:
        return None
    return {"step": kind, "label": LABELS[kind], "t": round(t, 3), "sinceFault": round(t - t0, 3), "detail": detail}


def _nearest(events: list[dict[str, Any]], kind: str, t: float | None) -> dict[str, Any] | None:
    """The ``kind`` event at ``t`` (the figures are rounded to the millisecond)."""
    if t is None:
        return None
    return min((e for e in events if e.get("kind") == kind), key=lambda e: abs(e["t"] - t), default=None)


def incident(events: list[dict[str, Any]], window: dict[str, Any], figures: dict[str, Any]) -> dict[str, Any]:
    """One fault's window and steps. ``figures`` is :func:`analysis.analyse_fault` of it."""
    t0, t1 = float(window["start"]), float(window["end"])
    at = lambda figure: None if figures.get(figure) is None else t0 + figures[figure]  # noqa: E731
    cond, vote = _nearest(events, "condition", at("conditionChange")), _nearest(events, "verdict", at("verdictChange"))
    failures = figures.get("clientFailures") or 0
    healed = window.get("healed")
    steps = [
        _step("fault", t0, t0, window.get("what") or ""),
        _step("condition", at("conditionChange"), t0, cond and f"cluster {cond.get('cluster')} {cond.get('phase')}" or ""),
        _step("verdict", at("verdictChange"), t0, vote and vote.get("message") or ""),
        _step("dns", at("convergenceFirst"), t0,
              "every watched name answered without " + ", ".join(window.get("addresses") or [])),
        _step("clients", at("clientRecovery") if failures else None, t0, f"first good request after {failures} failed"),
        _step("heal", healed, t0, window.get("what") or ""),
        _step("recovered", None if healed is None or figures.get("recovery") is None else healed + figures["recovery"],
              t0, "every healed address answered again"),
    ]
    order = [k for k, _ in STEPS]
    kept = sorted((s for s in steps if s is not None), key=lambda s: (s["t"], order.index(s["step"])))
    for before, step in zip([None, *kept], kept):
        step["afterPrevious"] = None if before is None else round(step["t"] - before["t"], 3)
    return {
        "id": window.get("id"), "fault": window.get("fault"), "what": window.get("what"),
        "clusters": sorted(window.get("clusters") or []), "addresses": list(window.get("addresses") or []),
        "from": round(t0, 3), "to": round(t1, 3), "healed": healed,
        "steps": kept, "notReached": [LABELS[k] for k, s in zip(order, steps) if s is None],
        "clientFailures": failures, "clientRequests": figures.get("clientRequests"),
    }


def timeline(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The viewer's model of a run: lanes of segments, incidents with their steps."""
    meta = next((e for e in events if e.get("kind") == "meta"), {}) or {}
    end = max([float(e["t"]) for e in events] or [0.0])
    clusters = [c["name"] for c in meta.get("clusters") or []] or sorted(
        {e["cluster"] for e in events if e.get("kind") == "condition" and e.get("cluster")})
    names = list(meta.get("names") or []) or sorted({e["name"] for e in events if e.get("kind") == "dns" and e.get("name")})
    summary = analysis.analyse(events)
    windows = analysis.fault_windows(events)
    dead = _dead_at(windows)
    return {
        "scenario": meta.get("scenario"),
        "settings": meta.get("settings"),
        "duration": round(end, 3),
        "clusters": [{"name": c, "segments": _condition_lane(events, c, end)} for c in clusters],
        "dns": [{"name": n, "segments": _dns_lane(events, n, dead, end)} for n in names],
        "clients": _client_lane(events, end),
        "verdicts": [{"t": e["t"], "reason": e.get("reason"), "message": e.get("message")}
                     for e in events if e.get("kind") == "verdict"],
        "incidents": [incident(events, w, f) for w, f in zip(windows, summary["faults"])],
        "expectations": summary["expectations"],
    }
