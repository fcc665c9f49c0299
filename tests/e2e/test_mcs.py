"""Multi-Cluster Services (issue 14): the mcs-api conformance suite's Required assertions,
ported to a real federation (API server, DNS responder, three member processes), driven
with kubectl against the members and dig-like queries (dnspython) against the responder.

docs/mcs.md lists each assertion of kubernetes-sigs/mcs-api ``conformance/`` beside the test
here that checks it. Every test works in a namespace of its own, so they do not see each
other's exports.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import urllib.request
from typing import Any

import dns.asyncquery
import dns.message
import dns.rcode
import dns.rdatatype
import pytest
import pytest_asyncio

from clusters.testing import http
from federation.launch.localfed import LocalFederation
from tests.conftest import three_clusters

pytestmark = [pytest.mark.asyncio(loop_scope="module"),
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl")]

A, B, EU = "aws-us-east-1a", "aws-us-east-1b", "gcp-europe-west1-b"
MCS = "/apis/multicluster.x-k8s.io/v1alpha1"

SERVICE = """\
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {ns}, labels: {{app: hello, team: blue}}, annotations: {{note: not-exported}}}}
spec:
  {extra}
  ports:
{ports}
"""
EXPORT = """\
apiVersion: multicluster.x-k8s.io/v1alpha1
kind: ServiceExport
metadata: {{name: {name}, namespace: {ns}}}
spec: {spec}
"""
HTTP = "  - {name: http, port: 8080, protocol: TCP}"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def fed(tmp_path_factory):
    store = str(tmp_path_factory.mktemp("mcs") / "federation.db")
    federation = LocalFederation(three_clusters(), store=store,
                                 apiserver_args=["--health-period", "0.5", "--dns-ttl", "5"])
    try:
        await federation.start(timeout=40)
        yield federation
    finally:
        await federation.stop()


async def kubectl(server: str, *args: str, stdin: str | None = None) -> str:
    proc = await asyncio.create_subprocess_exec(
        "kubectl", "--server", server, *args, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin else None), 60)
    assert proc.returncode == 0, f"kubectl {' '.join(args)}: {err.decode()}"
    return out.decode()


async def apply(fed: LocalFederation, cluster: str, text: str) -> None:
    await kubectl(fed.cluster_url(cluster), "apply", "-f", "-", stdin=text)


async def service(fed, cluster: str, ns: str, name: str, *, ports: str = HTTP, extra: str = "type: ClusterIP") -> None:
    await apply(fed, cluster, SERVICE.format(name=name, ns=ns, ports=ports, extra=extra))


async def export(fed, cluster: str, ns: str, name: str, spec: str = "{}") -> None:
    await apply(fed, cluster, EXPORT.format(name=name, ns=ns, spec=spec))


async def exported(fed, cluster: str, ns: str, name: str, *, first: bool = False, **service_kw) -> None:
    """The Service in ``cluster`` and its ServiceExport; ``first``: and wait for its import."""
    await service(fed, cluster, ns, name, **service_kw)
    await export(fed, cluster, ns, name)
    if first:
        await await_import(fed, ns, name)


async def unexport(fed, cluster: str, ns: str, name: str) -> None:
    await kubectl(fed.cluster_url(cluster), "delete", "serviceexport", name, "-n", ns)


async def get(fed, cluster: str, path: str) -> dict[str, Any] | None:
    code, body, _ = await asyncio.to_thread(http, "GET", fed.cluster_url(cluster) + path)
    return body if code == 200 else None


async def service_import(fed, cluster: str, ns: str, name: str) -> dict[str, Any] | None:
    return await get(fed, cluster, f"{MCS}/namespaces/{ns}/serviceimports/{name}")


async def await_import(fed, ns: str, name: str, check=lambda imp: True, clusters=(A, B, EU), timeout=20.0):
    """The import in every one of ``clusters`` once ``check`` holds for each; the first one."""
    async def ready():
        found = [await service_import(fed, c, ns, name) for c in clusters]
        return found[0] if all(f is not None and check(f) for f in found) else None
    return await fed.wait_for(ready, timeout, f"ServiceImport {ns}/{name} in {', '.join(clusters)}")


async def await_no_import(fed, ns: str, name: str, clusters=(A, B, EU), timeout=20.0) -> None:
    async def gone():
        return all([await service_import(fed, c, ns, name) is None for c in clusters])
    await fed.wait_for(gone, timeout, f"no ServiceImport {ns}/{name}")


async def await_condition(fed, cluster: str, ns: str, name: str, type_: str, status: str, timeout=20.0) -> dict:
    async def has():
        obj = await get(fed, cluster, f"{MCS}/namespaces/{ns}/serviceexports/{name}")
        for c in ((obj or {}).get("status") or {}).get("conditions") or []:
            if c["type"] == type_ and c["status"] == status:
                return c
        return None
    return await fed.wait_for(has, timeout, f"{type_}={status} on the ServiceExport {ns}/{name} in {cluster}")


async def query(fed, name: str, rdtype: str = "A"):
    return await dns.asyncquery.udp(dns.message.make_query(name, rdtype), fed.host, port=fed.dns_port, timeout=2)


def targets(resp, rdtype: str = "A") -> list[str]:
    return sorted(r.to_text() for rrset in resp.answer if rrset.rdtype == dns.rdatatype.from_text(rdtype) for r in rrset)


async def await_dns(fed, name: str, want, rdtype: str = "A", timeout: float = 20.0):
    async def matches():
        resp = await query(fed, name, rdtype)
        return resp if want(resp) else None
    return await fed.wait_for(matches, timeout, f"{name} {rdtype}")


def ports_of(imp: dict) -> list[tuple]:
    return sorted((p.get("name", ""), p["port"], p["protocol"]) for p in imp["spec"]["ports"])


def fetch(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


# ------------------------------------------------------------------ the tests


async def test_each_member_has_its_cluster_id_and_the_clusterset(fed):
    for name in (A, B, EU):
        out = await kubectl(fed.cluster_url(name), "get", "clusterproperties", "-o", "json")
        values = {o["metadata"]["name"]: o["spec"]["value"] for o in json.loads(out)["items"]}
        assert values == {"cluster.clusterset.k8s.io": name, "clusterset.k8s.io": "myfed"}


async def test_exporting_a_clusterip_service_imports_it_everywhere_and_it_resolves_and_connects(fed):
    ns, name = "mcs-clusterip", "hello"
    await service(fed, A, ns, name, extra="type: ClusterIP\n  sessionAffinity: ClientIP\n  sessionAffinityConfig: "
                                          "{clientIP: {timeoutSeconds: 300}}\n  internalTrafficPolicy: Cluster\n"
                                          "  trafficDistribution: PreferClose")
    await export(fed, A, ns, name)
    valid = await await_condition(fed, A, ns, name, "Valid", "True")
    assert valid["reason"] == "Valid"
    imp = await await_import(fed, ns, name)
    for cluster in (A, B, EU):
        imp = await service_import(fed, cluster, ns, name)
        assert imp["spec"]["type"] == "ClusterSetIP"
    spec = imp["spec"]
    # an IP for each IP family, valid and of that family
    assert len(spec["ips"]) == len(spec["ipFamilies"]) == 1 and spec["ipFamilies"] == ["IPv4"]
    assert spec["ips"][0].startswith("127.240.")
    # ports, session affinity (and its config), internal traffic policy, traffic distribution
    assert ports_of(imp) == [("http", 8080, "TCP")]
    assert spec["sessionAffinity"] == "ClientIP"
    assert spec["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 300}}
    assert spec["internalTrafficPolicy"] == "Cluster" and spec["trafficDistribution"] == "PreferClose"
    assert imp["status"]["clusters"] == [{"cluster": A}]
    ip = spec["ips"][0]
    # DNS: A answers the ClusterSetIP; SRV at the name and at _http._tcp
    fqdn = f"{name}.{ns}.svc.clusterset.local."
    resp = await await_dns(fed, fqdn, lambda r: targets(r) == [ip])
    assert resp.answer[0].ttl == 5
    srv = await query(fed, fqdn, "SRV")
    assert targets(srv, "SRV") == [f"0 100 8080 {fqdn}"]
    assert targets(await query(fed, f"_http._tcp.{fqdn}", "SRV"), "SRV") == [f"0 100 8080 {fqdn}"]
    # a client that resolves and connects gets an answer from the exporting cluster's pods
    answer = await fed.wait_for(lambda: asyncio.to_thread(_try_fetch, f"http://{ip}:8080/"), 20, "the ClusterSetIP answers")
    assert answer["cluster"] == A and answer["service"] == name
    # unexporting deletes the import everywhere, and the name
    await unexport(fed, A, ns, name)
    await await_no_import(fed, ns, name)
    await await_dns(fed, fqdn, lambda r: r.rcode() == dns.rcode.NXDOMAIN)


def _try_fetch(url: str) -> dict | None:
    try:
        return fetch(url)
    except OSError:
        return None


async def test_an_import_lives_while_one_cluster_exports_it(fed):
    ns, name = "mcs-lifetime", "hello"
    for cluster in (A, B):
        await exported(fed, cluster, ns, name)
    await await_import(fed, ns, name, lambda imp: len(imp["status"]["clusters"]) == 2)
    await unexport(fed, A, ns, name)
    imp = await await_import(fed, ns, name, lambda imp: imp["status"]["clusters"] == [{"cluster": B}])
    assert imp is not None
    await unexport(fed, B, ns, name)
    await await_no_import(fed, ns, name)


async def test_the_union_of_the_ports_is_imported_and_a_conflict_raised(fed):
    ns, name = "mcs-union", "hello"
    await exported(fed, A, ns, name, first=True)
    await exported(fed, B, ns, name, ports=HTTP + "\n  - {name: stcp, port: 142, protocol: SCTP}")
    for cluster in (A, B):
        c = await await_condition(fed, cluster, ns, name, "Conflict", "True")
        assert c["reason"] == "PortConflict"
    await await_import(fed, ns, name, lambda imp: ports_of(imp) == [("http", 8080, "TCP"), ("stcp", 142, "SCTP")])


async def test_conflicting_ports_the_oldest_export_wins(fed):
    ns, name = "mcs-ports", "hello"
    await exported(fed, A, ns, name, first=True)
    await exported(fed, B, ns, name, ports="  - {name: http, port: 8081, protocol: TCP}")
    loser = await await_condition(fed, B, ns, name, "Conflict", "True")
    winner = await await_condition(fed, A, ns, name, "Conflict", "True")
    assert loser["reason"] == winner["reason"] == "PortConflict"
    assert f"the oldest export, in cluster {A}" in loser["message"] and "http=8081/TCP" in loser["message"]
    assert "this export is the oldest" in winner["message"]
    imp = await await_import(fed, ns, name, lambda imp: len(imp["status"]["clusters"]) == 2)
    assert ports_of(imp) == [("http", 8080, "TCP")]


async def test_same_port_number_different_protocol_conflicts(fed):
    ns, name = "mcs-protocol", "dns"
    await exported(fed, A, ns, name, ports="  - {port: 53, protocol: TCP}")
    await await_import(fed, ns, name)
    await exported(fed, B, ns, name, ports="  - {port: 53, protocol: UDP}")
    c = await await_condition(fed, B, ns, name, "Conflict", "True")
    assert c["reason"] == "PortConflict" and "53/UDP" in c["message"]
    await await_condition(fed, A, ns, name, "Conflict", "True")
    imp = await await_import(fed, ns, name, lambda imp: len(imp["status"]["clusters"]) == 2)
    assert ports_of(imp) == [("", 53, "TCP")]


async def test_a_headless_export_imports_headless_with_per_endpoint_names(fed):
    ns, name = "mcs-headless", "db"
    for cluster in (A, EU):
        await service(fed, cluster, ns, name, extra="clusterIP: None",
                      ports="  - {name: pg, port: 5432, protocol: TCP}")
        await export(fed, cluster, ns, name)
    imp = await await_import(fed, ns, name, lambda imp: len(imp["status"]["clusters"]) == 2)
    assert imp["spec"]["type"] == "Headless"
    for _ in range(5):  # no clusterset IP, consistently
        assert not (await service_import(fed, A, ns, name))["spec"]["ips"]
        await asyncio.sleep(1)
    endpoints = {}
    for cluster in (A, EU):
        ep = await get(fed, cluster, f"/api/v1/namespaces/{ns}/endpoints/{name}")
        endpoints[cluster] = [(a["targetRef"]["name"], a["ip"]) for s in ep["subsets"] for a in s.get("addresses") or []]
        assert endpoints[cluster]
    every = sorted(ip for eps in endpoints.values() for _, ip in eps)
    fqdn = f"{name}.{ns}.svc.clusterset.local."
    await await_dns(fed, fqdn, lambda r: targets(r) == every)
    hosts = []
    for cluster, eps in endpoints.items():
        for host, ip in eps:
            per = f"{host}.{cluster}.{fqdn}"
            assert targets(await query(fed, per)) == [ip]
            hosts.append(per)
    srv = targets(await query(fed, fqdn, "SRV"), "SRV")
    assert srv == sorted(f"0 100 5432 {h}" for h in hosts)


async def test_exporting_an_external_name_service_is_not_valid(fed):
    ns, name = "mcs-external", "ext"
    await apply(fed, A, f"apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}}}\n"
                        "spec: {type: ExternalName, externalName: example.com}\n")
    await export(fed, A, ns, name)
    c = await await_condition(fed, A, ns, name, "Valid", "False")
    assert c["reason"] == "InvalidServiceType"
    for _ in range(3):
        assert await service_import(fed, A, ns, name) is None
        await asyncio.sleep(1)


async def test_an_export_without_a_service_is_not_valid_until_the_service_comes(fed):
    ns, name = "mcs-noservice", "later"
    await export(fed, A, ns, name)
    c = await await_condition(fed, A, ns, name, "Valid", "False")
    assert c["reason"] == "NoService"
    await service(fed, A, ns, name)
    await await_condition(fed, A, ns, name, "Valid", "True")
    await await_import(fed, ns, name)


async def test_conflicting_headlessness_the_oldest_wins(fed):
    ns, name = "mcs-type", "hello"
    await exported(fed, A, ns, name, first=True)
    await exported(fed, B, ns, name, extra="clusterIP: None")
    for cluster in (A, B):
        c = await await_condition(fed, cluster, ns, name, "Conflict", "True")
        assert "TypeConflict" in c["reason"].split(",")
    imp = await await_import(fed, ns, name, lambda imp: len(imp["status"]["clusters"]) == 2)
    assert imp["spec"]["type"] == "ClusterSetIP"


async def test_a_service_that_is_not_exported_is_inaccessible(fed):
    ns, name = "mcs-private", "hello"
    for cluster in (A, B, EU):
        await service(fed, cluster, ns, name)
    await asyncio.sleep(2)
    for cluster in (A, B, EU):
        assert await service_import(fed, cluster, ns, name) is None
    resp = await query(fed, f"{name}.{ns}.svc.clusterset.local.")
    assert resp.rcode() == dns.rcode.NXDOMAIN


async def test_only_exported_labels_and_annotations_reach_the_import(fed):
    ns, name = "mcs-labels", "hello"
    await service(fed, A, ns, name)
    await export(fed, A, ns, name, spec="{exportedLabels: {dummy-label: 'true'}, exportedAnnotations: "
                                        "{dummy-annotation: 'true'}}")
    imp = await await_import(fed, ns, name)
    assert imp["metadata"]["labels"]["dummy-label"] == "true" and "team" not in imp["metadata"]["labels"]
    assert imp["metadata"]["annotations"]["dummy-annotation"] == "true" and "note" not in imp["metadata"]["annotations"]


async def test_traffic_goes_nearest_first_and_only_to_clusters_with_the_port(fed):
    """Two exporters on one port, a third whose port lost a conflict: connections go to
    the two, the member's own cluster first; when it stops serving, to the other one."""
    ns, name = "mcs-route", "hello"
    await exported(fed, A, ns, name, first=True)
    await exported(fed, EU, ns, name)
    await exported(fed, B, ns, name, ports="  - {name: http, port: 8081, protocol: TCP}")
    imp = await await_import(fed, ns, name, lambda imp: len(json.loads(
        imp["metadata"]["annotations"]["multicluster.ubernetes.io/backends"])) == 2)
    backends = json.loads(imp["metadata"]["annotations"]["multicluster.ubernetes.io/backends"])
    assert sorted(b["cluster"] for b in backends) == [A, EU]
    ip = imp["spec"]["ips"][0]
    seen = set()
    for _ in range(30):  # bounded: the kernel spreads connections over the three members' sockets
        answer = await asyncio.to_thread(_try_fetch, f"http://{ip}:8080/")
        if answer:
            seen.add(answer["cluster"])
    assert seen and seen <= {A, EU}
    # A's pods all forced unready: its export leaves the backends; everything goes to EU
    await fed.chaos(A, {"unreadyPods": {f"{ns}/{name}": "all"}})
    try:
        await await_import(fed, ns, name, lambda imp: [b["cluster"] for b in json.loads(
            imp["metadata"]["annotations"]["multicluster.ubernetes.io/backends"])] == [EU])
        answers = [await asyncio.to_thread(_try_fetch, f"http://{ip}:8080/") for _ in range(10)]
        assert {a["cluster"] for a in answers if a} == {EU}
    finally:
        await fed.chaos(A, None)


async def test_federation_v1_names_keep_working_for_an_exported_federated_service(fed):
    ns, name = "mcs-v1", "web"
    await kubectl(fed.api_url, "apply", "-f", "-", stdin=(
        f"apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}}}\n"
        "spec: {type: LoadBalancer, ports: [{name: http, port: 8090, protocol: TCP}]}\n"))
    global_name = f"{name}.{ns}.myfed.svc.example.com."
    clusterset = f"{name}.{ns}.svc.clusterset.local."
    lb = await await_dns(fed, global_name, lambda r: len(targets(r)) == 3)
    # before the export, the clusterset name is the federation's alias of the global name
    await await_dns(fed, clusterset, lambda r: targets(r) == targets(lb))
    await export(fed, A, ns, name)
    imp = await await_import(fed, ns, name)
    await await_dns(fed, clusterset, lambda r: targets(r) == imp["spec"]["ips"])
    assert targets(await query(fed, global_name)) == targets(lb)
    await unexport(fed, A, ns, name)
    await await_dns(fed, clusterset, lambda r: targets(r) == targets(lb))
