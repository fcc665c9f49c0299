"""Network namespaces for packet-level faults (issue 16): the plan, as data, with no I/O.

``ubernetes up --netns`` puts every member cluster, the federation API and the DNS responder
in network namespaces of their own, and clients in client namespaces, all joined by veth
pairs to one bridge inside a launcher namespace. This module turns a topology into that
layout and into the exact ``ip``, ``iptables`` and ``tc`` commands that build it, break it
and tear it down; an executor runs them. Keeping the plan pure lets the tests check every
command without root, and lets a reader see in one place what each fault does to packets.

Names and addresses:

- Every namespace is named ``ubn<RUN>-<role>``, where ``RUN`` is the launcher's pid: the
  next start finds what a SIGKILLed launcher left behind by that prefix alone
  (:func:`leftovers`), and never touches another live run's namespaces.
- Addresses come from the benchmarking range 198.18.0.0/15 (RFC 2544) only: the links use
  ``198.18.<subnet>.0/24`` (the root namespace's end ``.1``, the API ``.2``, the responder
  ``.3``, member *i* ``.10+i``, client *j* ``.200+j``), and member *i*'s load-balancer pool
  is ``198.19.<subnet>.<16 i>/28``, a local route on the member's loopback (so its data plane
  binds any address in it, as on 127/8), routed through the member's link everywhere else.
  No default route exists in any namespace: nothing is routed out.

The faults (each a list of commands to apply and the list that heals it):

| fault | what the packets see |
|---|---|
| ``partition`` | between a member and the federation API only: both directions, ``in`` (API to member) or ``out`` (member to API) dropped; its LBs keep answering clients and peers |
| ``blackhole`` | TCP to the member's LB pool dropped (the data-plane ports); its API stays reachable |
| ``loss`` | P % of the packets on the member's link dropped at random (``-m statistic``), each direction |
| ``latency`` | ``tc netem delay`` on the namespace's link where the kernel has netem; else iptables REDIRECTs connections and datagrams into the namespace to a delaying relay of ours (``federation.launch.delayrelay``) |
| ``link-down`` | the bridge end of the member's veth (or every member of a zone or region) down |
| ``flap`` | ``link-down`` and back, every period (the executor keeps time) |
| ``slow-dns`` | ``latency`` on the DNS responder's link |
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Iterable

from federation.launch.topology import Topology

PREFIX = "ubn"
LINK_NET = ipaddress.ip_network("198.18.0.0/16")
POOL_NET = ipaddress.ip_network("198.19.0.0/16")
BRIDGE = "br0"
INNER = "eth0"  # the namespace's end of its veth
MAX_MEMBERS = 16  # /28 pools in one /24
FAULTS = ("partition", "blackhole", "loss", "latency", "link-down", "flap", "slow-dns")
DIRECTIONS = ("both", "in", "out")
_NAME = re.compile(rf"^{PREFIX}(\d+)-[a-z0-9-]+$")

Command = tuple[str, ...]


class NetnsPlanError(ValueError):
    pass


@dataclass(frozen=True)
class Node:
    """One namespace on the bridge: who runs in it, its link and its address."""

    role: str  # "api", "dns", "member", "client"
    name: str  # the cluster's name for a member, else the role (client-N for clients)
    netns: str
    veth: str  # the bridge end, inside the launcher namespace
    address: str
    lb_pool: str | None = None  # members only
    zones: tuple[str, ...] = ()
    region: str = ""


@dataclass(frozen=True)
class NetnsPlan:
    run: str  # "ubn<pid>"
    subnet: int
    launcher: str  # the namespace holding the bridge
    host_veth: str  # the root namespace's end of its link to the bridge
    host_address: str
    nodes: tuple[Node, ...]
    setup: tuple[Command, ...] = field(default=())
    teardown: tuple[Command, ...] = field(default=())

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise NetnsPlanError(f"no namespace for {name!r}; known: {', '.join(n.name for n in self.nodes)}")

    @property
    def api(self) -> Node:
        return self.node("api")

    @property
    def dns(self) -> Node:
        return self.node("dns")

    @property
    def members(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.role == "member")

    @property
    def clients(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.role == "client")

    def members_in(self, *, cluster: str | None = None, zone: str | None = None, region: str | None = None) -> tuple[Node, ...]:
        found = tuple(m for m in self.members if m.name == cluster or (zone is not None and zone in m.zones)
                      or (region is not None and m.region == region))
        if not found:
            what = cluster or (f"zone {zone}" if zone else f"region {region}")
            raise NetnsPlanError(f"no member cluster matches {what}; known: {', '.join(m.name for m in self.members)}")
        return found


@dataclass(frozen=True)
class Relay:
    """A delaying relay of ours, run inside ``netns`` (where the kernel has no netem)."""

    netns: str
    tcp_port: int
    udp_port: int
    delay_ms: float
    jitter_ms: float
    udp_target: str  # where datagrams go on: the namespace's own address (its servers bind it)
    udp_dport: int | None = None  # the one UDP port relayed (REDIRECT loses a datagram's port); None: TCP only


@dataclass(frozen=True)
class FaultPlan:
    apply: tuple[Command, ...]
    heal: tuple[Command, ...]
    relay: Relay | None = None
    links: tuple[tuple[str, str], ...] = ()  # (launcher netns, veth) a flap toggles


def run_name(pid: int) -> str:
    return f"{PREFIX}{pid}"


def run_of(netns: str) -> int | None:
    """The launcher pid a namespace of ours belongs to (None: not ours)."""
    m = _NAME.match(netns)
    return int(m.group(1)) if m else None


def leftovers(names: Iterable[str], *, alive: Iterable[int]) -> list[str]:
    """Namespaces of ours whose launcher is gone: what the next start deletes."""
    live = set(alive)
    return sorted(n for n in names if (pid := run_of(n)) is not None and pid not in live)


def _ip(netns: str, *args: str) -> Command:
    return ("ip", "-n", netns, *args)


def _nsexec(netns: str, *args: str) -> Command:
    return ("ip", "netns", "exec", netns, *args)


def plan(topology: Topology, *, pid: int, subnet: int = 0, clients: int = 1) -> NetnsPlan:
    """The namespaces, links, addresses and routes for ``topology``."""
    if not 0 <= subnet <= 255:
        raise NetnsPlanError(f"subnet {subnet}: must be 0-255 (the third octet of 198.18.x.0/24)")
    if len(topology.clusters) > MAX_MEMBERS:
        raise NetnsPlanError(f"{len(topology.clusters)} member clusters: netns mode holds at most {MAX_MEMBERS}")
    if not 1 <= clients <= 50:
        raise NetnsPlanError(f"{clients} client namespaces: must be 1-50")
    run = run_name(pid)
    link = f"198.18.{subnet}"
    nodes = [Node("api", "api", f"{run}-api", "v-api", f"{link}.2"),
             Node("dns", "dns", f"{run}-dns", "v-dns", f"{link}.3")]
    for i, c in enumerate(topology.clusters):
        nodes.append(Node("member", c.name, f"{run}-m{i}", f"v-m{i}", f"{link}.{10 + i}",
                          lb_pool=f"198.19.{subnet}.{16 * i}/28", zones=c.zones, region=c.region))
    for j in range(clients):
        nodes.append(Node("client", f"client-{j}", f"{run}-c{j}", f"v-c{j}", f"{link}.{200 + j}"))
    launcher = f"{run}-launch"
    host_veth = f"{run}h"
    if len(host_veth) > 15:
        raise NetnsPlanError(f"pid {pid} too long for an interface name")
    setup: list[Command] = [
        ("ip", "netns", "add", launcher),
        _ip(launcher, "link", "set", "lo", "up"),
        _ip(launcher, "link", "add", BRIDGE, "type", "bridge"),
        _ip(launcher, "link", "set", BRIDGE, "up"),
        # the root namespace's own link to the bridge: the launcher, the CLI and dig reach every node
        ("ip", "link", "add", host_veth, "type", "veth", "peer", "name", "v-host", "netns", launcher),
        _ip(launcher, "link", "set", "v-host", "master", BRIDGE, "up"),
        ("ip", "addr", "add", f"{link}.1/24", "dev", host_veth),
        ("ip", "link", "set", host_veth, "up"),
    ]
    for n in nodes:
        setup += [
            ("ip", "netns", "add", n.netns),
            _ip(n.netns, "link", "set", "lo", "up"),
            _ip(launcher, "link", "add", n.veth, "type", "veth", "peer", "name", INNER, "netns", n.netns),
            _ip(launcher, "link", "set", n.veth, "master", BRIDGE, "up"),
            _ip(n.netns, "addr", "add", f"{n.address}/24", "dev", INNER),
            _ip(n.netns, "link", "set", INNER, "up"),
        ]
    for m in (n for n in nodes if n.role == "member"):
        assert m.lb_pool is not None
        setup.append(("ip", "route", "add", m.lb_pool, "via", m.address, "dev", host_veth))
        for n in nodes:
            if n is m:
                setup.append(_ip(n.netns, "route", "add", "local", m.lb_pool, "dev", "lo"))
            else:
                setup.append(_ip(n.netns, "route", "add", m.lb_pool, "via", m.address))
    names = [n.netns for n in nodes] + [launcher]
    # deleting the launcher's namespace takes host_veth with it only some time later: delete it first
    teardown = (("ip", "link", "del", host_veth), *(("ip", "netns", "delete", name) for name in names))
    return NetnsPlan(run, subnet, launcher, host_veth, f"{link}.1", tuple(nodes), tuple(setup), teardown)


def _rule(netns: str, table: str | None, chain: str, tag: str, *match: str) -> tuple[Command, Command]:
    base = ("iptables", *(("-t", table) if table else ()), "-w")
    rule = (chain, *match, "-m", "comment", "--comment", tag)
    jump = ("-j", "DROP") if table is None else ()
    return (_nsexec(netns, *base, "-I", *rule, *jump), _nsexec(netns, *base, "-D", *rule, *jump))


def _pairs(pairs: list[tuple[Command, Command]]) -> tuple[tuple[Command, ...], tuple[Command, ...]]:
    return tuple(a for a, _ in pairs), tuple(h for _, h in reversed(pairs))


def fault(p: NetnsPlan, kind: str, *, fault_id: str, cluster: str | None = None, zone: str | None = None,
          region: str | None = None, direction: str = "both", percent: float = 0.0, ms: float = 0.0,
          jitter_ms: float = 0.0, netem: bool = False, relay_ports: tuple[int, int] = (15001, 15002),
          udp_dport: int | None = None) -> FaultPlan:
    """The commands that apply and heal one fault. ``fault_id`` tags every iptables rule.

    ``udp_dport``: the UDP port a relayed latency delays (slow-dns: the responder's port);
    datagrams to other ports pass undelayed, since a REDIRECTed datagram no longer says
    which port it was sent to."""
    if kind not in FAULTS:
        raise NetnsPlanError(f"unknown packet-level fault {kind!r}; known: {', '.join(FAULTS)}")
    if direction not in DIRECTIONS:
        raise NetnsPlanError(f"direction {direction!r}: must be one of {', '.join(DIRECTIONS)}")
    tag = f"{p.run}:{fault_id}"
    if kind in ("link-down", "flap"):
        targets = p.members_in(cluster=cluster, zone=zone, region=region)
        down = tuple(_ip(p.launcher, "link", "set", t.veth, "down") for t in targets)
        up = tuple(_ip(p.launcher, "link", "set", t.veth, "up") for t in targets)
        return FaultPlan(down, up, links=tuple((p.launcher, t.veth) for t in targets))
    if kind == "slow-dns":
        return _latency(p, p.dns, tag, ms=ms, jitter_ms=jitter_ms, netem=netem, relay_ports=relay_ports,
                        udp_dport=udp_dport)
    if cluster is None:
        raise NetnsPlanError(f"a {kind} fault needs a cluster")
    member = p.members_in(cluster=cluster)[0]
    pairs: list[tuple[Command, Command]] = []
    if kind == "partition":
        if direction in ("both", "in"):
            pairs.append(_rule(member.netns, None, "INPUT", tag, "-s", p.api.address))
        if direction in ("both", "out"):
            pairs.append(_rule(member.netns, None, "OUTPUT", tag, "-d", p.api.address))
    elif kind == "blackhole":
        assert member.lb_pool is not None
        pairs.append(_rule(member.netns, None, "INPUT", tag, "-d", member.lb_pool, "-p", "tcp"))
    elif kind == "loss":
        if not 0 < percent <= 100:
            raise NetnsPlanError(f"loss {percent}%: must be more than 0 and at most 100")
        chance = ("-m", "statistic", "--mode", "random", "--probability", f"{percent / 100:.4f}")
        if direction in ("both", "in"):
            pairs.append(_rule(member.netns, None, "INPUT", tag, "-i", INNER, *chance))
        if direction in ("both", "out"):
            pairs.append(_rule(member.netns, None, "OUTPUT", tag, "-o", INNER, *chance))
    elif kind == "latency":
        return _latency(p, member, tag, ms=ms, jitter_ms=jitter_ms, netem=netem, relay_ports=relay_ports,
                        udp_dport=udp_dport)
    apply, heal = _pairs(pairs)
    return FaultPlan(apply, heal)


def _latency(p: NetnsPlan, node: Node, tag: str, *, ms: float, jitter_ms: float, netem: bool,
             relay_ports: tuple[int, int], udp_dport: int | None) -> FaultPlan:
    if ms <= 0 or jitter_ms < 0 or jitter_ms > ms:
        raise NetnsPlanError(f"latency {ms} ms, jitter {jitter_ms} ms: need ms > 0 and 0 <= jitter <= ms")
    if netem:
        delay = ("delay", f"{ms:g}ms", *((f"{jitter_ms:g}ms",) if jitter_ms else ()))
        return FaultPlan((_ip(node.netns, "link", "set", INNER, "up"),
                          _nsexec(node.netns, "tc", "qdisc", "add", "dev", INNER, "root", "netem", *delay)),
                         (_nsexec(node.netns, "tc", "qdisc", "del", "dev", INNER, "root"),))
    tcp, udp = relay_ports
    pairs = [
        # connections and datagrams arriving on the link go to the relay; its own onward
        # traffic starts inside the namespace (OUTPUT), so it is not redirected again.
        # Only a SYN opens a redirected connection: conntrack starts in the namespace with
        # this first nat rule and picks established connections up mid-stream, and without
        # --syn their next packet would be redirected to the relay, which knows nothing of
        # them (the responder's watch of the API stalled that way: tried)
        _rule(node.netns, "nat", "PREROUTING", tag, "-i", INNER, "-p", "tcp", "--syn", "-j", "REDIRECT", "--to-ports", str(tcp)),
    ]
    if udp_dport is not None:
        pairs.append(_rule(node.netns, "nat", "PREROUTING", tag, "-i", INNER, "-p", "udp", "--dport", str(udp_dport),
                           "-j", "REDIRECT", "--to-ports", str(udp)))
    apply, heal = _pairs(pairs)
    return FaultPlan(apply, heal, relay=Relay(node.netns, tcp, udp, ms, jitter_ms, node.address, udp_dport))


def resolv_conf(nameserver: str) -> str:
    """``/etc/netns/<ns>/resolv.conf``: what glibc in that namespace asks (``ip netns exec`` binds it)."""
    return f"nameserver {nameserver}\noptions timeout:1 attempts:1\n"
