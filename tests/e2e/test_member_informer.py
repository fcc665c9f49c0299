"""Informers on real API servers, a member's and the federation's (issue 11).

A label-selected watch follows objects in and out of the selection (a copy whose
federation label is taken away is a delete, as Kubernetes' watch cache sends it), and an
idle watch gets bookmarks, so the informer neither keeps a released copy nor takes a
quiet server for a hung one.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from apimachinery.client import APIClient
from apimachinery.informer import APIListWatch, Informer
from clusters.testing import ClusterProcess
from tests.conftest import apiserver
from federation.resources import SERVICES

LABEL = "federation.kubernetes.io/federation-name"


@pytest.fixture(scope="module", params=["member", "federation"])
def member(request, tmp_path_factory):
    if request.param == "member":
        proc = ClusterProcess(name="aws-inf-1", region="us-east-1", zones="us-east-1a", extra=["--pod-ready-delay", "0"])
        try:
            yield proc.wait_ready()
        finally:
            proc.close()
        return
    with apiserver(tmp_path_factory.mktemp("informer"), "--no-controllers") as url:
        yield SimpleNamespace(url=url)


async def settle(predicate, timeout=5.0):
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return predicate()


async def test_a_copy_leaving_the_selection_leaves_the_cache(member):
    async with APIClient(member.url) as client:
        source = APIListWatch(client, SERVICES.path(), label_selector=f"{LABEL}=myfed", idle_timeout=8.0)
        informer = Informer(source, name="copies")
        deleted: list[str] = []
        informer.add_handler(on_delete=lambda o: deleted.append(o["metadata"]["name"]))
        async with informer:
            assert await informer.wait_for_sync(5)
            body = {"metadata": {"name": "copy", "labels": {LABEL: "myfed"}}, "spec": {"ports": [{"port": 80}]}}
            await client.post(SERVICES.path(namespace="default"), body)
            assert await settle(lambda: informer.cache.get("default/copy") is not None)
            await client.patch(SERVICES.path(namespace="default", name="copy"), {"metadata": {"labels": {LABEL: None}}})
            assert await settle(lambda: informer.cache.get("default/copy") is None)
            assert deleted == ["copy"] and informer.lists == 1  # by the watch, not by a relist
            await asyncio.sleep(9)  # longer than the idle timeout: bookmarks keep the watch
            assert informer.watches == 1 and informer.lists == 1
