"""Optional TLS (issue 8): the federation API and a member API serve HTTPS with a throwaway
CA made by ``ubernetes certs create``; a client given the CA connects, one without fails."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys

import aiohttp
import pytest

from clusters.testing import ClusterProcess, Process, free_port, wait_until
from federation.certs import create_certs
from apimachinery.client import APIClient

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl command is not installed")


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return create_certs(tmp_path_factory.mktemp("certs"), days=1)


def reachable(url: str, ca: str | None) -> bool | str:
    async def go() -> bool | str:
        async with APIClient(url, timeout=2, ca_file=ca) as client:
            try:
                return await client.get("/healthz") == "ok"
            except aiohttp.ClientConnectorCertificateError:
                return "certificate"
            except (aiohttp.ClientError, OSError):
                return False

    return asyncio.run(go())


def test_federation_api_over_https(certs, tmp_path):
    port = free_port()
    api = Process([sys.executable, "-m", "federation", "federation-apiserver", "--listen", f"127.0.0.1:{port}",
                   "--store", ":memory:", "--no-controllers", "--tls-cert-file", str(certs["server.crt"]),
                   "--tls-private-key-file", str(certs["server.key"])])
    try:
        url = f"https://127.0.0.1:{port}"
        ca = str(certs["ca.crt"])
        wait_until(lambda: reachable(url, ca) is True, timeout=20, what="the HTTPS API")
        assert reachable(url, None) == "certificate"  # not signed by a CA the system trusts
        # The CLI: with the CA it lists, without it fails with a certificate error.
        ok = subprocess.run([sys.executable, "-m", "federation", "--server", url, "--certificate-authority", ca,
                             "get", "clusters"], capture_output=True, text=True, timeout=30)
        assert ok.returncode == 0, ok.stderr
        bad = subprocess.run([sys.executable, "-m", "federation", "--server", url, "get", "clusters"],
                             capture_output=True, text=True, timeout=30)
        assert bad.returncode == 1 and "CERTIFICATE_VERIFY_FAILED" in bad.stderr, bad.stderr
    finally:
        api.close()


def test_member_api_over_https_joins_an_https_federation(certs):
    port = free_port()
    ca = str(certs["ca.crt"])
    tls = ["--tls-cert-file", str(certs["server.crt"]), "--tls-private-key-file", str(certs["server.key"])]
    api = Process([sys.executable, "-m", "federation", "federation-apiserver", "--listen", f"127.0.0.1:{port}",
                   "--store", ":memory:", "--certificate-authority", ca, *tls])
    member = None
    try:
        fed_url = f"https://127.0.0.1:{port}"
        wait_until(lambda: reachable(fed_url, ca) is True, timeout=20, what="the HTTPS API")
        member = ClusterProcess(name="tls1", federation=fed_url, extra=[*tls, "--certificate-authority", ca])
        member_url = f"https://127.0.0.1:{member.port}"
        wait_until(lambda: reachable(member_url, ca) is True, timeout=20, what="the member's HTTPS API")
        assert reachable(member_url, None) == "certificate"

        async def ready() -> bool:
            async with APIClient(fed_url, ca_file=ca) as client:
                cluster = await client.get("/apis/federation/v1beta1/clusters/tls1")
            conditions = (cluster.get("status") or {}).get("conditions") or []
            return cluster["spec"]["serverAddressByClientCIDRs"][0]["serverAddress"] == member_url and any(
                c["type"] == "Ready" and c["status"] == "True" for c in conditions)

        # The federation probes the member over HTTPS with --certificate-authority.
        wait_until(lambda: asyncio.run(ready()), timeout=30, what="the member Ready, probed over HTTPS")
    finally:
        if member is not None:
            member.close()
        api.close()
