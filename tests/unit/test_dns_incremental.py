"""A watch event changes the answer table in place (fedns.view, fedns.table, issue 20).

The incremental table must be the table a whole build gives for the same specs (a
property test over random sequences of puts and deletes), re-render only what a change
shows in (the touched names, CNAME chains into them, SRV additionals, the apex SOA), and
raise the serial once per change.
"""

from __future__ import annotations

import asyncio
import struct

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
from hypothesis import given, settings
from hypothesis import strategies as st

from fedns.records import collect
from fedns.table import WithSOA, build_table
from fedns.transfer import History
from fedns.view import ZoneView
from fedns.zone import A, ANY, SOA, SRV, ZoneConfig, to_wire

CONFIG = ZoneConfig(apexes=("example.com.", "clusterset.local."))


def reply(table, qname: str, qtype: str) -> dns.message.Message:
    """The table's answer as a full message (as the handler assembles it)."""
    wire_name = dns.name.from_text(qname).to_wire()
    question = wire_name + struct.pack("!HH", dns.rdatatype.from_text(qtype), 1)
    bits, v = table.lookup(wire_name.lower(), dns.rdatatype.from_text(qtype))
    header = struct.pack("!HHHHHH", 1, 0x8000 | bits, 1, v[0], v[1], v[2])
    return dns.message.from_wire(header + question + v[3])


def stored(prepared) -> tuple:
    """What a stored answer gives, without moving its round-robin cursor."""
    out = (prepared.flags, type(prepared).__name__, prepared.variants)
    if isinstance(prepared, WithSOA):
        out += (prepared.owner, prepared.apex, prepared.tails[prepared.apex])
    return out


def assert_same_table(incremental, whole) -> None:
    assert incremental.serial == whole.serial
    assert incremental.zone.nodes == whole.zone.nodes
    assert incremental.zone.shadowed == whole.zone.shadowed
    assert incremental.zone.rejected == whole.zone.rejected
    assert incremental.negative == whole.negative
    assert incremental.answers.keys() == whole.answers.keys()
    for key, prepared in whole.answers.items():
        assert stored(incremental.answers[key]) == stored(prepared), key
    assert {w: set(r) for w, r in incremental.reads.items()} == {w: set(r) for w, r in whole.reads.items()}
    assert incremental.readers == whole.readers


# -- the property: incremental == whole build ------------------------------------------------

OWNERS = [
    "a.example.com.", "b.example.com.", "x.y.a.example.com.", "_http._tcp.a.example.com.", "example.com.",
    "ns1.example.com.", "c.clusterset.local.", "out.example.org.", "y.a.example.com.",
]
TARGETS = {
    "A": st.sampled_from(["127.0.0.1", "127.0.0.2", "127.0.0.3"]),
    "AAAA": st.sampled_from(["fd00::1", "fd00::2"]),
    "CNAME": st.sampled_from([*OWNERS, "gone.example.com.", "www.example.org."]),
    "SRV": st.sampled_from(["0 10 80 a.example.com.", "0 10 80 b.example.com.", "1 1 53 c.clusterset.local.",
                            "0 0 1 nowhere.example.com."]),
    "TXT": st.sampled_from(["hello", "world"]),
}


@st.composite
def specs(draw):
    rtype = draw(st.sampled_from(sorted(TARGETS)))
    return {
        "name": draw(st.sampled_from(OWNERS)),
        "type": rtype,
        "ttl": draw(st.sampled_from([5, 30])),
        "targets": draw(st.lists(TARGETS[rtype], min_size=1, max_size=1 if rtype == "CNAME" else 3)),
    }


OPS = st.lists(
    st.tuples(st.sampled_from([f"obj{i}" for i in range(8)]), st.one_of(st.none(), specs(), st.just({"bad": 1}))),
    min_size=1,
    max_size=30,
)


@settings(max_examples=150, deadline=None)
@given(OPS)
def test_incremental_table_equals_a_whole_build(ops):
    view = ZoneView(CONFIG, clock=lambda: 1000)
    history = History()
    history.record(view.table)
    view.listeners.append(history.record)
    for name, spec in ops:
        serial, merged = view.serial, dict(view.catalog.merged)
        if spec is None:
            view.delete(name)
        else:
            view.put(name, spec)
        changed = view.catalog.merged != merged
        assert view.serial == serial + (1 if changed else 0), "the serial rises once per change"
        recordsets, problems = collect(view.specs)
        assert view.recordsets == recordsets
        assert sorted(view.catalog.problems()) == sorted(problems)
        assert_same_table(view.table, build_table(CONFIG, recordsets, view.serial))
    # The history's diffs, applied in order, lead from the empty zone to the current one.
    apex = to_wire("example.com.")
    from fedns.transfer import zone_contents

    records = set(zone_contents(build_table(CONFIG, [], 0).zone, apex).records)
    for diff in history.diffs.get(apex, ()):
        assert set(diff.removed) <= records
        records = (records - set(diff.removed)) | set(diff.added)
    assert records == set(zone_contents(view.table.zone, apex).records)


# -- a large view: what a change touches, and what it does not -------------------------------

N = 500  # services, 4 record sets each: large enough that a whole build would show in the times


def service_specs(i: int, shards: int = 2) -> dict[str, dict]:
    g = f"svc{i}.default.myfed.svc.example.com."
    r = f"svc{i}.default.myfed.svc.r1.example.com."
    return {
        f"g{i}": {"name": g, "type": "A", "ttl": 5, "targets": [f"127.1.{i // 250}.{i % 250 + k}" for k in range(shards)]},
        f"r{i}": {"name": r, "type": "CNAME", "ttl": 5, "targets": [g]},
        f"z{i}": {"name": f"svc{i}.default.myfed.svc.z1.r1.example.com.", "type": "CNAME", "ttl": 5, "targets": [r]},
        f"s{i}": {"name": f"_http._tcp.{g}", "type": "SRV", "ttl": 5, "targets": [f"0 10 80 {g}"]},
    }


def large_view() -> ZoneView:
    view = ZoneView(CONFIG, clock=lambda: 1000)
    specs = {}
    for i in range(N):
        specs.update(service_specs(i))
    view.replace(specs)
    assert view.record_count == 4 * N
    return view


def addresses(msg: dns.message.Message, section: str = "answer") -> list[str]:
    return sorted(str(r) for rs in getattr(msg, section) if rs.rdtype == A for r in rs)


def test_a_watch_event_rerenders_only_what_shows_the_change():
    view = large_view()
    table = view.table
    g = "svc7.default.myfed.svc.example.com."
    before = dict(table.answers)
    serial, steps = view.serial, view.steps
    view.put("g7", {"name": g, "type": "A", "ttl": 5, "targets": ["127.9.9.9"]})
    assert view.serial == serial + 1 and view.table is table and view.steps == steps + 1
    # the touched name, the chain into it, and the SRV record whose additional section shows it
    assert addresses(reply(table, g, "A")) == ["127.9.9.9"]
    chain = reply(table, "svc7.default.myfed.svc.z1.r1.example.com.", "A")
    assert [dns.rdatatype.to_text(rs.rdtype) for rs in chain.answer] == ["CNAME", "CNAME", "A"]
    assert addresses(chain) == ["127.9.9.9"]
    assert addresses(reply(table, f"_http._tcp.{g}", "SRV"), "additional") == ["127.9.9.9"]
    # the SOA carries the new serial, in its own answer and in a NODATA after a chain
    assert reply(table, "example.com.", "SOA").answer[0][0].serial == serial + 1
    nodata = reply(table, "svc7.default.myfed.svc.r1.example.com.", "AAAA")
    assert nodata.authority[0][0].serial == serial + 1 and nodata.answer[0].rdtype == dns.rdatatype.CNAME
    # untouched names keep their rendered answers (the very same objects) and their addresses
    changed = {k for k in before if table.answers.get(k) is not before[k]}
    touched = {to_wire(n) for n in (g, "svc7.default.myfed.svc.r1.example.com.",
                                    "svc7.default.myfed.svc.z1.r1.example.com.", f"_http._tcp.{g}", "example.com.",
                                    "clusterset.local.")}
    assert {w for w, _ in changed} <= touched
    assert len(changed) == 20  # 2 + 6 + 6 + 2 answers of the four names, SOA and ANY at both apexes
    assert addresses(reply(table, "svc8.default.myfed.svc.example.com.", "A")) == ["127.1.0.8", "127.1.0.9"]
    assert addresses(reply(table, "svc8.default.myfed.svc.z1.r1.example.com.", "A")) == ["127.1.0.8", "127.1.0.9"]
    assert_same_table(table, build_table(CONFIG, collect(view.specs)[0], view.serial))


def test_deleting_and_adding_names_in_a_large_view():
    view = large_view()
    table = view.table
    serial = view.serial
    g = "svc3.default.myfed.svc.example.com."
    view.delete("g3")  # the chain into it now ends at a name without A (the SRV below keeps it)
    assert view.serial == serial + 1
    msg = reply(table, "svc3.default.myfed.svc.z1.r1.example.com.", "A")
    assert msg.rcode() == dns.rcode.NOERROR and len(msg.answer) == 2 and msg.authority[0][0].serial == serial + 1
    assert addresses(reply(table, f"_http._tcp.{g}", "SRV"), "additional") == []
    view.delete("s3")  # and now at a name that does not exist
    msg = reply(table, "svc3.default.myfed.svc.z1.r1.example.com.", "A")
    assert msg.rcode() == dns.rcode.NXDOMAIN and len(msg.answer) == 2 and msg.authority[0][0].serial == serial + 2
    serial += 1
    view.put("new", {"name": "fresh.a.b.example.com.", "type": "TXT", "targets": ["hi"]})
    assert view.serial == serial + 2
    assert reply(table, "b.example.com.", "A").rcode() == dns.rcode.NOERROR  # an empty non-terminal now
    view.delete("new")
    assert view.serial == serial + 3
    assert reply(table, "b.example.com.", "A").rcode() == dns.rcode.NXDOMAIN
    view.put("g3", service_specs(3)["g3"])
    view.put("s3", service_specs(3)["s3"])
    assert addresses(reply(table, "svc3.default.myfed.svc.z1.r1.example.com.", "A")) == ["127.1.0.3", "127.1.0.4"]
    assert_same_table(table, build_table(CONFIG, collect(view.specs)[0], view.serial))


def test_a_relist_applies_its_difference_in_place():
    view = large_view()
    specs = dict(view.specs)
    specs["g5"] = {**specs["g5"], "targets": ["127.8.8.8"]}
    del specs["s6"]
    serial, steps, builds = view.serial, view.steps, view.whole_builds
    view.replace(specs)
    assert view.serial == serial + 1 and view.whole_builds == builds and view.steps == steps + 1
    assert addresses(reply(view.table, "svc5.default.myfed.svc.example.com.", "A")) == ["127.8.8.8"]
    view.replace(specs)  # the same list again: nothing changes
    assert view.serial == serial + 1


def test_a_cname_beside_data_waits_until_the_data_is_gone():
    """A zone name losing its shards: the federation writes the CNAME before it deletes
    the A record set. The A is served meanwhile, and the moment is counted, not logged."""
    view = ZoneView(CONFIG, clock=lambda: 1000)
    name = "web.default.myfed.svc.z1.r1.example.com."
    view.put("a", {"name": name, "type": "A", "targets": ["127.0.0.1"]})
    view.put("c", {"name": name, "type": "CNAME", "targets": ["web.default.myfed.svc.r1.example.com."]})
    assert addresses(reply(view.table, name, "A")) == ["127.0.0.1"]
    assert view.cname_shadows == {"current": 1, "total": 1}
    assert view.problems == []  # not a problem of the records: the usual moment of a type change
    view.delete("a")
    assert [rs.rdtype for rs in reply(view.table, name, "A").answer] == [dns.rdatatype.CNAME]
    assert view.cname_shadows == {"current": 0, "total": 1}
    view.put("a", {"name": name, "type": "A", "targets": ["127.0.0.2"]})  # and back: the A wins again
    assert addresses(reply(view.table, name, "A")) == ["127.0.0.2"]
    assert view.cname_shadows == {"current": 1, "total": 2}
    assert_same_table(view.table, build_table(CONFIG, collect(view.specs)[0], view.serial))


def test_a_change_outside_the_answer_sets_still_moves_history_by_the_change():
    view = ZoneView(CONFIG, clock=lambda: 1000)
    history = History()
    history.record(view.table)
    view.listeners.append(history.record)
    view.replace({"a": {"name": "a.example.com.", "type": "A", "targets": ["127.0.0.1"]}})
    view.put("a", {"name": "a.example.com.", "type": "A", "targets": ["127.0.0.2"]})
    apex = to_wire("example.com.")
    last = history.diffs[apex][-1]
    assert last.removed == (("a.example.com.", "A", 5, "127.0.0.1"),)
    assert last.added == (("a.example.com.", "A", 5, "127.0.0.2"),)
    assert history.current[apex].serial == view.serial
    assert history.chain(apex, view.serial - 2) is not None


def test_the_soa_answer_and_any_at_the_apex_follow_the_serial():
    view = ZoneView(CONFIG, clock=lambda: 1000)
    for i in range(3):
        view.put(f"o{i}", {"name": f"n{i}.example.com.", "type": "A", "targets": ["127.0.0.1"]})
        for qtype in ("SOA", "ANY"):
            assert reply(view.table, "example.com.", qtype).answer[0][0].serial == view.serial
        assert reply(view.table, "clusterset.local.", "SOA").answer[0][0].serial == view.serial
        assert reply(view.table, "nope.example.com.", "A").authority[0][0].serial == view.serial
    assert (to_wire("example.com."), SOA) in view.table.answers and (to_wire("example.com."), ANY) in view.table.answers
    assert (to_wire("n0.example.com."), SRV) not in view.table.answers


def test_a_large_first_list_is_one_whole_build(monkeypatch):
    import fedns.view

    monkeypatch.setattr(fedns.view, "WHOLE_BUILD", 100)
    view = large_view()
    assert view.whole_builds == 1 and view.steps == 0
    view.put("g1", {"name": "svc1.default.myfed.svc.example.com.", "type": "A", "targets": ["127.7.7.7"]})
    assert view.whole_builds == 1 and view.steps == 1
    assert_same_table(view.table, build_table(CONFIG, collect(view.specs)[0], view.serial))


async def test_a_whole_build_in_a_thread_keeps_the_changes_made_meanwhile(monkeypatch):
    import fedns.view

    monkeypatch.setattr(fedns.view, "WHOLE_BUILD", 100)
    view = ZoneView(CONFIG, clock=lambda: 1000)
    specs = {}
    for i in range(100):
        specs.update(service_specs(i))
    view.replace(specs)
    await asyncio.sleep(0.05)  # the build is under way in its thread
    view.put("g1", {"name": "svc1.default.myfed.svc.example.com.", "type": "A", "targets": ["127.7.7.7"]})
    view.delete("z2")
    await view.settled()
    assert view.whole_builds == 1 and view.record_count == 399
    assert addresses(reply(view.table, "svc1.default.myfed.svc.example.com.", "A")) == ["127.7.7.7"]
    assert_same_table(view.table, build_table(CONFIG, collect(view.specs)[0], view.serial))
    await view.close()


async def test_a_burst_of_events_is_one_change():
    view = ZoneView(CONFIG, clock=lambda: 1000)
    serial = view.serial
    for i in range(50):
        view.put(f"o{i}", {"name": f"n{i}.example.com.", "type": "A", "targets": ["127.0.0.1"]})
    assert view.serial == serial  # not yet: the burst is applied together
    await view.settled()
    assert view.serial == serial + 1 and view.record_count == 50
    await view.close()
