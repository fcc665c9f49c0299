"""The dashboard's pure parts (issue 17): which paths are public, who may press a fault
button, and the names each DNS level is asked for."""

from __future__ import annotations

from federation.api import auth
from federation.ui.dnsanswers import level_names
from federation.ui.routes import places_of


def test_the_static_page_is_public_and_its_data_calls_are_not():
    assert auth.is_public("/ui/") and auth.is_public("/ui/static/app.js") and auth.is_public("/ui")
    assert not auth.is_public("/ui/api/dns") and not auth.is_public("/ui/api/faults/crash")
    assert not auth.is_public("/uix") and auth.is_public("/healthz")


def test_only_masters_press_fault_buttons_and_readers_see_the_rest():
    reader = auth.User("viewer", groups=(auth.AUTHENTICATED,))
    admin = auth.User("admin", groups=(auth.MASTERS, auth.AUTHENTICATED))
    assert not auth.authorize(reader, "post", "", path="/ui/api/faults/crash").allowed
    assert auth.authorize(admin, "post", "", path="/ui/api/faults/crash").allowed
    assert auth.authorize(reader, "get", "", path="/ui/api/dns").allowed
    assert auth.authorize(reader, "get", "", path="/ui/api/faults").allowed
    # the report viewer: anyone signed in reads reports; uploading writes to the server's disk
    assert auth.authorize(reader, "get", "", path="/ui/api/reports/cluster-crash").allowed
    assert not auth.authorize(reader, "create", "", path="/ui/api/reports").allowed
    assert auth.authorize(admin, "create", "", path="/ui/api/reports").allowed
    assert not auth.is_public("/ui/api/reports")


def test_level_names_follow_docs_dns_md():
    names = level_names("web", "default", federation="myfed", domain="example.com.",
                        places=[("us-east-1a", "us-east-1"), ("us-east-1b", "us-east-1"), ("us-east-1a", "us-east-1")])
    assert [(n["level"], n["name"]) for n in names] == [
        ("zone", "web.default.myfed.svc.us-east-1a.us-east-1.example.com."),
        ("zone", "web.default.myfed.svc.us-east-1b.us-east-1.example.com."),
        ("region", "web.default.myfed.svc.us-east-1.example.com."),
        ("global", "web.default.myfed.svc.example.com."),
        ("clusterset", "web.default.svc.clusterset.local."),
    ]


def test_places_come_from_the_shards_clusters():
    service = {"status": {"shards": [{"cluster": "a"}, {"cluster": "gone"}]}}
    clusters = [{"metadata": {"name": "a"}, "status": {"zones": ["z1"], "region": "r"}},
                {"metadata": {"name": "b"}, "status": {"zones": ["z2"], "region": "r"}}]
    assert places_of(service, clusters) == [("z1", "r")]
