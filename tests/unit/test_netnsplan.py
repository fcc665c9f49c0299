"""The network-namespace planner (issue 16): names, addresses, links and each fault's commands."""

from __future__ import annotations

import ipaddress

import pytest

from federation.launch import netnsplan as np
from federation.launch.topology import DEFAULT

BENCH = ipaddress.ip_network("198.18.0.0/15")


def test_names_carry_the_run_and_addresses_stay_in_the_benchmarking_range() -> None:
    p = np.plan(DEFAULT, pid=4242, subnet=7, clients=2)
    assert p.run == "ubn4242" and p.launcher == "ubn4242-launch"
    assert [n.role for n in p.nodes] == ["api", "dns", "member", "member", "member", "client", "client"]
    for n in p.nodes:
        assert n.netns.startswith("ubn4242-") and np.run_of(n.netns) == 4242
        assert ipaddress.ip_address(n.address) in BENCH
        assert len(n.veth) <= 15
    assert (p.api.address, p.dns.address, p.host_address) == ("198.18.7.2", "198.18.7.3", "198.18.7.1")
    pools = [ipaddress.ip_network(m.lb_pool) for m in p.members]
    assert all(pool.subnet_of(BENCH) for pool in pools)
    assert len(set(pools)) == 3 and not any(a.overlaps(b) for i, a in enumerate(pools) for b in pools[i + 1:])
    assert p.node("aws-us-east-1b").address == "198.18.7.11"


def test_no_command_routes_out_of_the_range() -> None:
    p = np.plan(DEFAULT, pid=1, clients=1)
    for cmd in p.setup:
        assert "default" not in cmd
        for word in cmd:
            try:
                net = ipaddress.ip_network(word, strict=False)
            except ValueError:
                continue
            assert net.subnet_of(BENCH), cmd


def test_each_member_binds_its_pool_locally_and_every_other_node_routes_it_through_the_member() -> None:
    p = np.plan(DEFAULT, pid=9)
    m = p.members[1]
    assert ("ip", "-n", m.netns, "route", "add", "local", m.lb_pool, "dev", "lo") in p.setup
    for n in p.nodes:
        if n is not m:
            assert ("ip", "-n", n.netns, "route", "add", m.lb_pool, "via", m.address) in p.setup
    assert ("ip", "route", "add", m.lb_pool, "via", m.address, "dev", p.host_veth) in p.setup


def test_teardown_deletes_every_namespace_it_made() -> None:
    p = np.plan(DEFAULT, pid=9)
    made = {c[3] for c in p.setup if c[:3] == ("ip", "netns", "add")}
    assert {c[3] for c in p.teardown if c[1] == "netns"} == made
    assert p.teardown[0] == ("ip", "link", "del", p.host_veth)


@pytest.mark.parametrize("names, alive, left", [
    (["ubn10-api", "ubn10-m0", "ubn20-api", "other", "ubnx-api"], [20], ["ubn10-api", "ubn10-m0"]),
    (["ubn10-api"], [10], []),
    ([], [], []),
])
def test_leftovers_are_ours_and_of_dead_launchers_only(names: list[str], alive: list[int], left: list[str]) -> None:
    assert np.leftovers(names, alive=alive) == left


def test_partition_drops_only_traffic_with_the_api_in_the_chosen_direction() -> None:
    p = np.plan(DEFAULT, pid=5)
    m = p.node("aws-us-east-1a")
    both = np.fault(p, "partition", fault_id="f1", cluster=m.name)
    assert len(both.apply) == 2 and len(both.heal) == 2
    joined = [" ".join(c) for c in both.apply]
    assert any(f"-I INPUT -s {p.api.address}" in c and c.endswith("-j DROP") for c in joined)
    assert any(f"-I OUTPUT -d {p.api.address}" in c for c in joined)
    assert all(c[:4] == ("ip", "netns", "exec", m.netns) for c in both.apply)
    assert all("ubn5:f1" in c for c in both.apply)
    # the heal deletes exactly the rules the fault inserted
    assert sorted(tuple(w if w != "-D" else "-I" for w in c) for c in both.heal) == sorted(both.apply)
    inward = np.fault(p, "partition", fault_id="f2", cluster=m.name, direction="in")
    assert [c for c in inward.apply if "INPUT" in c] and not [c for c in inward.apply if "OUTPUT" in c]
    outward = np.fault(p, "partition", fault_id="f3", cluster=m.name, direction="out")
    assert [c for c in outward.apply if "OUTPUT" in c] and not [c for c in outward.apply if "INPUT" in c]


def test_blackhole_drops_tcp_to_the_pool_and_loss_uses_random_statistic() -> None:
    p = np.plan(DEFAULT, pid=5)
    m = p.members[2]
    hole = np.fault(p, "blackhole", fault_id="b", cluster=m.name)
    assert len(hole.apply) == 1 and ("-d", m.lb_pool) == tuple(hole.apply[0][hole.apply[0].index("-d"):][:2])
    loss = np.fault(p, "loss", fault_id="l", cluster=m.name, percent=25)
    assert len(loss.apply) == 2
    assert all("--probability" in c and c[c.index("--probability") + 1] == "0.2500" for c in loss.apply)
    with pytest.raises(np.NetnsPlanError, match="loss 0"):
        np.fault(p, "loss", fault_id="l", cluster=m.name, percent=0)


def test_latency_uses_netem_when_the_kernel_has_it_else_our_relay() -> None:
    p = np.plan(DEFAULT, pid=5)
    m = p.members[0]
    with_netem = np.fault(p, "latency", fault_id="d", cluster=m.name, ms=100, jitter_ms=10, netem=True)
    assert with_netem.relay is None
    assert with_netem.apply[-1][-5:] == ("root", "netem", "delay", "100ms", "10ms")
    assert with_netem.heal == (("ip", "netns", "exec", m.netns, "tc", "qdisc", "del", "dev", "eth0", "root"),)
    relayed = np.fault(p, "latency", fault_id="d", cluster=m.name, ms=100, netem=False, relay_ports=(7001, 7002))
    assert relayed.relay == np.Relay(m.netns, 7001, 7002, 100, 0, m.address)
    assert any("REDIRECT" in c and "7001" in c and "tcp" in c for c in relayed.apply)
    # only connections opened after the fault: an established one picked up mid-stream by
    # conntrack must not be sent to the relay (it would stall)
    assert all("--syn" in c for c in relayed.apply if "tcp" in c)
    assert not any("udp" in c for c in relayed.apply)  # no UDP port named: TCP only
    slow = np.fault(p, "slow-dns", fault_id="s", ms=300, udp_dport=1053, relay_ports=(7001, 7002))
    assert slow.relay is not None and slow.relay.netns == p.dns.netns and slow.relay.udp_dport == 1053
    assert any("REDIRECT" in c and "7002" in c and "udp" in c and "1053" in c for c in slow.apply)


def test_link_down_and_flap_select_a_member_a_zone_or_a_region() -> None:
    p = np.plan(DEFAULT, pid=5)
    region = np.fault(p, "link-down", fault_id="r", region="us-east-1")
    assert [c[-2] for c in region.apply] == ["v-m0", "v-m1"] and all(c[-1] == "down" for c in region.apply)
    assert all(c[-1] == "up" for c in region.heal)
    zone = np.fault(p, "flap", fault_id="z", zone="europe-west1-b")
    assert zone.links == ((p.launcher, "v-m2"),)
    with pytest.raises(np.NetnsPlanError, match="no member cluster matches zone nowhere"):
        np.fault(p, "link-down", fault_id="x", zone="nowhere")


def test_bad_input_says_what_was_wrong() -> None:
    p = np.plan(DEFAULT, pid=5)
    with pytest.raises(np.NetnsPlanError, match="unknown packet-level fault 'melt'"):
        np.fault(p, "melt", fault_id="x", cluster="aws-us-east-1a")
    with pytest.raises(np.NetnsPlanError, match="direction 'up'"):
        np.fault(p, "partition", fault_id="x", cluster="aws-us-east-1a", direction="up")
    with pytest.raises(np.NetnsPlanError, match="subnet 300"):
        np.plan(DEFAULT, pid=5, subnet=300)
    assert np.resolv_conf("198.18.0.200").startswith("nameserver 198.18.0.200\n")
