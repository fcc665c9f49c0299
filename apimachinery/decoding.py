"""Request bodies in, JSON values out, with the limits that keep a small body small.

Both API servers (the federation's and every member's) and ``ubernetes apply -f`` decode
what a client sends through :func:`decode_body` / :func:`load_yaml_documents`, so one bad
body gets one answer everywhere (issue 19). Each limit closes a hole that was reproduced
against a running federation:

- **YAML anchors and aliases are refused** before anything is built from them: a 483-byte
  body with seven levels of aliases expanded to an 80 MB object at 5 GB of RSS. The check
  reads the parser's events (libyaml when present), so an alias is seen before the
  composer ever resolves it. Kubernetes expands aliases with a budget; refusing them is the
  smaller rule, and no Kubernetes object needs one.
- **Nesting is capped at** :data:`MAX_DEPTH` levels: 485 levels made ``copy.deepcopy``
  overflow the stack with a 500 on every later read of the kind. JSON is parsed by the C
  decoder (which stops itself with ``RecursionError`` near 1,000 levels, cheaply), then
  walked without recursion; YAML's depth is counted on the events, before construction.
- **Numbers must be finite**: ``NaN``, ``Infinity`` and ``1e999`` are not JSON, and an
  object holding one could not be served back to kubectl.
- **Sizes**: a request body may be :data:`MAX_REQUEST_BYTES` (Kubernetes'
  ``--max-request-body-bytes`` default, 3 MiB) and a decoded object
  :data:`MAX_OBJECT_BYTES` as compact JSON (1.5 MiB, etcd's default request limit, which
  is what caps a Kubernetes object). The federation and its members share both numbers,
  so no object the federation accepts is then refused by every member forever.

YAML is read as Kubernetes reads it (sigs.k8s.io/yaml: YAML to JSON): timestamps stay
strings, non-string keys become their string form, and tags with no JSON meaning
(``!!binary``, ``!!set``, ...) are refused.

Every refusal is a :class:`DecodeError` carrying the HTTP code and Kubernetes reason a
server answers with (400 ``BadRequest``, 413 ``RequestEntityTooLarge``); this module knows
nothing of either server, it is a leaf of :mod:`apimachinery`.
"""

from __future__ import annotations

import json
import math
from typing import Any

import yaml

from apimachinery.errors import RequestRefused

MAX_REQUEST_BYTES = 3 * 1024 * 1024
MAX_OBJECT_BYTES = 3 * 512 * 1024  # 1.5 MiB
MAX_DEPTH = 100

_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_NODE_START = (yaml.SequenceStartEvent, yaml.MappingStartEvent)
_NODE_END = (yaml.SequenceEndEvent, yaml.MappingEndEvent)


class DecodeError(RequestRefused):
    """A body (or an object built from one) refused; ``code`` and ``reason`` are the
    ``Status`` a server answers with (400 ``BadRequest`` unless said otherwise)."""


class InvalidSyntax(DecodeError):
    """Not JSON (or not YAML) at all, as opposed to well-formed but over a limit."""


def too_large(size: int | None, limit: int, what: str = "the request body") -> DecodeError:
    """413 in the words Kubernetes uses (``Request entity too large: limit is 3145728``)."""
    got = f"{what} is {size} bytes; " if size is not None else ""
    return DecodeError(f"Request entity too large: {got}limit is {limit}", code=413, reason="RequestEntityTooLarge")


# --------------------------------------------------------------------------- request bodies


def is_yaml(content_type: str) -> bool:
    """``application/yaml``, ``application/apply-patch+yaml`` and the like."""
    return "yaml" in (content_type or "").lower()


def decode_body(raw: bytes, content_type: str = "application/json") -> Any:
    """The one JSON value a request body holds (JSON, or YAML when the content type says so),
    checked against every limit above. Raises :class:`DecodeError`."""
    if len(raw) > MAX_REQUEST_BYTES:
        raise too_large(len(raw), MAX_REQUEST_BYTES)
    if not raw.strip():
        raise DecodeError("the request body is empty")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError("the request body is not UTF-8") from None
    value = decode_yaml(text) if is_yaml(content_type) else decode_json(text)  # depth and numbers checked
    size = encoded_size(value)
    if size > MAX_OBJECT_BYTES:  # measured after decoding: YAML can grow as JSON
        raise too_large(size, MAX_OBJECT_BYTES, "the decoded object")
    return value


PROTOBUF = "application/vnd.kubernetes.protobuf"  # kubectl's typed clients (apimachinery.protobuf)


def is_protobuf(content_type: str | None) -> bool:
    return (content_type or "").split(";")[0].strip() == PROTOBUF


def decode_json(text: str) -> Any:
    """One JSON document, with finite numbers only and at most :data:`MAX_DEPTH` levels."""
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except DecodeError:
        raise
    except RecursionError:
        raise _too_deep() from None
    except ValueError as err:
        raise InvalidSyntax(f"the request body is not valid JSON: {_first_line(err)}", problem=_first_line(err)) from None
    check_tree(value)
    return value


def decode_yaml(text: str) -> Any:
    """One YAML document as its JSON value (no anchors or aliases, depth and numbers checked)."""
    documents = load_yaml_documents(text)
    if len(documents) != 1:
        raise DecodeError(f"the request body holds {len(documents)} YAML documents; send exactly one object")
    return documents[0]


def load_yaml_documents(text: str) -> list[Any]:
    """Every document of a YAML stream as JSON values, in order (``---`` separated; an
    empty document is ``None``). Anchors and aliases are refused before any is resolved."""
    _check_events(text)
    try:
        documents = list(yaml.load_all(text, Loader=_JSONLoader))
    except DecodeError:
        raise
    except (yaml.YAMLError, ValueError) as err:
        raise _not_yaml(err) from None
    for document in documents:
        check_tree(document)
    return documents


# --------------------------------------------------------------------------- objects


def check_tree(value: Any) -> None:
    """Depth at most :data:`MAX_DEPTH`, every float finite; iterative, so any depth is safe."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            if isinstance(node, float) and not math.isfinite(node):
                raise _not_finite(repr(node))
            continue
        if depth > MAX_DEPTH:
            raise _too_deep()
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list, float)))


def depth_of(value: Any) -> int:
    """Levels of nesting of ``value`` (a scalar is 0, ``{}`` and ``[]`` are 1); iterative."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def check_depth(depth: int) -> None:
    if depth > MAX_DEPTH:
        raise _too_deep()


def encoded_size(value: Any) -> int:
    """Bytes of ``value`` as compact JSON, as the store keeps it."""
    return len(json.dumps(value, separators=(",", ":"), allow_nan=False).encode("utf-8"))


def check_object(value: Any, *, what: str = "the object") -> None:
    """An object about to be stored: :func:`check_tree`, then at most :data:`MAX_OBJECT_BYTES`
    as compact JSON. The servers call this after decoding and after patching (a merge of two
    objects under the limit may be over it; a JSON patch may nest deeper)."""
    check_tree(value)
    size = encoded_size(value)
    if size > MAX_OBJECT_BYTES:
        raise too_large(size, MAX_OBJECT_BYTES, what)


# --------------------------------------------------------------------------- internals


def _too_deep() -> DecodeError:
    return DecodeError(f"the request body is nested more than {MAX_DEPTH} levels deep")


def _not_finite(text: str) -> DecodeError:
    return DecodeError(f"the request body holds the number {text}, which is not finite; JSON numbers must be finite")


def _refuse_constant(name: str) -> Any:
    raise _not_finite(name)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _not_finite(text)
    return value


def _first_line(err: Exception) -> str:
    return (str(err).splitlines() or [type(err).__name__])[0]


def _not_yaml(err: Exception) -> InvalidSyntax:
    """A YAML syntax error with where it is: ``line 3, column 7: mapping values are not allowed here``."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or _first_line(err)
    context = getattr(err, "context", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    detail = f"{where}{(context + ': ') if context else ''}{problem}"
    return InvalidSyntax(f"the request body is not valid YAML: {detail}", problem=detail)


def _check_events(text: str) -> None:
    """Walk the parser's events: refuse anchors and aliases, count nesting per document."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=_BaseLoader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
                raise DecodeError("YAML anchors and aliases (&name, *name) are not allowed")
            if isinstance(event, _NODE_START):
                depth += 1
                if depth > MAX_DEPTH:
                    raise _too_deep()
            elif isinstance(event, _NODE_END):
                depth -= 1
    except DecodeError:
        raise
    except (yaml.YAMLError, ValueError) as err:
        raise _not_yaml(err) from None


class _JSONLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """The safe loader with YAML's non-JSON types read as Kubernetes reads them."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[str, Any]:
        # Keys become strings as they are read: 1 and true are one Python key, two JSON keys.
        self.flatten_mapping(node)
        return {_json_key(self.construct_object(k, deep=deep)): self.construct_object(v, deep=deep)
                for k, v in node.value}


def _timestamp_as_string(loader: yaml.BaseLoader, node: yaml.Node) -> str:
    return str(loader.construct_scalar(node))  # type: ignore[arg-type]


def _refuse_tag(loader: yaml.BaseLoader, node: yaml.Node) -> Any:
    raise DecodeError(f"the YAML tag {node.tag} has no JSON meaning and is not allowed")


_JSONLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_string)
for _tag in ("binary", "set", "omap", "pairs"):
    _JSONLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _refuse_tag)


def _json_key(key: Any) -> str:
    """A mapping key as sigs.k8s.io/yaml writes it into JSON (``1`` -> ``"1"``, ``true`` -> ``"true"``)."""
    if isinstance(key, str):
        return key
    if key is None:
        return "null"
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, float) and not math.isfinite(key):
        raise _not_finite(repr(key))
    if isinstance(key, (int, float)):
        return str(key)
    raise DecodeError(f"a YAML mapping key of type {type(key).__name__} has no JSON form")
