"""Publishing the federation's records to an external primary by RFC 2136 dynamic update.

The other way to scale out (docs/dns.md): instead of serving the zone and letting
secondaries pull it, push every change to a DNS server someone already runs (BIND,
Knot, PowerDNS, or a cloud DNS that speaks RFC 2136), signed with a TSIG key, the way
Federation v1 pushed to Google Cloud DNS or Route 53. ``ubernetes dns-publish`` lists and
watches DNSRecords exactly as the responder does (:mod:`fedns.sync`, :mod:`fedns.view`)
and sends the primary the difference after each change.

- :func:`plan_update` is pure: from what the primary has (our names only) to what it
  should have, one operation per record set (replace or delete);
- :class:`Publisher` learns the primary's contents once by AXFR (signed with the same
  key), so records published before a restart and since deleted are removed too; when
  the primary refuses the transfer, it starts from nothing and only replaces;
- the SOA and the apex NS belong to the primary and are never touched, and neither is
  any name the federation cannot have written: every federation record name has a
  ``svc`` label below the zone (``<svc>.<ns>.<fed>.svc.<domain>`` and the SRV names under
  it), so names without one (the primary's own ``ns1``, ``www``, ...) are left alone.
"""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path
from typing import Iterable

import dns.asyncquery
import dns.name
import dns.query
import dns.rdata
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.update
import dns.zone

from fedns.records import RecordSet

log = logging.getLogger("fedns.publish")

Key = tuple[str, str]  # (owner, type)
State = dict[Key, tuple[int, tuple[str, ...]]]  # -> (ttl, rdatas)
OPS_PER_MESSAGE = 200
OWNED_BY_PRIMARY = {"SOA", "NS"}


def in_zone(name: str, zone: str) -> bool:
    return name == zone or name.endswith("." + zone)


def ours(name: str, zone: str) -> bool:
    """Whether a name on the primary may be the federation's (see the module docstring)."""
    return in_zone(name, zone) and "svc" in name[: -len(zone)].split(".")


def desired_state(recordsets: Iterable[RecordSet], zone: str) -> State:
    return {
        (rs.name, rs.type): (rs.ttl, tuple(sorted(rs.rdatas)))
        for rs in recordsets
        if ours(rs.name, zone) and rs.type not in OWNED_BY_PRIMARY
    }


def plan_update(current: State, desired: State) -> list[tuple[str, Key, tuple[int, tuple[str, ...]] | None]]:
    """("replace", key, (ttl, rdatas)) or ("delete", key, None) per record set that differs."""
    ops: list[tuple[str, Key, tuple[int, tuple[str, ...]] | None]] = []
    for key in sorted(set(current) | set(desired)):
        want, have = desired.get(key), current.get(key)
        if want == have:
            continue
        ops.append(("delete", key, None) if want is None else ("replace", key, want))
    return ops


def parse_key(text: str) -> tuple[str, str, str]:
    """(name, algorithm, secret) from ``NAME:ALGORITHM:SECRET`` or a BIND key file's text."""
    m = re.search(r'key\s+"?([^"\s{]+)"?\s*\{(.*?)\}\s*;', text, re.S)
    if m:
        body = m.group(2)
        alg = re.search(r"algorithm\s+([\w-]+)\s*;", body)
        secret = re.search(r'secret\s+"([^"]+)"\s*;', body)
        if not (alg and secret):
            raise ValueError("the key file needs an algorithm and a secret")
        return m.group(1), alg.group(1), secret.group(1)
    parts = text.strip().split(":", 2)
    if len(parts) != 3:
        raise ValueError("a TSIG key is NAME:ALGORITHM:SECRET or a file with a BIND key statement")
    return parts[0], parts[1], parts[2]


class Publisher:
    """Keeps one zone on an external primary equal to our records for it."""

    def __init__(
        self,
        *,
        primary: tuple[str, int],
        zone: str,
        key: tuple[str, str, str] | None = None,
        timeout: float = 5.0,
    ) -> None:
        self.host, self.port = primary
        self.zone = zone.rstrip(".").lower() + "."
        self.timeout = timeout
        self.keyring = None
        self.keyname = None
        self.algorithm = dns.tsig.default_algorithm
        if key is not None:
            name, algorithm, secret = key
            self.keyring = dns.tsigkeyring.from_text({name: secret})
            self.keyname = dns.name.from_text(name)
            self.algorithm = dns.name.from_text(algorithm)
        self.published: State | None = None  # None: not learnt from the primary yet
        self.updates = 0
        self.last_error: str | None = None

    async def learn(self) -> None:
        """What the primary holds now, by AXFR; an empty start if it will not tell."""

        def transfer() -> State:
            xfr = dns.query.xfr(
                self.host, self.zone, port=self.port, keyring=self.keyring, keyname=self.keyname,
                keyalgorithm=self.algorithm, timeout=self.timeout, lifetime=self.timeout * 4, relativize=False,
            )
            z = dns.zone.from_xfr(xfr, relativize=False)
            state: State = {}
            for name, rdataset in z.iterate_rdatasets():
                rtype = dns.rdatatype.to_text(rdataset.rdtype)
                owner = name.to_text().lower()
                if rtype in OWNED_BY_PRIMARY or not ours(owner, self.zone):
                    continue
                state[(owner, rtype)] = (rdataset.ttl, tuple(sorted(r.to_text() for r in rdataset)))
            return state

        try:
            self.published = await asyncio.to_thread(transfer)
        except Exception as err:
            log.warning("cannot transfer %s from %s:%d (%s); replacing our records only", self.zone, self.host, self.port, err)
            self.published = {}

    def messages(self, ops: list) -> list[dns.update.Update]:
        out = []
        for i in range(0, len(ops), OPS_PER_MESSAGE):
            update = dns.update.Update(
                self.zone, keyring=self.keyring, keyname=self.keyname, keyalgorithm=self.algorithm
            )
            for op, (name, rtype), value in ops[i : i + OPS_PER_MESSAGE]:
                update.delete(name, rtype)
                if op == "replace":
                    ttl, rdatas = value
                    update.add(name, ttl, *(dns.rdata.from_text("IN", rtype, r) for r in rdatas))
            out.append(update)
        return out

    async def publish(self, recordsets: Iterable[RecordSet]) -> int:
        """Send the primary what changed; the number of record sets updated."""
        if self.published is None:
            await self.learn()
        assert self.published is not None
        desired = desired_state(recordsets, self.zone)
        ops = plan_update(self.published, desired)
        for update in self.messages(ops):
            reply = await dns.asyncquery.tcp(update, self.host, port=self.port, timeout=self.timeout)
            if reply.rcode() != dns.rcode.NOERROR:
                self.last_error = f"update refused: {dns.rcode.to_text(reply.rcode())}"
                raise RuntimeError(f"{self.host}:{self.port} answered {dns.rcode.to_text(reply.rcode())} to an update of {self.zone}")
        self.published = desired
        self.updates += len(ops)
        self.last_error = None
        if ops:
            log.info("published %d record set changes to %s at %s:%d", len(ops), self.zone, self.host, self.port)
        return len(ops)


def load_key(value: str) -> tuple[str, str, str]:
    path = Path(value)
    return parse_key(path.read_text() if path.exists() else value)

