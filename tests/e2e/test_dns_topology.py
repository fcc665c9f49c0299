"""Topology-aware answers (fedns.topology) over real sockets: by client address and by ECS."""

from __future__ import annotations

import dns.edns
import dns.message
import dns.query
import pytest

from test_dns_server import Running

from fedns.records import collect
from fedns.topology import ClientTopology, order

G = "web.default.myfed.svc.example.com."
SRV = "_http._tcp." + G
PLACEMENTS = [
    {"target": "127.10.1.1", "cluster": "aws-us-east-1a", "region": "us-east-1", "zones": ["us-east-1a"]},
    {"target": "127.10.2.1", "cluster": "aws-us-east-1b", "region": "us-east-1", "zones": ["us-east-1b"]},
    {"target": "127.10.3.1", "cluster": "gcp-europe-west1-b", "region": "europe-west1", "zones": ["europe-west1-b"]},
]
RECORDS = [
    {"name": G, "type": "A", "ttl": 5, "targets": ["127.10.1.1", "127.10.2.1", "127.10.3.1"], "placements": PLACEMENTS},
    {"name": SRV, "type": "SRV", "ttl": 5, "targets": ["0 100 80 " + G]},
    {"name": "plain.example.com.", "type": "A", "ttl": 5, "targets": ["127.0.0.9"]},
]
TOPOLOGY = [
    {"cidr": "127.0.0.0/8", "region": "europe-west1", "zone": "europe-west1-b"},
    {"cidr": "10.1.0.0/16", "region": "us-east-1", "zone": "us-east-1b"},
    {"cidr": "10.2.0.0/16", "region": "us-east-1", "zone": "us-east-1c"},  # no shard in that zone
]


def addresses(port, name=G, *, subnet=None, rdtype="A", section="answer"):
    options = [dns.edns.ECSOption(subnet, 24)] if subnet else []
    q = dns.message.make_query(name, rdtype, use_edns=0, options=options)
    reply = dns.query.udp(q, "127.0.0.1", port=port, timeout=2)
    out = [r.address for rrset in getattr(reply, section) if rrset.rdtype == 1 for r in rrset]
    return out, reply


def test_order_groups_zone_region_rest():
    rs = collect([RECORDS[0]])[0][0]
    o = order(rs, ("us-east-1", "us-east-1b"), nearest_only=False)
    assert o.rdatas == ("127.10.2.1", "127.10.1.1", "127.10.3.1") and o.tiers == (1, 1, 1)
    o = order(rs, ("us-east-1", "us-east-1c"), nearest_only=True)
    assert o.rdatas == ("127.10.1.1", "127.10.2.1") and o.tiers == (2,)
    topo = ClientTopology.from_entries(TOPOLOGY + [{"cidr": "10.1.2.0/24", "region": "x", "zone": "x1"}])
    assert topo.of_ip("10.1.2.3") == ("x", "x1") and topo.of_ip("10.1.9.9") == ("us-east-1", "us-east-1b")
    assert topo.of_ip("192.0.2.1") is None
    with pytest.raises(ValueError):
        ClientTopology.from_entries([{"cidr": "nonsense", "region": "r"}])


@pytest.fixture(scope="module")
def server():
    running = Running(records=RECORDS, client_topology=TOPOLOGY)
    yield running
    running.close()


def test_nearest_first_by_address_and_by_client_subnet(server):
    # The client is on 127.0.0.1: europe-west1-b first, then the rest.
    got, _ = addresses(server.port)
    assert got[0] == "127.10.3.1" and sorted(got) == ["127.10.1.1", "127.10.2.1", "127.10.3.1"]
    # ECS from us-east-1b: its own zone, then its region, then Europe; the scope comes back.
    got, reply = addresses(server.port, subnet="10.1.2.0")
    assert got == ["127.10.2.1", "127.10.1.1", "127.10.3.1"]
    ecs = [o for o in reply.options if isinstance(o, dns.edns.ECSOption)][0]
    assert ecs.srclen == 24 and ecs.scopelen == 16
    # us-east-1c has no shard: same region first, round robin inside it.
    firsts = set()
    for _ in range(6):
        got, _ = addresses(server.port, subnet="10.2.0.0")
        assert set(got[:2]) == {"127.10.1.1", "127.10.2.1"} and got[2] == "127.10.3.1"
        firsts.add(got[0])
    assert firsts == {"127.10.1.1", "127.10.2.1"}
    # SRV additional records are ordered too; names without placements are unchanged.
    got, _ = addresses(server.port, SRV, subnet="10.1.2.0", rdtype="SRV", section="additional")
    assert got[0] == "127.10.2.1"
    assert addresses(server.port, "plain.example.com.", subnet="10.1.2.0")[0] == ["127.0.0.9"]
    # Over TCP too.
    q = dns.message.make_query(G, "A", use_edns=0, options=[dns.edns.ECSOption("10.1.2.0", 24)])
    reply = dns.query.tcp(q, "127.0.0.1", port=server.port, timeout=2)
    assert [r.address for r in reply.answer[0]][0] == "127.10.2.1"


def test_nearest_only_answers_the_nearest_level():
    running = Running(records=RECORDS, client_topology=TOPOLOGY, nearest_only=True)
    try:
        assert addresses(running.port)[0] == ["127.10.3.1"]
        assert addresses(running.port, subnet="10.1.2.0")[0] == ["127.10.2.1"]
        assert sorted(addresses(running.port, subnet="10.2.0.0")[0]) == ["127.10.1.1", "127.10.2.1"]
        assert len(addresses(running.port, subnet="192.0.2.0")[0]) == 3  # not in the map: everything
    finally:
        running.close()
