"""Small helpers on Kubernetes-shaped objects: timestamps, names, label selectors.

Shared by the federation API server, the member clusters and the CLI, so that a label
selector or a DNS-1123 name means the same thing everywhere.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any, Iterable

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def check_label_name(name: str) -> str | None:
    if len(name) > 253:
        return "must be no more than 253 characters"
    if not DNS1123_SUBDOMAIN.match(name):
        return (
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
            "'-' or '.', and must start and end with an alphanumeric character"
        )
    return None


def check_dns_label(name: str) -> str | None:
    if len(name) > 63:
        return "must be no more than 63 characters"
    if not DNS1123_LABEL.match(name):
        return (
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
            "and must start and end with an alphanumeric character"
        )
    return None


def list_name_problem(name: Any, seen: set[str]) -> str | None:
    """Why the name of one item of a named list (containers, claim templates) is wrong: absent,
    not a DNS label, or a repeat of an earlier item's; a good name is added to ``seen``."""
    if not isinstance(name, str) or not name:
        return "Required value"
    if check_dns_label(name):
        return f"Invalid value: {name!r}: {check_dns_label(name)}"
    if name in seen:
        return f"Duplicate value: {name!r}"
    seen.add(name)
    return None


def check_label_key(key: str) -> str | None:
    prefix, _, name = key.rpartition("/")
    if prefix and check_label_name(prefix):
        return f"prefix part {check_label_name(prefix)}"
    if not name or len(name) > 63 or not LABEL_NAME.match(name):
        return "name part must consist of alphanumeric characters, '-', '_' or '.', at most 63 characters"
    return None


def check_label_value(value: Any) -> str | None:
    if not isinstance(value, str):
        return "must be a string"
    if len(value) > 63 or not LABEL_VALUE.match(value):
        return "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', at most 63 characters"
    return None


class SelectorError(ValueError):
    pass


def parse_selector(text: str | None) -> list[tuple[str, str, list[str]]]:
    """Parse a Kubernetes label selector string into (key, op, values) requirements.

    Supports ``k=v``, ``k==v``, ``k!=v``, ``k``, ``!k``, ``k in (a,b)``, ``k notin (a,b)``.
    """
    if not text:
        return []
    reqs: list[tuple[str, str, list[str]]] = []
    parts: list[str] = []
    depth = 0
    cur = ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    for raw in parts:
        part = raw.strip()
        if not part:
            raise SelectorError(f"invalid label selector {text!r}: empty requirement")
        m = re.match(r"^([^\s!=()]+)\s+(in|notin)\s+\((.*)\)$", part)
        if m:
            values = [v.strip() for v in m.group(3).split(",") if v.strip()]
            reqs.append((m.group(1), m.group(2), values))
        elif "!=" in part:
            k, v = part.split("!=", 1)
            reqs.append((k.strip(), "!=", [v.strip()]))
        elif "==" in part:
            k, v = part.split("==", 1)
            reqs.append((k.strip(), "=", [v.strip()]))
        elif "=" in part:
            k, v = part.split("=", 1)
            reqs.append((k.strip(), "=", [v.strip()]))
        elif part.startswith("!"):
            reqs.append((part[1:].strip(), "!", []))
        else:
            reqs.append((part, "exists", []))
    for key, _, values in reqs:
        problem = check_label_key(key)
        if problem:
            raise SelectorError(f"invalid label selector {text!r}: key {key!r}: {problem}")
        for v in values:
            if check_label_value(v):
                raise SelectorError(f"invalid label selector {text!r}: value {v!r} is not a valid label value")
    return reqs


def selector_matches(reqs: list[tuple[str, str, list[str]]], labels: dict[str, str] | None) -> bool:
    labels = labels or {}
    for key, op, values in reqs:
        present = key in labels
        if op == "=" and labels.get(key) != values[0]:
            return False
        if op == "!=" and present and labels[key] == values[0]:
            return False
        if op == "exists" and not present:
            return False
        if op == "!" and present:
            return False
        if op == "in" and labels.get(key) not in values:
            return False
        if op == "notin" and present and labels[key] in values:
            return False
    return True


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def covers(current: Any, wanted: Any) -> bool:
    """Whether ``current`` already holds everything ``wanted`` says (server defaults aside).

    Dicts compare by the keys ``wanted`` has; lists element by element at equal length.
    ``kubectl apply`` uses it to say ``unchanged``; propagation uses it to see drift in a
    member's copy without counting the fields the member filled in (nodePort, clusterIP).
    """
    if isinstance(wanted, dict):
        return isinstance(current, dict) and all(covers(current.get(k), v) for k, v in wanted.items())
    if isinstance(wanted, list):
        return (
            isinstance(current, list)
            and len(current) == len(wanted)
            and all(covers(c, w) for c, w in zip(current, wanted))
        )
    return current == wanted


# ---------------------------------------------------------------------------- field selectors

FIELD_LABELS = ("metadata.name", "metadata.namespace")  # every kind supports these


def parse_field_selector(text: str | None, supported: Iterable[str], plural: str) -> list[tuple[str, bool, str]]:
    """``a.b=x,c!=y`` as (field, equal?, value) triples; a field the kind does not support is a
    ``SelectorError`` naming the ones it does (the API servers answer 400, as Kubernetes does)."""
    allowed = set(FIELD_LABELS) | set(supported)
    filters = []
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        equal = "!=" not in part
        key, _, value = part.replace("==", "=").partition("=" if equal else "!=")
        key = key.strip()
        if not key:
            raise SelectorError(f"invalid field selector {text!r}: {part!r} names no field")
        if key not in allowed:
            raise SelectorError(f'field label not supported: {key} (supported for {plural}: {", ".join(sorted(allowed))})')
        filters.append((key, equal, value.strip()))
    return filters


def field_value(obj: dict[str, Any], path: str) -> str:
    """The value a field selector compares (``source`` is an Event's reporting component)."""
    if path == "source":
        source = obj.get("source")
        return str(source.get("component") or "") if isinstance(source, dict) else ""
    cursor: Any = obj
    for step in path.split("."):
        cursor = cursor.get(step) if isinstance(cursor, dict) else None
    return "" if cursor is None else str(cursor)


def fields_match(obj: dict[str, Any], filters: list[tuple[str, bool, str]]) -> bool:
    return all((field_value(obj, key) == value) == equal for key, equal, value in filters)
