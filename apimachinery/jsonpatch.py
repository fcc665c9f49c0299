"""RFC 6902 JSON patch, the third patch type kubectl can send (``kubectl patch --type json``).

``copy`` can double a document per operation, so the bytes copied in one patch are counted
against the object limit as they go, and the result is checked against the limits every
decoded body meets (:mod:`apimachinery.decoding`, issue 19): a 30-operation patch must not
build a 2**30-node object.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from apimachinery import decoding


class PatchError(ValueError):
    pass


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _split(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"path {path!r} must start with '/'")
    return [_unescape(t) for t in path[1:].split("/")]


def _parent(doc: Any, tokens: list[str], path: str) -> tuple[Any, str]:
    if not tokens:
        raise PatchError(f"path {path!r} names the whole document")
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            raise PatchError(f"path {path!r} does not exist")
    return node, tokens[-1]


def _get(doc: Any, path: str) -> Any:
    node = doc
    for token in _split(path):
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            raise PatchError(f"path {path!r} does not exist")
    return node


def _add(doc: Any, path: str, value: Any) -> Any:
    tokens = _split(path)
    if not tokens:
        return value
    parent, last = _parent(doc, tokens, path)
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent):
            parent.insert(int(last), value)
        else:
            raise PatchError(f"index {last!r} out of range in {path!r}")
    else:
        raise PatchError(f"path {path!r} does not exist")
    return doc


def _remove(doc: Any, path: str) -> Any:
    parent, last = _parent(doc, _split(path), path)
    if isinstance(parent, dict) and last in parent:
        return parent.pop(last)
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent.pop(int(last))
    raise PatchError(f"path {path!r} does not exist")


def apply_json_patch(doc: Any, operations: Any) -> Any:
    if not isinstance(operations, list):
        raise PatchError("a JSON patch must be a list of operations")
    doc = copy.deepcopy(doc)
    copied = 0
    for i, op in enumerate(operations):
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"operation {i} must have 'op' and 'path'")
        kind, path = op["op"], op["path"]
        if not isinstance(path, str):
            raise PatchError(f"operation {i}: path must be a string")
        if kind in ("add", "replace", "test") and "value" not in op:
            raise PatchError(f"operation {i} ({kind}) needs a value")
        if kind in ("add", "replace", "move", "copy"):
            # The document stays within the depth limit whatever the operations (a copy into
            # itself doubles the depth), so nothing below recurses past it.
            value_depth = decoding.depth_of(op.get("value")) if kind in ("add", "replace") else 0
            decoding.check_depth(len(_split(path)) + value_depth)
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "remove":
            _remove(doc, path)
        elif kind == "replace":
            _get(doc, path)
            tokens = _split(path)
            if not tokens:
                doc = copy.deepcopy(op["value"])
            else:
                parent, last = _parent(doc, tokens, path)
                parent[int(last) if isinstance(parent, list) else last] = copy.deepcopy(op["value"])
        elif kind in ("move", "copy"):
            source = op.get("from")
            if not isinstance(source, str):
                raise PatchError(f"operation {i} ({kind}) needs 'from'")
            value = _get(doc, source)
            copied += decoding.encoded_size(value)
            if copied > decoding.MAX_OBJECT_BYTES:
                raise decoding.too_large(copied, decoding.MAX_OBJECT_BYTES, "what the patch moves and copies")
            decoding.check_depth(len(_split(path)) + decoding.depth_of(value))
            value = _remove(doc, source) if kind == "move" else copy.deepcopy(value)
            doc = _add(doc, path, value)
        elif kind == "test":
            found = _get(doc, path)
            if found != op["value"]:
                shown = json.dumps(found)
                shown = shown if len(shown) <= 200 else shown[:200] + "..."
                raise PatchError(f"operation {i} (test) failed: {path!r} is {shown}, "
                                 f"not {json.dumps(op['value'])[:200]}")
        else:
            raise PatchError(f"operation {i}: unknown op {kind!r}")
    decoding.check_object(doc, what="the patched object")
    return doc
