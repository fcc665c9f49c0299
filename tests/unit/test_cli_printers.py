"""Table-driven tests of the CLI's pure printers (federation/printers.py) and apply's patch logic."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from federation import printers
from federation.cli.kubectl import KINDS, parse_documents, three_way_patch, with_last_applied

NOW = datetime(2024, 6, 1, 12, 0, 0, tzinfo=timezone.utc)


def ts(seconds_ago: float) -> str:
    return (NOW - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(
    "seconds, expected",
    [
        (-5, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (5, "5s"),
        (119, "119s"),
        (120, "2m"),
        (192, "3m12s"),
        (599, "9m59s"),
        (600, "10m"),
        (179 * 60 + 59, "179m"),
        (3 * 3600, "3h"),
        (5 * 3600 + 4 * 60, "5h4m"),
        (8 * 3600, "8h"),
        (47 * 3600 + 59 * 60, "47h"),
        (48 * 3600, "2d"),
        (2 * 86400 + 5 * 3600, "2d5h"),
        (8 * 86400, "8d"),
        (400 * 86400, "400d"),
        (2 * 365 * 86400, "2y"),
        (3 * 365 * 86400 + 10 * 86400, "3y10d"),
        (9 * 365 * 86400, "9y"),
    ],
)
def test_human_duration(seconds: float, expected: str) -> None:
    assert printers.human_duration(seconds) == expected


@pytest.mark.parametrize(
    "obj, expected",
    [
        ({"metadata": {"creationTimestamp": ts(42)}}, "42s"),
        ({"metadata": {"creationTimestamp": "2024-06-01T11:57:00.123456Z"}}, "2m59s"),
        ({"metadata": {"creationTimestamp": "2024-06-01T11:00:00+00:00"}}, "60m"),
        ({"metadata": {}}, "<unknown>"),
        ({"metadata": {"creationTimestamp": "yesterday"}}, "<unknown>"),
        ({}, "<unknown>"),
    ],
)
def test_age(obj: dict, expected: str) -> None:
    assert printers.age(obj, NOW) == expected


def test_format_table_pads_like_kubectl() -> None:
    out = printers.format_table(["NAME", "TTL", "AGE"], [["web", "5", "3m"], ["a-longer-name", "180", "2d"]])
    assert out == (
        "NAME            TTL   AGE\n"
        "web             5     3m\n"
        "a-longer-name   180   2d\n"
    )


def test_format_table_headers_only() -> None:
    assert printers.format_table(["NAME", "AGE"], []) == "NAME   AGE\n"


def svc(**spec) -> dict:
    status = spec.pop("status", {})
    meta = spec.pop("metadata", {"name": "web", "namespace": "default", "creationTimestamp": ts(65)})
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec, "status": status}


@pytest.mark.parametrize(
    "service, expected",
    [
        (svc(ports=[{"port": 80, "protocol": "TCP"}]), "80/TCP"),
        (svc(ports=[{"port": 80}]), "80/TCP"),
        (svc(ports=[{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]), "53/UDP,53/TCP"),
        (svc(ports=[{"port": 80, "nodePort": 30080, "protocol": "TCP"}]), "80:30080/TCP"),
        (svc(ports=[]), "<none>"),
        (svc(), "<none>"),
    ],
)
def test_format_ports(service: dict, expected: str) -> None:
    assert printers.format_ports(service) == expected


LB_TWO = {"loadBalancer": {"ingress": [{"ip": "127.10.1.1"}, {"hostname": "lb.example.com"}]}}


@pytest.mark.parametrize(
    "service, expected",
    [
        (svc(type="ClusterIP"), "<none>"),
        (svc(), "<none>"),
        (svc(type="ClusterIP", externalIPs=["1.2.3.4"]), "1.2.3.4"),
        (svc(type="NodePort"), "<none>"),
        (svc(type="LoadBalancer"), "<pending>"),
        (svc(type="LoadBalancer", status={"loadBalancer": {}}), "<pending>"),
        (svc(type="LoadBalancer", status=LB_TWO), "127.10.1.1,lb.example.com"),
        (svc(type="LoadBalancer", externalIPs=["9.9.9.9"], status=LB_TWO), "127.10.1.1,lb.example.com,9.9.9.9"),
        (svc(type="ExternalName", externalName="db.example.com"), "db.example.com"),
        (svc(type="Weird"), "<unknown>"),
    ],
)
def test_external_ip(service: dict, expected: str) -> None:
    assert printers.external_ip(service) == expected


def with_shards(value) -> dict:
    meta = {"name": "web", "namespace": "default", "creationTimestamp": ts(5)}
    if value is not None:
        meta["annotations"] = {printers.SERVICE_INGRESSES_ANNOTATION: value if isinstance(value, str) else json.dumps(value)}
    return svc(metadata=meta, type="LoadBalancer", ports=[{"port": 80}])


@pytest.mark.parametrize(
    "annotation, expected",
    [
        (None, "0/0"),
        ("", "0/0"),
        ("not json", "0/0"),
        ({"shards": []}, "0/0"),
        ([1, 2], "0/0"),
        (
            {
                "shards": [
                    {"cluster": "c1", "ingress": [{"ip": "127.10.1.1"}], "readyEndpoints": 2, "healthy": True},
                    {"cluster": "c2", "ingress": [{"ip": "127.10.2.1"}], "readyEndpoints": 0, "healthy": False},
                    {"cluster": "c3", "ingress": [], "readyEndpoints": 1, "healthy": False},
                ]
            },
            "1/3",
        ),
        # Without a verdict of its own, a shard is healthy with an ingress and a ready endpoint.
        (
            {
                "shards": [
                    {"cluster": "c1", "ingress": [{"ip": "127.10.1.1"}], "readyEndpoints": 2},
                    {"cluster": "c2", "ingress": [{"ip": "127.10.2.1"}], "readyEndpoints": 0},
                    {"cluster": "c3", "readyEndpoints": 3},
                ]
            },
            "1/3",
        ),
        ({"shards": [{"cluster": "c1", "healthy": "yes"}]}, "0/1"),
    ],
)
def test_shard_count(annotation, expected: str) -> None:
    assert printers.shard_count(with_shards(annotation)) == expected


CLUSTER = {
    "apiVersion": "federation/v1beta1",
    "kind": "Cluster",
    "metadata": {"name": "aws-us-east-1a", "creationTimestamp": ts(192)},
    "spec": {
        "provider": "aws",
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "10.0.0.0/8", "serverAddress": "http://10.0.0.1:9101"},
            {"clientCIDR": "0.0.0.0/0", "serverAddress": "http://127.0.0.1:9101"},
        ],
    },
    "status": {
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "ClusterReady", "message": "/healthz responded with ok",
             "lastProbeTime": "2024-06-01T11:59:59Z", "lastTransitionTime": "2024-06-01T11:57:00Z"},
            {"type": "Offline", "status": "False", "reason": "ClusterReachable", "message": "reachable",
             "lastProbeTime": "2024-06-01T11:59:59Z", "lastTransitionTime": "2024-06-01T11:57:00Z"},
        ],
        "region": "us-east-1",
        "zones": ["us-east-1a", "us-east-1b"],
    },
}
BARE_CLUSTER = {"metadata": {"name": "new", "creationTimestamp": ts(3)}, "spec": {}}


@pytest.mark.parametrize(
    "obj, wide, expected",
    [
        (CLUSTER, False, ["aws-us-east-1a", "True", "False", "aws", "us-east-1", "us-east-1a,us-east-1b", "3m12s"]),
        (CLUSTER, True, ["aws-us-east-1a", "True", "False", "aws", "us-east-1", "us-east-1a,us-east-1b", "3m12s", "http://127.0.0.1:9101"]),
        (BARE_CLUSTER, False, ["new", "Unknown", "Unknown", "<none>", "<none>", "<none>", "3s"]),
        (BARE_CLUSTER, True, ["new", "Unknown", "Unknown", "<none>", "<none>", "<none>", "3s", "<none>"]),
        (
            {"metadata": {"name": "x"}, "spec": {"serverAddressByClientCIDRs": [{"clientCIDR": "10.0.0.0/8", "serverAddress": "http://10.1.1.1"}]},
             "status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "Offline", "status": "True"}]}},
            True,
            ["x", "False", "True", "<none>", "<none>", "<none>", "<unknown>", "http://10.1.1.1"],
        ),
    ],
)
def test_cluster_row(obj: dict, wide: bool, expected: list[str]) -> None:
    assert printers.cluster_row(obj, NOW, wide=wide) == expected


def test_cluster_table() -> None:
    out = printers.table("clusters", [CLUSTER, BARE_CLUSTER], NOW)
    assert out.splitlines() == [
        "NAME             READY     OFFLINE   PROVIDER   REGION      ZONES                   AGE",
        "aws-us-east-1a   True      False     aws        us-east-1   us-east-1a,us-east-1b   3m12s",
        "new              Unknown   Unknown   <none>     <none>      <none>                  3s",
    ]


SHARDED = {
    "shards": [
        {"cluster": "c1", "ingress": [{"ip": "127.10.1.1"}], "readyEndpoints": 2, "healthy": True},
        {"cluster": "c2", "ingress": [{"ip": "127.10.2.1"}], "readyEndpoints": 2, "healthy": True},
    ]
}
WEB = svc(
    metadata={"name": "web", "namespace": "default", "creationTimestamp": ts(65),
              "annotations": {printers.SERVICE_INGRESSES_ANNOTATION: json.dumps(SHARDED)}},
    type="LoadBalancer",
    selector={"app": "web", "tier": "front"},
    ports=[{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
    status={"loadBalancer": {"ingress": [{"ip": "127.10.1.1"}, {"ip": "127.10.2.1"}]}},
)


@pytest.mark.parametrize(
    "kw, expected",
    [
        ({}, ["web", "LoadBalancer", "<none>", "127.10.1.1,127.10.2.1", "80/TCP", "2/2", "65s"]),
        ({"all_namespaces": True}, ["default", "web", "LoadBalancer", "<none>", "127.10.1.1,127.10.2.1", "80/TCP", "2/2", "65s"]),
        ({"wide": True}, ["web", "LoadBalancer", "<none>", "127.10.1.1,127.10.2.1", "80/TCP", "2/2", "65s", "app=web,tier=front"]),
    ],
)
def test_service_row(kw: dict, expected: list[str]) -> None:
    assert printers.service_row(WEB, NOW, **kw) == expected


@pytest.mark.parametrize(
    "kw, expected",
    [
        ({}, ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "SHARDS", "AGE"]),
        ({"all_namespaces": True}, ["NAMESPACE", "NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "SHARDS", "AGE"]),
        ({"wide": True}, ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "SHARDS", "AGE", "SELECTOR"]),
    ],
)
def test_service_columns(kw: dict, expected: list[str]) -> None:
    assert printers.service_columns(**kw) == expected


def test_service_table_with_clusterip() -> None:
    other = svc(metadata={"name": "db", "namespace": "prod", "creationTimestamp": ts(3 * 86400)}, clusterIP="10.0.0.7",
                ports=[{"port": 5432}])
    out = printers.table("services", [WEB, other], NOW, all_namespaces=True)
    assert out.splitlines() == [
        "NAMESPACE   NAME   TYPE           CLUSTER-IP   EXTERNAL-IP             PORT(S)    SHARDS   AGE",
        "default     web    LoadBalancer   <none>       127.10.1.1,127.10.2.1   80/TCP     2/2      65s",
        "prod        db     ClusterIP      10.0.0.7     <none>                  5432/TCP   0/0      3d",
    ]


@pytest.mark.parametrize(
    "obj, wide, expected",
    [
        (
            {"metadata": {"name": "a.web.default.myfed.svc.example.com"},
             "spec": {"name": "web.default.myfed.svc.example.com.", "type": "A", "ttl": 5, "targets": ["127.10.1.1", "127.10.2.1"]}},
            False,
            ["web.default.myfed.svc.example.com.", "A", "5", "127.10.1.1,127.10.2.1"],
        ),
        (
            {"metadata": {"name": "cname.x"}, "spec": {"name": "x.example.com.", "type": "CNAME", "ttl": 5, "targets": ["y.example.com."]}},
            True,
            ["x.example.com.", "CNAME", "5", "y.example.com.", "cname.x"],
        ),
        ({"metadata": {"name": "m"}, "spec": {}}, False, ["m", "<unknown>", "<none>", "<none>"]),
    ],
)
def test_dnsrecord_row(obj: dict, wide: bool, expected: list[str]) -> None:
    assert printers.dnsrecord_row(obj, NOW, wide=wide) == expected


@pytest.mark.parametrize(
    "labels, expected",
    [(None, "<none>"), ({}, "<none>"), ({"b": "2", "a": "1"}, "a=1,b=2")],
)
def test_format_labels(labels, expected: str) -> None:
    assert printers.format_labels(labels) == expected


def test_describe_cluster() -> None:
    text = printers.describe_cluster({**CLUSTER, "metadata": {**CLUSTER["metadata"], "labels": {"env": "prod", "cloud": "aws"}}})
    lines = text.splitlines()
    assert lines[0] == "Name:               aws-us-east-1a"
    assert lines[1] == "Labels:             cloud=aws"
    assert lines[2] == "                    env=prod"
    assert "Provider:           aws" in lines
    assert "Region:             us-east-1" in lines
    assert "Zones:              us-east-1a,us-east-1b" in lines
    assert "API Addresses:      http://10.0.0.1:9101 (clientCIDR 10.0.0.0/8)" in lines
    assert "                    http://127.0.0.1:9101 (clientCIDR 0.0.0.0/0)" in lines
    i = lines.index("Conditions:")
    assert lines[i + 1].split() == ["Type", "Status", "LastProbeTime", "LastTransitionTime", "Reason", "Message"]
    assert lines[i + 2].split()[0] == "----"
    assert lines[i + 3].startswith("  Ready    True    Sat, 01 Jun 2024 11:59:59 +0000  Sat, 01 Jun 2024 11:57:00 +0000  ClusterReady")
    assert lines[i + 3].endswith("/healthz responded with ok")
    assert lines[i + 4].startswith("  Offline  False")
    assert lines[-1] == "Events:  <none>"


def test_describe_cluster_without_status() -> None:
    text = printers.describe_cluster(BARE_CLUSTER)
    assert "Conditions:  <none>" in text
    assert "Region:             <none>" in text


def test_describe_service() -> None:
    annotated = {**WEB, "metadata": {**WEB["metadata"], "annotations": {**WEB["metadata"]["annotations"], "team": "edge",
                                                                         printers.LAST_APPLIED_ANNOTATION: "{}"}}}
    lines = printers.describe_service(annotated).splitlines()
    fields = {line.split(":", 1)[0]: line.split(":", 1)[1].strip() for line in lines if line and not line.startswith(" ")}
    assert fields["Name"] == "web"
    assert fields["Namespace"] == "default"
    assert fields["Annotations"] == "team=edge"  # shard and last-applied annotations are not repeated
    assert fields["Selector"] == "app=web,tier=front"
    assert fields["Type"] == "LoadBalancer"
    assert fields["LoadBalancer Ingress"] == "127.10.1.1, 127.10.2.1"
    assert fields["Port"] == "http  80/TCP"
    assert fields["TargetPort"] == "8080/TCP"
    assert fields["Shards"] == "2/2 healthy"
    i = next(n for n, line in enumerate(lines) if line.startswith("Shards:"))
    assert lines[i + 1].split() == ["Cluster", "Ingress", "ReadyEndpoints", "Healthy"]
    assert lines[i + 3].split() == ["c1", "127.10.1.1", "2", "True"]
    assert lines[i + 4].split() == ["c2", "127.10.2.1", "2", "True"]


def test_describe_service_pending() -> None:
    text = printers.describe_service(svc(type="LoadBalancer", ports=[{"port": 80}]))
    assert "LoadBalancer Ingress:  <pending>" in text
    assert "Port:                  <unset>  80/TCP" in text
    assert "Shards:                <none>" in text


# --- apply's pure parts -------------------------------------------------------------


@pytest.mark.parametrize(
    "alias, plural",
    [("clusters", "clusters"), ("cluster", "clusters"), ("svc", "services"), ("service", "services"),
     ("services", "services"), ("dnsrecords", "dnsrecords"), ("cluster.federation", "clusters"), ("leases", "leases")],
)
def test_aliases(alias: str, plural: str) -> None:
    assert KINDS.by_alias(alias).plural == plural


@pytest.mark.parametrize(
    "api_version, kind, path",
    [
        ("v1", "Service", "/api/v1/namespaces/prod/services/web"),
        ("federation/v1beta1", "Cluster", "/apis/federation/v1beta1/clusters/web"),
        ("federation/v1beta1", "DNSRecord", "/apis/federation/v1beta1/dnsrecords/web"),
    ],
)
def test_paths(api_version: str, kind: str, path: str) -> None:
    assert KINDS.by_kind(api_version, kind).path(namespace="prod", name="web") == path


def test_service_list_paths() -> None:
    res = KINDS.by_kind("v1", "Service")
    assert res.path(namespace="default") == "/api/v1/namespaces/default/services"
    assert res.path() == "/api/v1/services"
    assert KINDS.by_kind("federation/v1beta1", "Cluster").kubectl_name == "cluster.federation"
    assert res.kubectl_name == "service"


@pytest.mark.parametrize(
    "original, modified, current, expected",
    [
        # Nothing changed: server defaults and status are not a difference.
        (
            {"spec": {"ports": [{"port": 80}]}},
            {"spec": {"ports": [{"port": 80}]}},
            {"spec": {"ports": [{"port": 80, "protocol": "TCP"}], "clusterIP": ""}, "status": {}},
            {},
        ),
        # A changed port replaces the whole list.
        (
            {"spec": {"ports": [{"port": 80}]}},
            {"spec": {"ports": [{"port": 8080}]}},
            {"spec": {"ports": [{"port": 80, "protocol": "TCP"}]}},
            {"spec": {"ports": [{"port": 8080}]}},
        ),
        # A field the last apply set and this one drops is removed.
        (
            {"spec": {"selector": {"app": "web"}, "type": "LoadBalancer"}},
            {"spec": {"type": "LoadBalancer"}},
            {"spec": {"selector": {"app": "web"}, "type": "LoadBalancer"}},
            {"spec": {"selector": None}},
        ),
        # Nested key removal inside a map.
        (
            {"metadata": {"labels": {"a": "1", "b": "2"}}},
            {"metadata": {"labels": {"a": "1"}}},
            {"metadata": {"labels": {"a": "1", "b": "2", "c": "3"}}},
            {"metadata": {"labels": {"b": None}}},
        ),
        # Without a last-applied record, nothing is removed.
        (None, {"spec": {"type": "ClusterIP"}}, {"spec": {"type": "LoadBalancer", "extra": 1}}, {"spec": {"type": "ClusterIP"}}),
    ],
)
def test_three_way_patch(original, modified, current, expected) -> None:
    assert three_way_patch(original, modified, current) == expected


def test_with_last_applied_is_stable() -> None:
    obj = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "annotations": {"team": "edge"}}, "spec": {}}
    once = with_last_applied(obj)
    twice = with_last_applied(once)
    assert once == twice
    recorded = json.loads(once["metadata"]["annotations"][printers.LAST_APPLIED_ANNOTATION])
    assert recorded == obj


@pytest.mark.parametrize(
    "source, text, kinds",
    [
        ("a.yaml", "kind: Service\n---\nkind: Cluster\n", ["Service", "Cluster"]),
        ("a.yaml", "---\n# only a comment\n---\nkind: Service\n", ["Service"]),
        ("a.json", '{"kind": "Service"}', ["Service"]),
        ("STDIN", '[{"kind": "Service"}, {"kind": "Cluster"}]', ["Service", "Cluster"]),
        ("a.yaml", "kind: List\nitems:\n- kind: Service\n- kind: Cluster\n", ["Service", "Cluster"]),
    ],
)
def test_parse_documents(source: str, text: str, kinds: list[str]) -> None:
    assert [d.body["kind"] for d in parse_documents(source, text)] == kinds


def test_shards_prefer_status_over_annotation() -> None:
    service = with_shards({"shards": [{"cluster": "old", "healthy": True}]})
    service["status"] = {"shards": [
        {"cluster": "c1", "ingress": [{"ip": "127.10.1.1"}], "readyEndpoints": 2, "clusterReady": True, "healthy": True},
        {"cluster": "c2", "ingress": [{"ip": "127.10.2.1"}], "readyEndpoints": 2, "clusterReady": False, "healthy": False},
    ]}
    assert printers.shard_count(service) == "1/2"
    assert [s["cluster"] for s in printers.shards(service)] == ["c1", "c2"]


def event(reason: str, message: str, last: float, *, first: float | None = None, count: int = 1, kind: str = "Service",
          name: str = "web", namespace: str = "default", uid: str | None = None) -> dict:
    return {
        "involvedObject": {"kind": kind, "name": name, "namespace": namespace, **({"uid": uid} if uid else {})},
        "reason": reason, "message": message, "type": "Normal", "count": count,
        "source": {"component": "federation-controller-manager"},
        "firstTimestamp": ts(first if first is not None else last), "lastTimestamp": ts(last),
    }


def test_aggregate_events_folds_repeats() -> None:
    events = [
        event("UpdatedInCluster", "updated in c1", 30),
        event("CreatedInCluster", "created in c1", 40),
        event("UpdatedInCluster", "updated in c1", 10),
        event("UpdatedInCluster", "updated in c1", 20, count=2),
    ]
    folded = printers.aggregate_events(events)
    assert [(e["reason"], e["count"]) for e in folded] == [("CreatedInCluster", 1), ("UpdatedInCluster", 4)]
    assert folded[1]["firstTimestamp"] == ts(30) and folded[1]["lastTimestamp"] == ts(10)


def test_describe_events_section() -> None:
    events = [event("CreatedInCluster", "created in c1", 40), event("UpdatedInCluster", "updated in c1", 30),
              event("UpdatedInCluster", "updated in c1", 5)]
    lines = printers.describe_service(WEB, events, NOW).splitlines()
    i = lines.index("Events:")
    assert lines[i + 1].split() == ["Type", "Reason", "Age", "From", "Message"]
    assert lines[i + 3].split()[:3] == ["Normal", "CreatedInCluster", "40s"]
    assert "5s (x2 over 30s)" in lines[i + 4]


@pytest.mark.parametrize(
    "ev, wanted",
    [
        (event("R", "m", 1), True),
        (event("R", "m", 1, name="other"), False),
        (event("R", "m", 1, kind="Cluster"), False),
        (event("R", "m", 1, namespace="prod"), False),
        (event("R", "m", 1, uid="u-1"), True),
        (event("R", "m", 1, uid="u-old"), False),
    ],
)
def test_events_for(ev: dict, wanted: bool) -> None:
    obj = {**WEB, "metadata": {**WEB["metadata"], "uid": "u-1"}}
    assert (printers.events_for(obj, [ev]) == [ev]) is wanted


def test_event_row() -> None:
    row = printers.event_row(event("ClusterReady", "cluster c1 is Ready", 65, kind="Cluster", name="c1"), NOW)
    assert row == ["65s", "Normal", "ClusterReady", "cluster/c1", "cluster c1 is Ready"]
