"""DNSRecord specs from the federation API, checked and turned into record sets.

The federation's DNS controller writes one ``DNSRecord`` object per record set
(``{"name", "type", "ttl", "targets"}``, see docs/architecture.md). The responder must
never fail because one object is wrong, so this module validates each spec on its own:
a bad spec is left out with a message that names the object, the field and the problem,
and every good one is kept. Specs that name the same record set are merged (targets in
order, duplicates dropped, the smallest TTL), because two writers briefly disagreeing
must not make a name disappear.

Owner names are checked as a zone checker would (named-checkzone): a ``*`` label is
refused, because the responder does not synthesize wildcard answers (RFC 4592) and
secondaries taking the zone by AXFR would, so the two would answer differently
(docs/dns.md, "RFC edge cases"); an A or AAAA owner must be a host name (RFC 952/1123
letters, digits and hyphens; ``check-names``).

Pure: no I/O, no clock. Names come out absolute and lower case, and rdata in DNS
presentation format, ready for :mod:`fedns.zone`.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import dns.exception
import dns.name

TYPES = ("A", "AAAA", "CNAME", "SRV", "TXT")
DEFAULT_TTL = 5
HOST_TYPES = ("A", "AAAA")  # owner names must be host names (named-checkzone check-names)
_HOST_LABEL = re.compile(rb"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")  # RFC 952 as relaxed by RFC 1123 2.1
MAX_TTL = 2**31 - 1


@dataclass(frozen=True)
class RecordSet:
    """One record set: an owner name, a type, a TTL and its rdata in presentation format."""

    name: str  # absolute, lower case: "web.default.myfed.svc.example.com."
    type: str  # "A", "AAAA", "CNAME", "SRV", "TXT", and for built-ins "SOA", "NS", "HINFO"
    ttl: int
    rdatas: tuple[str, ...]
    # A and AAAA only: where targets live, for topology-aware answers (fedns.topology).
    placements: tuple["Placement", ...] = ()
    # Set by fedns.topology on a per-client copy: sizes of the nearest-first groups of
    # ``rdatas``; round robin rotates inside each group. () means one group.
    tiers: tuple[int, ...] = ()
    # Issue 16: "weighted" or "nearest" (answered so); "" and the others: round robin.
    strategy: str = ""
    weights: tuple[float, ...] = ()  # strategy weighted: one per rdata


@dataclass(frozen=True)
class Placement:
    """Where one A/AAAA target lives: ``spec.placements[]`` of a DNSRecord."""

    target: str
    cluster: str
    region: str
    zones: tuple[str, ...]


class InvalidRecord(ValueError):
    """A DNSRecord spec that cannot be served; the message says where and why."""


def canonical_name(text: str) -> str:
    """An absolute, lower-case name; raises ValueError with the reason when it is not a name."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("must be a non-empty DNS name")
    text = text.strip()
    if not text.endswith("."):
        text += "."
    try:
        return dns.name.from_text(text).canonicalize().to_text()
    except dns.exception.DNSException as err:
        raise ValueError(f"{text!r} is not a valid DNS name ({err})") from None


def owner_problem(name: str, rtype: str) -> str | None:
    """Why ``name`` (canonical) cannot own a ``rtype`` record set here, or None."""
    labels = dns.name.from_text(name).labels[:-1]
    if b"*" in labels:
        return (
            f"'{name}' has a '*' label: wildcards are not served (the responder would match it "
            "literally while secondaries synthesize answers from it); name each record set"
        )
    if rtype in HOST_TYPES:
        bad = next((label for label in labels if not _HOST_LABEL.fullmatch(label)), None)
        if bad is not None:
            shown = dns.name.Name([bad]).to_text(omit_final_dot=True)
            return (
                f"'{name}' is not a host name, as an {rtype} record's owner must be (label '{shown}': "
                "letters, digits and '-' only, not at either end; RFC 952/1123, named-checkzone check-names)"
            )
    return None


def txt_presentation(value: str) -> str:
    """One TXT target as presentation text: quoted, escaped, split into 255-byte strings."""
    data = value.encode("utf-8")
    chunks = [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]
    out = []
    for chunk in chunks:
        parts = []
        for byte in chunk:
            if byte in (0x22, 0x5C):  # " and \
                parts.append("\\" + chr(byte))
            elif 0x20 <= byte < 0x7F:
                parts.append(chr(byte))
            else:
                parts.append(f"\\{byte:03d}")
        out.append('"' + "".join(parts) + '"')
    return " ".join(out)


def _target(rtype: str, value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise InvalidRecord(f"{where}: must be a string, not {type(value).__name__}")
    if rtype == "A":
        try:
            return str(ipaddress.IPv4Address(value.strip()))
        except ValueError:
            raise InvalidRecord(f"{where}: {value!r} is not an IPv4 address") from None
    if rtype == "AAAA":
        try:
            return str(ipaddress.IPv6Address(value.strip()))
        except ValueError:
            raise InvalidRecord(f"{where}: {value!r} is not an IPv6 address") from None
    if rtype == "CNAME":
        try:
            return canonical_name(value)
        except ValueError as err:
            raise InvalidRecord(f"{where}: {err}") from None
    if rtype == "SRV":
        fields = value.split()
        if len(fields) != 4:
            raise InvalidRecord(f'{where}: {value!r} must be "priority weight port target."')
        numbers = []
        for label, text in zip(("priority", "weight", "port"), fields[:3]):
            if not text.isdigit() or int(text) > 65535:
                raise InvalidRecord(f"{where}: {label} {text!r} must be between 0 and 65535")
            numbers.append(int(text))
        try:
            target = canonical_name(fields[3])
        except ValueError as err:
            raise InvalidRecord(f"{where}: target {err}") from None
        return f"{numbers[0]} {numbers[1]} {numbers[2]} {target}"
    if rtype == "TXT":
        return txt_presentation(value)
    raise AssertionError(rtype)


def parse_spec(spec: Mapping[str, Any], *, source: str | None = None) -> RecordSet:
    """One DNSRecord ``spec`` as a :class:`RecordSet`, or :class:`InvalidRecord`.

    ``source`` names the object in messages (for example its ``metadata.name``).
    """
    who = f'dnsrecord "{source}"' if source else "dnsrecord"
    if not isinstance(spec, Mapping):
        raise InvalidRecord(f"{who}: spec must be an object")
    try:
        name = canonical_name(spec.get("name"))  # type: ignore[arg-type]
    except ValueError as err:
        raise InvalidRecord(f"{who}: spec.name: {err}") from None
    rtype = spec.get("type")
    if not isinstance(rtype, str) or rtype.upper() not in TYPES:
        raise InvalidRecord(f"{who}: spec.type: {rtype!r} must be one of {', '.join(TYPES)}")
    rtype = rtype.upper()
    problem = owner_problem(name, rtype)
    if problem is not None:
        raise InvalidRecord(f"{who}: spec.name: {problem}")
    ttl = spec.get("ttl", DEFAULT_TTL)
    if ttl is None:
        ttl = DEFAULT_TTL
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 <= ttl <= MAX_TTL:
        raise InvalidRecord(f"{who}: spec.ttl: {ttl!r} must be an integer between 0 and {MAX_TTL}")
    targets = spec.get("targets")
    if not isinstance(targets, (list, tuple)) or not targets:
        raise InvalidRecord(f"{who}: spec.targets: must be a non-empty list")
    rdatas: list[str] = []
    for i, value in enumerate(targets):
        rdata = _target(rtype, value, f"{who}: spec.targets[{i}]")
        if rdata not in rdatas:
            rdatas.append(rdata)
    if rtype == "CNAME" and len(rdatas) != 1:
        raise InvalidRecord(f"{who}: spec.targets: a CNAME has exactly one target, not {len(rdatas)}")
    placements = _placements(spec.get("placements"), rdatas) if rtype in ("A", "AAAA") else ()
    strategy, weights = _strategy(spec, targets, rdatas, who) if rtype in ("A", "AAAA") else ("", ())
    return RecordSet(name, rtype, ttl, tuple(rdatas), placements, strategy=strategy, weights=weights)


STRATEGIES = ("roundRobin", "weighted", "failover", "nearest")


def _strategy(spec: Mapping[str, Any], targets: Any, rdatas: list[str], who: str) -> tuple[str, tuple[float, ...]]:
    """``spec.strategy`` and, for weighted, ``spec.weights`` (one number per target)."""
    strategy = spec.get("strategy") or ""
    if strategy and strategy not in STRATEGIES:
        raise InvalidRecord(f"{who}: spec.strategy: {strategy!r} must be one of {', '.join(STRATEGIES)}")
    if strategy != "weighted":
        return ("" if strategy in ("", "roundRobin", "failover") else strategy), ()
    raw = spec.get("weights")
    if not isinstance(raw, (list, tuple)) or len(raw) != len(targets):
        raise InvalidRecord(f"{who}: spec.weights: strategy weighted needs one weight per target ({len(targets)})")
    weights: dict[str, float] = {}
    for i, (value, w) in enumerate(zip(targets, raw)):
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0 <= w <= 1e6:
            raise InvalidRecord(f"{who}: spec.weights[{i}]: {w!r} must be a number between 0 and 1000000")
        weights.setdefault(_target(spec["type"].upper(), value, f"{who}: spec.targets[{i}]"), float(w))
    return "weighted", tuple(weights[r] for r in rdatas)


def _placements(raw: Any, rdatas: list[str]) -> tuple[Placement, ...]:
    """The placements of the targets we serve. Placements only order answers, so a malformed
    entry is skipped rather than losing the record set."""
    if not isinstance(raw, (list, tuple)):
        return ()
    out: dict[str, Placement] = {}
    for item in raw:
        if not isinstance(item, Mapping):
            continue
        try:
            target = str(ipaddress.ip_address(str(item.get("target", "")).strip()))
        except ValueError:
            continue
        zones = item.get("zones") or ()
        if target not in rdatas or target in out or not isinstance(zones, (list, tuple)):
            continue
        out[target] = Placement(
            target, str(item.get("cluster") or ""), str(item.get("region") or ""), tuple(str(z) for z in zones)
        )
    return tuple(out[t] for t in rdatas if t in out)


def merge(parsed: Iterable[RecordSet]) -> tuple[RecordSet, list[str]]:
    """One record set from the parsed specs that name it, in order: targets in order with
    duplicates dropped, the smallest TTL; for a CNAME (one target) the first one wins and
    each conflicting one is a problem."""
    problems: list[str] = []
    merged: RecordSet | None = None
    for rs in parsed:
        if merged is None:
            merged = rs
            continue
        if rs.type == "CNAME" and merged.rdatas != rs.rdatas:
            problems.append(
                f"{rs.name} CNAME: conflicting targets {merged.rdatas[0]} and {rs.rdatas[0]}; keeping {merged.rdatas[0]}"
            )
            continue
        rdatas = merged.rdatas + tuple(r for r in rs.rdatas if r not in merged.rdatas)
        known = {p.target for p in merged.placements}
        placements = merged.placements + tuple(p for p in rs.placements if p.target not in known)
        weights = ()
        if merged.weights and rs.weights:
            extra = dict(zip(rs.rdatas, rs.weights))
            weights = merged.weights + tuple(extra[r] for r in rs.rdatas if r not in merged.rdatas)
        merged = RecordSet(rs.name, rs.type, min(merged.ttl, rs.ttl), rdatas, placements,
                           strategy=merged.strategy if weights or merged.strategy != "weighted" else "",
                           weights=weights)
    assert merged is not None, "merge() needs at least one record set"
    return merged, problems


def collect(
    specs: Iterable[Mapping[str, Any]] | Mapping[str, Mapping[str, Any]],
) -> tuple[list[RecordSet], list[str]]:
    """Valid record sets (merged per name and type, sorted) and one message per bad spec.

    ``specs`` is a list of specs, merged in list order, or a mapping from object name to
    spec (the responder's view keyed by ``metadata.name``), merged in order of object name
    so the result does not depend on the order the objects arrived in; messages name the
    object.
    """
    items = sorted(specs.items()) if isinstance(specs, Mapping) else [(None, s) for s in specs]
    groups: dict[tuple[str, str], list[RecordSet]] = {}
    problems: list[str] = []
    for source, spec in items:
        try:
            rs = parse_spec(spec, source=source)
        except InvalidRecord as err:
            problems.append(str(err))
            continue
        groups.setdefault((rs.name, rs.type), []).append(rs)
    out: list[RecordSet] = []
    for key in sorted(groups):
        rs, conflicts = merge(groups[key])
        out.append(rs)
        problems += conflicts
    return out, problems


Key = tuple[str, str]  # (owner name, type) of one record set


class Catalog:
    """:func:`collect`, one object at a time: the record sets of a set of DNSRecord objects,
    kept current as objects come and go, so a watch event costs its own record sets.

    Objects are ranked (0 for the responder's own ``--records``, 1 for the federation's)
    and merged per record set in order of (rank, object name), as :func:`collect` merges a
    mapping; :meth:`put` and :meth:`delete` return the keys of the record sets whose merged
    value changed, and :attr:`merged` holds each record set.
    """

    def __init__(self) -> None:
        self.parsed: dict[str, RecordSet] = {}  # object name -> its record set, for valid specs
        self.ranks: dict[str, int] = {}  # objects ranked other than 1
        self.members: dict[Key, tuple[str, ...]] = {}  # record set -> the objects that name it, in merge order
        self.merged: dict[Key, RecordSet] = {}
        self.bad: dict[str, str] = {}  # object name -> why its spec is not served
        self.conflicts: dict[Key, list[str]] = {}  # record set -> its merge problems

    @classmethod
    def of(cls, specs: Iterable[tuple[str, Mapping[str, Any], int]]) -> "Catalog":
        """A catalog of (object name, spec, rank) triples, built in one pass."""
        catalog = cls()
        keys: set[Key] = set()
        for name, spec, rank in specs:
            keys |= catalog._set(name, spec, rank)
        for key in keys:
            catalog._remerge(key)
        return catalog

    def put(self, name: str, spec: Mapping[str, Any] | None, rank: int = 1) -> set[Key]:
        """Set object ``name``'s spec (None: the object is gone); the keys whose value changed."""
        return {key for key in self._set(name, spec, rank) if self._remerge(key)}

    def delete(self, name: str) -> set[Key]:
        return self.put(name, None)

    def recordsets(self) -> list[RecordSet]:
        return [self.merged[k] for k in sorted(self.merged)]

    def problems(self) -> list[str]:
        return [*self.bad.values(), *(p for ps in self.conflicts.values() for p in ps)]

    def _set(self, name: str, spec: Mapping[str, Any] | None, rank: int) -> set[Key]:
        keys: set[Key] = set()
        old = self.parsed.pop(name, None)
        if old is not None:
            key = (old.name, old.type)
            keys.add(key)
            members = tuple(n for n in self.members[key] if n != name)
            if members:
                self.members[key] = members
            else:
                del self.members[key]
        self.bad.pop(name, None)
        self.ranks.pop(name, None)
        if spec is None:
            return keys
        try:
            rs = parse_spec(spec, source=name)
        except InvalidRecord as err:
            self.bad[name] = str(err)
            return keys
        key = (rs.name, rs.type)
        self.parsed[name] = rs
        if rank != 1:
            self.ranks[name] = rank
        ranks = self.ranks
        self.members[key] = tuple(sorted((*self.members.get(key, ()), name), key=lambda n: (ranks.get(n, 1), n)))
        keys.add(key)
        return keys

    def _remerge(self, key: Key) -> bool:
        """Merge ``key`` again from its members; True when its value changed."""
        members = self.members.get(key)
        old = self.merged.get(key)
        if not members:
            self.conflicts.pop(key, None)
            if old is None:
                return False
            del self.merged[key]
            return True
        rs, problems = merge(self.parsed[n] for n in members)
        if problems:
            self.conflicts[key] = problems
        else:
            self.conflicts.pop(key, None)
        if rs == old:
            return False
        self.merged[key] = rs
        return True
