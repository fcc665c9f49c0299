"""What ``bench/scale`` does and how it sums up, without any I/O.

The objects it writes (federated Services with an explicit placement on K clusters), the
steady stream of changes (creates, label updates, port updates, in a fixed cycle), the
predicates that say a change has reached every member copy, and the arithmetic of the
results (percentiles, CPU per change net of the idle rate, the table and the JSON line).
:mod:`scale` runs the processes and feeds these.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable

from figures import pct

PLACEMENT_ANNOTATION = "federation.kubernetes.io/placement"
REV_LABEL = "bench.ubernetes.io/rev"
FIRST_PORT = 10000  # a port update sets FIRST_PORT + its sequence number, so ports only grow
MAX_CHANGES = 50000  # per run (FIRST_PORT + this stays a valid port)
CYCLE = ("create", "label", "create", "port")  # half creates, half updates

# The JSON line's keys the issue asks for, in its order; more follow them.
REQUIRED_KEYS = ("clusters", "services", "shards", "ready_s", "join_p99_s", "copies_p99_s", "create_to_dns_p99_s",
                 "lease_p99_s", "failed_renewals", "api_rss_mib", "dns_rss_mib", "cpu_per_change_small_ms",
                 "cpu_per_change_large_ms")


def placement(index: int, clusters: list[str], shards: int) -> list[str]:
    """The ``shards`` clusters service ``index`` goes to: evenly spread, all different."""
    n = len(clusters)
    step = max(1, n // shards)
    return [clusters[(index + j * step) % n] for j in range(min(shards, n))]


def service(name: str, placed: list[str], port: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "labels": {"app": name},
                         "annotations": {PLACEMENT_ANNOTATION: json.dumps({"clusters": placed})}},
            "spec": {"type": "LoadBalancer", "selector": {"app": name},
                     "ports": [{"name": "http", "port": port, "protocol": "TCP"}]}}


def fill_name(i: int) -> str:
    return f"svc-{i:05d}"


def global_name(service_name: str, domain: str, federation: str = "myfed", namespace: str = "default") -> str:
    return f"{service_name}.{namespace}.{federation}.svc.{domain}."


@dataclass(frozen=True)
class Change:
    """One planned change: ``kind`` (create, label or port), its target, and what it sets."""

    seq: int  # global sequence number: the label value or port offset it sets
    kind: str
    name: str
    placed: tuple[str, ...]
    value: int  # create: the port; label: the revision; port: the new port

    def body(self) -> dict[str, Any]:
        if self.kind == "create":
            return service(self.name, list(self.placed), self.value)
        if self.kind == "label":
            return {"metadata": {"labels": {REV_LABEL: str(self.value)}}}
        return {"spec": {"ports": [{"name": "http", "port": self.value, "protocol": "TCP"}]}}

    def reached(self, copies: dict[str, "CopyView"]) -> bool:
        """True when every placed member copy shows this change (or a later one)."""
        for cluster in self.placed:
            seen = copies.get(cluster)
            if seen is None:
                return False
            if self.kind == "label" and seen.rev < self.value:
                return False
            if self.kind == "port" and (seen.port or 0) < self.value:
                return False
        return True


@dataclass
class CopyView:
    """What the bench saw of one member copy: when it first appeared and what it shows now."""

    seen: float
    ip: str | None = None
    port: int | None = None
    rev: int = -1

    @staticmethod
    def revision(labels: dict[str, Any]) -> int:
        try:
            return int(labels.get(REV_LABEL, -1))
        except (TypeError, ValueError):
            return -1


def plan_changes(*, phase: str, count: int, first_seq: int, first_create: int, targets: list[str],
                 placed_of: Callable[[str], list[str]], clusters: list[str], shards: int,
                 pick: Callable[[int], int]) -> list[Change]:
    """``count`` changes in the cycle of :data:`CYCLE`; updates go to ``targets[pick(len)]``.

    Creates are named ``new-<phase>-<n>`` and placed like fill service ``first_create + n``."""
    out: list[Change] = []
    creates = 0
    for j in range(count):
        kind = CYCLE[j % len(CYCLE)]
        seq = first_seq + j
        if kind == "create":
            index = first_create + creates
            name = f"new-{phase}-{creates:05d}"
            out.append(Change(seq, kind, name, tuple(placement(index, clusters, shards)), 8000 + index % 1000))
            creates += 1
        else:
            target = targets[pick(len(targets))]
            value = seq if kind == "label" else FIRST_PORT + seq
            out.append(Change(seq, kind, target, tuple(placed_of(target)), value))
    return out


# ---------------------------------------------------------------------------- arithmetic


def net_cpu_per_change(cpu: float, seconds: float, idle_rate: float, changes: int) -> float:
    """CPU seconds a change cost: the window's CPU minus what the idle rate would have used."""
    if changes <= 0:
        return float("nan")
    return max(0.0, cpu - idle_rate * seconds) / changes


@dataclass
class PhaseResult:
    """One measured phase: a store of ``store`` services, then changes at a steady rate."""

    name: str
    store: int
    planned: int
    seconds: float = 0.0  # the change window, from the first change to the last one settled
    issued: int = 0
    write_errors: int = 0
    write_latency: list[float] = field(default_factory=list)
    create_copies: list[float] = field(default_factory=list)
    update_copies: list[float] = field(default_factory=list)
    create_dns: list[float] = field(default_factory=list)
    copies_missing: int = 0
    dns_missing: int = 0
    idle_cpu_per_s: dict[str, float] = field(default_factory=dict)  # kind -> CPU s/s before the changes
    cpu: dict[str, float] = field(default_factory=dict)  # kind -> CPU s over the window
    send_seconds: float = 0.0  # from the first change sent to the last

    stages: dict[str, list[float]] = field(default_factory=dict)  # --stages: create to each step

    def other_cpu_per_s(self) -> float:
        """CPU s/s the machine spent on anything but the federation under test and the bench."""
        own = sum(v for k, v in self.cpu.items() if k != "machine")
        return (self.cpu.get("machine", own) - own) / self.seconds if self.seconds else float("nan")

    def gross_cpu_per_change_ms(self, kind: str = "apiserver") -> float:
        return 1000 * self.cpu.get(kind, 0.0) / self.issued if self.issued else float("nan")

    def separable(self, kind: str = "apiserver") -> bool:
        """Whether the changes showed in the CPU rate at all (15 % over idle): if not, the process
        was as busy without them (saturated, or starved by the machine) and the net cost is not measured."""
        return self.cpu_per_s(kind) > 1.15 * self.idle_cpu_per_s.get(kind, 0.0)

    def cpu_per_s(self, kind: str) -> float:
        return self.cpu.get(kind, float("nan")) / self.seconds if self.seconds else float("nan")

    def cpu_per_change_ms(self, kind: str = "apiserver") -> float:
        return 1000 * net_cpu_per_change(self.cpu.get(kind, 0.0), self.seconds,
                                         self.idle_cpu_per_s.get(kind, 0.0), self.issued)


def _r(value: float, digits: int = 3) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else round(value, digits)


def summary(*, clusters: int, services: int, shards: int, per_host: int, rate: float, duration: float,
            ready_s: float | None, join: list[float], start_to_ready: list[float],
            small: PhaseResult | None, large: PhaseResult | None, renewals: list[float], failed: int,
            not_ready: int, rss: dict[str, dict[str, float]], setup: dict[str, float],
            load: tuple[float, float], error: str | None = None) -> dict[str, Any]:
    """The JSON line: the issue's keys first, then the rest (None where a figure is missing)."""
    big = large or PhaseResult("large", 0, 0)
    out: dict[str, Any] = {
        "clusters": clusters, "services": services, "shards": shards,
        "ready_s": _r(ready_s) if ready_s is not None else None,
        "join_p99_s": _r(pct(join, 0.99)),
        "copies_p99_s": _r(pct(big.create_copies, 0.99)),
        "create_to_dns_p99_s": _r(pct(big.create_dns, 0.99)),
        "lease_p99_s": _r(pct(renewals, 0.99), 4),
        "failed_renewals": failed,
        "api_rss_mib": _r(rss.get("apiserver", {}).get("peak", float("nan")), 1),
        "dns_rss_mib": _r(rss.get("dns", {}).get("peak", float("nan")), 1),
        "cpu_per_change_small_ms": _r(small.cpu_per_change_ms()) if small else None,
        "cpu_per_change_large_ms": _r(big.cpu_per_change_ms()) if large else None,
        "per_host": per_host, "rate": rate, "duration_s": duration,
        "join_p50_s": _r(pct(join, 0.5)),
        "start_to_ready_p50_s": _r(pct(start_to_ready, 0.5)), "start_to_ready_p99_s": _r(pct(start_to_ready, 0.99)),
        "copies_p50_s": _r(pct(big.create_copies, 0.5)),
        "update_copies_p50_s": _r(pct(big.update_copies, 0.5)), "update_copies_p99_s": _r(pct(big.update_copies, 0.99)),
        "create_to_dns_p50_s": _r(pct(big.create_dns, 0.5)),
        "copies_missing": big.copies_missing, "dns_missing": big.dns_missing,
        "changes": big.issued, "write_errors": big.write_errors,
        "lease_p50_s": _r(pct(renewals, 0.5), 4), "renewals": len(renewals),
        "clusters_left_ready": not_ready,
        "api_cpu_per_s": _r(big.cpu_per_s("apiserver")), "api_idle_cpu_per_s": _r(big.idle_cpu_per_s.get("apiserver", float("nan"))),
        "host_rss_mib": _r(rss.get("member host", {}).get("peak", float("nan")), 1),
        "setup_s": {k: _r(v, 1) for k, v in setup.items()},
        "load_before": _r(load[0], 2), "load_after": _r(load[1], 2),
    }
    for tag, p in (("small", small), ("large", large)):
        if p is not None:
            out[f"cpu_per_change_gross_{tag}_ms"] = _r(p.gross_cpu_per_change_ms())
            out[f"cpu_separable_{tag}"] = p.separable()
            out[f"other_cpu_per_s_{tag}"] = _r(p.other_cpu_per_s())
    if big.stages:
        out["stages_p50_p99_s"] = {k: [_r(pct(v, 0.5)), _r(pct(v, 0.99))] for k, v in big.stages.items()}
    if small:
        out["copies_p99_small_s"] = _r(pct(small.create_copies, 0.99))
        out["create_to_dns_p99_small_s"] = _r(pct(small.create_dns, 0.99))
    if error:
        out["error"] = error
    return out


def _ms(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{pct(values, 0.5) * 1000:,.0f} / {pct(values, 0.99) * 1000:,.0f} ms"


def table(result: dict[str, Any], phases: list[PhaseResult], rss: dict[str, dict[str, float]],
          join: list[float], start_to_ready: list[float], renewals: list[float], cores: int) -> str:
    """The human-readable report (markdown), targets beside the figures."""
    r = result
    lines = [
        f"machine: {cores} cores, load average {r['load_before']} at the start, {r['load_after']} at the end",
        f"scale: {r['clusters']} clusters ({r['per_host']} per host process), {r['services']} services x "
        f"{r['shards']} shards, {r['rate']:g} changes/s for {r['duration_s']:g} s per phase",
        "setup: " + ", ".join(f"{k.replace('_', ' ')} {v} s" for k, v in r["setup_s"].items()),
        "",
        "| figure | measured | target (issue 11) |",
        "|---|---|---|",
        f"| every cluster Ready | {r['ready_s']} s after the first host started | |",
        f"| join (Cluster created to Ready) p50 / p99 | {_ms(join)} | (Karmada p99 6.9 s) |",
        f"| host process start to Ready p50 / p99 | {_ms(start_to_ready)} | |",
    ]
    for p in phases:
        label = f"{p.name} ({p.store} services)"
        lines += [
            f"| {label}: changes sent / planned (s) | {p.issued} / {p.planned} in {p.send_seconds:.1f} s, "
            f"{p.write_errors} failed | |",
            f"| {label}: API write latency p50 / p99 | {_ms(p.write_latency)} | |",
            f"| {label}: create to every member copy p50 / p99 | {_ms(p.create_copies)}"
            f"{f' ({p.copies_missing} never)' if p.copies_missing else ''} | (Karmada p99 1.3 s) |",
            f"| {label}: update to every member copy p50 / p99 | {_ms(p.update_copies)} | |",
            f"| {label}: create to DNS answer p50 / p99 | {_ms(p.create_dns)}"
            f"{f' ({p.dns_missing} never)' if p.dns_missing else ''} | p99 < 2 s |",
            f"| {label}: API CPU idle / with changes | {p.idle_cpu_per_s.get('apiserver', float('nan')):.2f} / "
            f"{p.cpu_per_s('apiserver'):.2f} s/s | |",
            f"| {label}: API CPU per change, net of idle / gross | {p.cpu_per_change_ms():.1f} / "
            f"{p.gross_cpu_per_change_ms():.1f} ms{'' if p.separable() else ' (not separable: as busy when idle)'} | |",
            f"| {label}: CPU s/s responder / member hosts / bench / others on the machine | {p.cpu_per_s('dns'):.2f} / "
            f"{p.cpu_per_s('member host'):.2f} / {p.cpu_per_s('bench'):.2f} / {p.other_cpu_per_s():.2f} | |",
        ]
        lines += [f"| {label}: create to {stage} p50 / p99 (--stages) | {_ms(v)} | |" for stage, v in p.stages.items()
                  if stage not in ("every member copy", "DNS answer")]
    if len(phases) == 2:
        a, b = phases[0].cpu_per_change_ms(), phases[1].cpu_per_change_ms()
        ratio = b / a if a else float("nan")
        lines.append(f"| API CPU per change, 100 % / 10 % of the store | {ratio:.2f}x | within 2x |")
    lines += [
        f"| lease renewals (100 % phase) p50 / p99 / max | {_ms(renewals)} / "
        f"{max(renewals or [0]) * 1000:,.0f} ms ({len(renewals)}) | p99 < 200 ms |",
        f"| failed lease renewals | {r['failed_renewals']} | 0 |",
        f"| clusters that left Ready after setup | {r['clusters_left_ready']} | 0 |",
        f"| credentials lost at join (agent timeout), freed by the bench | {r.get('credentials_freed', 0)} | 0 |",
    ]
    for kind in ("apiserver", "dns", "member host"):
        if kind in rss:
            m = rss[kind]
            each = f" (max of {m['count']:.0f})" if m.get("count", 1) > 1 else ""
            target = {"apiserver": "< 1 GiB", "dns": "< 500 MiB"}.get(kind, "")
            lines.append(f"| RSS now / peak, {kind}{each} | {m['now']:.0f} / {m['peak']:.0f} MiB | {target} |")
    if r.get("error"):
        lines.append(f"\nstopped early: {r['error']}")
    return "\n".join(lines)


def top_frames(collapsed: str, n: int, by: str = "inclusive") -> tuple[int, list[tuple[str, float, float]]]:
    """(samples, the ``n`` functions most often on the stack: (frame, % on the stack, % at the top)).

    ``collapsed``: py-spy's raw format, one ``frame;frame;...;frame count`` line per stack,
    outermost first; a function counts once per sample however deep it recurses. Thread
    frames (``thread (0x...)``) and the event loop's own frames are left out of the ranking."""
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = [f for f in stack.split(";") if f and not f.startswith(("thread ", "process "))]
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + samples
        if frames:
            own[frames[-1]] = own.get(frames[-1], 0) + samples
    skip = ("run_forever", "run_until_complete", "_run_once", "_run (asyncio", "<module>", "run (asyncio", "main (",
            "_run_module", "_run_code", "invoke (click", "__call__ (click", "serve (", "run (federation",
            "federation_apiserver (", "Thread.run (", "Thread._bootstrap", "_worker (concurrent", "_WorkItem.run (",
            "new_func (click", "dns (fedns", "Runner.run (", "Handle._run (")
    weight = inclusive if by == "inclusive" else own
    ranked = sorted((f for f in weight if not any(s in f for s in skip)), key=lambda f: -weight[f])
    pct_of = (lambda v: 100.0 * v / total) if total else (lambda v: 0.0)
    return total, [(f, pct_of(inclusive[f]), pct_of(own.get(f, 0))) for f in ranked[:n]]
