"""timeline.png: conditions, DNS answers and client outcomes over time, faults shaded.

matplotlib is an optional extra (``pip install 'ubernetes[plot]'``); without it
:func:`available` is False and the runner says so instead of drawing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

PHASE_COLOURS = {"Ready": "#2e7d32", "Offline": "#c62828", "NotReady": "#ef6c00", "Unknown": "#9e9e9e"}


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _pyplot():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _faults(ax: Any, events: list[dict[str, Any]], *, label: bool) -> None:
    end = max(e["t"] for e in events)
    heals = {e["id"]: e["t"] for e in events if e.get("kind") == "heal"}
    for f in (e for e in events if e.get("kind") == "fault"):
        ax.axvspan(f["t"], heals.get(f["id"], end), color="#fbc02d", alpha=0.18, lw=0)
        ax.axvline(f["t"], color="#f57f17", lw=1)
        if label:
            ax.text(f["t"], 1.02, f" {f['what']}", transform=ax.get_xaxis_transform(), fontsize=7, color="#e65100",
                    va="bottom", clip_on=False)


def _dead(events: list[dict[str, Any]]) -> set[str]:
    return {ip for e in events if e.get("kind") == "fault" for ip in e.get("addresses") or []}


def _dns_panel(ax: Any, events: list[dict[str, Any]], names: list[str]) -> None:
    dead = _dead(events)
    for i, name in enumerate(names):
        groups: dict[str, tuple[list[float], list[float]]] = {}
        for e in (e for e in events if e.get("kind") == "dns" and e["name"] == name):
            bad = e.get("rcode") != "NOERROR"
            colour = "#c62828" if bad else ("#ef6c00" if dead & set(e.get("addrs") or []) else "#1565c0")
            xs, ys = groups.setdefault(colour, ([], []))
            xs.append(e["t"])
            ys.append(i + 0.3 * (len(e.get("addrs") or []) / 4))
        for colour, (xs, ys) in groups.items():
            ax.plot(xs, ys, marker="|", ms=6, color=colour, ls="")
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels([n.split(".svc.")[-1] if ".svc." in n else n for n in names], fontsize=7)
    ax.set_ylim(-0.5, len(names) - 0.2)
    ax.set_ylabel("DNS answers", fontsize=8)


def _client_panel(ax: Any, events: list[dict[str, Any]]) -> None:
    cs = [e for e in events if e.get("kind") == "client"]
    clusters = sorted({e.get("cluster") for e in cs if e.get("ok")} - {None, ""})
    ok = [e for e in cs if e.get("ok")]
    ax.plot([e["t"] for e in ok], [clusters.index(e["cluster"]) if e.get("cluster") in clusters else 0 for e in ok],
            marker=".", ms=3, color="#2e7d32", ls="")
    failed = [e["t"] for e in cs if not e.get("ok")]
    ax.plot(failed, [-1] * len(failed), marker="x", ms=4, color="#c62828", ls="")
    ax.set_yticks(range(-1, len(clusters)))
    ax.set_yticklabels(["failed"] + clusters, fontsize=7)
    ax.set_ylabel("client answered by", fontsize=8)


def plot_timeline(events: list[dict[str, Any]], path: Path, *, title: str) -> None:
    plt = _pyplot()
    meta = next(e for e in events if e.get("kind") == "meta")
    clusters = [c["name"] for c in meta["clusters"]]
    names = list(meta["names"])
    end = max(e["t"] for e in events)
    fig, axes = plt.subplots(3, 1, figsize=(11, 2.2 + 0.35 * (len(clusters) + len(names)) + 2), sharex=True,
                             gridspec_kw={"height_ratios": [max(1, len(clusters)), max(1, len(names)), 3]})
    ax = axes[0]
    for i, name in enumerate(clusters):
        changes = [e for e in events if e.get("kind") == "condition" and e["cluster"] == name]
        phase, since = "Ready", 0.0
        for e in changes:
            ax.broken_barh([(since, e["t"] - since)], (i - 0.35, 0.7), color=PHASE_COLOURS.get(phase, "#9e9e9e"))
            phase, since = e["phase"], e["t"]
        ax.broken_barh([(since, end - since)], (i - 0.35, 0.7), color=PHASE_COLOURS.get(phase, "#9e9e9e"))
    for e in (e for e in events if e.get("kind") == "verdict"):
        row = next((i for i, c in enumerate(clusters) if f"(cluster {c})" in e["message"]), None)
        if row is not None:
            ax.plot([e["t"]], [row], marker="v" if e["reason"] == "ShardUnreachable" else "^", color="black", ms=6)
    ax.set_yticks(range(len(clusters)))
    ax.set_yticklabels(clusters, fontsize=7)
    ax.set_ylabel("condition", fontsize=8)
    ax.set_title(title, fontsize=10, pad=14)
    _dns_panel(axes[1], events, names)
    _client_panel(axes[2], events)
    for a in axes:
        _faults(a, events, label=a is axes[0])
        a.grid(axis="x", alpha=0.3)
    axes[-1].set_xlabel("seconds (green Ready, red Offline; v/^ data-plane vote down/up; DNS: blue clean, orange holds a dead address, red failed)", fontsize=7)
    axes[-1].set_xlim(0, end)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_compare(runs: dict[str, list[dict[str, Any]]], path: Path, *, title: str) -> None:
    """One row per profile: the client outcomes and the DNS answers for the first name."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(runs), 1, figsize=(11, 2.4 * len(runs) + 0.6), sharex=True, squeeze=False)
    end = max(max(e["t"] for e in events) for events in runs.values())
    for ax, (profile, events) in zip(axes[:, 0], runs.items()):
        meta = next(e for e in events if e.get("kind") == "meta")
        dead = _dead(events)
        name = meta["names"][0]
        qs = [e for e in events if e.get("kind") == "dns" and e["name"] == name]
        ax.plot([e["t"] for e in qs], [1.6 if dead & set(e.get("addrs") or []) else 1.4 for e in qs], ls="", marker="|",
                color="#ef6c00", ms=5)
        cs = [e for e in events if e.get("kind") == "client"]
        ax.plot([e["t"] for e in cs if e.get("ok")], [1.0] * len([e for e in cs if e.get("ok")]), ls="", marker=".", ms=2,
                color="#2e7d32")
        ax.plot([e["t"] for e in cs if not e.get("ok")], [0.6] * len([e for e in cs if not e.get("ok")]), ls="", marker="x",
                ms=3, color="#c62828")
        _faults(ax, events, label=False)
        ax.set_yticks([0.6, 1.0, 1.4, 1.6])
        ax.set_yticklabels(["client failed", "client ok", "DNS clean", "DNS has dead"], fontsize=7)
        s = meta["settings"]
        ax.set_title(f"{profile}: health {s['healthPeriod']}s x{s['failureThreshold']}, TTL {s['dnsTtl']}s, "
                     f"offline {s['offlineRecords']}, data-plane checks {'on' if s['dataplaneChecks'] else 'off'}",
                     fontsize=8, loc="left")
        ax.set_ylim(0.4, 1.8)
        ax.grid(axis="x", alpha=0.3)
    axes[-1, 0].set_xlim(0, end)
    axes[-1, 0].set_xlabel("seconds (shaded: fault until heal)", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
