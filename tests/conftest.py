"""Shared fixtures: real processes on ephemeral loopback ports, nothing mocked."""

from __future__ import annotations

import contextlib
import random
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import pytest

from apimachinery.client import APIClient
from federation.launch.localfed import LocalFederation, free_port
from apimachinery.errors import APIError
from federation.launch.topology import ClusterSpec, Topology

if TYPE_CHECKING:
    from federation.launch.etcdserver import EtcdCluster


def random_pool(index: int) -> str:
    """An LB pool of 127/8 unlikely to collide with another test run on the same machine."""
    return f"127.{random.randint(20, 250)}.{random.randint(0, 255)}.{16 * index}/28"


def three_clusters() -> Topology:
    return Topology(
        clusters=(
            ClusterSpec("aws-us-east-1a", "aws", "us-east-1", ("us-east-1a",), random_pool(0)),
            ClusterSpec("aws-us-east-1b", "aws", "us-east-1", ("us-east-1b",), random_pool(1)),
            ClusterSpec("gcp-europe-west1-b", "gcp", "europe-west1", ("europe-west1-b",), random_pool(2)),
        )
    )


# The names three_clusters() answers for a service ``web`` in ``default`` (docs/architecture.md).
GLOBAL = "web.default.myfed.svc.example.com."
REGION_EAST = "web.default.myfed.svc.us-east-1.example.com."
ZONE_A = "web.default.myfed.svc.us-east-1a.us-east-1.example.com."
ZONE_B = "web.default.myfed.svc.us-east-1b.us-east-1.example.com."
REGION_EU = "web.default.myfed.svc.europe-west1.example.com."
ZONE_EU = "web.default.myfed.svc.europe-west1-b.europe-west1.example.com."
CLUSTERSET = "web.default.svc.clusterset.local."


@pytest.fixture
def topology() -> Topology:
    return three_clusters()


def wait_healthy(url: str, proc: "subprocess.Popen[bytes]", log: Path, what: str, seconds: float = 20) -> None:
    """Wait until ``url``/healthz answers; fail with the process's log if it exits first."""
    deadline = time.monotonic() + seconds
    while True:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not answer /healthz within {seconds} s")
        time.sleep(0.1)


def stop_process(proc: "subprocess.Popen[bytes]") -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def apiserver(work: Path, *args: str) -> Iterator[str]:
    """A real ``ubernetes federation-apiserver`` (in-memory store) on a free port; yields its URL."""
    with apiserver_process(work, *args) as (url, _):
        yield url


@contextlib.contextmanager
def one_server(which: str, work: Path, member_name: str, *, controllers: bool = False) -> Iterator[str]:
    """A real federation API server (``which="federation"``; without controllers unless asked)
    or a real member cluster named ``member_name`` (``"member"``); yields its URL. The tests
    that hold both servers to one behaviour (issue 11) are parametrized over the two."""
    if which == "member":
        from clusters.testing import ClusterProcess

        proc = ClusterProcess(name=member_name, region="us-east-1", zones="us-east-1a",
                              extra=["--pod-ready-delay", "0"])
        try:
            yield proc.wait_ready().url
        finally:
            proc.close()
        return
    with apiserver(work, *([] if controllers else ["--no-controllers"])) as url:
        yield url


@contextlib.contextmanager
def apiserver_process(work: Path, *args: str) -> Iterator[tuple[str, "subprocess.Popen[bytes]"]]:
    """:func:`apiserver`, yielding its process too (for its pid: RSS, signals). Its log is
    ``work / "apiserver.log"``."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = work / "apiserver.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "federation", "federation-apiserver", "--listen", f"127.0.0.1:{port}",
         "--store", ":memory:", *args],
        stdout=log.open("w"), stderr=subprocess.STDOUT,
    )
    try:
        wait_healthy(url, proc, log, "federation-apiserver")
        yield url, proc
    finally:
        stop_process(proc)


@pytest.fixture(autouse=True, scope="session")
def isolated_kubeconfig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep the user's kubeconfig out of the tests (kubectl reads it even with --server, and
    fails on an entry whose CA file is gone), and keep the tests out of it."""
    import os

    saved = os.environ.get("KUBECONFIG")
    os.environ["KUBECONFIG"] = str(tmp_path_factory.mktemp("kube") / "config")
    yield
    if saved is None:
        os.environ.pop("KUBECONFIG", None)
    else:
        os.environ["KUBECONFIG"] = saved


async def expect_error(code: int, coro) -> APIError:
    """Await ``coro``, which must fail with an API error of HTTP status ``code``."""
    with pytest.raises(APIError) as info:
        await coro
    assert info.value.code == code, info.value.message
    return info.value


async def first_credential(fed: LocalFederation, name: str) -> str:
    """The first credential of a new cluster ``name``, asked for with ``fed``'s bootstrap token."""
    async with APIClient(fed.api_url, ca_file=fed.ca_file, token=fed.credentials.bootstrap) as boot:
        return (await boot.post(f"/apis/federation/v1beta1/clusters/{name}/credential", None))["token"]


@pytest.fixture(scope="session")
def etcd_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator["EtcdCluster"]:
    """One real etcd member for the session (data in tmp, free loopback ports); each test
    that uses it takes a key prefix of its own (:func:`etcd_url`). Skips, with the package
    to install, when etcd is not installed."""
    from federation.launch.etcdserver import PACKAGE_HINT, EtcdCluster, etcd_binary

    if etcd_binary() is None:
        pytest.skip(PACKAGE_HINT)
    with EtcdCluster(tmp_path_factory.mktemp("etcd")) as cluster:
        yield cluster


@pytest.fixture
def etcd_url(etcd_cluster: "EtcdCluster", request: pytest.FixtureRequest) -> str:
    """An ``etcd://`` store URL with a prefix no other test uses."""
    import uuid

    return f"{etcd_cluster.url}/t-{uuid.uuid4().hex[:12]}"
