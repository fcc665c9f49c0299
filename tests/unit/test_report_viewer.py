"""The report viewer's pure parts (issue 17): reading events.jsonl back (a cut last line is
dropped, any other bad line is an error naming it), the lanes as run-length segments, an
incident's steps in order with their latencies, and which report names are refused."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings, strategies as hs

from federation.experiments.eventsfile import EventsFileError, parse_bytes, parse_events
from federation.ui import reporttimeline
from federation.ui.reports import name_problem

A, B = "127.1.0.10", "127.2.0.10"
G = "web.default.myfed.svc.example.com."


def lines(events):
    return "".join(json.dumps(e, sort_keys=True) + "\n" for e in events)


event = hs.fixed_dictionaries({
    "t": hs.floats(0, 1e4, allow_nan=False), "kind": hs.sampled_from(["dns", "client", "condition", "fault"]),
    "name": hs.text(min_size=0, max_size=12),  # unicode: multi-byte characters can be cut too
})


@settings(max_examples=200, deadline=None)
@given(hs.lists(event, max_size=8), hs.data())
def test_a_file_cut_at_any_byte_reads_as_the_events_before_the_cut(events, data):
    raw = lines(events).encode()
    cut = data.draw(hs.integers(0, len(raw)))
    read = parse_bytes(raw[:cut])
    whole = raw[:cut].count(b"\n")  # lines that got their newline are kept
    assert read.events[:whole] == events[:whole]
    assert len(read.events) in (whole, whole + 1)  # the cut line kept only when it still parses
    assert read.truncated == (len(read.events) == whole and cut > 0 and not raw[:cut].endswith(b"\n")
                              and raw[:cut].rsplit(b"\n", 1)[-1].strip() != b"")


@pytest.mark.parametrize("text, problem", [
    ('{"t": 0, "kind": "meta"}\nnot json\n{"t": 1, "kind": "end"}\n', "line 2: not JSON"),
    ('[1, 2]\n', "line 1: expected a JSON object, got list"),
    ('{"t": -1, "kind": "dns"}\n', 'line 1: "t" must be a number of seconds >= 0, got -1'),
    ('{"t": true, "kind": "dns"}\n', 'line 1: "t" must be a number'),
    ('{"t": 1}\n', 'line 1: "kind" must be a non-empty string, got None'),
])
def test_a_bad_line_inside_the_file_is_an_error_that_names_it(text, problem):
    with pytest.raises(EventsFileError, match="^run/events.jsonl, " + problem.replace("[", r"\[").replace("(", r"\(")):
        parse_events(text, source="run/events.jsonl")


def test_a_cut_last_line_is_dropped_and_said():
    read = parse_events('{"t": 0, "kind": "meta"}\n{"t": 1.5, "kind": "dn', source="x")
    assert read.truncated and [e["kind"] for e in read.events] == ["meta"]
    assert read.warnings == ("x, line 2: cut short (the run stopped while writing it); dropped",)
    assert parse_bytes('{"t": 0, "kind": "meta", "s": "é"}\n{"t": 1, "kind": "dns", "s": "é'.encode()[:-1]).truncated
    with pytest.raises(EventsFileError, match="not UTF-8 at byte 1"):
        parse_bytes(b'{\xff"t": 0}\n{"t": 1, "kind": "end"}\n')


def test_unknown_kinds_and_a_missing_meta_are_warnings_not_errors():
    read = parse_events('{"t": 0, "kind": "sparkle"}\n')
    assert read.unknown_kinds == ("sparkle",) and len(read.warnings) == 2 and read.meta is None


@given(hs.lists(hs.tuples(hs.floats(0, 100), hs.sampled_from("abc")), max_size=30))
def test_segments_cover_every_sample_with_no_two_neighbours_alike(raw):
    samples = [(t, s, None) for t, s in sorted(raw, key=lambda x: x[0])]
    segs = reporttimeline.segments(samples, end=100.0)
    assert sum(s["samples"] for s in segs) == len(samples)
    assert all(a["state"] != b["state"] and a["to"] == b["from"] for a, b in zip(segs, segs[1:]))
    assert not segs or (segs[0]["from"] == samples[0][0] and segs[-1]["to"] == 100.0)


def crash_run():
    meta = {"t": 0.0, "kind": "meta", "scenario": "cluster-crash", "ttl": 2, "clientTimeout": 1.0, "names": [G],
            "clusters": [{"name": "a", "region": "r", "zones": ["z"]}, {"name": "b", "region": "r", "zones": ["y"]}],
            "expect": ["converges"]}
    fault = {"kind": "fault", "id": "crash", "fault": "crash", "what": "crash a", "addresses": [A], "clusters": ["a"]}
    return [meta, {"t": 1.0, "kind": "dns", "name": G, "rcode": "NOERROR", "addrs": [A, B]},
            {"t": 2.0, "kind": "client", "client": 0, "ok": True, "cluster": "a"},
            {"t": 3.0, **fault},
            {"t": 3.2, "kind": "client", "client": 0, "ok": False, "error": "timeout"},
            {"t": 3.5, "kind": "dns", "name": G, "rcode": "NOERROR", "addrs": [A, B]},
            {"t": 4.1, "kind": "condition", "cluster": "a", "phase": "Offline"},
            {"t": 3.9, "kind": "verdict", "reason": "ShardUnreachable", "message": "voted down (cluster a): 2/2"},
            {"t": 4.5, "kind": "dns", "name": G, "rcode": "NOERROR", "addrs": [B]},
            {"t": 5.0, "kind": "client", "client": 0, "ok": True, "cluster": "b"},
            {"t": 9.0, **fault, "kind": "heal"},
            {"t": 10.0, "kind": "dns", "name": G, "rcode": "NOERROR", "addrs": [A, B]},
            {"t": 12.0, "kind": "end"}]


def test_a_crash_incident_has_its_steps_in_order_with_the_latency_between_them():
    model = reporttimeline.timeline(sorted(crash_run(), key=lambda e: e["t"]))
    (incident,) = model["incidents"]
    assert [(s["step"], s["sinceFault"], s["afterPrevious"]) for s in incident["steps"]] == [
        ("fault", 0.0, None), ("verdict", 0.9, 0.9), ("condition", 1.1, 0.2), ("dns", 1.5, 0.4),
        ("clients", 2.0, 0.5), ("heal", 6.0, 4.0), ("recovered", 7.0, 1.0)]
    assert incident["steps"][2]["detail"] == "cluster a Offline"
    assert incident["steps"][1]["detail"] == "voted down (cluster a): 2/2" and incident["notReached"] == []
    assert [(s["state"], s["from"], s["to"]) for s in model["clusters"][0]["segments"]] == [
        ("Ready", 0.0, 4.1), ("Offline", 4.1, 12.0)]
    # A is dead only from the fault to the heal: healthy before, healthy again when answered after it
    assert [(s["state"], s["from"]) for s in model["dns"][0]["segments"]] == [("clean", 1.0), ("dead", 3.5), ("clean", 4.5)]
    assert [s["state"] for s in model["clients"]] == ["ok", "failed", "ok"] and model["dns"][0]["name"] == G


def test_steps_never_reached_are_listed_not_invented():
    events = [e for e in crash_run() if e.get("kind") not in ("condition", "verdict", "heal") and e["t"] < 4.4]
    (incident,) = reporttimeline.timeline(events)["incidents"]
    assert [s["step"] for s in incident["steps"]] == ["fault"]
    assert incident["notReached"] == ["condition changed", "data plane voted down", "DNS changed",
                                      "clients recovered", "healed", "back in DNS"]


@pytest.mark.parametrize("name, refused", [
    ("cluster-crash", False), ("crash-compare/kubefed", False), ("uploads/run.1_b", False),
    ("", True), ("..", True), ("../etc", True), ("a/../../b", True), ("/etc/passwd", True), (".hidden", True),
    ("a//b", True), ("a\\b", True), ("a\x00b", True), ("a/b/c/d/e", True), ("x" * 129, True), ("é", True),
])
def test_report_names_that_could_leave_the_reports_directory_are_refused(name, refused):
    assert (name_problem(name) is not None) == refused


observation = hs.one_of(
    hs.builds(lambda t, dead, rcode: {"t": t, "kind": "dns", "name": G, "rcode": rcode, "addrs": [A, B] if dead else [B]},
              hs.floats(0, 12), hs.booleans(), hs.sampled_from(["NOERROR", "NOERROR", "SERVFAIL"])),
    hs.builds(lambda t, ok: {"t": t, "kind": "client", "client": 0, "ok": ok, "cluster": "b" if ok else None},
              hs.floats(0, 12), hs.booleans()),
    hs.builds(lambda t, phase: {"t": t, "kind": "condition", "cluster": "a", "phase": phase},
              hs.floats(0, 12), hs.sampled_from(["Offline", "Ready", "NotReady"])),
)


@settings(max_examples=150, deadline=None)
@given(hs.lists(observation, max_size=40), hs.floats(1, 6), hs.one_of(hs.none(), hs.floats(6.5, 11)))
def test_any_run_gives_steps_in_time_order_whose_gaps_add_up(body, at, heal):
    fault = {"kind": "fault", "id": "f", "fault": "crash", "what": "crash a", "addresses": [A], "clusters": ["a"]}
    events = [crash_run()[0], {"t": at, **fault}, *([{"t": heal, **fault, "kind": "heal"}] if heal else []), *body,
              {"t": 12.0, "kind": "end"}]
    model = reporttimeline.timeline(sorted(events, key=lambda e: e["t"]))
    (incident,) = model["incidents"]
    steps = incident["steps"]
    assert steps[0]["step"] == "fault" and steps[0]["t"] == round(at, 3)
    assert [s["t"] for s in steps] == sorted(s["t"] for s in steps)
    assert abs(sum(s["afterPrevious"] or 0 for s in steps) - (steps[-1]["t"] - steps[0]["t"])) < 1e-6 * len(steps) + 1e-3
    assert len(steps) + len(incident["notReached"]) == len(reporttimeline.STEPS)
    assert all(s["sinceFault"] >= 0 for s in steps)
    for lane in [*model["clusters"], *model["dns"]]:
        assert all(a["to"] == b["from"] for a, b in zip(lane["segments"], lane["segments"][1:]))
