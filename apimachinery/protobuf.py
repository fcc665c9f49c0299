"""Kubernetes protobuf request bodies, read into the JSON form the servers work with (issue 18).

kubectl's typed clients (``kubectl create deployment|service|secret|namespace``, ``auth
can-i``, ``auth whoami``) send built-in kinds as ``application/vnd.kubernetes.protobuf``:
the bytes ``k8s\\0``, then a ``runtime.Unknown`` message holding the object's apiVersion
and kind and the object's own message. client-go falls back to JSON only for CBOR, so a
server that wants kubectl's generators must read protobuf; answers stay JSON, which
client-go accepts whatever it asked for.

The field numbers come from Kubernetes' ``generated.proto`` files
(:mod:`apimachinery.protobuf_schema`, written by ``tools/protobuf_schema.py``); the wire
format is protobuf's own (varints, length-delimited fields, fixed 32/64-bit). The types
whose JSON form is not their message's (Time, MicroTime, IntOrString, Quantity,
RawExtension, FieldsV1, Duration) are converted as Kubernetes' JSON encoding writes them.
Go writes every non-pointer field, so empty strings, zeros, false and empty messages are
left out, as the JSON encoding's ``omitempty`` does, except a count of replicas (0 means
0). Pure, bounded: every length is checked against the buffer, nesting is bounded by the
message table, and anything malformed raises :class:`~apimachinery.decoding.DecodeError`.
"""

from __future__ import annotations

import base64
import json
import struct
from datetime import datetime, timezone
from typing import Any, Iterator

from apimachinery.decoding import DecodeError
from apimachinery.protobuf_schema import KINDS, MESSAGES

MAGIC = b"k8s\x00"
UNKNOWN = {1: ("typeMeta", "one", "TypeMeta"), 2: ("raw", "one", "bytes"),
           3: ("contentEncoding", "one", "string"), 4: ("contentType", "one", "string")}
TYPE_META = {1: ("apiVersion", "one", "string"), 2: ("kind", "one", "string")}
META = "k8s.io.apimachinery.pkg.apis.meta.v1."
KEEP_ZERO = {"replicas"}
MAX_NESTING = 64


def decode(raw: bytes) -> dict[str, Any]:
    """The object in a Kubernetes protobuf body, as JSON would have it."""
    if not raw.startswith(MAGIC):
        raise DecodeError("the protobuf body does not start with Kubernetes' magic bytes (k8s\\0)")
    envelope = _message(memoryview(raw)[len(MAGIC):], UNKNOWN, 0, raw_types=True)
    type_meta = envelope.get("typeMeta") or {}
    api_version, kind = type_meta.get("apiVersion", ""), type_meta.get("kind", "")
    message = KINDS.get((api_version, kind))
    if message is None:
        known = ", ".join(sorted(f"{k} ({v})" for v, k in KINDS))
        raise DecodeError(f"a protobuf {kind or 'object'} ({api_version or 'no apiVersion'}) is not read here; "
                          f"send JSON, or one of: {known}", code=415, reason="UnsupportedMediaType")
    if envelope.get("contentEncoding"):
        raise DecodeError(f"protobuf content encoding {envelope['contentEncoding']!r} is not supported")
    obj = _message(memoryview(envelope.get("raw") or b""), MESSAGES[message], 0)
    obj["apiVersion"], obj["kind"] = api_version, kind
    return obj


# --------------------------------------------------------------------------- wire format


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result, shift = 0, 0
    while True:
        if pos >= len(buf):
            raise DecodeError("the protobuf body ends inside a number")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 64:
            raise DecodeError("the protobuf body has a number longer than 64 bits")


def _fields(buf: memoryview) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) for each field of one message."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise DecodeError("the protobuf body has a field numbered 0")
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            if pos + 8 > len(buf):
                raise DecodeError("the protobuf body ends inside a 64-bit field")
            value, pos = bytes(buf[pos:pos + 8]), pos + 8
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > len(buf):
                raise DecodeError("a protobuf field is longer than the body that holds it")
            value, pos = buf[pos:pos + size], pos + size
        elif wire == 5:
            if pos + 4 > len(buf):
                raise DecodeError("the protobuf body ends inside a 32-bit field")
            value, pos = bytes(buf[pos:pos + 4]), pos + 4
        else:
            raise DecodeError(f"the protobuf body has wire type {wire}, which Kubernetes does not use")
        yield number, wire, value


def _signed(value: int, bits: int = 64) -> int:
    return value - (1 << 64) if value >= 1 << (bits - 1) else value


def _scalar(type_: str, wire: int, value: Any) -> Any:
    if type_ == "string":
        try:
            return bytes(value).decode("utf-8")
        except (UnicodeDecodeError, TypeError):
            raise DecodeError("a protobuf string is not UTF-8") from None
    if type_ == "bytes":
        return base64.b64encode(bytes(value)).decode()
    if type_ == "bool":
        return bool(value)
    if type_ in ("int32", "int64"):
        return _signed(value)
    if type_ in ("uint32", "uint64", "fixed64"):
        return value if wire == 0 else struct.unpack("<Q", value)[0]
    if type_ == "double":
        return struct.unpack("<d", value)[0]
    if type_ == "float":
        return struct.unpack("<f", value)[0]
    raise DecodeError(f"protobuf type {type_} is not supported")


def _value(type_: str, wire: int, value: Any, depth: int) -> Any:
    if type_ in ("string", "bytes", "bool", "int32", "int64", "uint32", "uint64", "fixed64", "double", "float"):
        if (wire == 2) != (type_ in ("string", "bytes")) and type_ not in ("double", "float", "fixed64"):
            raise DecodeError(f"a protobuf {type_} field has the wrong wire type")
        return _scalar(type_, wire, value)
    if wire != 2:
        raise DecodeError(f"a protobuf {type_.rsplit('.', 1)[-1]} field has the wrong wire type")
    special = SPECIAL.get(type_)
    if special is not None:
        return special(value)
    if type_ == "TypeMeta":
        return _message(value, TYPE_META, depth + 1)
    schema = MESSAGES.get(type_)
    if schema is None:
        raise DecodeError(f"protobuf message {type_} is not known here")
    return _message(value, schema, depth + 1)


def _message(buf: memoryview, schema: dict[int, tuple[str, str, str]], depth: int, *,
             raw_types: bool = False) -> dict[str, Any]:
    if depth > MAX_NESTING:
        raise DecodeError("the protobuf body nests too deeply")
    out: dict[str, Any] = {}
    for number, wire, value in _fields(buf):
        field = schema.get(number)
        if field is None:
            continue  # a field newer than our table: skipped, as protobuf readers do
        name, label, type_ = field
        if raw_types and type_ == "bytes":
            out[name] = bytes(value)
        elif label == "map":
            key, item = _map_entry(value, type_, depth)
            out.setdefault(name, {})[key] = item
        elif label == "repeated":
            if wire == 2 and type_ in ("int32", "int64", "bool", "double", "float"):  # packed
                out.setdefault(name, []).extend(_packed(value, type_))
            else:
                out.setdefault(name, []).append(_value(type_, wire, value, depth))
        else:
            out[name] = _value(type_, wire, value, depth)
    if raw_types:
        return out
    return {k: v for k, v in out.items() if k in KEEP_ZERO or v not in ("", 0, False, None, {}, [])}


def _map_entry(buf: memoryview, type_: str, depth: int) -> tuple[str, Any]:
    key, item = "", _empty(type_)
    for number, wire, value in _fields(buf):
        if number == 1:
            key = _scalar("string", wire, value)
        elif number == 2:
            item = _value(type_, wire, value, depth)
    return key, item


def _empty(type_: str) -> Any:
    return "" if type_ in ("string", "bytes") or type_ in SPECIAL else 0 if type_.startswith("int") else {}


def _packed(buf: memoryview, type_: str) -> list[Any]:
    out, pos = [], 0
    while pos < len(buf):
        if type_ in ("double", "float"):
            size = 8 if type_ == "double" else 4
            if pos + size > len(buf):
                raise DecodeError("a packed protobuf field ends inside a number")
            out.append(_scalar(type_, 1, bytes(buf[pos:pos + size])))
            pos += size
        else:
            value, pos = _varint(buf, pos)
            out.append(_scalar(type_, 0, value))
    return out


# --------------------------------------------------------------------------- types with a JSON form of their own


def _time(buf: memoryview, *, micro: bool = False) -> str | None:
    seconds = nanos = 0
    for number, wire, value in _fields(buf):
        if number == 1 and wire == 0:
            seconds = _signed(value)
        elif number == 2 and wire == 0:
            nanos = _signed(value)
    if seconds == 0 and nanos == 0:
        return None
    try:
        stamp = datetime.fromtimestamp(seconds, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        raise DecodeError("a protobuf time is out of range") from None
    if micro:
        return stamp.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos // 1000:06d}Z"
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def _int_or_string(buf: memoryview) -> int | str:
    kind, number_value, text = 0, 0, ""
    for number, wire, value in _fields(buf):
        if number == 1 and wire == 0:
            kind = value
        elif number == 2 and wire == 0:
            number_value = _signed(value)
        elif number == 3 and wire == 2:
            text = _scalar("string", wire, value)
    return text if kind == 1 else number_value


def _string_field(buf: memoryview) -> str:
    for number, wire, value in _fields(buf):
        if number == 1 and wire == 2:
            return _scalar("string", wire, value)
    return ""


def _json_field(buf: memoryview) -> Any:
    for number, wire, value in _fields(buf):
        if number == 1 and wire == 2:
            try:
                return json.loads(bytes(value).decode("utf-8")) if len(value) else None
            except (UnicodeDecodeError, ValueError):
                raise DecodeError("embedded JSON in a protobuf body is not valid") from None
    return None


def _duration(buf: memoryview) -> str:
    for number, wire, value in _fields(buf):
        if number == 1 and wire == 0:
            nanos = _signed(value)
            return f"{nanos / 1e9:g}s"
    return "0s"


SPECIAL = {
    META + "Time": _time,
    META + "MicroTime": lambda buf: _time(buf, micro=True),
    META + "Duration": _duration,
    META + "FieldsV1": _json_field,
    "k8s.io.apimachinery.pkg.runtime.RawExtension": _json_field,
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString": _int_or_string,
    "k8s.io.apimachinery.pkg.api.resource.Quantity": _string_field,
}
