"""What each fault and heal of a scenario does to a running local federation.

Faults that need the process table (crash, zone and region outages, flapping, stopping the
federation API) go through :class:`federation.launch.localfed.LocalFederation`; the others flip a
member's chaos switches over HTTP (``/chaos``, see ``docs/clusters.md``). Each fault also
says which shard addresses it kills in the data plane: those are the addresses DNS should
drop. A control-plane partition, a control-plane outage, API latency, lost probes and a
partial degradation kill none: removing anything then is a false failover.

The control plane's faults (issue 13) kill no data plane either: ``kill-leader`` SIGKILLs
the API server whose controllers lead (on a single SQLite server, that one server),
``kill-apiserver`` one replica by index, ``kill-etcd`` one etcd member by index; each heal
starts the killed process again. :func:`inject` answers what it did (which API server was
the leader), and :func:`heal` takes that answer back: a heal starts what its fault killed.
"""

from __future__ import annotations

from typing import Any

from federation.experiments.scenario import Fault
from federation.launch.localfed import LocalFederation


def affected_clusters(fed: LocalFederation, fault: Fault) -> list[str]:
    p = fault.params
    if fault.kind == "zone-outage":
        return fed.clusters_in(zone=p["zone"])
    if fault.kind == "region-outage":
        return fed.clusters_in(region=p["region"])
    if "cluster" in p:
        return [p["cluster"]]
    return []


def dead_addresses(fault: Fault, clusters: list[str], shards: dict[str, dict[str, list[str]]]) -> list[str]:
    """The shard addresses whose data plane the fault kills. ``shards``: service -> cluster -> ips."""
    if fault.kind in ("crash", "zone-outage", "region-outage", "blackhole", "flap"):
        return sorted({ip for by_cluster in shards.values() for c in clusters for ip in by_cluster.get(c, [])})
    if fault.kind == "degrade" and str(fault.params.get("pods", "all")) == "all":
        ref = str(fault.params["service"])
        return sorted({ip for c in clusters for ip in shards.get(ref, {}).get(c, [])})
    return []


async def inject(fed: LocalFederation, fault: Fault) -> dict[str, Any]:
    """Cause the fault; what it did, for its event and its heal (``{"apiserver": n}`` ...)."""
    p = fault.params
    clusters = affected_clusters(fed, fault)
    if fault.kind == "kill-leader":
        if len(fed.api_ports) == 1:  # no election: the one API server runs the controllers
            await fed.stop_api(0)
            return {"apiserver": 0}
        return {"apiserver": await fed.kill_leader()}
    if fault.kind == "kill-apiserver":
        await fed.stop_api(int(p["index"]))
        return {"apiserver": int(p["index"])}
    if fault.kind == "kill-etcd":
        await fed.kill_etcd(int(p["index"]))
        return {"etcdMember": int(p["index"])}
    if fault.kind in ("crash", "zone-outage", "region-outage"):
        await fed.crash(clusters)
    elif fault.kind == "flap":
        fed.start_flap(p["cluster"], period=float(p["period"]))
    elif fault.kind == "control-plane-outage":
        await fed.stop_api()
    else:
        await fed.chaos(p["cluster"], _switches(fault, on=True))
    return {}


async def heal(fed: LocalFederation, fault: Fault, done: dict[str, Any] | None = None) -> None:
    """Undo the fault; ``done`` is what :func:`inject` answered."""
    done = done or {}
    clusters = affected_clusters(fed, fault)
    if "apiserver" in done:
        await fed.start_api(int(done["apiserver"]))
    elif "etcdMember" in done:
        await fed.start_etcd_member(int(done["etcdMember"]))
    elif fault.kind in ("crash", "zone-outage", "region-outage"):
        await fed.restart(clusters)
    elif fault.kind == "flap":
        fed.stop_flap(fault.params["cluster"])
        await fed.restart(clusters)
    elif fault.kind == "control-plane-outage":
        await fed.start_api()
    else:
        await fed.chaos(fault.params["cluster"], _switches(fault, on=False))


def _switches(fault: Fault, *, on: bool) -> dict[str, Any]:
    p = fault.params
    if fault.kind == "partition":
        return {"partitioned": on}
    if fault.kind == "blackhole":
        return {"dataPlaneBlackholed": on}
    if fault.kind == "latency":
        return {"apiLatency": float(p["seconds"]) if on else 0}
    if fault.kind == "drop-probes":
        return {"probeDropFraction": float(p["fraction"]) if on else 0}
    if fault.kind == "degrade":
        pods = p.get("pods", "all")
        return {"unreadyPods": {str(p["service"]): (pods if pods == "all" else int(pods)) if on else None}}
    raise ValueError(f"no chaos switch for a {fault.kind} fault")
