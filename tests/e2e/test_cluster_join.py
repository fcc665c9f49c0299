"""A member cluster joins a real federation API server, renews its lease, and rejoins by itself.

Real processes, real sockets: the federation API server (``python -m federation
federation-apiserver``) and a member (``python -m clusters``) on ephemeral ports.
"""

from __future__ import annotations

import sys

import pytest

from clusters.testing import ClusterProcess, Process, free_port, http, wait_until
from apimachinery.meta import parse_time

CLUSTERS = "/apis/federation/v1beta1/clusters"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/federation-system/leases"

pytest.importorskip("federation.api.apiserver")


class APIServer(Process):
    def __init__(self, *, port: int, store: str) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        super().__init__(
            [sys.executable, "-m", "federation", "federation-apiserver", "--listen", f"127.0.0.1:{port}", "--store", store,
             "--no-controllers"]
        )  # fmt: skip

    def wait_ready(self) -> "APIServer":
        def up() -> bool:
            if not self.alive():
                raise AssertionError(f"API server exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                return http("GET", self.url + "/healthz", timeout=1)[0] == 200
            except OSError:
                return False

        wait_until(up, timeout=20, what="federation API server")
        return self


@pytest.fixture
def procs():
    started: list[Process] = []
    yield started
    for p in started:
        p.close()


def get(url: str):
    status, body, _ = http("GET", url, timeout=2)
    return body if status == 200 else None


def renew_time(api: APIServer, name: str):
    lease = get(f"{api.url}{LEASES}/{name}")
    return parse_time(lease["spec"]["renewTime"]) if lease else None


def test_join_lease_rejoin_after_restart_and_unjoin(procs, tmp_path):
    port = free_port()
    api = APIServer(port=port, store=str(tmp_path / "fed.db"))
    procs.append(api)
    api.wait_ready()
    member = ClusterProcess(
        name="aws-join-1", region="us-east-1", zones="us-east-1a,us-east-1b", provider="aws",
        federation=api.url, extra=["--lease-period", "0.2", "--lease-duration", "2", "--unjoin-on-exit"],
    )  # fmt: skip
    procs.append(member)
    member.wait_ready()

    # the Cluster object appears with our address and provider
    cluster = wait_until(lambda: get(f"{api.url}{CLUSTERS}/aws-join-1"), timeout=10, what="Cluster object")
    assert cluster["spec"]["serverAddressByClientCIDRs"] == [{"clientCIDR": "0.0.0.0/0", "serverAddress": member.url}]
    assert cluster["spec"]["provider"] == "aws"

    # the Lease appears and is renewed
    lease = wait_until(lambda: get(f"{api.url}{LEASES}/aws-join-1"), timeout=10, what="Lease")
    assert lease["spec"]["holderIdentity"] == "aws-join-1" and lease["spec"]["leaseDurationSeconds"] == 2
    assert "." in lease["spec"]["renewTime"]  # RFC 3339 with microseconds
    first = renew_time(api, "aws-join-1")
    wait_until(lambda: renew_time(api, "aws-join-1") > first, timeout=5, what="lease renewal")

    # kill -9 the API server and bring it back on the same file: the member keeps renewing
    api.kill()
    api2 = APIServer(port=port, store=str(tmp_path / "fed.db"))
    procs.append(api2)
    api2.wait_ready()
    before = renew_time(api2, "aws-join-1")
    wait_until(lambda: renew_time(api2, "aws-join-1") > before, timeout=10, what="renewal after restart")

    # restart with an empty store: the member rejoins without help
    api2.kill()
    api3 = APIServer(port=port, store=":memory:")
    procs.append(api3)
    api3.wait_ready()
    wait_until(lambda: get(f"{api3.url}{CLUSTERS}/aws-join-1"), timeout=10, what="rejoin into a fresh store")
    wait_until(lambda: get(f"{api3.url}{LEASES}/aws-join-1"), timeout=10, what="lease in a fresh store")

    # a deleted Cluster object comes back within a few renewals
    assert http("DELETE", f"{api3.url}{CLUSTERS}/aws-join-1")[0] == 200
    wait_until(lambda: get(f"{api3.url}{CLUSTERS}/aws-join-1"), timeout=10, what="Cluster recreated after delete")

    logs = member.logs()
    assert "retrying with backoff" in logs and "reachable again" in logs
    assert logs.count("retrying with backoff") <= 3, logs  # logged per outage, not per retry

    # --unjoin-on-exit: a clean stop removes the Cluster and the Lease
    assert member.terminate(timeout=10) == 0, member.logs()
    assert http("GET", f"{api3.url}{CLUSTERS}/aws-join-1")[0] == 404
    assert http("GET", f"{api3.url}{LEASES}/aws-join-1")[0] == 404


def test_member_waits_for_a_federation_that_starts_later(procs):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    member = ClusterProcess(name="gcp-late-1", region="europe-west1", zones="europe-west1-b", provider="gcp",
                            federation=url, extra=["--lease-period", "0.2"])  # fmt: skip
    procs.append(member)
    member.wait_ready()
    wait_until(lambda: "retrying with backoff" in member.logs(), timeout=5, what="backoff log")
    api = APIServer(port=port, store=":memory:")
    procs.append(api)
    api.wait_ready()
    cluster = wait_until(lambda: get(f"{url}{CLUSTERS}/gcp-late-1"), timeout=10, what="late join")
    assert cluster["spec"]["provider"] == "gcp"
    # without --unjoin-on-exit the Cluster stays after a clean stop
    assert member.terminate(timeout=10) == 0
    assert http("GET", f"{url}{CLUSTERS}/gcp-late-1")[0] == 200
