"""The figures of a run, computed from its events alone (pure: events in, numbers out).

For each fault (from its ``fault`` event to its ``heal``, or the end), with *dead* the shard
addresses whose data plane the fault killed:

- **detection**: fault to the first condition change of an affected cluster (Offline or
  NotReady) or the first data-plane verdict against it, whichever comes first;
- **DNS convergence**, for every watched name whose answer held a dead address before the
  fault: *first*, fault to the first answer without any dead address; *last*, fault to the
  last answer that still held one (0 when none did). The fault's figure is the worst name.
  A name still answering a dead address when the window closes has not converged (None);
- **client-visible outage**: fault to the start of the last failed client request in the
  window (0 when none failed), with the count of failures;
- **stale answers**: client resolutions (cached or fresh) or DNS answers that held a dead
  address later than convergence (last) + one TTL (+0.2 s of timer slack);
- **client recovery**: fault to the first good request after the last failed one (0 when
  none failed; None when none succeeded after it in the window);
- **late client failures**: failures later than convergence + TTL + the client timeout;
- **recovery**: heal to the first answer holding every healed address again.

For the control plane (issue 13), from the ``leader`` events (each renewal of the
controllers' Lease seen, on the runner's clock) and the ``write`` events:

- **time without a leader** (control-plane faults only): the leader renews every retry
  period, so a gap between two renewals longer than :data:`LEADER_GAP` is time nobody led.
  The figure sums the gaps that end after the fault started, each counted from the later of
  its start and the fault (a gap that ends after the heal still counts to its end: nobody
  led until then). 0 when renewals never stopped; None when none came after the fault;
- **leader back**: fault to the first renewal after it (None: none before the end);
- **writes refused** (control-plane faults only): writes that failed from the fault until the first write acknowledged
  at or after its heal (the time a restarted server takes to answer included).

Over the whole run, **lost writes** are writes acknowledged (201) but not stored when the
run ended (the ``writes-check`` event), and a **false failover** is a healthy address leaving a name's answer: an
address that name answered before the first fault, missing from an answer while no fault
excuses it (a fault excuses its dead addresses from its start until they are answered again
after its heal). Each run of missing answers is one false failover.
"""

from __future__ import annotations

import statistics
from typing import Any

SLACK = 0.2
METRICS = ("detection", "convergenceFirst", "convergenceLast", "clientOutage", "clientFailures", "stale", "recovery",
           "noLeader", "writesRefused")
# Faults that hit the control plane: the ones with a time without a leader.
CONTROL_PLANE_FAULTS = ("kill-leader", "kill-apiserver", "kill-etcd", "control-plane-outage")
# Twice the default retry period (federation/settings.py: 1 s): a longer gap between two
# renewals of the Lease is time without a leader.
LEADER_GAP = 2.0


def _of(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e.get("kind") == kind]


def _answered(e: dict[str, Any]) -> bool:
    return e.get("rcode") in ("NOERROR", "NXDOMAIN")


def fault_windows(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    end = max([e["t"] for e in events] or [0.0])
    heals = {e["id"]: e["t"] for e in _of(events, "heal")}
    out = []
    for f in _of(events, "fault"):
        out.append({**f, "start": f["t"], "healed": heals.get(f["id"]), "end": heals.get(f["id"], end)})
    return out


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def renewals(events: list[dict[str, Any]]) -> list[float]:
    """Every renewal of the controllers' Lease seen, on the runner's clock, in order."""
    return sorted({float(e["renewed"]) for e in _of(events, "leader") if e.get("renewed") is not None})


def leaderless(renewed: list[float], t0: float, t1: float) -> float | None:
    """Time without a leader for a fault over [t0, t1] (see the module docstring)."""
    if not any(r > t0 for r in renewed):
        return None
    total = 0.0
    for a, b in zip(renewed, renewed[1:]):
        if b > t0 and a < t1 and b - a > LEADER_GAP:
            total += b - max(a, t0)
    return total


def refused_writes(events: list[dict[str, Any]], t0: float, t1: float) -> int:
    """Failed writes from ``t0`` until the first acknowledged write at or after ``t1``."""
    writes = _of(events, "write")
    until = next((e["t"] for e in writes if e["t"] >= t1 and e.get("ok")), float("inf"))
    return len([e for e in writes if t0 <= e["t"] < until and not e.get("ok")])


def writes_summary(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Writes attempted, acknowledged, refused, and lost (acknowledged, not stored at the end)."""
    writes = _of(events, "write")
    if not writes:
        return None
    acknowledged = {e["name"] for e in writes if e.get("ok")}
    refused = {e["name"] for e in writes if not e.get("ok")}
    check = next((e for e in _of(events, "writes-check")), None)
    stored = None if check is None or check.get("stored") is None else list(check["stored"])
    return {
        "attempted": len(writes),
        "acknowledged": len(acknowledged),
        "refused": len(refused),
        "lost": None if stored is None else len(acknowledged - set(stored)),
        "lostNames": None if stored is None else sorted(acknowledged - set(stored))[:20],
        "storedTwice": None if stored is None else len(stored) - len(set(stored)),
        "appliedThoughRefused": None if stored is None else len(refused & set(stored)),
        "checkError": None if check is None else check.get("error"),
    }


def analyse_fault(events: list[dict[str, Any]], fault: dict[str, Any], *, ttl: float, client_timeout: float) -> dict[str, Any]:
    t0, t1 = fault["start"], fault["end"]
    dead = set(fault.get("addresses") or [])
    clusters = set(fault.get("clusters") or [])
    out: dict[str, Any] = {k: fault.get(k) for k in ("id", "fault", "what", "clusters", "addresses")}
    out.update(at=_round(t0), healedAt=_round(fault["healed"]))

    # detection
    cond = next((e["t"] for e in _of(events, "condition")
                 if t0 <= e["t"] <= t1 and e["cluster"] in clusters and e["phase"] != "Ready"), None)
    verdict = next((e["t"] for e in _of(events, "verdict") if t0 <= e["t"] <= t1 and e["reason"] == "ShardUnreachable"
                    and any(f"(cluster {c})" in e["message"] for c in clusters)), None)
    found = [t for t in (cond, verdict) if t is not None]
    out["conditionChange"] = _round(cond - t0) if cond is not None else None
    out["verdictChange"] = _round(verdict - t0) if verdict is not None else None
    out["detection"] = _round(min(found) - t0) if found else None

    # DNS convergence, name by name
    dns = _of(events, "dns")
    per_name: dict[str, dict[str, Any]] = {}
    for name in sorted({e["name"] for e in dns}):
        before = [e for e in dns if e["name"] == name and e["t"] < t0 and _answered(e)]
        if not before or not dead & set(before[-1]["addrs"]):
            continue
        inside = [e for e in dns if e["name"] == name and t0 <= e["t"] < t1 and _answered(e)]
        dirty = [e for e in inside if dead & set(e["addrs"])]
        clean = [e for e in inside if not dead & set(e["addrs"])]
        first_clean = clean[0]["t"] - t0 if clean else None
        last_dirty = dirty[-1]["t"] if dirty else None
        converged = last_dirty is None or any(e["t"] > last_dirty for e in clean)
        per_name[name] = {
            "convergenceFirst": _round(first_clean),
            "convergenceLast": _round((last_dirty - t0) if last_dirty is not None else 0.0) if converged else None,
            "converged": converged,
        }
    out["names"] = per_name
    if dead:
        firsts = [v["convergenceFirst"] for v in per_name.values()]
        lasts = [v["convergenceLast"] for v in per_name.values()]
        out["converged"] = all(v["converged"] for v in per_name.values())
        out["convergenceFirst"] = None if None in firsts else max(firsts, default=0.0)
        out["convergenceLast"] = max(lasts, default=0.0) if out["converged"] else None
    else:
        out["converged"] = None
        out["convergenceFirst"] = out["convergenceLast"] = None

    # clients
    clients = [e for e in _of(events, "client") if t0 <= e["t"] < t1]
    failures = [e for e in clients if not e.get("ok")]
    out["clientRequests"] = len(clients)
    out["clientFailures"] = len(failures)
    out["clientOutage"] = _round(failures[-1]["t"] - t0) if failures else 0.0
    out["clientOutageWindow"] = [_round(failures[0]["t"] - t0), _round(failures[-1]["t"] - t0)] if failures else None
    last_failed = max((e["t"] for e in failures), default=None)  # events arrive as requests end, not in order
    good = min((e["t"] for e in clients if e.get("ok") and e["t"] > last_failed), default=None) if failures else None
    out["clientRecovery"] = _round(good - t0) if good is not None else (0.0 if not failures else None)
    served: dict[str, int] = {}
    for e in clients:
        if e.get("ok"):
            served[e.get("cluster") or "?"] = served.get(e.get("cluster") or "?", 0) + 1
    out["servedBy"] = served
    if dead and out["convergenceLast"] is not None:
        horizon = t0 + out["convergenceLast"] + ttl + SLACK
        stale_clients = [e for e in clients if e["t"] > horizon and dead & set(e.get("answer") or [])]
        stale_dns = [e for e in dns if horizon < e["t"] < t1 and dead & set(e.get("addrs") or [])]
        out["stale"] = len(stale_clients) + len(stale_dns)
        late = t0 + out["convergenceLast"] + ttl + client_timeout + SLACK
        out["lateClientFailures"] = len([e for e in failures if e["t"] > late])
    else:
        out["stale"] = None
        out["lateClientFailures"] = None if dead else 0

    # recovery after the heal
    healed = fault["healed"]
    if healed is not None and dead:
        back = []
        for ip in sorted(dead):
            seen = next((e["t"] for e in dns if e["t"] >= healed and ip in (e.get("addrs") or [])), None)
            back.append(None if seen is None else seen - healed)
        out["recovery"] = None if None in back else _round(max(back))
    else:
        out["recovery"] = None

    # the control plane
    renewed = renewals(events)
    after = [r for r in renewed if r > t0]
    out["leaderBack"] = _round(after[0] - t0) if after else None
    out["noLeader"] = _round(leaderless(renewed, t0, t1)) if fault.get("fault") in CONTROL_PLANE_FAULTS else None
    out["writesRefused"] = (refused_writes(events, t0, t1)
                            if _of(events, "write") and fault.get("fault") in CONTROL_PLANE_FAULTS else None)
    return out


def false_failovers(events: list[dict[str, Any]], windows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every run of answers that left out a healthy address: name, address, from, to."""
    dns = [e for e in _of(events, "dns") if _answered(e)]
    first_fault = min([w["start"] for w in windows], default=None)
    found: list[dict[str, Any]] = []
    for name in sorted({e["name"] for e in dns}):
        answers = [e for e in dns if e["name"] == name]
        before = [e for e in answers if first_fault is None or e["t"] < first_fault]
        if not before:
            continue
        baseline = set(before[-1]["addrs"])
        reappeared: dict[tuple[str, str], bool] = {}
        open_: dict[str, float] = {}
        for e in answers:
            if first_fault is None or e["t"] < first_fault:
                continue
            present = set(e["addrs"])
            for ip in sorted(baseline):
                excused = False
                for w in windows:
                    if ip not in (w.get("addresses") or []) or e["t"] < w["start"]:
                        continue
                    key = (w["id"], ip)
                    if w["healed"] is not None and e["t"] >= w["healed"] and ip in present:
                        reappeared[key] = True
                    if w["healed"] is None or e["t"] < w["healed"] or not reappeared.get(key):
                        excused = True
                if ip in present or excused:
                    if ip in open_:
                        found.append({"name": name, "address": ip, "from": _round(open_.pop(ip)), "to": _round(e["t"])})
                elif ip not in open_:
                    open_[ip] = e["t"]
        end = answers[-1]["t"] if answers else 0.0
        for ip, since in open_.items():
            found.append({"name": name, "address": ip, "from": _round(since), "to": _round(end)})
    return found


def analyse(events: list[dict[str, Any]]) -> dict[str, Any]:
    meta = next((e for e in events if e.get("kind") == "meta"), {})
    ttl = float(meta.get("ttl") or 0)
    client_timeout = float(meta.get("clientTimeout") or 1.0)
    windows = fault_windows(events)
    faults = [analyse_fault(events, w, ttl=ttl, client_timeout=client_timeout) for w in windows]
    ff = false_failovers(events, windows)
    dns = _of(events, "dns")
    clients = _of(events, "client")
    summary = {
        "scenario": meta.get("scenario"),
        "settings": meta.get("settings"),
        "ttl": ttl,
        "faults": faults,
        "falseFailovers": len(ff),
        "falseFailoverSeconds": _round(sum(x["to"] - x["from"] for x in ff)),
        "falseFailoverDetail": ff,
        "dns": {
            "queries": len(dns),
            "failures": len([e for e in dns if not _answered(e)]),
            "nxdomain": len([e for e in dns if e.get("rcode") == "NXDOMAIN"]),
        },
        "clients": {"requests": len(clients), "failures": len([e for e in clients if not e.get("ok")])},
        "controlPlane": meta.get("controlPlane", "sqlite"),
        "writes": writes_summary(events),
    }
    summary["expectations"] = check(summary, meta.get("expect") or [])
    return summary


def check(summary: dict[str, Any], expect: list[str]) -> dict[str, dict[str, Any]]:
    """Each expectation: {"ok": bool, "detail": why}."""
    killing = [f for f in summary["faults"] if f.get("addresses")]
    out: dict[str, dict[str, Any]] = {}

    def verdict(name: str, bad: list[str]) -> None:
        out[name] = {"ok": not bad, "detail": "; ".join(bad) or "met"}

    for e in expect:
        if e == "converges":
            verdict(e, [f"{f['id']}: a dead address was still answered at the end of the window" for f in killing if not f["converged"]])
        elif e == "no-stale-after-ttl":
            verdict(e, [f"{f['id']}: {'never converged' if f['stale'] is None else str(f['stale']) + ' stale answer(s)'}"
                        for f in killing if f["stale"] != 0])
        elif e == "no-false-failover":
            verdict(e, [f"{x['name']} left out {x['address']} from {x['from']}s to {x['to']}s" for x in summary["falseFailoverDetail"]])
        elif e == "dns-always-answers":
            d = summary["dns"]
            verdict(e, [f"{d['failures']} failed and {d['nxdomain']} NXDOMAIN of {d['queries']} queries"] if d["failures"] or d["nxdomain"] else [])
        elif e == "clients-recover":
            verdict(e, [f"{f['id']}: {'never converged' if f['lateClientFailures'] is None else str(f['lateClientFailures']) + ' failure(s) after convergence + TTL + timeout'}"
                        for f in killing if f["lateClientFailures"] != 0])
        elif e == "clients-unaffected":
            verdict(e, [f"{f['id']}: {f['clientFailures']} client failure(s)" for f in summary["faults"] if f["clientFailures"]])
        elif e == "recovers":
            verdict(e, [f"{f['id']}: not back in DNS after the heal" for f in killing if f["healedAt"] is not None and f["recovery"] is None])
        elif e == "no-lost-writes":
            w = summary.get("writes")
            if w is None:
                verdict(e, ["the run had no write probe (probes.writes)"])
            elif w["lost"] is None:
                verdict(e, [f"what is stored could not be listed at the end: {w['checkError']}"])
            else:
                verdict(e, ([f"{w['lost']} acknowledged write(s) not stored: {', '.join(w['lostNames'])}"] if w["lost"] else [])
                        + ([f"{w['storedTwice']} stored twice"] if w["storedTwice"] else []))
        elif e == "leads-again":
            verdict(e, [f"{f['id']}: no renewal of the controllers' Lease after the fault" for f in summary["faults"]
                        if f.get("leaderBack") is None])
        elif e == "detects":
            verdict(e, [f"{f['id']}: no condition or verdict change" for f in summary["faults"] if f.get("clusters") and f["detection"] is None])
    return out


def spread(values: list[float | None]) -> dict[str, Any]:
    """Median, min and max of the runs that have a value; ``never`` counts the others."""
    have = [v for v in values if v is not None]
    return {
        "median": _round(statistics.median(have)) if have else None,
        "min": _round(min(have)) if have else None,
        "max": _round(max(have)) if have else None,
        "never": len(values) - len(have),
        "runs": len(values),
    }


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Across ``--repeat`` runs: median and spread of every figure, per fault."""
    faults = []
    for i, first in enumerate(runs[0]["faults"] if runs else []):
        per = [r["faults"][i] for r in runs if i < len(r["faults"])]
        faults.append({"id": first["id"], "what": first["what"], **{m: spread([f.get(m) for f in per]) for m in METRICS}})
    expectations: dict[str, dict[str, Any]] = {}
    for r in runs:
        for name, v in r["expectations"].items():
            e = expectations.setdefault(name, {"ok": True, "failedRuns": []})
            if not v["ok"]:
                e["ok"] = False
                e["failedRuns"].append(v["detail"])
    return {
        "runs": len(runs),
        "faults": faults,
        "falseFailovers": spread([r["falseFailovers"] for r in runs]),
        "dnsFailures": spread([r["dns"]["failures"] for r in runs]),
        "lostWrites": spread([(r.get("writes") or {}).get("lost") for r in runs]),
        "acknowledgedWrites": spread([(r.get("writes") or {}).get("acknowledged") for r in runs]),
        "expectations": expectations,
    }


def targets(aggregated: dict[str, Any], wanted: dict[str, float]) -> dict[str, dict[str, Any]]:
    """Benchmark targets: reported as met or missed, never asserted."""
    out = {}
    for key, limit in wanted.items():
        metric = {"convergenceMedian": "convergenceLast", "detectionMedian": "detection", "clientOutageMedian": "clientOutage",
                  "noLeaderMedian": "noLeader"}.get(key)
        if metric is None:
            continue
        medians = [f[metric]["median"] for f in aggregated["faults"] if f[metric]["median"] is not None]
        value = max(medians) if medians else None
        out[key] = {"limit": limit, "value": value, "met": value is not None and value <= limit}
    return out
