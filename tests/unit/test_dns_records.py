"""DNSRecord specs into record sets (fedns.records): table-driven."""

from __future__ import annotations

import pytest

from fedns.records import InvalidRecord, RecordSet, collect, parse_spec

N = "web.default.myfed.svc.example.com."

VALID = [
    ({"name": N, "type": "A", "ttl": 5, "targets": ["127.10.1.1", "127.10.2.1"]}, RecordSet(N, "A", 5, ("127.10.1.1", "127.10.2.1"))),
    ({"name": "WEB.Default.myfed.svc.example.com", "type": "a", "targets": ["127.0.0.1"]}, RecordSet(N, "A", 5, ("127.0.0.1",))),
    ({"name": N, "type": "A", "ttl": 5, "targets": ["127.0.0.1", "127.0.0.1"]}, RecordSet(N, "A", 5, ("127.0.0.1",))),
    ({"name": N, "type": "AAAA", "ttl": 7, "targets": ["FD00::0001"]}, RecordSet(N, "AAAA", 7, ("fd00::1",))),
    ({"name": N, "type": "CNAME", "ttl": 5, "targets": ["Web.Default.myfed.svc.Example.com."]}, RecordSet(N, "CNAME", 5, (N,))),
    (
        {"name": "_http._tcp." + N, "type": "SRV", "ttl": 5, "targets": ["0 10 80 web.default.myfed.svc.example.com."]},
        RecordSet("_http._tcp." + N, "SRV", 5, ("0 10 80 " + N,)),
    ),
    ({"name": N, "type": "TXT", "ttl": 5, "targets": ['say "hi"\\']}, RecordSet(N, "TXT", 5, ('"say \\"hi\\"\\\\"',))),
    ({"name": N, "type": "TXT", "ttl": 5, "targets": ["x" * 300]}, RecordSet(N, "TXT", 5, ('"' + "x" * 255 + '" "' + "x" * 45 + '"',))),
    ({"name": N, "type": "TXT", "ttl": 5, "targets": ["é"]}, RecordSet(N, "TXT", 5, ('"\\195\\169"',))),
]


@pytest.mark.parametrize("spec,expected", VALID)
def test_valid_specs(spec, expected):
    assert parse_spec(spec) == expected


INVALID = [
    ({"type": "A", "targets": ["1.2.3.4"]}, "spec.name"),
    ({"name": "a..b.", "type": "A", "targets": ["1.2.3.4"]}, "spec.name"),
    ({"name": "x" * 64 + ".example.com.", "type": "A", "targets": ["1.2.3.4"]}, "spec.name"),
    ({"name": N, "type": "MX", "targets": ["1.2.3.4"]}, "spec.type"),
    ({"name": N, "type": "A", "ttl": -1, "targets": ["1.2.3.4"]}, "spec.ttl"),
    ({"name": N, "type": "A", "ttl": "5", "targets": ["1.2.3.4"]}, "spec.ttl"),
    ({"name": N, "type": "A", "targets": []}, "spec.targets"),
    ({"name": N, "type": "A", "targets": ["300.1.1.1"]}, "spec.targets[0]"),
    ({"name": N, "type": "A", "targets": [5]}, "spec.targets[0]"),
    ({"name": N, "type": "AAAA", "targets": ["127.0.0.1"]}, "spec.targets[0]"),
    ({"name": N, "type": "CNAME", "targets": ["a.example.com.", "b.example.com."]}, "exactly one"),
    ({"name": N, "type": "SRV", "targets": ["0 10 80"]}, "priority weight port target"),
    ({"name": N, "type": "SRV", "targets": ["0 10 70000 t.example.com."]}, "port"),
    ("not a mapping", "spec must be an object"),
]


@pytest.mark.parametrize("spec,where", INVALID)
def test_invalid_specs_name_the_field(spec, where):
    with pytest.raises(InvalidRecord) as err:
        parse_spec(spec, source="a.web")
    assert where in str(err.value)
    assert 'dnsrecord "a.web"' in str(err.value)


def test_collect_merges_and_reports_without_failing():
    specs = {
        "a1": {"name": N, "type": "A", "ttl": 30, "targets": ["127.0.0.1", "127.0.0.2"]},
        "a2": {"name": N, "type": "A", "ttl": 5, "targets": ["127.0.0.2", "127.0.0.3"]},
        "bad": {"name": N, "type": "A", "targets": ["nope"]},
        "c1": {"name": "c." + N, "type": "CNAME", "targets": [N]},
        "c2": {"name": "c." + N, "type": "CNAME", "targets": ["other.example.com."]},
    }
    recordsets, problems = collect(specs)
    assert recordsets == [  # sorted by name, then type
        RecordSet("c." + N, "CNAME", 5, (N,)),
        RecordSet(N, "A", 5, ("127.0.0.1", "127.0.0.2", "127.0.0.3")),
    ]
    assert len(problems) == 2
    assert 'dnsrecord "bad": spec.targets[0]' in problems[0]
    assert "conflicting targets" in problems[1]
