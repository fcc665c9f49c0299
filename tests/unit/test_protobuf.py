"""Kubernetes protobuf bodies (apimachinery/protobuf.py): read as JSON, and refused cleanly.

The encoder here is the test's own, from protobuf's wire format, so the decoder is checked
against bytes built independently of it; kubectl's own bytes are checked end to end in
tests/e2e/test_clients.py.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apimachinery.decoding import DecodeError
from apimachinery.serving import decode_any
from apimachinery.protobuf import MAGIC, decode

PROTOBUF = "application/vnd.kubernetes.protobuf"


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number: int, value) -> bytes:
    if isinstance(value, bool):
        return varint(number << 3) + varint(int(value))
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    data = value.encode() if isinstance(value, str) else value
    return varint(number << 3 | 2) + varint(len(data)) + data


def envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    type_meta = field(1, api_version) + field(2, kind)
    return MAGIC + field(1, type_meta) + field(2, raw)


def service() -> bytes:
    meta = field(1, "web") + field(3, "default") + field(11, field(1, "app") + field(2, "web"))
    target = field(1, 1) + field(3, "http")  # IntOrString: type 1 = string
    port = field(1, "http") + field(2, "TCP") + field(3, 80) + field(4, target)
    spec = field(1, port) + field(2, field(1, "app") + field(2, "web")) + field(4, "LoadBalancer")
    return envelope("v1", "Service", field(1, meta) + field(2, spec))


def test_a_service_reads_as_json_would_have_it():
    obj = decode(service())
    assert obj == {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {"ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": "http"}],
                 "selector": {"app": "web"}, "type": "LoadBalancer"},
    }
    assert decode_any(service(), PROTOBUF) == obj


def test_times_secrets_and_zero_replicas():
    stamp = field(1, 1_700_000_000)
    meta = field(1, "d") + field(8, stamp)
    spec = field(1, 0)  # replicas 0 is kept: it means 0, not "unset"
    assert decode(envelope("apps/v1", "Deployment", field(1, meta) + field(2, spec))) == {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "d", "creationTimestamp": "2023-11-14T22:13:20Z"}, "spec": {"replicas": 0},
    }
    secret = field(1, field(1, "s")) + field(2, field(1, "pw") + field(2, b"\x00\xff")) + field(3, "Opaque")
    assert decode(envelope("v1", "Secret", secret))["data"] == {"pw": "AP8="}  # bytes: base64, as in JSON


@pytest.mark.parametrize("raw, fragment", [
    (b"not protobuf", "magic"),
    (MAGIC + b"\x0a\x05ab", "longer than the body"),
    (MAGIC + b"\x08", "ends inside a number"),
    (MAGIC + b"\x0b", "wire type 3"),
    (envelope("v1", "Pod", b""), "not read here"),
    (envelope("v1", "Service", field(1, b"\x0a\x02\xff\xfe")), "not UTF-8"),
])
def test_malformed_bodies_are_refused_with_a_reason(raw, fragment):
    with pytest.raises(DecodeError) as caught:
        decode(raw)
    assert fragment in caught.value.message


def test_an_unknown_kind_is_415():
    with pytest.raises(DecodeError) as caught:
        decode(envelope("policy/v1", "PodDisruptionBudget", b""))
    assert caught.value.code == 415


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_give_an_object_or_a_clean_refusal(tail):
    for raw in (MAGIC + tail, envelope("v1", "Service", tail), envelope("apps/v1", "Deployment", tail)):
        try:
            assert isinstance(decode(raw), dict)
        except DecodeError:
            pass
