"""The workload verbs: ``rollout status|history|undo``, ``set image``, ``scale``, ``completion``.

Kubernetes 1.3 brought ``kubectl rollout status`` and ``kubectl set image``; here they act on
the federated Deployment, whose status the federation aggregates over every cluster, so a
rollout is watched across the whole federation with kubectl's own lines and exit codes:

- ``rollout status`` prints a line whenever the message changes (``Waiting for rollout to
  finish: 2 out of 6 new replicas have been updated...``, ``... 1 old replicas are pending
  termination...``, ``... 3 of 6 updated replicas are available...``, then ``deployment
  "web" successfully rolled out``) and exits 0; ``--timeout`` exceeded prints ``error: timed
  out waiting for the condition`` and a stalled rollout (a cluster's
  ``ProgressDeadlineExceeded``) ``error: deployment "web" exceeded its progress deadline``,
  both exit 1. ``--clusters`` adds each cluster's numbers under every line.
- ``rollout history`` and ``rollout undo`` read the federation's ``ControllerRevision``
  objects (one per pod template), since no single cluster's ReplicaSets hold the
  federation's history (a member that restarted has only the newest).
- ``completion bash|zsh`` prints click's completion script; resource kinds complete from
  the CLI's resource table and names from the live federation (a short request, silent
  when the server is away), for these verbs and for get/describe/delete.

Same shell as :mod:`federation.cli.kubectl`: blocking HTTP, errors as kubectl prints them.
"""

from __future__ import annotations

import os
import re
import sys
import time
from typing import Any

import click
from click.shell_completion import CompletionItem, get_completion_class

from federation.cli import kubectl as k
from federation.names import CHANGE_CAUSE_ANNOTATION as CHANGE_CAUSE
from apimachinery.errors import APIError, Conflict
from apimachinery.kinds import Kind

DEPLOYMENT = k.KINDS.by_alias("deployment")
REVISIONS = k.KINDS.by_alias("controllerrevisions")
POLL = 0.2
COMPLETION_TIMEOUT = 1.0


# --- helpers --------------------------------------------------------------------------


def parse_duration(text: str) -> float:
    """kubectl's durations: ``30s``, ``2m``, ``1m30s``, ``1h``, ``500ms``, a bare number of seconds; 0 is no limit."""
    text = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    total, pos = 0.0, 0
    for m in re.finditer(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise click.BadParameter(f'invalid duration "{text}": use e.g. 30s, 2m, 1m30s')
    return total


def deployment_name(resource: str, names: tuple[str, ...]) -> str:
    """``deployment/web`` or ``deployment web``; only Deployments roll out here."""
    res, wanted = k.split_type_and_names(resource, names)
    if res is not DEPLOYMENT:
        k.fail(f'error: no rollout or scale support for "{res.plural}": only deployments roll out in a federation')
    if len(wanted) != 1:
        k.fail("error: give exactly one deployment, e.g. deployment/web")
    return wanted[0]


def status_message(d: dict[str, Any]) -> tuple[str, bool, str | None]:
    """(message, done, error) for a Deployment, as kubectl's DeploymentStatusViewer decides."""
    name = (d.get("metadata") or {}).get("name", "")
    spec, status = d.get("spec") or {}, d.get("status") or {}
    generation = (d.get("metadata") or {}).get("generation", 1)
    if generation > status.get("observedGeneration", 0):
        return "Waiting for deployment spec update to be observed...", False, None
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return "", False, f'deployment "{name}" exceeded its progress deadline'
    desired = spec.get("replicas", 1)
    updated = status.get("updatedReplicas", 0)
    replicas = status.get("replicas", 0)
    available = status.get("availableReplicas", 0)
    if updated < desired:
        return f"Waiting for rollout to finish: {updated} out of {desired} new replicas have been updated...", False, None
    if replicas > updated:
        return f"Waiting for rollout to finish: {replicas - updated} old replicas are pending termination...", False, None
    if available < updated:
        return f"Waiting for rollout to finish: {available} of {updated} updated replicas are available...", False, None
    return f'deployment "{name}" successfully rolled out', True, None


def cluster_lines(d: dict[str, Any]) -> list[str]:
    out = []
    for c in (d.get("status") or {}).get("clusters") or []:
        if not c.get("clusterReady"):
            out.append(f"  {c.get('cluster')}: not Ready (its replicas are counted elsewhere)")
            continue
        out.append(
            f"  {c.get('cluster')}: {c.get('updatedReplicas', 0)} of {c.get('desiredReplicas', 0)} updated, "
            f"{c.get('availableReplicas', 0)} available, {c.get('replicas', 0)} running"
        )
    return out


def fetch(api: k.Server, ns: str, name: str) -> dict[str, Any]:
    return api.get(DEPLOYMENT.path(namespace=ns, name=name))


def update_with_retry(api: k.Server, ns: str, name: str, change) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """GET, change, PUT with the resourceVersion; a 409 retries (a controller wrote status)."""
    for attempt in range(5):
        obj = fetch(api, ns, name)
        result = change(obj)
        if result is None:
            return obj
        try:
            return api.request("PUT", DEPLOYMENT.path(namespace=ns, name=name), body=result)
        except APIError as err:
            if not isinstance(err, Conflict) or attempt == 4:
                raise
    raise AssertionError("unreachable")


def revisions_of(api: k.Server, ns: str, d: dict[str, Any]) -> list[dict[str, Any]]:
    items = (api.get(REVISIONS.path(namespace=ns)) or {}).get("items") or []
    uid = d["metadata"]["uid"]
    mine = [r for r in items if any(o.get("uid") == uid for o in r["metadata"].get("ownerReferences") or [])]
    return sorted(mine, key=lambda r: r.get("revision", 0))


def run_or_fail(fn):  # type: ignore[no-untyped-def]
    try:
        return fn()
    except APIError as err:
        k.fail(k.server_error(err))
    except k.ConnectionFailed as err:
        k.fail(str(err))


# --- completion -----------------------------------------------------------------------


def _server_for(ctx: click.Context) -> k.Server:
    root = ctx.find_root()
    server = ctx.params.get("server") or ((root.params or {}).get("server")) or os.environ.get("UBERNETES_SERVER") or k.DEFAULT_SERVER
    return k.resolve_server(ctx, server)  # issue 8: with the token and CA


def live_names(ctx: click.Context, res: Kind) -> list[str]:
    """Names of ``res`` objects from the live federation; nothing when it does not answer."""
    ns = ctx.params.get("namespace") or "default"
    old = k.REQUEST_TIMEOUT
    try:
        k.REQUEST_TIMEOUT = COMPLETION_TIMEOUT
        body = _server_for(ctx).get(res.path(namespace=ns if res.namespaced else None)) or {}
    except Exception:  # noqa: BLE001 - completion must never print an error
        return []
    finally:
        k.REQUEST_TIMEOUT = old
    return sorted((i.get("metadata") or {}).get("name", "") for i in body.get("items") or [] if isinstance(i, dict))


def complete_resource(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """``TYPE`` or ``TYPE/NAME``: kinds from the table, names from the federation."""
    if "/" in incomplete:
        type_text, _, prefix = incomplete.partition("/")
        res = k.KINDS.by_alias(type_text)
        if res is None:
            return []
        return [CompletionItem(f"{type_text}/{n}") for n in live_names(ctx, res) if n.startswith(prefix)]
    kinds = sorted({name for r in k.KINDS for name in r.names})
    return [CompletionItem(a) for a in kinds if a.startswith(incomplete.lower())]


def complete_names(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    resource = ctx.params.get("resource")
    if not resource or "/" in resource:
        return []
    res = k.KINDS.by_alias(str(resource))
    if res is None:
        return []
    already = set(ctx.params.get("names") or ())
    return [CompletionItem(n) for n in live_names(ctx, res) if n.startswith(incomplete) and n not in already]


def install_completion(commands: list[click.Command]) -> None:
    """Give the ``resource`` and ``names`` arguments of existing commands live completion."""
    for cmd in commands:
        for param in cmd.params:
            if isinstance(param, click.Argument) and param.name == "resource":
                param._custom_shell_complete = complete_resource  # noqa: SLF001 - click's own hook
            elif isinstance(param, click.Argument) and param.name == "names":
                param._custom_shell_complete = complete_names  # noqa: SLF001


# --- rollout --------------------------------------------------------------------------


@click.group("rollout", context_settings={"help_option_names": ["-h", "--help"]})
def rollout() -> None:
    """Watch, list and undo the rollouts of federated Deployments (kubectl rollout)."""


@rollout.command("status")
@click.argument("resource", metavar="deployment/NAME", shell_complete=complete_resource)
@click.argument("names", nargs=-1, shell_complete=complete_names)
@k.namespace_option
@click.option("--timeout", default="0s", help="How long to wait before giving up, e.g. 30s or 2m (0: forever).")
@click.option("--watch", "-w", "watch", default=True, type=bool, show_default=True, help="Wait for the rollout to finish.")
@click.option("--clusters", "show_clusters", is_flag=True, help="Also print every cluster's numbers.")
@k.server_option
@click.pass_context
def rollout_status(
    ctx: click.Context, resource: str, names: tuple[str, ...], namespace: str | None, timeout: str,
    watch: bool, show_clusters: bool, server: str | None,
) -> None:
    """Watch a federated rollout until every cluster has it.

    \b
    ubernetes rollout status deployment/web
    ubernetes rollout status deployment/web --timeout 60s --clusters
    """
    name = deployment_name(resource, names)
    limit = parse_duration(timeout)
    api = k.resolve_server(ctx, server)
    ns = namespace or "default"
    deadline = time.monotonic() + limit if limit > 0 else None
    last = None
    while True:
        d = run_or_fail(lambda: fetch(api, ns, name))
        message, done, error = status_message(d)
        if error:
            k.fail(f"error: {error}")
        lines = [message] + (cluster_lines(d) if show_clusters else [])
        if lines != last:
            click.echo("\n".join(lines))
            last = lines
        if done or not watch:
            return
        if deadline is not None and time.monotonic() >= deadline:
            k.fail("error: timed out waiting for the condition")
        time.sleep(POLL if deadline is None else max(0.0, min(POLL, deadline - time.monotonic())))


@rollout.command("history")
@click.argument("resource", metavar="deployment/NAME", shell_complete=complete_resource)
@click.argument("names", nargs=-1, shell_complete=complete_names)
@k.namespace_option
@click.option("--revision", type=click.IntRange(0), default=0, help="Show the pod template of this revision.")
@k.server_option
@click.pass_context
def rollout_history(
    ctx: click.Context, resource: str, names: tuple[str, ...], namespace: str | None, revision: int, server: str | None,
) -> None:
    """List a federated Deployment's revisions (one per pod template it has had)."""
    name = deployment_name(resource, names)
    api = k.resolve_server(ctx, server)
    ns = namespace or "default"
    d = run_or_fail(lambda: fetch(api, ns, name))
    revs = run_or_fail(lambda: revisions_of(api, ns, d))
    if revision:
        found = next((r for r in revs if r.get("revision") == revision), None)
        if found is None:
            k.fail(f"error: unable to find the specified revision {revision}")
        click.echo(f"deployment.apps/{name} with revision #{revision}")
        click.echo(format_template((found.get("data") or {}).get("template") or {}), nl=False)
        return
    click.echo(f"deployment.apps/{name} ")
    rows = [[str(r.get("revision")), (r["metadata"].get("annotations") or {}).get(CHANGE_CAUSE) or "<none>"] for r in revs]
    click.echo(k.printers.format_table(["REVISION", "CHANGE-CAUSE"], rows))


def format_template(template: dict[str, Any]) -> str:
    meta, spec = template.get("metadata") or {}, template.get("spec") or {}
    lines = ["Pod Template:", f"  Labels:\t{k.printers.format_labels(meta.get('labels'))}"]
    if meta.get("annotations"):
        lines.append("  Annotations:\t" + "\n\t".join(f"{a}: {v}" for a, v in sorted(meta["annotations"].items())))
    for title, key in (("Init Containers", "initContainers"), ("Containers", "containers")):
        if spec.get(key):
            lines.append(f"  {title}:")
            for c in spec[key]:
                lines.append(f"   {c.get('name')}:")
                lines.append(f"    Image:\t{c.get('image')}")
                ports = ", ".join(f"{p.get('containerPort')}/{p.get('protocol', 'TCP')}" for p in c.get("ports") or [])
                lines.append(f"    Port:\t{ports or '<none>'}")
                if c.get("command"):
                    lines.append(f"    Command:\t{' '.join(c['command'])}")
    return "\n".join(lines) + "\n\n"


@rollout.command("undo")
@click.argument("resource", metavar="deployment/NAME", shell_complete=complete_resource)
@click.argument("names", nargs=-1, shell_complete=complete_names)
@k.namespace_option
@click.option("--to-revision", type=click.IntRange(0), default=0, help="The revision to roll back to (0: the previous one).")
@k.server_option
@click.pass_context
def rollout_undo(
    ctx: click.Context, resource: str, names: tuple[str, ...], namespace: str | None, to_revision: int, server: str | None,
) -> None:
    """Roll a federated Deployment back to an earlier pod template, in every cluster."""
    name = deployment_name(resource, names)
    api = k.resolve_server(ctx, server)
    ns = namespace or "default"
    outcome: dict[str, str] = {}

    def change(d: dict[str, Any]) -> dict[str, Any] | None:
        revs = revisions_of(api, ns, d)
        if to_revision:
            target = next((r for r in revs if r.get("revision") == to_revision), None)
            if target is None:
                k.fail(f"error: unable to find specified revision {to_revision} in history")
        else:
            if len(revs) < 2:
                k.fail(f'error: no rollout history found for deployment "{name}"')
            target = revs[-2]
        template = (target.get("data") or {}).get("template")
        if template == (d.get("spec") or {}).get("template"):
            outcome["skipped"] = str(target.get("revision"))
            return None
        d["spec"]["template"] = template
        annotations = d["metadata"].setdefault("annotations", {})
        cause = (target["metadata"].get("annotations") or {}).get(CHANGE_CAUSE)
        if cause:
            annotations[CHANGE_CAUSE] = cause
        else:
            annotations.pop(CHANGE_CAUSE, None)
        return d

    run_or_fail(lambda: update_with_retry(api, ns, name, change))
    if "skipped" in outcome:
        click.echo(f"deployment.apps/{name} skipped rollback (current template already matches revision {outcome['skipped']})")
    else:
        click.echo(f"deployment.apps/{name} rolled back")


# --- set image ------------------------------------------------------------------------


@click.group("set", context_settings={"help_option_names": ["-h", "--help"]})
def set_group() -> None:
    """Change one field of a federated object (kubectl set)."""


@set_group.command("image")
@click.argument("resource", metavar="deployment/NAME", shell_complete=complete_resource)
@click.argument("pairs", nargs=-1, required=True, metavar="CONTAINER=IMAGE...")
@k.namespace_option
@click.option("--record", is_flag=True, help=f"Record the command in the {CHANGE_CAUSE} annotation.")
@k.server_option
@click.pass_context
def set_image(
    ctx: click.Context, resource: str, pairs: tuple[str, ...], namespace: str | None, record: bool, server: str | None,
) -> None:
    """Set container images of a federated Deployment; every cluster rolls it out.

    \b
    ubernetes set image deployment/web app=nginx:1.27
    ubernetes set image deployment/web '*=nginx:1.27'
    """
    if "/" not in resource:
        if not pairs or "=" in pairs[0]:
            k.fail("error: give the deployment as deployment/NAME or deployment NAME")
        resource, pairs = f"{resource}/{pairs[0]}", pairs[1:]
    name = deployment_name(resource, ())
    images: dict[str, str] = {}
    for pair in pairs:
        container, sep, image = pair.partition("=")
        if not sep or not container or not image:
            k.fail(f'error: "{pair}" is not CONTAINER=IMAGE')
        images[container] = image
    if not images:
        k.fail("error: at least one image update is required")
    api = k.resolve_server(ctx, server)
    ns = namespace or "default"

    def change(d: dict[str, Any]) -> dict[str, Any] | None:
        pod_spec = d["spec"]["template"]["spec"]
        everything = [c for key in ("initContainers", "containers") for c in pod_spec.get(key) or []]
        for container in images:
            if container != "*" and not any(c.get("name") == container for c in everything):
                k.fail(f'error: unable to find container named "{container}"')
        changed = False
        for c in everything:
            image = images.get(c.get("name")) or images.get("*")
            if image and c.get("image") != image:
                c["image"] = image
                changed = True
        if record:
            d["metadata"].setdefault("annotations", {})[CHANGE_CAUSE] = "ubernetes set image " + " ".join(
                [f"deployment/{name}"] + [f"{c}={i}" for c, i in images.items()]
            )
            changed = True
        return d if changed else None

    run_or_fail(lambda: update_with_retry(api, ns, name, change))
    click.echo(f"deployment.apps/{name} image updated")


# --- scale ----------------------------------------------------------------------------


@click.command("scale", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("resource", metavar="deployment/NAME", shell_complete=complete_resource)
@click.argument("names", nargs=-1, shell_complete=complete_names)
@click.option("--replicas", type=click.IntRange(0), required=True, help="The new number of replicas over all clusters.")
@click.option("--current-replicas", type=click.IntRange(-1), default=-1, help="Only scale if the current count is this.")
@k.namespace_option
@k.server_option
@click.pass_context
def scale(
    ctx: click.Context, resource: str, names: tuple[str, ...], replicas: int, current_replicas: int,
    namespace: str | None, server: str | None,
) -> None:
    """Set a federated Deployment's replicas; the split over the clusters follows."""
    name = deployment_name(resource, names)
    api = k.resolve_server(ctx, server)
    ns = namespace or "default"

    def change(d: dict[str, Any]) -> dict[str, Any] | None:
        have = d["spec"].get("replicas", 1)
        if current_replicas >= 0 and have != current_replicas:
            k.fail(f"error: Expected replicas to be {current_replicas}, was {have}")
        d["spec"]["replicas"] = replicas
        return d

    run_or_fail(lambda: update_with_retry(api, ns, name, change))
    click.echo(f"deployment.apps/{name} scaled")


# --- completion -----------------------------------------------------------------------


@click.command("completion", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("shell", type=click.Choice(["bash", "zsh"]))
def completion(shell: str) -> None:
    """Print a shell completion script (subcommands, resource kinds, live names).

    \b
    source <(ubernetes completion bash)
    ubernetes completion zsh > "${fpath[1]}/_ubernetes"
    """
    from federation.cli import main

    cls = get_completion_class(shell)
    if cls is None:  # pragma: no cover - click ships both
        k.fail(f"error: unsupported shell {shell}")
    script = cls(main, {}, "ubernetes", "_UBERNETES_COMPLETE").source()
    sys.stdout.write(script if script.endswith("\n") else script + "\n")


install_completion(list(k.COMMANDS))
COMMANDS = [rollout, set_group, scale, completion]
