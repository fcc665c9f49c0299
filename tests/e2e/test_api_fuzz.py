"""Property-based: random and mutated requests to every route of the federation API.

Whatever hypothesis sends (bodies that are random JSON, mutated valid objects, YAML, bytes;
random content types, query strings and paths), the server answers with no 5xx, every
error is a ``Status``, a refused request changes nothing (the store's revision stays the
same), and the process keeps serving.
"""

from __future__ import annotations

import asyncio
import copy
import json
import urllib.error
import urllib.parse
import urllib.request

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from federation.launch.localfed import LocalFederation
from federation.resources import ALL, validate_object
from federation.launch.topology import Topology

VALID = {
    "services": {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "labels": {"app": "web"}},
                 "spec": {"type": "LoadBalancer", "ports": [{"name": "http", "port": 80}], "selector": {"app": "web"}}},
    "clusters": {"apiVersion": "federation/v1beta1", "kind": "Cluster", "metadata": {"name": "c1"},
                 "spec": {"serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:1"}]}},
    "leases": {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "c1"},
               "spec": {"holderIdentity": "c1", "leaseDurationSeconds": 5}},
    "dnsrecords": {"apiVersion": "federation/v1beta1", "kind": "DNSRecord", "metadata": {"name": "a.x.example.com"},
                   "spec": {"name": "x.example.com.", "type": "A", "ttl": 5, "targets": ["127.0.0.1"]}},
    "events": {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e1"},
               "involvedObject": {"kind": "Service", "name": "web"}},
    "deployments": {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                    "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                             "template": {"metadata": {"labels": {"app": "web"}},
                                          "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]}}}},
}

PATHS = []
for res in ALL:
    base = res.base_path("default")
    name = VALID.get(res.plural, {}).get("metadata", {}).get("name", "x")
    PATHS += [(res.plural, base), (res.plural, base + "/" + name), (res.plural, base + "/" + name + "/status")]
PATHS += [("", "/api/v1/namespaces/%2e%2e/services"), ("", "/apis/federation/v1beta1/clusters/a%00b"),
          ("", "/api/v1/namespaces/default/services/" + "x" * 300), ("", "/apis/nope/v1/things")]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


def paths_of(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from paths_of(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from paths_of(v, prefix + (i,))


@st.composite
def mutated(draw, plural):
    obj = copy.deepcopy(VALID[plural])
    targets = [p for p in paths_of(obj) if p]
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(targets))
        node = obj
        try:
            for key in path[:-1]:
                node = node[key]
            if draw(st.booleans()):
                node[path[-1]] = draw(json_values)
            elif isinstance(node, dict):
                node.pop(path[-1], None)
        except (KeyError, IndexError, TypeError):
            pass
    return json.dumps(obj).encode()


@st.composite
def requests(draw):
    plural, path = draw(st.sampled_from(PATHS))
    method = draw(st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"]))
    kind = draw(st.sampled_from(["mutated", "json", "bytes", "yaml", "none", "patch"]))
    if kind == "mutated" and plural in VALID:
        body = draw(mutated(plural))
    elif kind == "json":
        body = json.dumps(draw(json_values)).encode()
    elif kind == "bytes":
        body = draw(st.binary(max_size=200))
    elif kind == "yaml":
        body = draw(st.sampled_from([b"a: [b", b"- 1\n- 2", b"kind: Service\nmetadata: {name: y}\n", b"{{{{", b"!!python/object:os.system x"]))
    elif kind == "patch":
        body = json.dumps(draw(st.lists(st.fixed_dictionaries(
            {"op": st.sampled_from(["add", "remove", "replace", "move", "copy", "test", "bogus"]),
             "path": st.sampled_from(["/spec", "/spec/ports/0/port", "/metadata/name", "", "/x/y", "bad"]),
             "value": json_values}), max_size=3))).encode()
    else:
        body = None
    ctype = draw(st.sampled_from([
        "application/json", "application/yaml", "application/merge-patch+json", "application/json-patch+json",
        "application/strategic-merge-patch+json", "text/plain", "application/x-garbage"]))
    query = draw(st.dictionaries(
        st.sampled_from(["labelSelector", "fieldSelector", "resourceVersion", "timeoutSeconds", "limit", "dryRun"]),
        st.text(max_size=15), max_size=3))
    return method, path, body, ctype, query


def send(base, method, path, body, ctype, query):
    url = base + path + ("?" + urllib.parse.urlencode(query) if query else "")
    req = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def revision(base):
    code, body = send(base, "GET", "/api/v1/services", None, "application/json", {})
    assert code == 200
    return json.loads(body)["metadata"]["resourceVersion"]


@pytest.fixture(scope="module")
def api_url():
    loop = asyncio.new_event_loop()
    fed = LocalFederation(Topology(), apiserver_args=["--no-controllers"])
    loop.run_until_complete(fed.start_api())
    # Some objects to hit with PUT, PATCH and DELETE.
    for plural, obj in VALID.items():
        res = next(r for r in ALL if r.plural == plural)
        send(fed.api_url, "POST", res.base_path("default"), json.dumps(obj).encode(), "application/json", {})
    yield fed.api_url
    logs = fed.logs("apiserver")
    loop.run_until_complete(fed.stop())
    loop.close()
    assert "Traceback" not in logs, logs


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(request=requests())
def test_no_5xx_every_error_a_status_and_refusals_change_nothing(api_url, request):
    method, path, body, ctype, query = request
    if "timeoutSeconds" in query:
        query["timeoutSeconds"] = "0"
    before = revision(api_url)
    code, raw = send(api_url, method, path, body, ctype, query)
    CODES[code] = CODES.get(code, 0) + 1
    assert code < 500, raw[:300]
    if code >= 400:
        status = json.loads(raw)
        assert status["kind"] == "Status" and status["code"] == code and status["message"]
        assert revision(api_url) == before, f"a refused {method} {path} changed the store"


CODES: dict[int, int] = {}


def test_everything_stored_is_valid(api_url):
    """After the random traffic above, every stored object still passes validation."""
    # The traffic was varied enough to reach both success and several kinds of refusal.
    assert len([c for c in CODES if c >= 400]) >= 4 and any(c < 300 for c in CODES), CODES
    for res in ALL:
        code, raw = send(api_url, "GET", res.base_path(None) if res.namespaced else res.base_path(), None,
                         "application/json", {})
        assert code == 200
        for obj in json.loads(raw)["items"]:
            assert validate_object(res, obj) == [], obj
