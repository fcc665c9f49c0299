"""A record change through the real federation API server reaches the answers in place
(issue 20): a real ``ubernetes federation-apiserver`` and a responder watching it, real
UDP queries on loopback and the real status endpoint.

A record set changing type the way the federation changes it (the new CNAME written
before the old A is deleted) is answered by the rule in docs/dns.md and counted in
``/status``; every change is applied in place (no whole build after the first list), the
serial rises with each, and a CNAME chain into a changed name follows it.
"""

from __future__ import annotations

import aiohttp
import dns.asyncquery
import dns.message
import dns.rdatatype

from fedns.app import Responder, Settings
from fedns.sync import DNSRECORDS
from test_dns_sync import eventually as until
from tests.conftest import apiserver

ZONE = "web.default.myfed.svc.z1.r1.example.com."
REGION = "web.default.myfed.svc.r1.example.com."
ALIAS = "alias.example.com."


async def ask(port: int, name: str, rtype: str = "A") -> dns.message.Message:
    return await dns.asyncquery.udp(dns.message.make_query(name, rtype), "127.0.0.1", port=port, timeout=2)


async def answer(port: int, name: str) -> list[tuple[str, str]]:
    msg = await ask(port, name)
    return [(dns.rdatatype.to_text(rs.rdtype), str(r)) for rs in msg.answer for r in rs]


async def test_a_type_change_through_the_api_is_answered_by_the_rule_and_counted(tmp_path):
    with apiserver(tmp_path, "--no-controllers") as url:
        settings = Settings(listen="127.0.0.1:0", federation=url, status_listen="127.0.0.1:0")
        async with aiohttp.ClientSession() as http, Responder(settings) as r:

            async def write(method: str, name: str, spec: dict | None = None) -> None:
                body = {"apiVersion": "federation/v1beta1", "kind": "DNSRecord", "metadata": {"name": name},
                        "spec": spec}
                path = url + DNSRECORDS + ("" if method == "POST" else f"/{name}")
                async with http.request(method, path, json=body if spec else None) as resp:
                    assert resp.status in (200, 201), await resp.text()

            async def status() -> dict:
                async with http.get(f"http://127.0.0.1:{r.status.port}/status") as resp:
                    return await resp.json()

            await write("POST", "a.zone", {"name": ZONE, "type": "A", "ttl": 5, "targets": ["127.10.1.1"]})
            await write("POST", "a.region", {"name": REGION, "type": "A", "ttl": 5, "targets": ["127.10.2.1"]})
            await write("POST", "c.alias", {"name": ALIAS, "type": "CNAME", "ttl": 5, "targets": [ZONE]})

            async def chain_to_zone_a():
                return await answer(r.port, ALIAS) == [("CNAME", ZONE), ("A", "127.10.1.1")]

            await until(chain_to_zone_a)
            serial = (await ask(r.port, "example.com.", "SOA")).answer[0][0].serial

            # The zone loses its shard: the CNAME up to the region is written first ...
            await write("POST", "c.zone", {"name": ZONE, "type": "CNAME", "ttl": 5, "targets": [REGION]})

            async def shadow_counted():
                return (await status())["cnameShadows"] == {"current": 1, "total": 1}

            await until(shadow_counted)
            assert await answer(r.port, ZONE) == [("A", "127.10.1.1")]  # the data wins meanwhile
            # ... then the A is deleted: the CNAME is served, and the chain into it follows.
            await write("DELETE", "a.zone")

            async def chain_to_region():
                return await answer(r.port, ALIAS) == [("CNAME", ZONE), ("CNAME", REGION), ("A", "127.10.2.1")]

            await until(chain_to_region)
            doc = await status()
            assert doc["cnameShadows"] == {"current": 0, "total": 1}
            assert doc["problems"] == []
            assert doc["zoneChanges"]["wholeBuilds"] == 0 and doc["zoneChanges"]["inPlace"] >= 3  # writes close together share a step
            assert (await ask(r.port, "example.com.", "SOA")).answer[0][0].serial >= serial + 2
            # A change to the end of the chain shows through it.
            async with http.patch(url + DNSRECORDS + "/a.region", data='{"spec": {"targets": ["127.10.3.1"]}}',
                                  headers={"Content-Type": "application/merge-patch+json"}) as resp:
                assert resp.status == 200, await resp.text()

            async def chain_follows():
                return (await answer(r.port, ALIAS))[-1] == ("A", "127.10.3.1")

            await until(chain_follows)
