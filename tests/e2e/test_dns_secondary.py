"""Scale-out through real DNS servers: Knot as our secondary, BIND as an RFC 2136 primary.

Both are Debian packages that .ci/run installs (``knot``, ``bind9``); each test skips with
the reason when its server is missing. Nothing here installs anything.
"""

from __future__ import annotations

import time

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from test_dns_server import RECORDS, Running

from fedns.secondary import KnotSecondary, free_port

needs_knot = pytest.mark.skipif(not KnotSecondary.available(), reason="knotd is not installed (apt-get install knot)")


def answers(host: str, port: int, name: str, rdtype: str) -> tuple[int, list[str]]:
    reply = dns.query.udp(dns.message.make_query(name, rdtype), host, port=port, timeout=2)
    rrs = [r.to_text() for rrset in reply.answer if rrset.rdtype == dns.rdatatype.from_text(rdtype) for r in rrset]
    return reply.rcode(), sorted(rrs)


@needs_knot
def test_knot_secondary_pulls_the_zone_and_follows_notify():
    port = free_port()
    knot = KnotSecondary(primary=("127.0.0.1", port), zones=["example.com", "clusterset.local"])
    server = Running(listen=f"127.0.0.1:{port}", notify=(f"127.0.0.1:{knot.port}",))
    try:
        knot.start()
        ours = dns.query.udp(dns.message.make_query("example.com.", "SOA"), "127.0.0.1", port=port, timeout=2)
        serial = ours.answer[0][0].serial
        deadline = time.monotonic() + 10
        while knot.wait_serving("example.com.") != serial:
            assert time.monotonic() < deadline, "knot never reached our serial"
            time.sleep(0.05)
        knot.wait_serving("clusterset.local.")
        # The same records, name by name.
        for spec in RECORDS.values():
            for rdtype in (spec["type"], "SOA") if spec["name"] == "example.com." else (spec["type"],):
                assert answers("127.0.0.1", knot.port, spec["name"], rdtype) == answers("127.0.0.1", port, spec["name"], rdtype)
        assert answers("127.0.0.1", knot.port, "dns-version.clusterset.local.", "TXT") == (dns.rcode.NOERROR, ['"1.0.0"'])
        assert answers("127.0.0.1", knot.port, "nope.example.com.", "A")[0] == dns.rcode.NXDOMAIN

        # A change: our NOTIFY makes Knot pick it up within a second.
        async def put():
            server.responder.view.put("fresh", {"name": "fresh.example.com.", "type": "A", "targets": ["127.0.0.77"]})
            await server.responder.view.settled()

        server.call(put())
        started = time.monotonic()
        while answers("127.0.0.1", knot.port, "fresh.example.com.", "A") != (dns.rcode.NOERROR, ["127.0.0.77"]):
            assert time.monotonic() - started < 1.0, knot.log.read_text()[-3000:]
            time.sleep(0.01)
        assert server.responder.handler.transfers >= 3  # two AXFRs, then IXFR (or AXFR) after NOTIFY
        assert server.responder.notifier.acked >= 1
    finally:
        server.close()
        knot.stop()


# -- RFC 2136 publishing to BIND -------------------------------------------------------

import asyncio  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import dns.update  # noqa: E402
import yaml  # noqa: E402

from fedns.publish import Publisher, load_key, plan_update  # noqa: E402
from fedns.records import collect  # noqa: E402

NAMED = shutil.which("named") or ("/usr/sbin/named" if os.path.exists("/usr/sbin/named") else None)
KEYGEN = shutil.which("tsig-keygen") or ("/usr/sbin/tsig-keygen" if os.path.exists("/usr/sbin/tsig-keygen") else None)


@pytest.fixture
def bind():
    if not (NAMED and KEYGEN):
        pytest.skip("named is not installed (apt-get install bind9)")
    directory = tempfile.mkdtemp(prefix="fedns-bind-")
    port = free_port()
    key = subprocess.run([KEYGEN, "-a", "hmac-sha256", "fedns-key"], capture_output=True, text=True, check=True).stdout
    Path(directory, "key.conf").write_text(key)
    Path(directory, "example.com.zone").write_text(
        "$TTL 60\n@ SOA ns1.example.com. hostmaster.example.com. 1 60 10 86400 5\n@ NS ns1.example.com.\nns1 A 127.0.0.1\n"
    )
    Path(directory, "named.conf").write_text(f"""
include "{directory}/key.conf";
options {{
    directory "{directory}";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    pid-file "{directory}/named.pid";
    recursion no;
    dnssec-validation no;
}};
controls {{ }};
zone "example.com" {{
    type primary;
    file "{directory}/example.com.zone";
    allow-update {{ key "fedns-key"; }};
    allow-transfer {{ key "fedns-key"; }};
}};
""")
    log = open(Path(directory, "named.log"), "wb")
    proc = subprocess.Popen([NAMED, "-g", "-c", f"{directory}/named.conf", "-u", "root"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 10
    while True:
        try:
            if answers("127.0.0.1", port, "example.com.", "SOA")[0] == dns.rcode.NOERROR:
                break
        except Exception:
            pass
        assert proc.poll() is None, Path(directory, "named.log").read_text()[-2000:]
        assert time.monotonic() < deadline, "named did not start"
        time.sleep(0.05)
    yield port, Path(directory, "key.conf")
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    log.close()
    shutil.rmtree(directory, ignore_errors=True)


def recordsets(*specs):
    return collect(list(specs))[0]


WEB = {"name": "web.default.myfed.svc.example.com.", "type": "A", "ttl": 5, "targets": ["127.10.1.1", "127.10.2.1"]}
SRV = {"name": "_http._tcp.web.default.myfed.svc.example.com.", "type": "SRV", "ttl": 5, "targets": ["0 100 80 web.default.myfed.svc.example.com."]}


def test_plan_update_replaces_and_deletes():
    cur = {("a.example.com.", "A"): (5, ("127.0.0.1",)), ("b.example.com.", "A"): (5, ("127.0.0.2",))}
    want = {("a.example.com.", "A"): (5, ("127.0.0.1",)), ("c.example.com.", "A"): (5, ("127.0.0.3",))}
    assert plan_update(cur, want) == [
        ("delete", ("b.example.com.", "A"), None),
        ("replace", ("c.example.com.", "A"), (5, ("127.0.0.3",))),
    ]


def test_rfc2136_publishing_to_bind_with_tsig(bind):
    port, keyfile = bind
    key = load_key(str(keyfile))

    async def scenario():
        pub = Publisher(primary=("127.0.0.1", port), zone="example.com", key=key)
        assert await pub.publish(recordsets(WEB, SRV)) == 2
        assert answers("127.0.0.1", port, WEB["name"], "A") == (dns.rcode.NOERROR, ["127.10.1.1", "127.10.2.1"])
        assert answers("127.0.0.1", port, SRV["name"], "SRV")[1] == ["0 100 80 web.default.myfed.svc.example.com."]
        # A change: one address goes, the SRV goes.
        assert await pub.publish(recordsets({**WEB, "targets": ["127.10.1.1"]})) == 2
        assert answers("127.0.0.1", port, WEB["name"], "A") == (dns.rcode.NOERROR, ["127.10.1.1"])
        assert answers("127.0.0.1", port, SRV["name"], "SRV")[0] == dns.rcode.NXDOMAIN
        # A restarted publisher learns the primary's contents by AXFR and removes what is gone.
        fresh = Publisher(primary=("127.0.0.1", port), zone="example.com", key=key)
        assert await fresh.publish(recordsets(SRV)) == 2
        assert answers("127.0.0.1", port, WEB["name"], "A")[1] == []  # NODATA: the SRV is below it
        assert answers("127.0.0.1", port, "ns1.example.com.", "A")[1] == ["127.0.0.1"]  # the primary's own
        # Unsigned updates are refused.
        unsigned = Publisher(primary=("127.0.0.1", port), zone="example.com")
        unsigned.published = {}
        with pytest.raises(RuntimeError, match="REFUSED"):
            await unsigned.publish(recordsets(WEB))

    asyncio.run(scenario())


def test_dns_publish_command_publishes_a_records_file(bind, tmp_path):
    port, keyfile = bind
    records = tmp_path / "records.yaml"
    records.write_text(yaml.safe_dump([WEB]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "federation", "dns-publish", "--federation", "", "--primary", f"127.0.0.1:{port}",
         "--tsig-key", str(keyfile), "--records", str(records)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 10
        while answers("127.0.0.1", port, WEB["name"], "A")[0] != dns.rcode.NOERROR:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        assert answers("127.0.0.1", port, WEB["name"], "A")[1] == ["127.10.1.1", "127.10.2.1"]
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=10)[0]
    assert proc.returncode == 0, out.decode()[-2000:]
