"""The structure of a query message, read by hand, so a broken one still gets its reply.

dnspython either parses a whole message or raises; it cannot say what the header and
question were when the rest is broken. The RFCs want exactly that: a query whose header
and question parse but whose records do not gets FORMERR with its question echoed, and
an OPT in the reply when the query had one (RFC 6891 6.1.1). :func:`scan` walks the
message without interpreting record data and tells the handler's slow path:

- the header, and the question (re-encoded uncompressed, in the client's case, so it
  can be echoed; its lower-case name is the key the answer table uses);
- whether the query had an OPT record (its DO bit), even a misplaced or broken one;
- the first structural problem after the question, in words, or None: a record that
  runs past the end, an OPT outside the additional section, a second OPT, an OPT whose
  owner is not the root, a TSIG that is not the last record, bytes after the last record.

Pure and bounded: names are read with at most 127 labels and 64 compression pointers,
each pointing backwards, so no packet makes it loop. Record data is not looked at here;
dnspython checks it after the scan passes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

OPT, TSIG = 41, 250
DO_BIT = 0x8000
_HEADER = struct.Struct("!HHHHHH")
_RR = struct.Struct("!HHIH")  # type, class, ttl, rdlength
MAX_POINTERS = 64


class Malformed(ValueError):
    """The message cannot be read at this point."""


def read_name(wire: bytes, i: int) -> tuple[bytes, int]:
    """The name at ``wire[i:]`` as uncompressed wire bytes, and the offset after it."""
    out = bytearray()
    end = -1
    hops = 0
    n = len(wire)
    while True:
        if i >= n:
            raise Malformed("name runs past the end")
        length = wire[i]
        if length >= 0xC0:
            if i + 1 >= n:
                raise Malformed("compression pointer runs past the end")
            target = ((length & 0x3F) << 8) | wire[i + 1]
            if end < 0:
                end = i + 2
            if target >= i or hops >= MAX_POINTERS:
                raise Malformed("compression pointer does not point backwards")
            hops += 1
            i = target
            continue
        if length > 63:
            raise Malformed(f"label type 0x{length & 0xC0:02x} is not supported")
        if i + 1 + length > n:
            raise Malformed("label runs past the end")
        out += wire[i : i + 1 + length]
        if len(out) > 255:
            raise Malformed("name longer than 255 bytes")
        if length == 0:
            return bytes(out), (end if end >= 0 else i + 1)
        i += 1 + length


@dataclass(frozen=True)
class Scan:
    qid: int
    flags: int
    qdcount: int
    counts: tuple[int, int, int]  # answer, authority, additional
    question: bytes | None  # name (uncompressed, client's case) + type + class; None if unreadable
    qname: bytes  # lower-case wire name of the question; b"" without one
    qtype: int
    qclass: int
    had_opt: bool  # an OPT record header was read, wherever it was
    opt_do: bool  # the DO bit of the first OPT
    problem: str | None  # the first structural problem after the question; None: well formed


def scan(wire: bytes) -> Scan | None:
    """The structure of ``wire``; None when it is shorter than a header."""
    n = len(wire)
    if n < 12:
        return None
    qid, flags, qd, an, ns, ar = _HEADER.unpack_from(wire)
    question: bytes | None = None
    qname, qtype, qclass = b"", 0, 0
    had_opt = opt_do = False
    problem: str | None = None
    i = 12
    try:
        for k in range(qd):
            name, i = read_name(wire, i)
            if i + 4 > n:
                raise Malformed("question runs past the end")
            if k == 0:
                qtype, qclass = struct.unpack_from("!HH", wire, i)
                question, qname = name + wire[i : i + 4], name.lower()
            i += 4
    except Malformed:
        # Too broken to echo anything: the caller drops it (or answers header-only).
        return Scan(qid, flags, qd, (an, ns, ar), None, b"", 0, 0, False, False, "question")
    for section, count in ((1, an), (2, ns), (3, ar)):
        for position in range(count):
            try:
                name, i = read_name(wire, i)
            except Malformed as err:
                problem = problem or f"record {position + 1} of section {section}: {err}"
                break
            if i + 10 > n:
                problem = problem or f"record {position + 1} of section {section} runs past the end"
                break
            rtype, _rclass, ttl, rdlen = _RR.unpack_from(wire, i)
            if rtype == OPT:
                if section != 3:
                    problem = problem or "an OPT record outside the additional section"
                elif had_opt:
                    problem = problem or "more than one OPT record"
                elif name != b"\x00":
                    problem = problem or "an OPT record whose owner is not the root"
                if not had_opt:
                    had_opt, opt_do = True, bool(ttl & DO_BIT)
            elif rtype == TSIG and (section != 3 or position != count - 1):
                problem = problem or "a TSIG record that is not the last record"
            i += 10 + rdlen
            if i > n:
                problem = problem or f"record {position + 1} of section {section}: rdlength {rdlen} overruns the message"
                break
        else:
            continue
        break
    if problem is None and i < n:
        problem = f"{n - i} bytes after the last record"
    return Scan(qid, flags, qd, (an, ns, ar), question, qname, qtype, qclass, had_opt, opt_do, problem)
