"""The kubectl-style verbs: ``ubernetes get | describe | apply | delete``.

A thin shell: it resolves a resource type, talks to the federation API over plain HTTP
and hands the objects to the pure printers in :mod:`federation.printers`. It is
synchronous (urllib) on purpose: a CLI makes a handful of requests one after another, and
keeping asyncio out makes connection errors easy to turn into kubectl's one-line messages.

Behaviour follows kubectl where kubectl has an answer: exit status 1 on any error, errors
on stderr as ``Error from server (<reason>): <message>`` from the server's ``Status``,
``apply`` as a create or a three-way JSON merge patch recorded in the
``kubectl.kubernetes.io/last-applied-configuration`` annotation (so it prints
``created``, ``configured`` or ``unchanged``), and ``--server`` accepted before or after
the verb, as kubectl's global flags are.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, NoReturn

import click
import yaml

from apimachinery import decoding
from apimachinery.transport import InsecureTokenTransport, is_loopback_host, warn_token_transport
from apimachinery.kinds import Kind, KindTable
from federation.resources import ALL, EVENTS
from federation import printers, tables
from federation.names import DEFAULT_SERVER
from apimachinery.meta import covers
from apimachinery.client import error_from_response
from apimachinery.errors import APIError, NotFound

REQUEST_TIMEOUT = 10.0
# Server-owned metadata that apply neither compares nor sends back.
SERVER_METADATA = ("resourceVersion", "uid", "creationTimestamp", "generation", "selfLink", "managedFields", "deletionTimestamp")


# --- resource types -------------------------------------------------------------------


# The CLI knows the federation's kinds from the federation's own table (issue 11).
KINDS = KindTable(ALL)
# Controllers record events of cluster-scoped objects here (federation.api.events.EVENT_NAMESPACE).
CLUSTER_EVENT_NAMESPACE = "default"


# --- errors and output ----------------------------------------------------------------


class ConnectionFailed(Exception):
    """The server could not be reached at all; every verb stops on it. ``not_sent``: the
    request never reached it (safe to send to another API server, whatever its verb)."""

    def __init__(self, message: str, *, not_sent: bool = False) -> None:
        super().__init__(message)
        self.not_sent = not_sent


def fail(message: str) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(1)


def server_error(err: APIError, *, context: str = "") -> str:
    return f"Error from server ({err.reason}): {context}{err.message}"


# --- HTTP -----------------------------------------------------------------------------


class Server:
    """Blocking JSON requests against the federation API; errors become :class:`APIError`.

    ``url`` may name several API servers, comma-separated (issue 13): a request that cannot
    reach one goes to the next; a read that fails after it was sent is retried there too."""

    def __init__(self, url: str, *, token: str | None = None, ca_file: str | None = None) -> None:
        self.endpoints = [(u if "://" in u else "http://" + u).rstrip("/") for u in url.split(",") if u.strip()]
        if not self.endpoints:
            raise click.UsageError(f"no API server address in --server {url!r}")
        self._current = 0
        self.token = token  # issue 8: sent as a bearer token when set
        self.ca_file = ca_file
        handlers: list[Any] = []
        if all(is_loopback_host(urllib.parse.urlsplit(u).hostname or "127.0.0.1") for u in self.endpoints):
            # Like Go's ProxyFromEnvironment, never send loopback traffic through a proxy.
            handlers.append(urllib.request.ProxyHandler({}))
        if ca_file:
            import ssl

            handlers.append(urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=ca_file)))
        self._opener = urllib.request.build_opener(*handlers)

    @property
    def url(self) -> str:
        """The API server asked now; every one of them, comma-separated, is :attr:`urls`."""
        return self.endpoints[self._current]

    @property
    def urls(self) -> str:
        return ",".join(self.endpoints[self._current:] + self.endpoints[:self._current])

    @property
    def address(self) -> str:
        parsed = urllib.parse.urlsplit(self.url)
        return f"{parsed.hostname or '127.0.0.1'}:{parsed.port or (443 if parsed.scheme == 'https' else 80)}"

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        for attempt in range(len(self.endpoints)):
            try:
                return self._request_one(method, path, body=body, params=params, content_type=content_type)
            except ConnectionFailed as err:
                if attempt == len(self.endpoints) - 1 or (method != "GET" and not err.not_sent):
                    raise
                self._current = (self._current + 1) % len(self.endpoints)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _request_one(self, method: str, path: str, *, body: Any, params: dict[str, str] | None,
                     content_type: str) -> Any:
        url = self.url + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if self.token:
            try:  # issue 19: as kubectl, no bearer token over plain HTTP to another host
                warn_token_transport(self.url, self.token)
            except InsecureTokenTransport as err:
                raise ConnectionFailed(f"error: {err}") from None
            headers["Authorization"] = f"Bearer {self.token}"
        if data is not None:
            headers["Content-Type"] = content_type
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with self._opener.open(req, timeout=REQUEST_TIMEOUT) as resp:
                text = resp.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as err:
            if err.code == 503 and method == "GET" and len(self.endpoints) > 1:
                raise ConnectionFailed(f"Error from server (ServiceUnavailable) at {self.url}") from None
            raise error_from_response(err.code, err.read().decode("utf-8", "replace")) from None
        except urllib.error.URLError as err:  # raised before anything was sent: safe to send elsewhere
            if isinstance(err.reason, ConnectionRefusedError):
                raise ConnectionFailed(
                    f"The connection to the server {self.address} was refused - did you specify the right host or port?",
                    not_sent=True) from None
            raise ConnectionFailed(f"Unable to connect to the server: {err.reason}", not_sent=True) from None
        except (TimeoutError, OSError) as err:
            raise ConnectionFailed(f"Unable to connect to the server: {err}") from None
        if not text:
            return None
        try:
            return json.loads(text)
        except ValueError:
            raise ConnectionFailed(f"error: the server at {self.url} did not answer with JSON: {text[:200]!r}") from None

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path, body=body)

    def patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, body=body, content_type="application/merge-patch+json")

    def delete(self, path: str, body: Any = None) -> Any:
        return self.request("DELETE", path, body=body)


def resolve_server(ctx: click.Context, server: str | None) -> Server:
    """The command's ``--server`` wins over the group's, then UBERNETES_SERVER, then the default.

    The token (issue 8) is the global ``--token``, else UBERNETES_TOKEN, else the one the
    kubeconfig (``ubernetes up`` or ``ubernetes kubeconfig`` wrote it) holds for that server."""
    root = ctx.find_root()
    obj = root.obj if isinstance(root.obj, dict) else {}
    from federation.kubeconfig import credentials_for, servers_for

    if not server:
        server = obj.get("server")
    url = server or os.environ.get("UBERNETES_SERVER") or DEFAULT_SERVER
    if not (server or os.environ.get("UBERNETES_SERVER")):
        # `ubernetes up` serves the local federation over HTTPS when tokens are on and leaves
        # it in the kubeconfig: the default address means that one when it is there.
        secure = "https://" + DEFAULT_SERVER.split("://", 1)[1]
        if any(credentials_for(secure)):
            url = secure
        # `up --ha` lists every API server in the kubeconfig: move on to the others when it fails
        url = ",".join(servers_for(url))
    token = obj.get("token") or os.environ.get("UBERNETES_TOKEN")
    ca_file = obj.get("certificate_authority") or os.environ.get("UBERNETES_CERTIFICATE_AUTHORITY")
    if not token or not ca_file:
        first = url.split(",")[0].strip()
        found_token, found_ca = credentials_for(first if "://" in first else "http://" + first)
        token, ca_file = token or found_token, ca_file or found_ca
    return Server(url, token=token, ca_file=ca_file)


def server_option(fn: Any) -> Any:
    return click.option(
        "--server",
        "-s",
        "server",
        default=None,
        metavar="URL",
        help=f"Federation API URL (several comma-separated, tried in turn); overrides the global --server "
             f"(env UBERNETES_SERVER, default {DEFAULT_SERVER}).",
    )(fn)


def namespace_option(fn: Any) -> Any:
    return click.option("--namespace", "-n", "namespace", default=None, help="Namespace (default: default).")(fn)


# --- shared helpers -------------------------------------------------------------------


def resolve_type(text: str) -> Kind:
    res = KINDS.by_alias(text)
    if res is None:
        fail(f'error: the server doesn\'t have a resource type "{text}"')
    return res


def split_type_and_names(resource: str, names: tuple[str, ...]) -> tuple[Kind, list[str]]:
    """Accept ``get service web`` and ``get service/web`` alike."""
    if "/" in resource:
        type_text, _, name = resource.partition("/")
        if names:
            fail("error: there is no need to specify a resource type as a separate argument when passing arguments in resource/name form")
        return resolve_type(type_text), [name]
    return resolve_type(resource), list(names)


def with_type(res: Kind, obj: dict[str, Any]) -> dict[str, Any]:
    """List items may come without apiVersion and kind; printed objects always carry them."""
    if "apiVersion" in obj and "kind" in obj:
        return obj
    return {"apiVersion": res.api_version, "kind": res.kind, **obj}


def print_objects(
    res: Kind,
    objs: list[dict[str, Any]],
    *,
    output: str | None,
    all_namespaces: bool,
    single: bool,
    namespace: str,
) -> None:
    objs = [with_type(res, o) for o in objs]
    if output in ("json", "yaml"):
        doc: Any = objs[0] if single and len(objs) == 1 else {
            "apiVersion": "v1",
            "kind": "List",
            "items": objs,
            "metadata": {"resourceVersion": ""},
        }
        if output == "json":
            click.echo(json.dumps(doc, indent=4))
        else:
            click.echo(yaml.safe_dump(doc, sort_keys=False, default_flow_style=False), nl=False)
        return
    if output == "name":
        for o in objs:
            click.echo(f"{res.kubectl_name}/{(o.get('metadata') or {}).get('name', '')}")
        return
    if not objs:
        if res.namespaced and not all_namespaces:
            click.echo(f"No resources found in {namespace} namespace.", err=True)
        else:
            click.echo("No resources found", err=True)
        return
    now = datetime.now(timezone.utc)
    if res is EVENTS:
        objs = printers.sort_events(objs)
    across, wide = all_namespaces and res.namespaced, output == "wide"
    if res.plural in printers.TABLES:
        text = printers.table(res.plural, objs, now, all_namespaces=across, wide=wide)
    else:  # a kind only the server-side printers know (ConfigMaps, FederatedTypeConfigs, ...)
        printer = tables.FEDERATION_PRINTERS.get(res.plural) or tables.default_printer()
        text = tables.text_table(printer, objs, now, all_namespaces=across, wide=wide)
    click.echo(text, nl=False)


# --- get ------------------------------------------------------------------------------


@click.command("get", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("resource", metavar="TYPE[/NAME]")
@click.argument("names", nargs=-1)
@namespace_option
@click.option("--all-namespaces", "-A", is_flag=True, help="List across all namespaces.")
@click.option("--selector", "-l", default=None, help="Label selector, e.g. app=web,tier!=db.")
@click.option("--output", "-o", type=click.Choice(["wide", "yaml", "json", "name"]), default=None)
@server_option
@click.pass_context
def get(
    ctx: click.Context,
    resource: str,
    names: tuple[str, ...],
    namespace: str | None,
    all_namespaces: bool,
    selector: str | None,
    output: str | None,
    server: str | None,
) -> None:
    """Show clusters, services, dnsrecords, leases or events (kubectl get).

    \b
    ubernetes get clusters
    ubernetes get services -A -o wide
    ubernetes get service web -o yaml
    """
    res, wanted = split_type_and_names(resource, names)
    api = resolve_server(ctx, server)
    ns = namespace or "default"
    if wanted and all_namespaces:
        fail("error: a resource cannot be retrieved by name across all namespaces")
    try:
        if wanted:
            objs, errors = [], []
            for name in wanted:
                try:
                    objs.append(api.get(res.path(namespace=ns, name=name)))
                except APIError as err:
                    errors.append(server_error(err))
            if objs or not errors:
                print_objects(res, objs, output=output, all_namespaces=False, single=len(wanted) == 1, namespace=ns)
            for line in errors:
                click.echo(line, err=True)
            if errors:
                sys.exit(1)
            return
        params = {"labelSelector": selector} if selector else None
        path = res.path(namespace=None if all_namespaces else ns)
        body = api.get(path, params=params) or {}
        items = [i for i in body.get("items") or [] if isinstance(i, dict)]
        print_objects(res, items, output=output, all_namespaces=all_namespaces, single=False, namespace=ns)
    except APIError as err:
        fail(server_error(err))
    except ConnectionFailed as err:
        fail(str(err))


# --- describe -------------------------------------------------------------------------


def fetch_events(api: Server, res: Kind, namespace: str) -> list[dict[str, Any]]:
    """The events recorded where ``res`` objects' events live; none if they cannot be read."""
    try:
        body = api.get(EVENTS.path(namespace=namespace if res.namespaced else CLUSTER_EVENT_NAMESPACE)) or {}
    except (APIError, ConnectionFailed):
        return []
    return [e for e in body.get("items") or [] if isinstance(e, dict)]


@click.command("describe", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("resource", metavar="TYPE[/NAME]")
@click.argument("names", nargs=-1)
@namespace_option
@click.option("--selector", "-l", default=None, help="Label selector, when no name is given.")
@server_option
@click.pass_context
def describe(
    ctx: click.Context, resource: str, names: tuple[str, ...], namespace: str | None, selector: str | None, server: str | None
) -> None:
    """Show a cluster or a service in detail (kubectl describe).

    \b
    ubernetes describe cluster aws-us-east-1a
    ubernetes describe service web -n default
    """
    res, wanted = split_type_and_names(resource, names)
    describer = printers.DESCRIBERS.get(res.plural)
    if describer is None:
        fail(f'error: describe does not support resource type "{res.plural}"; try: get {res.plural} -o yaml')
    api = resolve_server(ctx, server)
    ns = namespace or "default"
    failed = False
    try:
        if wanted:
            objs = []
            for name in wanted:
                try:
                    objs.append(api.get(res.path(namespace=ns, name=name)))
                except APIError as err:
                    click.echo(server_error(err), err=True)
                    failed = True
        else:
            params = {"labelSelector": selector} if selector else None
            objs = (api.get(res.path(namespace=ns), params=params) or {}).get("items") or []
            if not objs:
                click.echo(f"No resources found in {ns} namespace." if res.namespaced else "No resources found", err=True)
    except APIError as err:
        fail(server_error(err))
    except ConnectionFailed as err:
        fail(str(err))
    events = fetch_events(api, res, ns) if objs else []
    now = datetime.now(timezone.utc)
    texts = [describer(o, printers.events_for(o, events), now).rstrip("\n") for o in (with_type(res, o) for o in objs)]
    click.echo("\n\n".join(texts) + ("\n" if texts else ""), nl=False)
    if failed:
        sys.exit(1)


# --- apply ----------------------------------------------------------------------------


@dataclass
class Document:
    source: str  # file name, or "STDIN"
    index: int  # 1-based position in its source
    body: Any


class ParseError(Exception):
    pass


def read_sources(filenames: Iterable[str]) -> list[tuple[str, str]]:
    """(source name, text) for every -f: a file, a directory's manifests, or ``-`` for stdin."""
    out = []
    for name in filenames:
        if name == "-":
            out.append(("STDIN", sys.stdin.read()))
            continue
        path = Path(name)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml", ".json") and p.is_file())
        else:
            files = [path]
        for f in files:
            try:
                out.append((str(f), f.read_text()))
            except OSError as err:
                raise ParseError(f'error: the path "{f}" does not exist' if not f.exists() else f"error: {f}: {err.strerror}") from None
    return out


def parse_documents(source: str, text: str) -> list[Document]:
    """Every object in a YAML stream or a JSON document; ``kind: List`` is expanded. Read with
    the servers' decoder: anchors and aliases are refused before anything expands (issue 19)."""
    bodies: list[Any]
    stripped = text.lstrip()
    try:
        if source.endswith(".json") or stripped.startswith(("{", "[")):
            try:
                parsed = decoding.decode_json(text)
                bodies = parsed if isinstance(parsed, list) else [parsed]
            except decoding.InvalidSyntax:
                bodies = decoding.load_yaml_documents(text)
        else:
            bodies = decoding.load_yaml_documents(text)
    except decoding.DecodeError as err:
        raise ParseError(f"error: error parsing {source}: {err.problem}") from None
    docs = []
    for body in bodies:
        if body is None:
            continue
        if isinstance(body, dict) and body.get("kind") == "List" and isinstance(body.get("items"), list):
            docs += [Document(source, len(docs) + 1, item) for item in body["items"]]
        else:
            docs.append(Document(source, len(docs) + 1, body))
    return docs


def strip_server_fields(obj: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in obj.items() if k != "status"}
    meta = dict(out.get("metadata") or {})
    for key in SERVER_METADATA:
        meta.pop(key, None)
    out["metadata"] = meta
    return out


def with_last_applied(obj: dict[str, Any]) -> dict[str, Any]:
    """The object plus its own JSON in the last-applied annotation, as kubectl apply records it."""
    meta = dict(obj.get("metadata") or {})
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k != printers.LAST_APPLIED_ANNOTATION}
    recorded = {**obj, "metadata": {**meta, "annotations": annotations}}
    if not annotations:
        recorded["metadata"].pop("annotations")
    annotations = {**annotations, printers.LAST_APPLIED_ANNOTATION: json.dumps(recorded, sort_keys=True, separators=(",", ":"))}
    return {**obj, "metadata": {**meta, "annotations": annotations}}


def three_way_patch(original: dict[str, Any] | None, modified: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """A JSON merge patch taking ``current`` to ``modified``.

    Fields the last apply set (``original``) and this one leaves out are removed; fields
    nobody applied (server defaults, other writers) are left alone; lists are replaced
    whole, as merge patch does, but only when they differ in what this apply says.
    """
    patch: dict[str, Any] = {}
    original = original if isinstance(original, dict) else {}
    for key in original:
        if key not in modified and key in current:
            patch[key] = None
    for key, value in modified.items():
        cur = current.get(key)
        if isinstance(value, dict) and isinstance(cur, dict):
            sub = three_way_patch(original.get(key) if isinstance(original.get(key), dict) else None, value, cur)
            if sub:
                patch[key] = sub
        elif not covers(cur, value):
            patch[key] = value
    return patch


def apply_document(api: Server, doc: Document, namespace: str | None) -> tuple[str | None, str | None]:
    """Apply one object; returns (line for stdout, error line for stderr)."""
    where = f'"{doc.source}"' + (f" (document {doc.index})" if doc.index > 1 else "")
    body = doc.body
    if not isinstance(body, dict):
        return None, f"error: error validating {where}: the document is a {type(body).__name__}, not an object"
    missing = [f for f in ("apiVersion", "kind") if not body.get(f)]
    if missing:
        return None, f"error: error validating {where}: {', '.join(f + ' not set' for f in missing)}"
    api_version, kind = str(body["apiVersion"]), str(body["kind"])
    meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    name = meta.get("name")
    res = KINDS.by_kind(api_version, kind)
    if res is None:
        return None, (
            f'error: resource mapping not found for name: "{name or ""}" from {where}: '
            f'no matches for kind "{kind}" in version "{api_version}" (known kinds: {KINDS.describe()})'
        )
    if not name or not isinstance(name, str):
        return None, f"error: error validating {where}: {kind} metadata.name is required"
    ns = None
    if res.namespaced:
        doc_ns = meta.get("namespace")
        if namespace and doc_ns and doc_ns != namespace:
            return None, (
                f'error: the namespace from the provided object "{doc_ns}" does not match the namespace '
                f'"{namespace}". You must pass \'--namespace={doc_ns}\' to perform this operation.'
            )
        ns = doc_ns or namespace or "default"
        body = {**body, "metadata": {**meta, "namespace": ns}}
    label = f"{res.kubectl_name}/{name}"
    modified = with_last_applied(strip_server_fields(body))
    try:
        current = api.get(res.path(namespace=ns, name=name))
    except APIError as err:
        if not isinstance(err, NotFound):
            return None, server_error(err, context=f"error when retrieving current configuration of {where}: ")
        current = None
    if current is None:
        try:
            api.post(res.path(namespace=ns), modified)
        except APIError as err:
            return None, server_error(err, context=f"error when creating {where}: ")
        return f"{label} created", None
    annotations = ((current.get("metadata") or {}).get("annotations") or {})
    try:
        original = json.loads(annotations.get(printers.LAST_APPLIED_ANNOTATION) or "null")
    except ValueError:
        original = None
    patch = three_way_patch(original, modified, current)
    if not patch:
        return f"{label} unchanged", None
    try:
        api.patch(res.path(namespace=ns, name=name), patch)
    except APIError as err:
        return None, server_error(err, context=f"error when applying patch to {where}: ")
    return f"{label} configured", None


@click.command("apply", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--filename", "-f", "filenames", multiple=True, required=True, help="A YAML or JSON file, a directory, or - for stdin.")
@namespace_option
@server_option
@click.pass_context
def apply(ctx: click.Context, filenames: tuple[str, ...], namespace: str | None, server: str | None) -> None:
    """Create or update objects from YAML or JSON (kubectl apply).

    \b
    ubernetes apply -f web.yaml
    cat web.yaml | ubernetes apply -f -
    """
    try:
        docs = [d for source, text in read_sources(filenames) for d in parse_documents(source, text)]
    except ParseError as err:
        fail(str(err))
    if not docs:
        fail("error: no objects passed to apply")
    api = resolve_server(ctx, server)
    failed = False
    for doc in docs:
        try:
            line, error = apply_document(api, doc, namespace)
        except ConnectionFailed as err:
            fail(str(err))
        if line:
            click.echo(line)
        if error:
            click.echo(error, err=True)
            failed = True
    if failed:
        sys.exit(1)


# --- delete ---------------------------------------------------------------------------


@click.command("delete", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("resource", required=False, metavar="TYPE[/NAME]")
@click.argument("names", nargs=-1)
@namespace_option
@click.option("--filename", "-f", "filenames", multiple=True, help="Delete the objects a file names.")
@click.option("--selector", "-l", default=None, help="Delete every object matching a label selector.")
@click.option("--ignore-not-found", is_flag=True, help="Treat a missing object as deleted.")
@click.option("--cascade", default="background", metavar="background|foreground|orphan",
              help="What happens to the copies in the member clusters: deleted (background, foreground) or left running (orphan).")
@server_option
@click.pass_context
def delete(
    ctx: click.Context,
    resource: str | None,
    names: tuple[str, ...],
    namespace: str | None,
    filenames: tuple[str, ...],
    selector: str | None,
    ignore_not_found: bool,
    cascade: str,
    server: str | None,
) -> None:
    """Delete services or clusters by name, by selector, or as a file names them (kubectl delete).

    \b
    ubernetes delete service web
    ubernetes delete cluster gcp-europe-west1-b
    ubernetes delete -f web.yaml
    """
    targets: list[tuple[Kind, str | None, str]] = []  # (type, namespace, name)
    errors: list[str] = []
    policy = {"background": "Background", "true": "Background", "foreground": "Foreground", "orphan": "Orphan", "false": "Orphan"}.get(cascade.lower())
    if policy is None:
        fail(f'error: invalid cascade value ({cascade}). Must be "background", "foreground", or "orphan".')
    if filenames:
        if resource:
            fail("error: a resource type cannot be given together with --filename")
        try:
            docs = [d for source, text in read_sources(filenames) for d in parse_documents(source, text)]
        except ParseError as err:
            fail(str(err))
        for doc in docs:
            body = doc.body if isinstance(doc.body, dict) else {}
            res = KINDS.by_kind(str(body.get("apiVersion")), str(body.get("kind")))
            meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
            if res is None or not meta.get("name"):
                errors.append(
                    f'error: no matches for kind "{body.get("kind")}" in version "{body.get("apiVersion")}" '
                    f'in "{doc.source}" (known kinds: {KINDS.describe()})'
                    if res is None
                    else f'error: "{doc.source}": metadata.name is required'
                )
                continue
            ns = (meta.get("namespace") or namespace or "default") if res.namespaced else None
            targets.append((res, ns, meta["name"]))
    elif resource:
        res, wanted = split_type_and_names(resource, names)
        ns = (namespace or "default") if res.namespaced else None
        if not wanted and not selector:
            fail("error: resource(s) were provided, but no name was specified (give a name or -l SELECTOR)")
        targets += [(res, ns, name) for name in wanted]
    else:
        fail("error: you must provide one or more resources by argument or filename")
    api = resolve_server(ctx, server)
    try:
        if selector and resource and not filenames:
            res = resolve_type(resource.partition("/")[0])
            ns = (namespace or "default") if res.namespaced else None
            items = (api.get(res.path(namespace=ns), params={"labelSelector": selector}) or {}).get("items") or []
            if not items and not targets:
                click.echo("No resources found", err=True)
            targets += [(res, ns, (i.get("metadata") or {}).get("name", "")) for i in items]
        for res, ns, name in targets:
            try:
                api.delete(res.path(namespace=ns, name=name), body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": policy})
            except APIError as err:
                if isinstance(err, NotFound) and ignore_not_found:
                    continue
                errors.append(server_error(err))
                continue
            click.echo(f'{res.kubectl_name} "{name}" deleted')
    except APIError as err:
        errors.append(server_error(err))
    except ConnectionFailed as err:
        fail(str(err))
    for line in errors:
        click.echo(line, err=True)
    if errors:
        sys.exit(1)


COMMANDS = [get, describe, apply, delete]
