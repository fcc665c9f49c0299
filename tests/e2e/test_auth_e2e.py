"""Authentication and authorization with real processes (issue 8).

A federation with tokens on (LocalFederation(auth=True), as ``ubernetes up`` runs it): the
members join with a bootstrap token, get credentials of their own, renew their leases with
them and publish access tokens for their APIs; the federation reaches them with those, the
DNS responder reads with its reader token and answers; and every request without the right
token is refused with a Status that says why.
"""

from __future__ import annotations

import asyncio
import sys

import dns.message
import dns.query
import dns.rdatatype
import pytest
import pytest_asyncio

from federation.api import auth
from apimachinery.client import APIClient
from federation.launch.localfed import LocalFederation
from apimachinery.meta import parse_time
from federation.launch.topology import ClusterSpec, Topology
from tests.conftest import expect_error, first_credential, random_pool

pytestmark = pytest.mark.asyncio(loop_scope="module")

CLUSTERS = "/apis/federation/v1beta1/clusters"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/federation-system/leases"
SECRETS = "/api/v1/namespaces/federation-system/secrets"
SERVICES = "/api/v1/namespaces/default/services"
GLOBAL = "web.default.myfed.svc.example.com."
WEB = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "labels": {"app": "web"}},
       "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"name": "http", "port": 8000}]}}


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def fed():
    topology = Topology(clusters=(
        ClusterSpec("c1", "aws", "us-east-1", ("us-east-1a",), random_pool(0)),
        ClusterSpec("c2", "aws", "us-east-1", ("us-east-1b",), random_pool(1)),
    ))
    federation = LocalFederation(topology, auth=True)  # tokens go only over https (issue 19)
    try:
        await federation.start(timeout=40)
        yield federation
    finally:
        await federation.stop()


async def test_clusters_join_with_the_bootstrap_token_and_renew_with_their_own_credential(fed):
    clusters = await fed.clusters()
    assert set(clusters) == {"c1", "c2"}
    for name in ("c1", "c2"):
        assert clusters[name]["spec"]["secretRef"] == {"name": f"cluster-access-{name}"}
        assert f"got a credential of our own (user system:cluster:{name})" in fed.logs(name)
        # Only the hash of the credential is stored.
        stored = await fed.api.get(f"{SECRETS}/cluster-credential-{name}")
        assert auth.secret_value(stored, "token-sha256") and "token" not in stored["data"]
    first = parse_time((await fed.api.get(f"{LEASES}/c1"))["spec"]["renewTime"])

    async def renewed() -> bool:
        lease = await fed.api.get(f"{LEASES}/c1")
        return parse_time(lease["spec"]["renewTime"]) > first

    await fed.wait_for(renewed, 10, "c1 to renew its lease")


async def test_the_federation_reaches_members_with_their_access_tokens_and_dns_answers(fed):
    await fed.api.post(SERVICES, WEB)

    def answers() -> list[str]:
        resp = dns.query.udp(dns.message.make_query(GLOBAL, "A"), fed.host, port=fed.dns_port, timeout=2)
        return sorted(r.to_text() for rrset in resp.answer if rrset.rdtype == dns.rdatatype.A for r in rrset)

    async def two_shards() -> bool:
        return len(await asyncio.to_thread(answers)) == 2

    await fed.wait_for(two_shards, 30, "two A records for the global name")
    # The copies really are in the members, whose APIs refuse anyone without a token.
    for name in ("c1", "c2"):
        async with APIClient(fed.cluster_url(name), ca_file=fed.ca_file) as anonymous:
            await expect_error(401, anonymous.get(f"{SERVICES}/web"))
        access = auth.secret_value(await fed.api.get(f"{SECRETS}/cluster-access-{name}"), "token")
        async with APIClient(fed.cluster_url(name), ca_file=fed.ca_file, token=access) as member:
            assert (await member.get(f"{SERVICES}/web"))["metadata"]["name"] == "web"


async def test_requests_without_a_token_are_401(fed):
    async with APIClient(fed.api_url, ca_file=fed.ca_file) as anonymous:
        err = await expect_error(401, anonymous.get(CLUSTERS))
        assert err.reason == "Unauthorized"
        assert await anonymous.get("/healthz") == "ok"
    async with APIClient(fed.api_url, ca_file=fed.ca_file, token="not-a-token") as wrong:
        await expect_error(401, wrong.get(CLUSTERS))


async def test_a_cluster_credential_touches_only_its_own_objects(fed):
    # c5 is a new cluster: the bootstrap token gets only an unclaimed name's first credential.
    token = await first_credential(fed, "c5")
    lease2 = await fed.api.get(f"{LEASES}/c2")
    async with APIClient(fed.api_url, ca_file=fed.ca_file, token=token) as c1:
        await c1.post(LEASES, {"metadata": {"name": "c5", "namespace": "federation-system"}, "spec": {}})
        await c1.patch(f"{LEASES}/c5", {"spec": {"holderIdentity": "c5"}})
        refusals = [
            ("another cluster's lease", c1.patch(f"{LEASES}/c2", {"spec": {"holderIdentity": "c5"}})),
            ("another cluster's lease, created", c1.post(LEASES, {"metadata": {"name": "c3", "namespace": "federation-system"}, "spec": {}})),
            ("another cluster's status", c1.patch(f"{CLUSTERS}/c2/status", {"status": {"zones": ["x"]}})),
            ("another cluster", c1.delete(f"{CLUSTERS}/c2")),
            ("a federated object", c1.post(SERVICES, {**WEB, "metadata": {"name": "evil"}})),
            ("a federated object, changed", c1.patch(f"{SERVICES}/web", {"metadata": {"labels": {"x": "y"}}})),
            ("the token list", c1.get(SECRETS)),
            ("a bootstrap token", c1.get(f"{SECRETS}/bootstrap-token-{fed.credentials.bootstrap[:6]}")),
            ("another cluster's access token", c1.get(f"{SECRETS}/cluster-access-c2")),
        ]
        for what, request in refusals:
            err = await expect_error(403, request)
            assert err.reason == "Forbidden", what
            assert 'User "system:cluster:c5" cannot' in err.message and "a cluster may" in err.message, (what, err.message)
        err = await expect_error(403, c1.patch(f"{LEASES}/c2", {"spec": {}}))
        assert err.message == (
            'leases.coordination.k8s.io "c2" is forbidden: User "system:cluster:c5" cannot patch resource "leases" '
            'in API group "coordination.k8s.io" in the namespace "federation-system": '
            "a cluster may write only its own Cluster and Lease"
        )
    # The refusals changed nothing.
    assert (await fed.api.get(f"{LEASES}/c2"))["spec"]["holderIdentity"] == lease2["spec"]["holderIdentity"]
    await expect_error(404, fed.api.get(f"{SERVICES}/evil"))
    await expect_error(404, fed.api.get(f"{LEASES}/c3"))
    await fed.api.delete(f"{LEASES}/c5")


async def test_readers_read_everything_but_secrets_and_write_nothing(fed):
    async with APIClient(fed.api_url, ca_file=fed.ca_file, token=fed.credentials.reader) as reader:
        assert (await reader.get(CLUSTERS))["items"]
        assert (await reader.get("/apis/federation/v1beta1/dnsrecords"))["items"]
        await expect_error(403, reader.get(SECRETS))
        err = await expect_error(403, reader.delete(f"{SERVICES}/web"))
        assert "only group system:masters may write" in err.message


async def test_the_monitoring_token_scrapes_metrics_over_https_and_a_reader_may_not(fed):
    """issue 17: ``ubernetes up`` writes a system:monitoring token for Prometheus."""
    async with APIClient(fed.api_url, ca_file=fed.ca_file, token=fed.credentials.monitoring) as prom:
        text = await prom.get("/metrics")
        assert 'cluster_ready_state{member_cluster="c1"}' in text and "apiserver_request_total{" in text
        assert (await prom.get(CLUSTERS))["items"]  # otherwise a reader
        await expect_error(403, prom.get(SECRETS))
    async with APIClient(fed.api_url, ca_file=fed.ca_file, token=fed.credentials.reader) as reader:
        err = await expect_error(403, reader.get("/metrics"))
        assert "system:monitoring" in err.message


async def test_member_chaos_needs_a_token(fed):
    async with APIClient(fed.cluster_url("c1"), ca_file=fed.ca_file) as anonymous:
        err = await expect_error(401, anonymous.post("/chaos", {"partitioned": True}))
        assert "chaos" in err.message
        assert await anonymous.get("/healthz") == "ok"
    assert (await fed.chaos("c1", None)).get("partitioned") is False  # the admin's token works


async def test_token_create_and_join(fed, tmp_path):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "federation", "--server", fed.api_url, "--token", fed.credentials.admin,
        "--certificate-authority", fed.ca_file, "token", "create",
        "--ttl", "10m", "--single-use", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    token = out.decode().strip()
    assert auth.BOOTSTRAP_TOKEN.match(token), token
    async with APIClient(fed.api_url, ca_file=fed.ca_file, token=token) as boot:
        await expect_error(403, boot.get(SECRETS))
        stored = await fed.api.get(f"{SECRETS}/bootstrap-token-{token[:6]}")
        assert auth.secret_value(stored, "usage-bootstrap-authentication") == "true"
        answer = await boot.post(f"{CLUSTERS}/c9/credential", None)
        assert answer["user"] == "system:cluster:c9"
        # --single-use: the token is spent on that first credential.
        await expect_error(401, boot.post(f"{CLUSTERS}/c8/credential", None))
    await expect_error(404, fed.api.get(f"{SECRETS}/bootstrap-token-{token[:6]}"))
    # A reader may not create tokens.
    async with APIClient(fed.api_url, ca_file=fed.ca_file, token=fed.credentials.reader) as reader:
        await expect_error(403, reader.post(SECRETS, auth.bootstrap_secret(auth.new_bootstrap_token())))


async def test_after_a_store_wipe_clusters_ask_again_with_the_bootstrap_token(fed):
    """Last: restarts the API with an empty store, so every credential is gone."""
    await fed.stop_api()
    await fed.start_api()
    await fed.wait_clusters_ready(["c1", "c2"], timeout=30)
    for name in ("c1", "c2"):
        assert "asking again with the bootstrap token" in fed.logs(name)
        assert (await fed.api.get(f"{SECRETS}/cluster-access-{name}"))["data"]["token"]
