"""Issue 19's critical holes, attacked against a running federation (tokens and TLS on, as
``ubernetes up`` runs it), and shown closed.

- A Cluster whose ``spec.secretRef`` names another member's access Secret, or whose server
  address is plain http, once had the federation send a member's token to an address of
  the attacker's: the listener here records every byte it gets and must see no token.
- A bootstrap token once re-issued an existing cluster's credential and patched other
  Clusters: now it gets only a new cluster's first credential.
- A rogue join once put its addresses into DNS and received every federated Service:
  now it waits for ``ubernetes approve``, and its own credential cannot approve it.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype
import pytest
import pytest_asyncio

from federation.api import approval, auth
from apimachinery.client import APIClient
from federation.launch.localfed import LocalFederation
from apimachinery.meta import parse_time
from apimachinery.errors import APIError
from federation.launch.topology import ClusterSpec, Topology
from tests.conftest import expect_error, first_credential, random_pool

pytestmark = pytest.mark.asyncio(loop_scope="module")

CLUSTERS = "/apis/federation/v1beta1/clusters"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/federation-system/leases"
SECRETS = "/api/v1/namespaces/federation-system/secrets"
SERVICES = "/api/v1/namespaces/default/services"
GLOBAL = "web.default.myfed.svc.example.com."
WEB = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
       "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}}


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def fed():
    topology = Topology(clusters=(
        ClusterSpec("c1", "aws", "us-east-1", ("us-east-1a",), random_pool(0)),
        ClusterSpec("c2", "aws", "us-east-1", ("us-east-1b",), random_pool(1)),
        ClusterSpec("rogue", "aws", "us-east-1", ("us-east-1c",), random_pool(2)),
    ))
    # Only c1 and c2 are trusted as they join; "rogue" joins with the same bootstrap token.
    federation = LocalFederation(topology, auth=True, auto_approve=["c1", "c2"])
    try:
        await federation.start(timeout=40)
        yield federation
    finally:
        await federation.stop()


class Listener:
    """An attacker's endpoint: answers every request ``ok`` and keeps every byte it got."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.requests = 0
        self.server: asyncio.base_events.Server | None = None

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=ssl_context)
        return self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
                self.received += head
                self.requests += 1
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


def client(fed: LocalFederation, token: str | None) -> APIClient:
    return APIClient(fed.api_url, token=token, ca_file=fed.ca_file)


def cluster_object(name: str, address: str, secret_ref: dict | None = None) -> dict:
    spec: dict = {"serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}]}
    if secret_ref is not None:
        spec["secretRef"] = secret_ref
    return {"apiVersion": "federation/v1beta1", "kind": "Cluster", "metadata": {"name": name}, "spec": spec}


async def access_token(fed: LocalFederation, name: str) -> str:
    return auth.secret_value(await fed.api.get(f"{SECRETS}/cluster-access-{name}"), "token")


async def condition(fed: LocalFederation, name: str, ctype: str) -> dict | None:
    cluster = await fed.api.get(f"{CLUSTERS}/{name}")
    return next((c for c in cluster.get("status", {}).get("conditions", []) if c["type"] == ctype), None)


async def test_a_cluster_may_not_point_its_secret_ref_at_another_members_secret(fed):
    token = await first_credential(fed, "thief")
    async with client(fed, token) as thief:
        for ref in ({"name": "cluster-access-c1"}, {"name": "cluster-access-c1", "namespace": "federation-system"},
                    {"name": "anything", "namespace": "default"}):
            err = await expect_error(403, thief.post(CLUSTERS, cluster_object("thief", "http://127.0.0.1:9", ref)))
            assert "spec.secretRef may only name cluster-access-thief" in err.message, err.message
        await expect_error(404, fed.api.get(f"{CLUSTERS}/thief"))
        # Its own default is fine; changing it afterwards is not.
        await thief.post(CLUSTERS, cluster_object("thief", "http://127.0.0.1:9", {"name": "cluster-access-thief"}))
        err = await expect_error(403, thief.patch(f"{CLUSTERS}/thief", {"spec": {"secretRef": {"name": "cluster-access-c1"}}}))
        assert "only an admin may change spec.secretRef" in err.message
        await thief.delete(f"{CLUSTERS}/thief")
    assert (await fed.api.get(f"{CLUSTERS}/c1"))["spec"]["secretRef"] == {"name": "cluster-access-c1"}


async def test_no_token_goes_over_plain_http(fed):
    listener = Listener()
    port = await listener.start()
    token = await first_credential(fed, "plain")
    try:
        async with client(fed, token) as plain:
            await plain.post(SECRETS, auth.access_secret("plain", "plain-secret-token"))
            await plain.post(CLUSTERS, cluster_object("plain", f"http://127.0.0.1:{port}"))

        async def probed() -> bool:  # the federation does talk to it ...
            return listener.requests >= 3

        await fed.wait_for(probed, 15, "the federation to probe the plain-http cluster")

        async def withheld() -> dict | None:
            return await condition(fed, "plain", "TokenWithheld")

        cond = await fed.wait_for(withheld, 15, "the TokenWithheld condition")
        assert cond["status"] == "True" and "not https" in cond["message"], cond
        # ... but never with a token: neither its own nor any other.
        data = bytes(listener.received).lower()
        assert b"authorization" not in data and b"plain-secret-token" not in data
    finally:
        await fed.api.delete(f"{CLUSTERS}/plain")
        await fed.api.delete(f"{SECRETS}/cluster-access-plain")
        await listener.close()


async def test_an_admins_secret_ref_is_not_followed_either(fed):
    """Even over https (the listener has a certificate of the federation's own CA), a
    secretRef naming c1's Secret does not make the federation send c1's token."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(fed.pki["server.crt"], fed.pki["server.key"])
    listener = Listener()
    port = await listener.start(context)
    try:
        await fed.api.post(CLUSTERS, cluster_object("mirror", f"https://127.0.0.1:{port}", {"name": "cluster-access-c1"}))

        async def probed() -> bool:
            return listener.requests >= 3

        await fed.wait_for(probed, 15, "the federation to probe the https cluster")

        async def withheld() -> dict | None:
            return await condition(fed, "mirror", "TokenWithheld")

        cond = await fed.wait_for(withheld, 15, "the TokenWithheld condition")
        assert "spec.secretRef is not followed" in cond["message"], cond
        assert (await access_token(fed, "c1")).encode() not in bytes(listener.received)
    finally:
        await fed.api.delete(f"{CLUSTERS}/mirror")
        await listener.close()


async def test_the_bootstrap_token_cannot_take_over_an_existing_cluster(fed):
    renewed_before = parse_time((await fed.api.get(f"{LEASES}/c1"))["spec"]["renewTime"])
    address = (await fed.api.get(f"{CLUSTERS}/c1"))["spec"]["serverAddressByClientCIDRs"]
    async with client(fed, fed.credentials.bootstrap) as boot:
        err = await expect_error(403, boot.post(f"{CLUSTERS}/c1/credential", None))
        assert "already claimed" in err.message
        await expect_error(403, boot.patch(f"{CLUSTERS}/c1", {"spec": {"serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": "https://127.0.0.1:9"}]}}))
        await expect_error(403, boot.get(f"{CLUSTERS}/c1"))
        await expect_error(403, boot.get(CLUSTERS))
    # Nothing changed: c1 keeps its address, its credential and its lease.
    assert (await fed.api.get(f"{CLUSTERS}/c1"))["spec"]["serverAddressByClientCIDRs"] == address

    async def renewed() -> bool:
        lease = await fed.api.get(f"{LEASES}/c1")
        return parse_time(lease["spec"]["renewTime"]) > renewed_before

    await fed.wait_for(renewed, 10, "c1 to renew its lease with its own credential")
    assert "refuses us a credential" not in fed.logs("c1")


def global_answers(fed: LocalFederation) -> set[str]:
    resp = dns.query.udp(dns.message.make_query(GLOBAL, "A"), fed.host, port=fed.dns_port, timeout=2)
    return {r.address for rrset in resp.answer if rrset.rdtype == dns.rdatatype.A for r in rrset}


async def member_has_web(fed: LocalFederation, name: str) -> bool:
    async with APIClient(fed.cluster_url(name), token=fed.admin_token, ca_file=fed.ca_file) as member:
        try:
            await member.get(f"{SERVICES}/web")
            return True
        except APIError as err:
            if err.code == 404:
                return False
            raise


async def test_a_rogue_join_is_not_trusted_until_an_admin_approves_it(fed):
    cond = await condition(fed, "rogue", approval.APPROVED)
    assert cond and cond["status"] == "False" and cond["reason"] == approval.PENDING_REASON, cond
    assert (await condition(fed, "c1", approval.APPROVED))["reason"] == approval.AUTO_REASON
    await fed.api.post(SERVICES, WEB)

    async def two() -> bool:
        return len(await asyncio.to_thread(global_answers, fed)) == 2

    await fed.wait_for(two, 30, "c1's and c2's addresses in DNS")
    await asyncio.sleep(3)  # several propagation and DNS passes
    assert len(await asyncio.to_thread(global_answers, fed)) == 2
    assert not await member_has_web(fed, "rogue"), "a pending cluster received a federated Service"

    # Its own credential (kept by its agent, 0600) cannot approve it, by any route.
    credential_file = Path(fed.credentials.token_file).parent / "credentials" / "rogue.token"
    assert credential_file.stat().st_mode & 0o077 == 0
    rogue_token = credential_file.read_text().strip()
    async with client(fed, rogue_token) as rogue:
        current = await rogue.get(f"{CLUSTERS}/rogue")
        forged = approval.with_condition(current, approval.make_condition(True, "SelfApproved", "trust me"))
        forged["metadata"].pop("resourceVersion")  # no conflicts: the writes themselves are what is tested
        await expect_error(403, rogue.put(f"{CLUSTERS}/rogue/approval", forged))
        await rogue.put(f"{CLUSTERS}/rogue/status", forged)  # allowed: its status, but not its approval
        await rogue.put(f"{CLUSTERS}/rogue", forged)
    assert (await condition(fed, "rogue", approval.APPROVED))["status"] == "False"

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "federation", "--server", fed.api_url, "--token", fed.credentials.admin,
        "--certificate-authority", fed.ca_file, "approve", "rogue",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert out.decode().strip() == "cluster.federation/rogue approved"

    async def three() -> bool:
        return len(await asyncio.to_thread(global_answers, fed)) == 3

    await fed.wait_for(three, 30, "the approved cluster's address in DNS")
    assert await member_has_web(fed, "rogue")
    assert (await condition(fed, "rogue", approval.APPROVED))["reason"] == approval.ADMIN_REASON


async def test_a_restarted_member_rejoins_with_the_credential_it_kept(fed):
    await fed.crash(["c2"])
    await fed.restart(["c2"])
    await fed.wait_clusters_ready(["c2"], timeout=30)

    async def rejoined() -> bool:
        return "using the credential kept in" in fed.logs("c2")

    await fed.wait_for(rejoined, 15, "c2 to reuse its credential")
    assert "refuses us a credential" not in fed.logs("c2")


async def test_a_lost_credential_answer_can_be_asked_for_again_until_the_cluster_registers(fed):
    """The first answer may be lost on the way (the agent timed out): the same bootstrap token
    may ask again while the Cluster is not registered, which replaces the first credential;
    once the Cluster exists, never again."""
    first = await first_credential(fed, "lost-answer")
    second = await first_credential(fed, "lost-answer")
    assert first != second
    async with client(fed, first) as old:
        await expect_error(401, old.get(f"{CLUSTERS}/lost-answer"))  # the lost one no longer works
    async with client(fed, second) as own:
        await own.post(CLUSTERS, cluster_object("lost-answer", "https://127.0.0.1:9"))
    async with client(fed, fed.credentials.bootstrap) as boot:
        err = await expect_error(403, boot.post(f"{CLUSTERS}/lost-answer/credential", None))
        assert "already claimed" in err.message
    await fed.api.delete(f"{CLUSTERS}/lost-answer")
