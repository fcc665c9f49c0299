"""summary.json and report.md: the figures of one scenario (or a comparison), for people."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from federation.experiments.analysis import CONTROL_PLANE_FAULTS

ROWS = (
    ("detection", "detection (fault to condition/verdict change)"),
    ("convergenceFirst", "DNS convergence, first clean answer"),
    ("convergenceLast", "DNS convergence, last answer with a dead address"),
    ("clientOutage", "client-visible outage (fault to last failed request)"),
    ("clientFailures", "failed client requests"),
    ("stale", "stale answers after convergence + TTL"),
    ("recovery", "recovery (heal to shard back in DNS)"),
    ("noLeader", "time without a leader (gaps in the Lease's renewals)"),
    ("writesRefused", "writes refused (fault until one is acknowledged after the heal)"),
)

NEEDS_DEAD = ("convergenceFirst", "convergenceLast", "stale", "recovery")
COUNTS = ("clientFailures", "stale", "writesRefused")


def _not_applicable(fault: dict[str, Any], key: str) -> str | None:
    """Why a figure means nothing for this fault (None: it does)."""
    if key in NEEDS_DEAD and not fault.get("addresses"):
        return "n/a (no data plane died)"
    if key == "detection" and not fault.get("clusters"):
        return "n/a (no cluster was hit)"
    return None


def _rows(runs: list[dict[str, Any]], index: int) -> list[tuple[str, str]]:
    """The figures worth a row for fault ``index``: the control plane's only where they apply."""
    fault = runs[0]["faults"][index]
    control_plane = fault.get("fault") in CONTROL_PLANE_FAULTS
    return [(key, label) for key, label in ROWS
            if not (key == "noLeader" and not control_plane)
            and not (key == "writesRefused" and not (control_plane and runs[0].get("writes")))]


def _writes_line(runs: list[dict[str, Any]]) -> str:
    w = runs[0].get("writes")
    if not w:
        return ""
    lost = "unknown (the end-of-run list failed)" if w["lost"] is None else str(w["lost"])
    return (f"Writes through the API (run 1): {w['attempted']} attempted, {w['acknowledged']} acknowledged, "
            f"{w['refused']} refused, {lost} lost (acknowledged but not stored at the end).")


def _fmt(s: dict[str, Any], *, seconds: bool = True) -> str:
    if s["median"] is None:
        return "never" if s["never"] else "-"
    unit = " s" if seconds else ""
    text = f"{s['median']:g}{unit}"
    if s["runs"] > 1:
        text += f" ({s['min']:g}-{s['max']:g})"
    if s["never"]:
        text += f", never in {s['never']}/{s['runs']}"
    return text


def write_summary(out: Path, summary: dict[str, Any]) -> None:
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")


def render(scenario: Any, agg: dict[str, Any], runs: list[dict[str, Any]], targets: dict[str, Any], picture: str | None) -> str:
    s = runs[0]["settings"] or {}
    lines = [
        f"# {scenario.name}",
        "",
        scenario.description,
        "",
        f"Runs: {agg['runs']} (figures are the median, with min-max over runs when more than one). "
        f"Settings: health {s.get('healthPeriod')} s x {s.get('failureThreshold')} (timeout {s.get('healthTimeout')} s), "
        f"TTL {s.get('dnsTtl')} s, offline records `{s.get('offlineRecords')}`, "
        f"data-plane checks {'on' if s.get('dataplaneChecks') else 'off'}; control plane "
        f"`{runs[0].get('controlPlane', 'sqlite')}`.",
        "",
    ]
    for i, f in enumerate(agg["faults"]):
        lines += [f"## {f['id']}: {f['what']}", "", "| figure | value |", "|---|---|"]
        for key, label in _rows(runs, i):
            value = _not_applicable(runs[0]["faults"][i], key) or _fmt(f[key], seconds=key not in COUNTS)
            lines.append(f"| {label} | {value} |")
        lines.append("")
    lines += [
        f"False failovers (healthy shards removed): {_fmt(agg['falseFailovers'], seconds=False)}. "
        f"Failed DNS queries: {_fmt(agg['dnsFailures'], seconds=False)}.",
        *([_writes_line(runs)] if _writes_line(runs) else []),
        "",
        "## Expectations",
        "",
    ]
    for name, v in agg["expectations"].items():
        lines.append(f"- {'PASS' if v['ok'] else 'FAIL'} `{name}`" + ("" if v["ok"] else f": {v['failedRuns'][0]}"))
    if targets:
        lines += ["", "## Benchmark targets (reported, not asserted)", ""]
        for name, t in targets.items():
            lines.append(f"- {'met' if t['met'] else 'missed'}: {name} <= {t['limit']:g} s (measured {t['value']})")
    if picture:
        lines += ["", f"![timeline]({picture})"]
    return "\n".join(lines) + "\n"


def render_compare(scenario: Any, results: dict[str, dict[str, Any]], picture: str | None, time_scale: float,
                   *, control_planes: bool = False) -> str:
    """Side by side: one column per profile, or per control plane (``--control-plane``)."""
    profiles = list(results)
    lines = [
        f"# {scenario.name}: compared",
        "",
        scenario.description,
        "",
        "The scenario as written (its timeline and settings) on each control plane." if control_planes else
        f"Time scale {time_scale:g} (every period, timeout, TTL and the timeline multiplied by it)." if time_scale != 1 else
        "Real time: every profile with its own settings.",
        "",
        "| setting | " + " | ".join(profiles) + " |",
        "|---|" + "---|" * len(profiles),
    ]
    lines.append("| controlPlane | " + " | ".join(str(results[p]["runs"][0].get("controlPlane", "sqlite")) for p in profiles) + " |")
    for key in ("healthPeriod", "failureThreshold", "healthTimeout", "dnsTtl", "offlineRecords", "dataplaneChecks"):
        lines.append(f"| {key} | " + " | ".join(str(results[p]["runs"][0]["settings"].get(key)) for p in profiles) + " |")
    first = results[profiles[0]]["aggregate"]["faults"]
    for i, f in enumerate(first):
        lines += ["", f"## {f['id']}: {f['what']}", "", "| figure | " + " | ".join(profiles) + " |", "|---|" + "---|" * len(profiles)]
        fault = results[profiles[0]]["runs"][0]["faults"][i]
        for key, label in _rows(results[profiles[0]]["runs"], i):
            na = _not_applicable(fault, key)
            cells = ["n/a" if na else _fmt(results[p]["aggregate"]["faults"][i][key], seconds=key not in COUNTS)
                     for p in profiles]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("| false failovers | " + " | ".join(_fmt(results[p]["aggregate"]["falseFailovers"], seconds=False) for p in profiles) + " |")
    if any(results[p]["runs"][0].get("writes") for p in profiles):
        lines += ["", "## Writes through the API, whole run (run 1)", "", "| figure | " + " | ".join(profiles) + " |",
                  "|---|" + "---|" * len(profiles)]
        for key, label in (("attempted", "attempted"), ("acknowledged", "acknowledged (201)"), ("refused", "refused"),
                           ("lost", "lost (acknowledged, not stored at the end)")):
            cells = [str((results[p]["runs"][0].get("writes") or {}).get(key, "-")) for p in profiles]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if picture:
        lines += ["", f"![compare]({picture})"]
    return "\n".join(lines) + "\n"
