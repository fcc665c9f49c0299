"""Kinds as data (issue 11): names, paths and discovery come from one record per kind."""

from __future__ import annotations

from apimachinery import discovery
from apimachinery.kinds import Kind, KindTable
from federation.resources import ALL, MEMBER

WIDGETS = Kind("example.io", "v1", "widgets", "Widget", True, short_names=("wd",), singular="widget",
               categories=("all",), verbs=("get", "list"), subresources=())


def test_every_name_a_user_types_finds_the_kind():
    table = KindTable([*ALL, WIDGETS])
    for alias in ("widgets", "widget", "wd", "widgets.example.io", "widget.example.io", "WD"):
        assert table.by_alias(alias) is WIDGETS
    assert table.by_kind("example.io/v1", "Widget") is WIDGETS
    assert table.by_alias("svc").plural == "services" and table.by_alias("nope") is None
    assert "Widget (example.io/v1)" in table.describe()


def test_paths_quote_names_and_follow_scope():
    assert WIDGETS.path(namespace="a b", name="x/y") == "/apis/example.io/v1/namespaces/a%20b/widgets/x%2Fy"
    assert WIDGETS.path() == "/apis/example.io/v1/widgets"
    cluster = KindTable(ALL).by_alias("cl")
    assert cluster.path(namespace="ignored", name="c1") == "/apis/federation/v1beta1/clusters/c1"
    assert cluster.key == "clusters.federation" and cluster.kubectl_name == "cluster.federation"


def test_discovery_says_what_the_kind_says():
    body = discovery.api_resource_list([WIDGETS], "example.io", "v1")
    (entry,) = body["resources"]
    assert entry["verbs"] == ["get", "list"] and entry["categories"] == ["all"] and entry["shortNames"] == ["wd"]
    member = {k.plural: k for k in MEMBER}
    assert not member["replicasets"].allows("create") and member["services"].allows("update")
    assert member["pods"].allows("create") and member["pods"].allows("patch")  # bare pods (issue 14)
    assert "deletecollection" in member["services"].verbs and "deletecollection" not in member["pods"].verbs
