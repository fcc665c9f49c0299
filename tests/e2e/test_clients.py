"""Real clients against the one API server (issue 18), the federation's and a member's alike.

kubectl and the official Python client, unmodified, each against a real federation API
server and a real member cluster: ``kubectl scale`` and the Python client's
``*_scale`` (the autoscaling/v1 ``scale`` subresource), ``kubectl get --chunk-size`` and
the Python client's ``limit``/``_continue`` (pagination), ``VersionApi().get_code()``
(discovery with a trailing slash), and ``kubectl debug`` on a missing pod (a 404 ``Status``
with ``details``, which kubectl reads).
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
from kubernetes import client as k8s

from clusters.testing import http, wait_until
from tests.conftest import apiserver, one_server
from tests.e2e.test_dry_run import KUBECTL, kubectl  # one kubectl runner for the kubectl tests

needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed (not on PATH)")

DEPLOYMENT = {
    "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
    "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
             "template": {"metadata": {"labels": {"app": "web"}},
                          "spec": {"containers": [{"name": "web", "image": "nginx"}]}}},
}
SVC = "/api/v1/namespaces/default/services"


@pytest.fixture(scope="module", params=["federation", "member"])
def server(request, tmp_path_factory):
    with one_server(request.param, tmp_path_factory.mktemp("clients"), "aws-clients-1") as url:
        yield url


def python_client(server: str) -> k8s.ApiClient:
    config = k8s.Configuration()
    config.host = server
    return k8s.ApiClient(config)


@needs_kubectl
def test_kubectl_scale_and_the_python_clients_scale(server, tmp_path):
    assert http("POST", server + "/apis/apps/v1/namespaces/default/deployments", DEPLOYMENT)[0] == 201
    done = kubectl(server, tmp_path, "scale", "deployment/web", "--replicas=3")
    assert done.returncode == 0 and "scaled" in done.stdout, done
    apps = k8s.AppsV1Api(python_client(server))
    scale = apps.read_namespaced_deployment_scale("web", "default")
    assert scale.spec.replicas == 3 and scale.status.selector == "app=web"
    apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 4}})
    assert apps.read_namespaced_deployment("web", "default").spec.replicas == 4
    done = kubectl(server, tmp_path, "scale", "deployment/web", "--replicas=2", "--current-replicas=3")
    assert done.returncode != 0 and "expected replicas to be 3, was 4" in done.stderr.lower(), done


@needs_kubectl
def test_pages_through_kubectl_and_the_python_client(server, tmp_path):
    for i in range(7):
        assert http("POST", server + SVC, {"metadata": {"name": f"page-{i}"}, "spec": {"ports": [{"port": 80}]}})[0] == 201
    done = kubectl(server, tmp_path, "get", "services", "--chunk-size=2", "-o", "name")
    assert done.returncode == 0, done
    assert [n for n in done.stdout.split() if n.startswith("service/page-")] == [f"service/page-{i}" for i in range(7)]
    core = k8s.CoreV1Api(python_client(server))
    names, token = [], None
    while True:
        page = core.list_namespaced_service("default", limit=3, _continue=token)
        names += [s.metadata.name for s in page.items]
        token = page.metadata._continue
        if not token:
            break
    assert [n for n in names if n.startswith("page-")] == [f"page-{i}" for i in range(7)]


def test_version_with_a_trailing_slash(server):
    # VersionApi asks for /version/; a server that serves only /version makes it fail.
    info = k8s.VersionApi(python_client(server)).get_code()
    assert info.git_version.startswith("v1.32")


@needs_kubectl
def test_kubectl_debug_on_a_missing_pod_reads_the_404(server, tmp_path):
    done = kubectl(server, tmp_path, "debug", "pod/nope", "--image=busybox", "-n", "default")
    assert done.returncode != 0
    assert "panic" not in done.stderr, done.stderr
    assert "not found" in done.stderr or "doesn't have a resource type" in done.stderr, done.stderr


@needs_kubectl
def test_a_second_managers_bare_manifest_applies_without_a_conflict(server, tmp_path):
    full = tmp_path / "full.yaml"
    full.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: ssa, namespace: default, labels: {a: '1'}}\n"
                    "spec:\n  ports: [{port: 80}]\n")
    bare = tmp_path / "bare.yaml"
    bare.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: ssa, namespace: default}\n")
    assert kubectl(server, tmp_path, "apply", "--server-side", "-f", str(full)).returncode == 0
    done = kubectl(server, tmp_path, "apply", "--server-side", "--field-manager=other", "-f", str(bare))
    assert done.returncode == 0 and "serverside-applied" in done.stdout, done
    # A real conflict still is one: another manager changing kubectl's label.
    bare.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: ssa, namespace: default, labels: {a: '2'}}\n")
    done = kubectl(server, tmp_path, "apply", "--server-side", "--field-manager=other", "-f", str(bare))
    assert done.returncode != 0 and "conflict" in done.stderr.lower(), done


@needs_kubectl
def test_a_failed_json_patch_test_says_why(server, tmp_path):
    assert http("POST", server + SVC, {"metadata": {"name": "jp"}, "spec": {"ports": [{"port": 80}]}})[0] == 201
    done = kubectl(server, tmp_path, "patch", "service", "jp", "--type=json",
                   "-p", '[{"op": "test", "path": "/spec/ports/0/port", "value": 81}]')
    assert done.returncode != 0 and "'/spec/ports/0/port' is 80, not 81" in done.stderr, done


@needs_kubectl
def test_kubectl_patches_the_status_subresource(server, tmp_path):
    assert http("POST", server + SVC, {"metadata": {"name": "st"}, "spec": {"ports": [{"port": 80}]}})[0] == 201
    done = kubectl(server, tmp_path, "patch", "service", "st", "--subresource=status", "--type=merge",
                   "-p", '{"status": {"loadBalancer": {"ingress": [{"hostname": "lb.example"}]}}}')
    assert done.returncode == 0, done
    assert http("GET", server + SVC + "/st")[1]["status"]["loadBalancer"]["ingress"] == [{"hostname": "lb.example"}]


@needs_kubectl
def test_namespaces_are_objects_at_the_federation_too(server, tmp_path):
    manifest = tmp_path / "ns.yaml"
    manifest.write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: team-a}\n")
    watch = subprocess.Popen([KUBECTL, "--server", server, "--cache-dir", str(tmp_path / "cache"), "get", "ns", "-w",
                              "--request-timeout=0", "-o", "name"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        done = kubectl(server, tmp_path, "apply", "-f", str(manifest))
        assert done.returncode == 0, done
        ns = http("GET", server + "/api/v1/namespaces/team-a")[1]
        assert ns["metadata"]["uid"] and ns["metadata"]["resourceVersion"] and ns["metadata"]["creationTimestamp"]
        assert ns["status"]["phase"] == "Active"
        svc = "/api/v1/namespaces/team-a/services"
        assert http("POST", server + svc, {"metadata": {"name": "inside"}, "spec": {"ports": [{"port": 80}]}})[0] == 201
        done = kubectl(server, tmp_path, "delete", "namespace", "team-a")
        assert done.returncode == 0, done
        assert http("GET", server + svc + "/inside")[0] == 404  # its contents went with it
    finally:
        watch.terminate()
        out, _ = watch.communicate(timeout=10)
    assert "namespace/team-a" in out.split(), out
    done = kubectl(server, tmp_path, "delete", "namespace", "default")
    assert done.returncode != 0 and "this namespace may not be deleted" in done.stderr, done


@needs_kubectl
def test_kubectl_auth_can_i_and_whoami_on_an_open_server(server, tmp_path):
    done = kubectl(server, tmp_path, "auth", "can-i", "create", "services")
    assert done.returncode == 0 and done.stdout.strip() == "yes", done
    done = kubectl(server, tmp_path, "auth", "whoami", "-o", "json")
    assert done.returncode == 0, done
    assert json.loads(done.stdout)["status"]["userInfo"]["username"] == "system:anonymous"


def test_access_reviews_answer_from_the_federations_authorizer(tmp_path):
    # kubectl sends no bearer token over plain HTTP, so the official Python client asks here.
    tokens = tmp_path / "tokens.csv"
    tokens.write_text('admin-token,alice,1,"system:masters"\nreader-token,bob,2,"viewers"\n')
    (tmp_path / "fed").mkdir()
    with apiserver(tmp_path / "fed", "--no-controllers", "--token-file", str(tokens)) as url:
        def can(token, verb, resource):
            config = k8s.Configuration()
            config.host, config.api_key = url, {"authorization": f"Bearer {token}"}
            review = k8s.V1SelfSubjectAccessReview(spec=k8s.V1SelfSubjectAccessReviewSpec(
                resource_attributes=k8s.V1ResourceAttributes(verb=verb, resource=resource, namespace="default")))
            return k8s.AuthorizationV1Api(k8s.ApiClient(config)).create_self_subject_access_review(review).status

        assert can("admin-token", "delete", "secrets").allowed
        denied = can("reader-token", "delete", "services")
        assert not denied.allowed and denied.reason
        assert can("reader-token", "list", "services").allowed
        assert not can("reader-token", "get", "secrets").allowed
        config = k8s.Configuration()
        config.host, config.api_key = url, {"authorization": "Bearer reader-token"}
        who = k8s.AuthenticationV1Api(k8s.ApiClient(config)).create_self_subject_review(k8s.V1SelfSubjectReview())
        assert who.status.user_info.username == "bob" and "viewers" in who.status.user_info.groups


GENERATORS = [
    ("deployment", ["create", "deployment", "{name}", "--image=nginx:1.27", "--replicas=2", "--port=8080"],
     "/apis/apps/v1/namespaces/default/deployments", ("spec",)),
    ("service", ["create", "service", "clusterip", "{name}", "--tcp=80:8080"], SVC, ("spec",)),
    ("namespace", ["create", "namespace", "{name}"], "/api/v1/namespaces", ()),
    ("secret", ["create", "secret", "generic", "{name}", "--from-literal=user=admin", "--from-literal=pw=s3cret"],
     "/api/v1/namespaces/default/secrets", ("data", "type")),
]


def pruned(value):
    """Without empty maps and nulls: Go's JSON writes ``resources: {}`` and
    ``creationTimestamp: null`` where protobuf carries nothing, and both mean the same."""
    if isinstance(value, dict):
        return {k: pruned(v) for k, v in value.items() if v not in ({}, None)}
    if isinstance(value, list):
        return [pruned(v) for v in value]
    return value


def comparable(obj: dict, fields: tuple[str, ...]) -> dict:
    """What a generator decides, without what the server assigns (names, uids, addresses)."""
    out = {k: pruned(obj.get(k)) for k in fields}
    spec = out.get("spec")
    if isinstance(spec, dict):
        spec = {k: v for k, v in spec.items() if k not in ("clusterIP", "clusterIPs")}
        if "selector" in spec and isinstance(spec["selector"], dict) and "matchLabels" not in spec["selector"]:
            spec["selector"] = sorted(spec["selector"].values())
        out["spec"] = json.loads(json.dumps(spec).replace(obj["metadata"]["name"], "NAME"))
    return out


@needs_kubectl
@pytest.mark.parametrize("what, args, collection, fields", GENERATORS, ids=[g[0] for g in GENERATORS])
def test_kubectl_create_generators_send_protobuf_and_land_as_json_would(server, tmp_path, what, args, collection,
                                                                         fields):
    if what == "secret" and http("GET", server + collection)[0] == 404:
        pytest.skip("members serve no secrets")
    direct = kubectl(server, tmp_path, *[a.format(name=f"gen-{what}") for a in args])
    assert direct.returncode == 0, direct  # protobuf on the wire (kubectl's typed client)
    rendered = kubectl(server, tmp_path, *[a.format(name=f"yaml-{what}") for a in args], "--dry-run=client", "-o", "yaml")
    manifest = tmp_path / f"{what}.yaml"
    manifest.write_text(rendered.stdout)
    piped = kubectl(server, tmp_path, "create", "-f", str(manifest))
    assert piped.returncode == 0, piped  # JSON on the wire
    one = http("GET", f"{server}{collection}/gen-{what}")[1]
    other = http("GET", f"{server}{collection}/yaml-{what}")[1]
    assert one["metadata"].get("labels", {}).keys() == other["metadata"].get("labels", {}).keys()
    assert comparable(one, fields) == comparable(other, fields), (one, other)


@needs_kubectl
def test_kubectl_explain_recursive_lists_the_sub_fields(server, tmp_path):
    done = kubectl(server, tmp_path, "explain", "deployment.spec.strategy", "--recursive")
    assert done.returncode == 0 and "maxUnavailable" in done.stdout and "rollingUpdate" in done.stdout, done
    if http("GET", server + "/api/v1/nodes")[0] == 200:  # members have nodes
        done = kubectl(server, tmp_path, "explain", "node.status", "--recursive")
        assert done.returncode == 0 and "kubeletVersion" in done.stdout and "lastHeartbeatTime" in done.stdout, done


@needs_kubectl
@pytest.mark.parametrize("where", ["federation", "member"])
def test_kubectl_rollout_history_and_undo(where, tmp_path):
    """At the federation, the revisions (its ControllerRevisions) are served as the
    ReplicaSets kubectl reads; a member has real ones. Needs the controllers running."""
    def run(url):
        def k(*args):
            return kubectl(url, tmp_path, *args)

        def history_is(expected):
            wait_until(lambda: revisions(k("rollout", "history", "deployment/hist").stdout) == expected,
                       timeout=15, interval=0.3, what=f"revisions {expected}")

        assert k("create", "deployment", "hist", "--image=nginx:1.26").returncode == 0
        history_is(["1"])
        assert k("set", "image", "deployment/hist", "nginx=nginx:1.27").returncode == 0
        history_is(["1", "2"])
        undo = k("rollout", "undo", "deployment/hist", "--to-revision=1")
        assert undo.returncode == 0 and "rolled back" in undo.stdout, undo
        history_is(["2", "3"])  # revision 1 became 3, as in Kubernetes
        image = http("GET", url + DEPLOYS + "/hist")[1]["spec"]["template"]["spec"]["containers"][0]["image"]
        assert image == "nginx:1.26"

    (tmp_path / "server").mkdir()
    with one_server(where, tmp_path / "server", "aws-hist-1", controllers=True) as url:
        run(url)


DEPLOYS = "/apis/apps/v1/namespaces/default/deployments"


def revisions(history: str) -> list[str]:
    return [line.split()[0] for line in history.splitlines()[2:] if line.strip()]


@needs_kubectl
def test_kubectl_wait_through_watchlist(server, tmp_path):
    """client-go's WatchList (KUBE_FEATURE_WatchListClient): kubectl wait's informer opens one
    ``sendInitialEvents=true`` watch instead of a list, and its reflector must see the
    ``k8s.io/initial-events-end`` bookmark before it trusts its cache; then it waits on."""
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "flag"}, "data": {"x": "1"}}
    path = "/api/v1/namespaces/default/configmaps"
    assert http("POST", server + path, cm)[0] == 201
    env = {**os.environ, "KUBE_FEATURE_WatchListClient": "true"}
    waiting = subprocess.Popen(
        [KUBECTL, "--server", server, "--cache-dir", str(tmp_path / "cache"), "-v=6", "wait",
         "--for=jsonpath={.data.x}=2", "configmap/flag", "--timeout=30s"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        time.sleep(1.0)  # most likely after kubectl's watch opened: the change then comes as an event
        assert http("PATCH", server + path + "/flag", {"data": {"x": "2"}},
                    content_type="application/merge-patch+json")[0] == 200
        out, err = waiting.communicate(timeout=40)
    finally:
        if waiting.poll() is None:
            waiting.kill()
    assert waiting.returncode == 0 and "condition met" in out, err[-2000:]
    assert "sendInitialEvents=true" in err, err[-2000:]
    assert "received the bookmark that marks the end of initial events stream" in err, err[-2000:]
