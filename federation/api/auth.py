"""Who may do what: authentication by bearer token and a small, pure authorizer.

Kubernetes' model, cut down to what a federation needs (issue 8):

- **Static tokens** in Kubernetes' token file format (``token,user,uid,"group1,group2"``),
  read once at start: the admin (group ``system:masters``), readers such as the DNS
  responder, and optionally a bootstrap token line (group ``system:bootstrappers``).
- **Bootstrap tokens** (``[a-z0-9]{6}.[a-z0-9]{16}``, as kubeadm's) kept as v1 Secrets
  ``federation-system/bootstrap-token-<id>``; ``ubernetes token create`` makes one.
- **Cluster credentials**: a member that joined with a bootstrap token asks for its own
  token (``POST .../clusters/<name>/credential``). The server keeps only its SHA-256, in
  the Secret ``federation-system/cluster-credential-<name>``; the token names its cluster
  (``<name>.<32 hex>``), so checking it is one lookup.

:func:`authorize` is a pure function of the user and the request's attributes, tested
table by table; :func:`request_attributes` turns a path into those attributes the way
Kubernetes' ``RequestInfoFactory`` does. The I/O (reading the token file and Secrets)
stays in :class:`Authenticator`.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import io
import re
import secrets as pysecrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from federation.names import ACCESS_SECRET_PREFIX, SYSTEM_NAMESPACE

MASTERS = "system:masters"
SELF_REVIEWS = ("selfsubjectaccessreviews", "selfsubjectreviews")  # kubectl auth can-i / whoami
BOOTSTRAPPERS = "system:bootstrappers"
CLUSTERS_GROUP = "system:clusters"
MONITORING = "system:monitoring"  # Kubernetes' group for scrapers: may GET /metrics (issue 17)
METRICS_PATH = "/metrics"
AUTHENTICATED = "system:authenticated"
CLUSTER_USER_PREFIX = "system:cluster:"
BOOTSTRAP_USER_PREFIX = "system:bootstrap:"
BOOTSTRAP_SECRET_PREFIX = "bootstrap-token-"
CREDENTIAL_SECRET_PREFIX = "cluster-credential-"
BOOTSTRAP_TOKEN_TYPE = "bootstrap.kubernetes.io/token"
BOOTSTRAP_USAGES = frozenset({"authentication", "signing"})  # kubeadm's; "authentication" lets a cluster join
SINGLE_USE_KEY = "usage-bootstrap-single-use"  # ours: spent on the first credential it gets
CREDENTIAL_TYPE = "ubernetes.io/cluster-credential"
ACCESS_TYPE = "ubernetes.io/cluster-access"
BOOTSTRAP_TOKEN = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
CLUSTER_TOKEN = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?)\.([0-9a-f]{32})$")
# Paths anyone may ask, as Kubernetes' system:public-info-viewer role allows.
PUBLIC_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/version"})
UI_PATH = "/ui"  # the dashboard's static files are public; its data calls are not (issue 17)
UI_API_PREFIX = "/ui/api/"


def is_public(path: str) -> bool:
    """May ``path`` be asked without a token? Health and version, and the dashboard's static files."""
    if path in PUBLIC_PATHS:
        return True
    return (path == UI_PATH or path.startswith(UI_PATH + "/")) and not path.startswith(UI_API_PREFIX)
READ_VERBS = frozenset({"get", "list", "watch"})
GROUP_OF = {
    "clusters": "federation", "dnsrecords": "federation", "leases": "coordination.k8s.io",
    "deployments": "apps", "controllerrevisions": "apps",
}


class TokenFileError(ValueError):
    """A token file line that is not ``token,user,uid[,"groups"]``."""


@dataclass(frozen=True)
class User:
    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()

    def in_group(self, group: str) -> bool:
        return group in self.groups


@dataclass(frozen=True)
class Attributes:
    """What a request asks to do, as Kubernetes' authorizer sees it."""

    verb: str
    resource: str = ""          # plural, e.g. "clusters"; "" for a non-resource path
    namespace: str = ""
    name: str = ""
    subresource: str = ""
    group: str = ""
    path: str = ""

    @property
    def is_resource(self) -> bool:
        return bool(self.resource)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str


# ---------------------------------------------------------------------------- tokens


def parse_token_file(text: str, *, source: str = "token file") -> dict[str, User]:
    """Kubernetes' static token file: ``token,user,uid,"group1,group2"`` per line (groups optional)."""
    tokens: dict[str, User] = {}
    for lineno, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        if len(row) < 3:
            raise TokenFileError(f"{source}, line {lineno}: expected token,user,uid[,\"group1,group2\"]")
        token, user, uid = (c.strip() for c in row[:3])
        if not token or not user:
            raise TokenFileError(f"{source}, line {lineno}: the token and the user name must not be empty")
        groups = tuple(g.strip() for g in (row[3] if len(row) > 3 else "").split(",") if g.strip())
        tokens[token] = User(user, uid, groups)
    return tokens


def format_token_line(token: str, user: str, uid: str, groups: list[str] | tuple[str, ...]) -> str:
    return f'{token},{user},{uid},"{",".join(groups)}"'


def new_bootstrap_token() -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    pick = lambda n: "".join(pysecrets.choice(alphabet) for _ in range(n))  # noqa: E731
    return f"{pick(6)}.{pick(16)}"


def new_cluster_token(cluster: str) -> str:
    return f"{cluster}.{pysecrets.token_hex(16)}"


def new_token() -> str:
    """An opaque random token for static token files (admin, readers, member access)."""
    return pysecrets.token_hex(24)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def unb64(value: Any) -> str:
    try:
        return base64.b64decode(str(value), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return ""


def secret_object(name: str, data: dict[str, str], *, type_: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    """A v1 Secret in ``federation-system`` with ``data`` base64-encoded."""
    meta: dict[str, Any] = {"name": name, "namespace": SYSTEM_NAMESPACE}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": type_,
            "data": {k: b64(v) for k, v in data.items()}}


def bootstrap_secret(token: str, *, expiration: str | None = None, description: str = "",
                     usages: set[str] | frozenset[str] = frozenset({"authentication"}),
                     single_use: bool = False) -> dict[str, Any]:
    """kubeadm's bootstrap token Secret for ``token`` (``<id>.<secret>``); ``single_use``
    (ours) makes the API server delete it once it has issued a first credential."""
    match = BOOTSTRAP_TOKEN.match(token)
    if not match:
        raise ValueError(f"{token!r} is not a bootstrap token ([a-z0-9]{{6}}.[a-z0-9]{{16}})")
    data = {"token-id": match.group(1), "token-secret": match.group(2), "auth-extra-groups": BOOTSTRAPPERS}
    data.update({f"usage-bootstrap-{usage}": "true" for usage in sorted(usages)})
    if single_use:
        data[SINGLE_USE_KEY] = "true"
    if expiration:
        data["expiration"] = expiration
    if description:
        data["description"] = description
    return secret_object(BOOTSTRAP_SECRET_PREFIX + match.group(1), data, type_=BOOTSTRAP_TOKEN_TYPE)


def credential_secret(cluster: str, token: str, *, issued_to: str = "") -> dict[str, Any]:
    """Where a cluster credential lives on the server: its hash only, never the token, and
    the user it was issued to (a bootstrap token's, so the same one may ask again while the
    cluster has not registered: its first answer may have been lost)."""
    return secret_object(CREDENTIAL_SECRET_PREFIX + cluster,
                         {"cluster": cluster, "token-sha256": token_hash(token), "issued-to": issued_to},
                         type_=CREDENTIAL_TYPE)


def access_secret(cluster: str, token: str) -> dict[str, Any]:
    """The Secret a member publishes so the federation can reach its API (Cluster spec.secretRef)."""
    return secret_object(ACCESS_SECRET_PREFIX + cluster, {"token": token}, type_=ACCESS_TYPE)


def secret_value(secret: dict[str, Any] | None, key: str) -> str:
    if not isinstance(secret, dict):
        return ""
    data = secret.get("data") or {}
    if isinstance(data, dict) and key in data:
        return unb64(data[key])
    string_data = secret.get("stringData") or {}
    return str(string_data.get(key, "")) if isinstance(string_data, dict) else ""


def _expired(expiration: str, now: datetime) -> bool:
    if not expiration:
        return False
    try:
        when = datetime.fromisoformat(expiration.replace("Z", "+00:00"))
    except ValueError:
        return True  # a token whose expiry cannot be read is not trusted
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when <= now


SecretLookup = Callable[[str], "dict[str, Any] | None"]  # name in federation-system -> Secret or None


@dataclass
class Authenticator:
    """Turns a bearer token into a :class:`User`, or None when it is not valid."""

    static: dict[str, User] = field(default_factory=dict)
    secrets: SecretLookup | None = None

    def authenticate(self, token: str, *, now: datetime | None = None) -> User | None:
        if not token:
            return None
        user = self.static.get(token)
        if user is not None:
            return User(user.name, user.uid, (*user.groups, AUTHENTICATED))
        if self.secrets is None:
            return None
        match = BOOTSTRAP_TOKEN.match(token)
        if match:
            secret = self.secrets(BOOTSTRAP_SECRET_PREFIX + match.group(1))
            if (secret is None or secret.get("type") != BOOTSTRAP_TOKEN_TYPE
                    or secret_value(secret, "usage-bootstrap-authentication") != "true"
                    or _expired(secret_value(secret, "expiration"), now or datetime.now(timezone.utc))):
                return None
            if not hmac.compare_digest(secret_value(secret, "token-secret"), match.group(2)):
                return None
            extra = tuple(g for g in secret_value(secret, "auth-extra-groups").split(",") if g)
            return User(BOOTSTRAP_USER_PREFIX + match.group(1), "", (*extra, BOOTSTRAPPERS, AUTHENTICATED))
        match = CLUSTER_TOKEN.match(token)
        if match:
            cluster = match.group(1)
            secret = self.secrets(CREDENTIAL_SECRET_PREFIX + cluster)
            if secret is None or not hmac.compare_digest(secret_value(secret, "token-sha256"), token_hash(token)):
                return None
            return User(CLUSTER_USER_PREFIX + cluster, "", (CLUSTERS_GROUP, AUTHENTICATED))
        return None


def bearer_token(header: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header, or ""."""
    scheme, _, value = (header or "").strip().partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


# ---------------------------------------------------------------------------- request attributes


def request_attributes(method: str, path: str, query: dict[str, str] | None = None) -> Attributes:
    """The verb, resource, namespace, name and subresource of an API request (Kubernetes'
    RequestInfoFactory rules): ``/api/v1/...`` and ``/apis/<group>/<version>/...``."""
    query = query or {}
    parts = [p for p in path.strip("/").split("/") if p]
    watch = query.get("watch") in ("true", "1")
    method = method.upper()
    if len(parts) >= 3 and parts[0] == "api":
        group, rest = "", parts[2:]
    elif len(parts) >= 4 and parts[0] == "apis":
        group, rest = parts[1], parts[3:]
    else:
        return Attributes(verb=method.lower(), path=path)
    namespace = ""
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    elif rest[0] == "namespaces" and len(rest) == 2:
        # /api/v1/namespaces/{name}: the namespace object itself
        return Attributes(verb=_verb(method, named=True, watch=watch), resource="namespaces", name=rest[1],
                          namespace=rest[1], group=group, path=path)
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = "/".join(rest[2:])
    return Attributes(verb=_verb(method, named=bool(name), watch=watch), resource=resource, namespace=namespace,
                      name=name, subresource=subresource, group=group, path=path)


def _verb(method: str, *, named: bool, watch: bool) -> str:
    if method in ("GET", "HEAD"):
        return "watch" if watch else ("get" if named else "list")
    return {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method, method.lower())


# ---------------------------------------------------------------------------- authorization


def authorize(user: User, verb: str, resource: str, namespace: str = "", name: str = "", subresource: str = "",
              *, path: str = "") -> Decision:
    """May ``user`` do ``verb`` on ``resource`` (plural; "" for the non-resource ``path``)?

    - ``system:masters``: anything.
    - ``system:bootstrappers``: create a Cluster and ask for a cluster's first credential
      (the API server refuses names already claimed: federation/admission.py).
    - a cluster (``system:cluster:<name>``, group ``system:clusters``): get, update and patch its
      own Cluster (status included; never its ``spec.secretRef`` nor its approval), and get,
      create, update and patch its own Lease ``federation-system/<name>`` and its own access
      Secret ``cluster-access-<name>``.
    - ``system:monitoring`` (Kubernetes' group for scrapers): get ``/metrics``; nobody else
      but ``system:masters`` may (issue 17).
    - the dashboard's calls that change something (fault buttons, report uploads under
      ``/ui/api/``): ``system:masters`` only; its reads: any authenticated user.
    - anyone: create the self reviews of ``kubectl auth can-i`` and ``whoami``.
    - any other authenticated user: get, list and watch everything but Secrets.
    """
    if user.in_group(MASTERS):
        return Decision(True, f"group {MASTERS} may do anything")
    if resource in SELF_REVIEWS and verb == "create":
        return Decision(True, "anyone may ask what they may do and who they are (Kubernetes' system:basic-user)")
    if not resource and path == METRICS_PATH:
        if user.in_group(MONITORING) and verb == "get":
            return Decision(True, f"group {MONITORING} may read /metrics")
        return Decision(False, f"/metrics is readable by groups {MASTERS} and {MONITORING} only")
    if not resource and path.startswith(UI_API_PREFIX) and verb != "get":
        return Decision(False, f"the dashboard's fault buttons and report uploads are for group {MASTERS} only")
    if not resource:
        if user.in_group(AUTHENTICATED) or path in PUBLIC_PATHS:
            return Decision(True, "discovery and health are open to every authenticated user")
        return Decision(False, "authentication required")
    if user.name.startswith(CLUSTER_USER_PREFIX) and user.in_group(CLUSTERS_GROUP):
        return _cluster_rule(user.name[len(CLUSTER_USER_PREFIX):], verb, resource, namespace, name, subresource)
    if user.in_group(BOOTSTRAPPERS):
        if resource == "clusters" and verb == "create" and subresource in ("", "credential") and (
            bool(name) == (subresource == "credential")
        ):
            # The API server then checks the name is unclaimed (federation/admission.py).
            return Decision(True, "a bootstrap token may join a new Cluster and ask for its first credential")
        return Decision(False, "a bootstrap token may only create a new Cluster and ask for its first credential")
    if resource == "secrets":
        return Decision(False, f"secrets are readable by group {MASTERS} only")
    if verb in READ_VERBS and not subresource.startswith("credential"):
        return Decision(True, "authenticated users may read everything but secrets")
    return Decision(False, f"only group {MASTERS} may write; this user may only get, list and watch")


def _cluster_rule(cluster: str, verb: str, resource: str, namespace: str, name: str, subresource: str) -> Decision:
    own_cluster = resource == "clusters" and name == cluster and subresource in ("", "status")
    if own_cluster and (verb in ("get", "update", "patch") or (verb in ("create", "delete") and not subresource)):
        return Decision(True, "a cluster may read and write its own Cluster")
    if verb == "create" and not name and not subresource and (
        resource == "clusters" or (resource in ("leases", "secrets") and namespace == SYSTEM_NAMESPACE)
    ):
        # A create names its object in the body: the API server checks that name with
        # created_name_allowed once it has read the body.
        return Decision(True, "a cluster may create its own Cluster, Lease and access Secret")
    own_lease = resource == "leases" and namespace == SYSTEM_NAMESPACE and name == cluster
    own_secret = resource == "secrets" and namespace == SYSTEM_NAMESPACE and name == ACCESS_SECRET_PREFIX + cluster
    if (own_lease or own_secret) and not subresource and verb in ("get", "create", "update", "patch", "delete"):
        return Decision(True, "a cluster may read and write its own Lease and access Secret")
    if verb in READ_VERBS:
        return Decision(False, "a cluster may read only its own Cluster, Lease and access Secret")
    return Decision(False, "a cluster may write only its own Cluster and Lease")


def created_name_allowed(user: User, resource: str, name: str) -> Decision | None:
    """For a create by a cluster, the name in the body must be its own; None when not a cluster."""
    if not (user.name.startswith(CLUSTER_USER_PREFIX) and user.in_group(CLUSTERS_GROUP)) or user.in_group(MASTERS):
        return None
    cluster = user.name[len(CLUSTER_USER_PREFIX):]
    own = {"leases": cluster, "secrets": ACCESS_SECRET_PREFIX + cluster, "clusters": cluster}.get(resource)
    if own is not None and name == own:
        return Decision(True, "its own object")
    return Decision(False, "a cluster may write only its own Cluster and Lease")


def forbidden_message(user: User, attrs: Attributes, reason: str, *, name: str | None = None) -> str:
    """Kubernetes' wording: ``clusters.federation "c2" is forbidden: User "u" cannot patch resource
    "clusters" in API group "federation": <reason>``."""
    if not attrs.is_resource:
        return f'forbidden: User "{user.name}" cannot {attrs.verb} path "{attrs.path}": {reason}'
    group = attrs.group
    qualified = f"{attrs.resource}.{group}" if group else attrs.resource
    obj_name = attrs.name if name is None else name
    what = f'{qualified} "{obj_name}"' if obj_name else qualified
    resource = attrs.resource + (f"/{attrs.subresource}" if attrs.subresource else "")
    scope = f' in the namespace "{attrs.namespace}"' if attrs.namespace and attrs.resource != "namespaces" else ""
    return (f'{what} is forbidden: User "{user.name}" cannot {attrs.verb} resource "{resource}" '
            f'in API group "{group}"{scope}: {reason}')
