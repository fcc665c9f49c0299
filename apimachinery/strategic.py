"""Strategic merge patch and server-side apply, driven by the OpenAPI schemas.

A JSON merge patch replaces lists whole, so ``kubectl apply`` after removing one port
would need the whole list again; a *strategic* merge patch merges lists by a key (ports
by ``port``, containers by ``name``, conditions by ``type``) and carries directives:

- ``{"$patch": "delete", "port": 80}`` in a list deletes the element with that key;
  ``{"$patch": "replace"}`` in a list replaces the whole list with the patch's elements;
  ``"$patch": "replace"`` / ``"delete"`` in a map replaces / deletes that map;
- ``$setElementOrder/<list>`` gives the order of the merged list;
- ``$deleteFromPrimitiveList/<list>`` removes values from a merged list of strings;
- ``$retainKeys`` clears every field of the map not named in it;
- ``null`` deletes a field, as in a JSON merge patch.

Which list merges by which key comes from the schema's ``x-kubernetes-patch-merge-key``
and ``x-kubernetes-patch-strategy`` (see :mod:`apimachinery.openapi`), the same extensions
kubectl reads to compute the patch, so the client and the server agree. A list with no
merge key is replaced whole.

Server-side apply (``application/apply-patch+yaml``) records which manager owns which
fields in ``metadata.managedFields`` (``FieldsV1``), merges the applied configuration with
the same list semantics, removes the fields the manager applied last time and no longer
applies (unless another manager owns them too), and answers 409 ``Conflict`` when another
manager owns a field the apply would change, unless ``force=true``. It is a faithful
subset: sets of fields are tracked per manager, not per API version.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timezone
from typing import Any

from apimachinery.openapi import SchemaNode

DIRECTIVE = "$patch"
ORDER = "$setElementOrder/"
DELETE_PRIMITIVE = "$deleteFromPrimitiveList/"
RETAIN = "$retainKeys"


class StrategicPatchError(ValueError):
    pass


def _child(node: SchemaNode | None, name: str) -> SchemaNode | None:
    return node.field(name) if node is not None else None


def strategic_merge(original: Any, patch: Any, node: SchemaNode | None) -> Any:
    """Apply a strategic merge patch to ``original`` (neither is modified)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get(DIRECTIVE)
    if directive == "delete":
        return None
    base = original if isinstance(original, dict) else {}
    if directive == "replace":
        return _strip({k: v for k, v in patch.items() if k != DIRECTIVE}, node)
    if directive not in (None, "merge"):
        raise StrategicPatchError(f"unknown patch directive {directive!r} in a map")
    result = copy.deepcopy(base)
    orders: dict[str, list[Any]] = {}
    for key, value in patch.items():
        if key == DIRECTIVE or key == RETAIN:
            continue
        if key.startswith(ORDER):
            orders[key[len(ORDER):]] = value
            continue
        if key.startswith(DELETE_PRIMITIVE):
            field = key[len(DELETE_PRIMITIVE):]
            if isinstance(result.get(field), list) and isinstance(value, list):
                result[field] = [v for v in result[field] if v not in value]
            continue
        child = _child(node, key)
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list):
            merged = _merge_list(result.get(key), value, child)
            result[key] = merged
        elif isinstance(value, dict):
            merged = strategic_merge(result.get(key), value, child)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        else:
            result[key] = value
    for field, order in orders.items():
        if isinstance(result.get(field), list) and isinstance(order, list):
            result[field] = _order(result[field], order, _child(node, field))
    retain = patch.get(RETAIN)
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _strip(value: Any, node: SchemaNode | None) -> Any:
    """A patch fragment as a plain value: directives resolved against nothing."""
    if isinstance(value, dict):
        return strategic_merge({}, value, node)
    if isinstance(value, list):
        return _merge_list([], value, node)
    return value


def _merge_list(original: Any, patch: list[Any], node: SchemaNode | None) -> list[Any]:
    current = list(original) if isinstance(original, list) else []
    key = node.merge_key if node is not None else None
    strategy = node.strategy if node is not None else ""
    items = node.items() if node is not None else None
    if any(isinstance(p, dict) and p.get(DIRECTIVE) == "replace" for p in patch):
        return [_strip(p, items) for p in patch if not (isinstance(p, dict) and p.get(DIRECTIVE) == "replace")]
    if key and "merge" in strategy:
        result = copy.deepcopy(current)
        for element in patch:
            if not isinstance(element, dict) or key not in element:
                raise StrategicPatchError(f"a list element has no merge key {key!r}: {json.dumps(element)}")
            index = next((i for i, c in enumerate(result) if isinstance(c, dict) and c.get(key) == element[key]), None)
            if element.get(DIRECTIVE) == "delete":
                if index is not None:
                    result.pop(index)
                continue
            if index is None:
                result.append(_strip(element, items))
            else:
                result[index] = strategic_merge(result[index], element, items)
        return result
    if "merge" in strategy:  # a set of primitives: union, in order
        result = list(current)
        for element in patch:
            if element not in result:
                result.append(element)
        return result
    return [_strip(p, items) for p in patch]


def _order(values: list[Any], order: list[Any], node: SchemaNode | None) -> list[Any]:
    key = node.merge_key if node is not None else None

    def ident(v: Any) -> Any:
        return json.dumps(v.get(key) if key and isinstance(v, dict) else v, sort_keys=True)

    wanted = [ident(o) for o in order]
    ranked = sorted(enumerate(values), key=lambda iv: (wanted.index(ident(iv[1])) if ident(iv[1]) in wanted else len(wanted), iv[0]))
    return [v for _, v in ranked]


# --- server-side apply ----------------------------------------------------------------

# A field path is a tuple of steps: ("f", name) for a map field, ("k", json-of-key) for a
# list element found by its merge key, ("v", json-of-value) for a set member.
Path = tuple[tuple[str, str], ...]
IGNORED_TOP = {"apiVersion", "kind", "status"}
IGNORED_META = {"name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp", "managedFields",
                "deletionTimestamp", "selfLink"}


class ApplyConflict(Exception):
    def __init__(self, conflicts: list[tuple[str, str]]) -> None:
        super().__init__("conflicts")
        self.conflicts = conflicts  # (manager, field path as text)


def field_paths(obj: Any, node: SchemaNode | None, prefix: Path = ()) -> set[Path]:
    """Every leaf field path of ``obj`` (what a manager who applied ``obj`` owns)."""
    out: set[Path] = set()
    if isinstance(obj, dict):
        for key, value in obj.items():
            if not prefix and key in IGNORED_TOP:
                continue
            if prefix == (("f", "metadata"),) and key in IGNORED_META:
                continue
            step = prefix + (("f", key),)
            child = _child(node, key)
            if isinstance(value, (dict, list)) and value:
                below = field_paths(value, child, step)
                # A map whose every field is one nobody owns (metadata with only a name and a
                # namespace) gives its applier nothing, not the map itself: otherwise a second
                # manager's bare manifest conflicts with whoever owns the map (issue 18).
                if below or not isinstance(value, dict):
                    out.add(step)
                    out |= below
            else:
                out.add(step)
    elif isinstance(obj, list):
        key = node.merge_key if node is not None else None
        items = node.items() if node is not None else None
        if key:
            for element in obj:
                if isinstance(element, dict) and key in element:
                    step = prefix + (("k", json.dumps({key: element[key]}, sort_keys=True, separators=(",", ":"))),)
                    out.add(step)
                    out |= field_paths(element, items, step)
        elif node is not None and "merge" in node.strategy:
            for element in obj:
                out.add(prefix + (("v", json.dumps(element)),))
        # an atomic list is owned whole through its parent's path
    return out


def to_fields_v1(paths: set[Path]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path in sorted(paths):
        cursor = tree
        for kind, name in path:
            cursor = cursor.setdefault(f"{kind}:{name}", {})
    return _dots(tree)


def _dots(tree: dict[str, Any]) -> dict[str, Any]:
    """FieldsV1 marks a node that is itself a field with ``".": {}`` when it has children."""
    out: dict[str, Any] = {}
    for key, sub in tree.items():
        out[key] = {".": {}, **_dots(sub)} if sub else {}
    return out


def from_fields_v1(fields: Any, prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    if not isinstance(fields, dict):
        return out
    for key, sub in fields.items():
        if key == ".":
            continue
        kind, _, name = key.partition(":")
        step = prefix + ((kind, name),)
        out.add(step)
        out |= from_fields_v1(sub, step)
    return out


def path_text(path: Path) -> str:
    parts = []
    for kind, name in path:
        if kind == "f":
            parts.append(f".{name}")
        elif kind == "k":
            parts.append(f"[{','.join(f'{k}={v}' for k, v in json.loads(name).items())}]")
        else:
            parts.append(f"[{name}]")
    return "".join(parts)


def _get(obj: Any, path: Path, node: SchemaNode | None) -> tuple[bool, Any]:
    cursor, here = obj, node
    for kind, name in path:
        if kind == "f":
            if not isinstance(cursor, dict) or name not in cursor:
                return False, None
            cursor, here = cursor[name], _child(here, name)
        elif kind == "k":
            wanted = json.loads(name)
            if not isinstance(cursor, list):
                return False, None
            found = [e for e in cursor if isinstance(e, dict) and all(e.get(k) == v for k, v in wanted.items())]
            if not found:
                return False, None
            cursor, here = found[0], (here.items() if here is not None else None)
        else:
            value = json.loads(name)
            return (isinstance(cursor, list) and value in cursor), value
    return True, cursor


def _remove(obj: Any, path: Path, node: SchemaNode | None) -> None:
    if not path:
        return
    parent_ok, parent = _get(obj, path[:-1], node) if len(path) > 1 else (True, obj)
    if not parent_ok:
        return
    kind, name = path[-1]
    if kind == "f" and isinstance(parent, dict):
        parent.pop(name, None)
    elif kind == "k" and isinstance(parent, list):
        wanted = json.loads(name)
        parent[:] = [e for e in parent if not (isinstance(e, dict) and all(e.get(k) == v for k, v in wanted.items()))]
    elif kind == "v" and isinstance(parent, list):
        value = json.loads(name)
        parent[:] = [e for e in parent if e != value]


def _is_leaf(path: Path, paths: set[Path]) -> bool:
    return not any(len(p) > len(path) and p[: len(path)] == path for p in paths)


def managers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in (obj.get("metadata") or {}).get("managedFields") or [] if isinstance(m, dict)]


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _set_manager(entries: list[dict[str, Any]], manager: str, operation: str, api_version: str,
                 paths: set[Path]) -> list[dict[str, Any]]:
    rest = [m for m in entries if not (m.get("manager") == manager and m.get("operation") == operation)]
    if paths:
        rest.append({"manager": manager, "operation": operation, "apiVersion": api_version, "time": _now(),
                     "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(paths)})
    return rest


def server_side_apply(
    live: dict[str, Any] | None, applied: dict[str, Any], node: SchemaNode | None, *, manager: str, force: bool
) -> dict[str, Any]:
    """The object after ``manager`` applies ``applied`` to ``live`` (None: create).

    Raises :class:`ApplyConflict` if another manager owns a field whose value would change.
    """
    api_version = str(applied.get("apiVersion") or (live or {}).get("apiVersion") or "")
    new_paths = field_paths(applied, node)
    if live is None:
        result = copy.deepcopy(applied)
        meta = result.setdefault("metadata", {})
        meta["managedFields"] = _set_manager([], manager, "Apply", api_version, new_paths)
        return result
    entries = managers(live)
    mine_before: set[Path] = set()
    others: dict[str, set[Path]] = {}
    for entry in entries:
        paths = from_fields_v1(entry.get("fieldsV1"))
        if entry.get("manager") == manager and entry.get("operation") == "Apply":
            mine_before |= paths
        else:
            others.setdefault(str(entry.get("manager")), set()).update(paths)
    conflicts = []
    conflict_paths: set[Path] = set()
    for path in sorted(new_paths):
        if not _is_leaf(path, new_paths):
            continue
        had, old = _get(live, path, node)
        _, new = _get(applied, path, node)
        if not had or old == new:
            continue
        for other, paths in others.items():
            if path in paths:
                conflicts.append((other, path_text(path)))
                conflict_paths.add(path)
    if conflicts and not force:
        raise ApplyConflict(conflicts)
    result = copy.deepcopy(live)
    owned_by_others = set().union(*others.values()) if others else set()
    # Fields this manager applied before and no longer applies (and nobody else owns) go.
    # Shortest first: removing a list element by its key must happen before its key field goes.
    for path in sorted(mine_before - new_paths, key=len):
        if path not in owned_by_others and not any(p[: len(path)] == path for p in new_paths):
            _remove(result, path, node)
    body = {k: v for k, v in applied.items() if k not in ("status",)}
    result = strategic_merge(result, body, node)
    new_entries = []
    for entry in entries:
        name = str(entry.get("manager"))
        if entry.get("manager") == manager and entry.get("operation") == "Apply":
            continue
        if force and conflict_paths and name in others:
            # Forced: the fields in conflict change hands; fields applied with the same
            # value stay shared, as in Kubernetes.
            remaining = from_fields_v1(entry.get("fieldsV1")) - conflict_paths
            if not remaining:
                continue
            entry = {**entry, "fieldsV1": to_fields_v1(remaining)}
        new_entries.append(entry)
    result.setdefault("metadata", {})["managedFields"] = _set_manager(new_entries, manager, "Apply", api_version, new_paths)
    return result


def record_update(
    before: dict[str, Any] | None, after: dict[str, Any], node: SchemaNode | None, *, manager: str
) -> dict[str, Any]:
    """managedFields after a non-apply write (create, update, patch) by ``manager``: it owns
    the fields it changed, and other managers lose them."""
    old_paths = field_paths(before or {}, node)
    new_paths = field_paths(after, node)
    changed = {p for p in new_paths if _is_leaf(p, new_paths) and _get(before or {}, p, node) != _get(after, p, node)}
    changed |= {p[:i] for p in changed for i in range(1, len(p))}
    entries = managers(after) or managers(before or {})
    if not changed and not (old_paths - new_paths):
        after.setdefault("metadata", {})["managedFields"] = entries
        return after
    kept = []
    mine: set[Path] = set()
    for entry in entries:
        paths = from_fields_v1(entry.get("fieldsV1")) & new_paths
        if entry.get("manager") == manager and entry.get("operation") == "Update":
            mine |= paths
            continue
        paths -= {p for p in changed if _is_leaf(p, new_paths)}
        if paths:
            kept.append({**entry, "fieldsV1": to_fields_v1(paths)})
    api_version = str(after.get("apiVersion") or "")
    after.setdefault("metadata", {})["managedFields"] = _set_manager(kept, manager, "Update", api_version, mine | changed)
    return after
