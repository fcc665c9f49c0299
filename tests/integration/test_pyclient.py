"""The official Python client (``kubernetes``) against a real federation API server.

Services go through ``CoreV1Api``; the federation's own kinds (clusters) through
``CustomObjectsApi``, as for any kind the client was not generated for.
"""

from __future__ import annotations

import threading
import time
from typing import Iterator

import pytest

kubernetes = pytest.importorskip("kubernetes", reason="the kubernetes package is not installed (test extra)")
from kubernetes import client, watch  # noqa: E402
from kubernetes.client.rest import ApiException  # noqa: E402
from tests.conftest import apiserver

GROUP, VERSION, CLUSTERS = "federation", "v1beta1", "clusters"





@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with apiserver(tmp_path_factory.mktemp("pyclient"), "--no-controllers") as url:
        yield url


@pytest.fixture
def api_client(server: str) -> Iterator[client.ApiClient]:
    config = client.Configuration()
    config.host = server
    with client.ApiClient(config) as api:
        yield api


def service(name: str, *ports: int) -> client.V1Service:
    return client.V1Service(
        metadata=client.V1ObjectMeta(name=name, labels={"app": name}),
        spec=client.V1ServiceSpec(
            type="LoadBalancer",
            selector={"app": name},
            ports=[client.V1ServicePort(name=f"p{p}", port=p) for p in ports],
        ),
    )


def cluster(name: str, provider: str = "aws") -> dict:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Cluster",
        "metadata": {"name": name},
        "spec": {"provider": provider,
                 "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "http://127.0.0.1:9"}]},
    }


def test_services_create_list_patch_delete(api_client) -> None:
    core = client.CoreV1Api(api_client)
    created = core.create_namespaced_service("default", service("py-web", 80, 8080))
    assert created.metadata.uid and created.spec.ports[0].protocol == "TCP"

    listed = core.list_namespaced_service("default", label_selector="app=py-web")
    assert [s.metadata.name for s in listed.items] == ["py-web"]
    assert listed.metadata.resource_version

    # A dict body goes as a strategic merge patch: ports merge by port; $patch deletes one.
    patched = core.patch_namespaced_service(
        "py-web", "default", {"metadata": {"labels": {"tier": "front"}},
                              "spec": {"ports": [{"$patch": "delete", "port": 8080}, {"name": "p81", "port": 81}]}},
    )
    assert patched.metadata.labels == {"app": "py-web", "tier": "front"}
    assert [p.port for p in patched.spec.ports] == [80, 81]

    json_patched = core.patch_namespaced_service(
        "py-web", "default", [{"op": "replace", "path": "/spec/type", "value": "NodePort"}]
    )
    assert json_patched.spec.type == "NodePort"

    deleted = core.delete_namespaced_service("py-web", "default")
    assert deleted.metadata.name == "py-web"
    with pytest.raises(ApiException) as err:
        core.read_namespaced_service("py-web", "default")
    assert err.value.status == 404 and "not found" in err.value.body


def test_missing_service_raises_api_exception_with_a_status(api_client) -> None:
    core = client.CoreV1Api(api_client)
    with pytest.raises(ApiException) as err:
        core.read_namespaced_service("no-such-service", "default")
    assert err.value.status == 404 and err.value.reason == "Not Found"
    assert '"reason": "NotFound"' in err.value.body
    with pytest.raises(ApiException) as err:
        core.delete_namespaced_service("no-such-service", "default")
    assert err.value.status == 404


def test_watch_services_sees_existing_then_new_objects(api_client) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_service("default", service("py-existing", 80))
    seen: list[tuple[str, str]] = []
    w = watch.Watch()

    def later() -> None:
        time.sleep(0.5)
        core.create_namespaced_service("default", service("py-new", 80))
        core.delete_namespaced_service("py-new", "default")

    threading.Thread(target=later, daemon=True).start()
    for event in w.stream(core.list_namespaced_service, "default", timeout_seconds=10):
        seen.append((event["type"], event["object"].metadata.name))
        if ("DELETED", "py-new") in seen:
            w.stop()
    assert seen.index(("ADDED", "py-existing")) < seen.index(("ADDED", "py-new")) < seen.index(("DELETED", "py-new"))
    core.delete_namespaced_service("py-existing", "default")


def test_clusters_through_custom_objects_api(api_client) -> None:
    custom = client.CustomObjectsApi(api_client)
    created = custom.create_cluster_custom_object(GROUP, VERSION, CLUSTERS, cluster("py-c1"))
    assert created["metadata"]["uid"]
    listed = custom.list_cluster_custom_object(GROUP, VERSION, CLUSTERS)
    assert "py-c1" in [c["metadata"]["name"] for c in listed["items"]]

    patched = custom.patch_cluster_custom_object(GROUP, VERSION, CLUSTERS, "py-c1", {"spec": {"provider": "gcp"}})
    assert patched["spec"]["provider"] == "gcp"
    assert patched["spec"]["serverAddressByClientCIDRs"][0]["clientCIDR"] == "0.0.0.0/0"

    events = []
    w = watch.Watch()
    threading.Thread(
        target=lambda: (time.sleep(0.5), custom.delete_cluster_custom_object(GROUP, VERSION, CLUSTERS, "py-c1")),
        daemon=True,
    ).start()
    for event in w.stream(custom.list_cluster_custom_object, GROUP, VERSION, CLUSTERS, timeout_seconds=10):
        events.append((event["type"], event["object"]["metadata"]["name"]))
        if event["type"] == "DELETED":
            w.stop()
    assert ("ADDED", "py-c1") in events and ("DELETED", "py-c1") in events

    with pytest.raises(ApiException) as err:
        custom.get_cluster_custom_object(GROUP, VERSION, CLUSTERS, "py-c1")
    assert err.value.status == 404


def test_delete_options_propagation_policy(api_client) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_service("default", service("py-orphan", 80))
    deleted = core.delete_namespaced_service("py-orphan", "default", propagation_policy="Orphan")
    assert deleted.metadata.annotations["federation.kubernetes.io/deletion-propagation"] == "Orphan"
    core.create_namespaced_service("default", service("py-both", 80))
    with pytest.raises(ApiException) as err:
        core.delete_namespaced_service(
            "py-both", "default", body=client.V1DeleteOptions(propagation_policy="Orphan", orphan_dependents=True)
        )
    assert err.value.status == 422
    with pytest.raises(ApiException) as err:
        core.delete_namespaced_service("py-both", "default", propagation_policy="Sideways")
    assert err.value.status == 422
    core.delete_namespaced_service("py-both", "default")


def test_server_side_apply_through_the_client(api_client) -> None:
    core = client.CoreV1Api(api_client)
    body = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "py-ssa"},
            "spec": {"type": "LoadBalancer", "ports": [{"name": "http", "port": 80}]}}
    applied = core.patch_namespaced_service("py-ssa", "default", body, field_manager="py-tool",
                                            _content_type="application/apply-patch+yaml")
    assert [(m.manager, m.operation) for m in applied.metadata.managed_fields] == [("py-tool", "Apply")]
    core.delete_namespaced_service("py-ssa", "default")
