"""The shared request-body decoder (apimachinery.decoding), JSON patch's limits and the
watch resourceVersion rules, as units: each limit of issue 19, and properties over random input."""

from __future__ import annotations

import json
import math
import time

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from apimachinery import decoding, watchlimits
from apimachinery.backoff import Backoff
from apimachinery.decoding import DecodeError, InvalidSyntax, decode_body, load_yaml_documents
from apimachinery.errors import RequestRefused
from apimachinery.jsonpatch import apply_json_patch

YAML = "application/yaml"


def alias_bomb(levels: int = 7, fanout: int = 9) -> bytes:
    """The billion laughs as a Service manifest: ``fanout ** levels`` strings from a few hundred bytes."""
    lines = ["apiVersion: v1", "kind: Service", "metadata:", "  name: bomb", "  annotations:"]
    lines.append("    l0: &l0 [" + ",".join(["lol"] * fanout) + "]")
    for i in range(1, levels):
        lines.append(f"    l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * fanout) + "]")
    return ("\n".join(lines) + "\n").encode()


def nested(levels: int, *, inner: str = "1") -> bytes:
    return ("[" * levels + inner + "]" * levels).encode()


def refusal(body: bytes, ctype: str = "application/json") -> DecodeError:
    with pytest.raises(DecodeError) as info:
        decode_body(body, ctype)
    return info.value


# --------------------------------------------------------------------------- each limit


def test_the_alias_bomb_is_refused_before_it_expands():
    bomb = alias_bomb()
    assert len(bomb) < 600
    started = time.monotonic()
    err = refusal(bomb, YAML)
    assert time.monotonic() - started < 0.1
    assert (err.code, err.reason) == (400, "BadRequest") and "aliases" in err.message


@pytest.mark.parametrize("text", ["a: &x 1", "a: &x 1\nb: *x", "- &x {a: 1}\n- *x", "base: &b {x: 1}\nc: {<<: *b}"])
def test_any_anchor_or_alias_is_refused(text):
    assert "anchors and aliases" in refusal(text.encode(), YAML).message


@pytest.mark.parametrize("levels,ok", [(100, True), (101, False), (485, False), (100_000, False)])
def test_nesting_is_capped_at_100_levels_in_json_and_yaml(levels, ok):
    for ctype in ("application/json", YAML):
        if ok:
            assert decoding.depth_of(decode_body(nested(levels), ctype)) == levels
        else:
            err = refusal(nested(levels), ctype)
            assert err.code == 400, err.message


def test_deep_block_yaml_is_refused_on_the_events():
    text = "".join(f"{'  ' * i}k{i}:\n" for i in range(150)) + "  " * 150 + "x: 1\n"
    assert "nested more than 100" in refusal(text.encode(), YAML).message


@pytest.mark.parametrize("body", [b'{"a": NaN}', b'{"a": Infinity}', b'{"a": -Infinity}', b'{"a": 1e999}',
                                  b'{"a": [-1e400]}'])
def test_non_finite_json_numbers_are_refused(body):
    err = refusal(body)
    assert err.code == 400 and "not finite" in err.message


@pytest.mark.parametrize("text", ["a: .nan", "a: .inf", "a: -.Inf", "a: 1.0e+999", ".inf: x"])
def test_non_finite_yaml_numbers_are_refused(text):
    assert "not finite" in refusal(text.encode(), YAML).message


def test_sizes_request_and_object():
    assert decoding.MAX_REQUEST_BYTES == 3 * 1024 * 1024 and decoding.MAX_OBJECT_BYTES == 1536 * 1024
    big = json.dumps({"metadata": {"annotations": {"a": "x" * (decoding.MAX_OBJECT_BYTES + 1)}}}).encode()
    err = refusal(big)
    assert (err.code, err.reason) == (413, "RequestEntityTooLarge") and "limit is 1572864" in err.message
    err = refusal(b" " * (decoding.MAX_REQUEST_BYTES + 1))
    assert err.code == 413 and "limit is 3145728" in err.message
    # YAML that grows when read as JSON is measured after decoding, not by its bytes.
    fits = json.dumps({"a": "x" * (decoding.MAX_OBJECT_BYTES - 100)}).encode()
    assert decode_body(fits)["a"]


@pytest.mark.parametrize(
    "body,ctype,needle",
    [
        (b"", "application/json", "empty"),
        (b"  \n", YAML, "empty"),
        (b"\xff\xfe", "application/json", "not UTF-8"),
        (b"{not json", "application/json", "not valid JSON"),
        (b"a: [b", YAML, "not valid YAML: line 2, column 1: while parsing a flow sequence"),
        (b"a: 1\n---\nb: 2\n", YAML, "2 YAML documents"),
        (b"a: !!binary aGk=", YAML, "binary"),
        (b"a: !!set {x}", YAML, "set"),
        (b"? [a, b]\n: c", YAML, "key"),
        (b"a: !!python/object:os.system x", YAML, "not valid YAML"),
        (b'{"n": 1' + b"0" * 5000 + b"}", "application/json", "not valid JSON"),
    ],
)
def test_malformed_bodies_are_400s_that_say_why(body, ctype, needle):
    err = refusal(body, ctype)
    assert err.code == 400 and needle in err.message, err.message


def test_yaml_is_read_as_kubernetes_reads_it():
    text = b"t: 2024-01-01T00:00:00Z\n1: one\ntrue: yes\n~: nothing\nf: 1.5\nn: 7\ns: '007'"
    assert decode_body(text, YAML) == {"t": "2024-01-01T00:00:00Z", "1": "one", "true": True, "null": "nothing",
                                       "f": 1.5, "n": 7, "s": "007"}


def test_a_manifest_stream_keeps_its_documents():
    assert load_yaml_documents("a: 1\n---\n---\nb: [x]\n") == [{"a": 1}, None, {"b": ["x"]}]
    with pytest.raises(InvalidSyntax) as info:
        load_yaml_documents("a: 1\nb: [\n")
    assert info.value.problem.startswith("line ")


def test_check_object_sees_what_a_patch_built():
    deep: dict = {}
    node = deep
    for _ in range(150):
        node["a"] = {}
        node = node["a"]
    with pytest.raises(DecodeError, match="nested more than 100"):
        decoding.check_object(deep)
    with pytest.raises(DecodeError, match="not finite"):
        decoding.check_object({"a": [math.nan]})


# --------------------------------------------------------------------------- JSON patch


def test_a_json_patch_cannot_double_a_document_into_a_bomb():
    doc = {"a": ["x" * 1000] * 100}  # 100 KB
    ops = [{"op": "copy", "from": "/a", "path": f"/b{i}"} for i in range(30)]
    started = time.monotonic()
    with pytest.raises(DecodeError) as info:
        apply_json_patch(doc, ops)
    assert info.value.code == 413 and time.monotonic() - started < 1


def test_a_json_patch_cannot_nest_past_the_limit():
    doc = {"a": json.loads(nested(90).decode())}
    with pytest.raises(DecodeError, match="nested more than 100"):
        apply_json_patch(doc, [{"op": "copy", "from": "/a", "path": "/a/0/0/0/0/0/0/0/0/0/0/0/0/0"}])
    with pytest.raises(DecodeError, match="nested more than 100"):
        apply_json_patch({}, [{"op": "add", "path": "/x", "value": json.loads(nested(100).decode())}])
    assert apply_json_patch({}, [{"op": "add", "path": "/x", "value": json.loads(nested(98).decode())}])


# --------------------------------------------------------------------------- resourceVersions


@pytest.mark.parametrize("text,rv", [("", 0), (None, 0), ("0", 0), ("42", 42), (str(2**63 - 1), 2**63 - 1)])
def test_resource_versions_that_parse(text, rv):
    assert watchlimits.parse_resource_version(text) == rv


@pytest.mark.parametrize("text", ["abc", "-1", "1.5", " 1", str(2**63), "9" * 30, "٣", "0x10"])
def test_resource_versions_that_are_400s(text):
    with pytest.raises(RequestRefused) as info:
        watchlimits.parse_resource_version(text)
    assert info.value.code == 400


def test_the_watch_window_and_the_future():
    watchlimits.check_window(5, oldest=0, replay=1000, window=1000)
    for oldest, replay in ((10, 0), (0, 1001)):
        with pytest.raises(RequestRefused) as info:
            watchlimits.check_window(5, oldest=oldest, replay=replay, window=1000)
        assert (info.value.code, info.value.reason) == (410, "Expired")
    err = watchlimits.too_large(99, 7)
    assert (err.code, err.reason, err.message) == (504, "Timeout", "Too large resource version: 99, current: 7")
    assert err.retry_after == 1 and err.causes[0]["reason"] == "ResourceVersionTooLarge"


async def test_a_future_resource_version_waits_then_gives_up():
    started = time.monotonic()
    with pytest.raises(RequestRefused) as info:
        await watchlimits.wait_for_revision(10, lambda: 3, timeout=0.3)
    assert info.value.code == 504 and 0.3 <= time.monotonic() - started < 1
    revision = iter(range(100))
    await watchlimits.wait_for_revision(5, lambda: next(revision), timeout=5, poll=0.001)


# --------------------------------------------------------------------------- backoff


def test_backoff_doubles_and_resets_on_success_or_change():
    now = [0.0]
    b: Backoff[str] = Backoff(initial=1, maximum=8, clock=lambda: now[0])
    assert b.ready("k", "v1")
    assert [b.failed("k", "v1") for _ in range(5)] == [1, 2, 4, 8, 8]
    now[0] = 7.9
    assert not b.ready("k", "v1")
    now[0] = 8.0
    assert b.ready("k", "v1")
    b.failed("k", "v1")
    assert not b.ready("k", "v1") and b.ready("k", "v2")  # the object changed: try at once
    assert b.failed("k", "v2") == 1
    b.succeeded("k")
    assert b.ready("k", "v2") and len(b) == 0
    b.failed("a", "x")
    b.failed("b", "x")
    b.retain(lambda k: k == "a")
    assert len(b) == 1


# --------------------------------------------------------------------------- properties

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_every_json_value_round_trips_through_json_and_yaml(value):
    assert decode_body(json.dumps(value).encode()) == value
    assert decode_body(yaml.safe_dump(value).encode(), YAML) == value


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(["application/json", YAML, "application/merge-patch+json", ""]))
def test_any_bytes_decode_or_are_refused_with_a_decode_error(raw, ctype):
    try:
        value = decode_body(raw, ctype)
    except DecodeError as err:
        assert 400 <= err.code < 500 and err.message
        return
    decoding.check_object(value)
    json.dumps(value, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="[]{}\":,1aN&*- \n!.e9", max_size=200), st.sampled_from(["application/json", YAML]))
def test_structured_noise_never_escapes_as_another_exception(text, ctype):
    try:
        decode_body(text.encode(), ctype)
    except DecodeError:
        pass


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 400), st.sampled_from(["application/json", YAML]))
def test_depth_is_accepted_exactly_up_to_the_limit(levels, ctype):
    body = nested(levels)
    if levels <= decoding.MAX_DEPTH:
        assert decoding.depth_of(decode_body(body, ctype)) == levels
    else:
        assert refusal(body, ctype).code == 400
