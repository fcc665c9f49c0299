"""The authorizer, the token parsers and the request-attribute rules, table by table (pure)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from federation.api import auth
from federation.api.auth import Attributes, Authenticator, User, authorize, request_attributes

ADMIN = User("admin", "1", (auth.MASTERS, auth.AUTHENTICATED))
READER = User("system:fedns", "2", ("system:dns-readers", auth.AUTHENTICATED))
BOOT = User("system:bootstrap:abcdef", "", (auth.BOOTSTRAPPERS, auth.AUTHENTICATED))
C1 = User("system:cluster:c1", "", (auth.CLUSTERS_GROUP, auth.AUTHENTICATED))
NS = auth.SYSTEM_NAMESPACE

# (user, verb, resource, namespace, name, subresource, allowed)
TABLE = [
    (ADMIN, "delete", "services", "default", "web", "", True),
    (ADMIN, "list", "secrets", "", "", "", True),
    (ADMIN, "create", "clusters", "", "c9", "credential", True),
    (READER, "list", "dnsrecords", "", "", "", True),
    (READER, "watch", "dnsrecords", "", "", "", True),
    (READER, "get", "clusters", "", "c1", "status", True),
    (READER, "get", "secrets", NS, "bootstrap-token-abcdef", "", False),
    (READER, "watch", "secrets", "", "", "", False),
    (READER, "create", "services", "default", "", "", False),
    (READER, "patch", "clusters", "", "c1", "status", False),
    (READER, "create", "clusters", "", "c1", "credential", False),
    (BOOT, "create", "clusters", "", "", "", True),
    (BOOT, "get", "clusters", "", "c1", "", False),      # issue 19: joining is all it does
    (BOOT, "patch", "clusters", "", "c1", "", False),    # (it once redirected c1's tokens)
    (BOOT, "patch", "clusters", "", "c1", "status", False),
    (BOOT, "update", "clusters", "", "c1", "approval", False),
    (BOOT, "create", "clusters", "", "c1", "credential", True),
    (BOOT, "delete", "clusters", "", "c1", "", False),
    (BOOT, "list", "clusters", "", "", "", False),
    (BOOT, "patch", "leases", NS, "c1", "", False),
    (BOOT, "get", "secrets", NS, "bootstrap-token-abcdef", "", False),
    (C1, "get", "clusters", "", "c1", "", True),
    (C1, "patch", "clusters", "", "c1", "", True),
    (C1, "update", "clusters", "", "c1", "status", True),
    (C1, "patch", "clusters", "", "c1", "status", True),
    (C1, "create", "clusters", "", "", "", True),            # the body's name is checked after
    (C1, "patch", "clusters", "", "c2", "", False),
    (C1, "patch", "clusters", "", "c2", "status", False),
    (C1, "get", "clusters", "", "c2", "", False),
    (C1, "list", "clusters", "", "", "", False),
    (C1, "get", "leases", NS, "c1", "", True),
    (C1, "patch", "leases", NS, "c1", "", True),
    (C1, "update", "leases", NS, "c1", "", True),
    (C1, "create", "leases", NS, "", "", True),
    (C1, "patch", "leases", NS, "c2", "", False),
    (C1, "patch", "leases", "default", "c1", "", False),
    (C1, "get", "secrets", NS, "cluster-access-c1", "", True),
    (C1, "patch", "secrets", NS, "cluster-access-c1", "", True),
    (C1, "get", "secrets", NS, "cluster-access-c2", "", False),
    (C1, "get", "secrets", NS, "bootstrap-token-abcdef", "", False),
    (C1, "list", "secrets", "", "", "", False),
    (C1, "create", "services", "default", "", "", False),
    (C1, "patch", "services", "default", "web", "", False),
    (C1, "delete", "dnsrecords", "", "a.web", "", False),
    (C1, "create", "clusters", "", "c1", "credential", False),
    (C1, "update", "clusters", "", "c1", "approval", False),  # only an admin approves
    (READER, "update", "clusters", "", "c1", "approval", False),
    (ADMIN, "update", "clusters", "", "c1", "approval", True),
]


@pytest.mark.parametrize("user,verb,resource,namespace,name,subresource,allowed", TABLE)
def test_authorize_table(user, verb, resource, namespace, name, subresource, allowed):
    decision = authorize(user, verb, resource, namespace, name, subresource)
    assert decision.allowed is allowed, decision.reason
    assert decision.reason


def test_non_resource_paths_need_authentication_except_public_ones():
    anonymous = User("system:anonymous")
    assert authorize(anonymous, "get", "", path="/healthz").allowed
    assert not authorize(anonymous, "get", "", path="/apis").allowed
    assert authorize(C1, "get", "", path="/apis").allowed


MONITOR = User("prometheus", "3", (auth.MONITORING, auth.AUTHENTICATED))


@pytest.mark.parametrize("user,verb,allowed", [
    (ADMIN, "get", True), (MONITOR, "get", True), (MONITOR, "create", False),
    (READER, "get", False), (C1, "get", False), (BOOT, "get", False), (User("system:anonymous"), "get", False),
])
def test_metrics_need_the_monitoring_group_or_an_admin(user, verb, allowed):
    """issue 17: Kubernetes' system:monitoring group, not every authenticated user, reads /metrics."""
    decision = authorize(user, verb, "", path="/metrics")
    assert decision.allowed is allowed, decision.reason


def test_the_monitoring_group_reads_what_other_users_read():
    assert authorize(MONITOR, "get", "", path="/healthz").allowed
    assert authorize(MONITOR, "list", "services", "default").allowed
    assert not authorize(MONITOR, "list", "secrets").allowed


def test_a_cluster_creates_only_objects_with_its_own_name():
    assert auth.created_name_allowed(C1, "leases", "c1").allowed
    assert auth.created_name_allowed(C1, "secrets", "cluster-access-c1").allowed
    assert not auth.created_name_allowed(C1, "leases", "c2").allowed
    assert not auth.created_name_allowed(C1, "clusters", "c2").allowed
    assert auth.created_name_allowed(ADMIN, "leases", "c2") is None


def test_forbidden_message_reads_like_kubernetes():
    attrs = Attributes(verb="patch", resource="clusters", name="c2", group="federation")
    reason = authorize(C1, "patch", "clusters", "", "c2").reason
    assert auth.forbidden_message(C1, attrs, reason) == (
        'clusters.federation "c2" is forbidden: User "system:cluster:c1" cannot patch resource "clusters" '
        'in API group "federation": a cluster may write only its own Cluster and Lease'
    )
    lease = Attributes(verb="patch", resource="leases", namespace=NS, name="c2", group="coordination.k8s.io")
    assert auth.forbidden_message(C1, lease, "r").endswith(
        'cannot patch resource "leases" in API group "coordination.k8s.io" in the namespace "federation-system": r')
    status = Attributes(verb="patch", resource="clusters", name="c2", subresource="status", group="federation")
    assert 'resource "clusters/status"' in auth.forbidden_message(C1, status, "r")


@pytest.mark.parametrize("method,path,query,expected", [
    ("GET", "/api/v1/namespaces/default/services", {}, ("list", "services", "default", "", "", "")),
    ("GET", "/api/v1/services", {"watch": "true"}, ("watch", "services", "", "", "", "")),
    ("PATCH", "/apis/federation/v1beta1/clusters/c1/status", {}, ("patch", "clusters", "", "c1", "status", "federation")),
    ("POST", "/apis/federation/v1beta1/clusters/c1/credential", {}, ("create", "clusters", "", "c1", "credential", "federation")),
    ("PUT", "/apis/coordination.k8s.io/v1/namespaces/federation-system/leases/c1", {},
     ("update", "leases", NS, "c1", "", "coordination.k8s.io")),
    ("DELETE", "/api/v1/namespaces/x/secrets/s", {}, ("delete", "secrets", "x", "s", "", "")),
    ("GET", "/api/v1/namespaces/kube-system", {}, ("get", "namespaces", "kube-system", "kube-system", "", "")),
    ("GET", "/api/v1/namespaces", {}, ("list", "namespaces", "", "", "", "")),
    ("GET", "/apis/federation/v1beta1/clusters", {}, ("list", "clusters", "", "", "", "federation")),
])
def test_request_attributes(method, path, query, expected):
    a = request_attributes(method, path, query)
    assert (a.verb, a.resource, a.namespace, a.name, a.subresource, a.group) == expected


@pytest.mark.parametrize("path", ["/healthz", "/version", "/apis", "/api", "/openapi/v3", "/apis/federation/v1beta1"])
def test_discovery_and_health_are_non_resource(path):
    assert not request_attributes("GET", path).is_resource


def test_token_file_format():
    tokens = auth.parse_token_file('# comment\nt1,admin,1,"system:masters,ops"\nt2,bob,2\n\n')
    assert tokens["t1"] == User("admin", "1", ("system:masters", "ops"))
    assert tokens["t2"] == User("bob", "2", ())
    with pytest.raises(auth.TokenFileError, match="line 1"):
        auth.parse_token_file("onlytoken\n")


def secrets_store(*objs):
    by_name = {o["metadata"]["name"]: o for o in objs}
    return by_name.get


def test_bootstrap_tokens_authenticate_until_they_expire():
    token = auth.new_bootstrap_token()
    assert auth.BOOTSTRAP_TOKEN.match(token)
    soon = (datetime.now(timezone.utc) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    authn = Authenticator(secrets=secrets_store(auth.bootstrap_secret(token, expiration=soon)))
    user = authn.authenticate(token)
    assert user is not None and user.in_group(auth.BOOTSTRAPPERS) and user.name == "system:bootstrap:" + token[:6]
    assert authn.authenticate(token[:-1] + ("a" if token[-1] != "a" else "b")) is None
    assert authn.authenticate(token, now=datetime.now(timezone.utc) + timedelta(hours=1)) is None


def test_cluster_credentials_are_checked_against_their_hash():
    token = auth.new_cluster_token("c1")
    secret = auth.credential_secret("c1", token)
    assert token not in str(secret) and token.split(".")[1] not in str(secret)
    authn = Authenticator(secrets=secrets_store(secret))
    assert authn.authenticate(token) == C1
    assert authn.authenticate(auth.new_cluster_token("c1")) is None
    assert authn.authenticate("c2." + token.split(".")[1]) is None


def test_static_tokens_gain_the_authenticated_group():
    authn = Authenticator(static={"t": User("admin", "1", (auth.MASTERS,))})
    assert authn.authenticate("t").in_group(auth.AUTHENTICATED)
    assert authn.authenticate("nope") is None and authn.authenticate("") is None


@pytest.mark.parametrize("header,token", [("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("Basic abc", ""), (None, "")])
def test_bearer_token(header, token):
    assert auth.bearer_token(header) == token
