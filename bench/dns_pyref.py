"""The per-query dnspython path, for reference only: parse and render every query.

A tiny UDP responder that answers from the same zone as ``ubernetes dns`` (fedns.zone)
but with dnspython doing all the work per query: ``from_wire``, ``make_response``,
``to_wire``. bench/dns_qps runs it to show what precomputed answers buy.
Usage: python bench/dns_pyref.py RECORDS_FILE PORT
"""

from __future__ import annotations

import asyncio
import sys

import dns.message
import dns.rrset

from fedns.command import _load_records
from fedns.records import collect
from fedns.zone import Zone, ZoneConfig


def main() -> None:
    records, port = sys.argv[1], int(sys.argv[2])
    zone = Zone.build(ZoneConfig(), collect(_load_records(records))[0], 1)

    def rrset(rs):
        return dns.rrset.from_text_list(rs.name, rs.ttl, "IN", rs.type, list(rs.rdatas))

    class UDP(asyncio.DatagramProtocol):
        def connection_made(self, transport):
            self.transport = transport
            transport.max_size = 65535

        def datagram_received(self, data, addr):
            try:
                q = dns.message.from_wire(data)
                r = dns.message.make_response(q)
                res = zone.resolve(q.question[0].name.canonicalize().to_wire(), q.question[0].rdtype)
                r.set_rcode(res.rcode)
                r.answer = [rrset(x) for x in res.answer]
                r.authority = [rrset(x) for x in res.authority]
                r.additional = [rrset(x) for x in res.additional]
                self.transport.sendto(r.to_wire(max_size=q.payload if q.edns >= 0 else 512), addr)
            except Exception:
                pass

    async def run():
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(UDP, local_addr=("127.0.0.1", port))
        print(f"serving DNS on 127.0.0.1:{port}", file=sys.stderr, flush=True)
        await asyncio.Event().wait()

    asyncio.run(run())


if __name__ == "__main__":
    main()
