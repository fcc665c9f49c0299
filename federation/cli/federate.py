"""``ubernetes federate enable|disable KIND``: the type registry from the command line (issue 15).

``kubefedctl enable configmaps`` writes a FederatedTypeConfig (and a generated CRD); this
writes the same object (:func:`federation.typeregistry.type_config`), or switches an
existing one's ``spec.propagation``, and the federation starts or stops that kind's sync
controller at once (:mod:`federation.controllers.typeconfigs`). ``kubectl get ftc`` lists
them. A kind the members do not serve is refused here, with the list of those they do.
"""

from __future__ import annotations

import click

from apimachinery.errors import APIError, NotFound
from federation import typeregistry
from federation.cli.kubectl import ConnectionFailed, fail, resolve_server, server_error, server_option
from federation.resources import FEDERATEDTYPECONFIGS


def _switch(ctx: click.Context, server: str | None, kind: str, propagation: str) -> None:
    ftype = typeregistry.find(kind)
    if ftype is None:
        fail(f'cannot federate "{kind}": the members do not serve it; federatable kinds: '
             f'{", ".join(sorted(typeregistry.FEDERATABLE))}')
    api = resolve_server(ctx, server)
    path = FEDERATEDTYPECONFIGS.path(name=ftype.name)
    try:
        try:
            current = api.get(path)
        except NotFound:
            api.request("POST", FEDERATEDTYPECONFIGS.path(), body=typeregistry.type_config(ftype, propagation=propagation))
            verb = "created"
        else:
            current.setdefault("spec", {})["propagation"] = propagation
            api.request("PUT", path, body=current)
            verb = "configured"
    except ConnectionFailed as err:
        fail(str(err))
    except APIError as err:
        fail(server_error(err))
    click.echo(f"{FEDERATEDTYPECONFIGS.kubectl_name}/{ftype.name} {verb} (propagation {propagation})")


@click.group("federate")
def federate() -> None:
    """Turn the federation of a kind on or off (KubeFed's kubefedctl enable/disable)."""


@federate.command("enable")
@server_option
@click.argument("kind")
@click.pass_context
def enable(ctx: click.Context, server: str | None, kind: str) -> None:
    """Federate KIND (configmaps, secrets, namespaces, jobs, cronjobs, daemonsets, ingresses): its objects
    propagate to the members."""
    _switch(ctx, server, kind, "Enabled")


@federate.command("disable")
@server_option
@click.argument("kind")
@click.pass_context
def disable(ctx: click.Context, server: str | None, kind: str) -> None:
    """Stop propagating KIND (the member copies stay where they are)."""
    _switch(ctx, server, kind, "Disabled")
