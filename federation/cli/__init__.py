"""The ``ubernetes`` command: one click group that gathers every component's command.

Each component owns its command in its own module (the API server here, the member
cluster in ``clusters.command``, the DNS responder in ``fedns.command``, the
kubectl-style verbs in ``federation.cli.kubectl``); this module only assembles them.
"""

from __future__ import annotations

import importlib

import click

from federation.names import DEFAULT_SERVER

# (module, attribute) of every subcommand; imported when the group is built.
COMMANDS = [
    ("federation.controlplane", "federation_apiserver"),
    ("federation.launch.launcher", "up"),
    ("clusters.command", "cluster"),
    ("clusters.host", "main"),  # `ubernetes cluster-host`: many clusters in one process (issue 11)
    ("fedns.command", "dns"),
    ("fedns.publish_command", "dns_publish"),
    ("federation.cli.democlient", "client"),
    ("federation.cli.kubectl", "COMMANDS"),
    ("federation.cli.workloads", "COMMANDS"),
    ("federation.cli.chaos", "chaos"),
    ("federation.experiments.command", "experiment"),
    ("federation.cli.kubeconfig_command", "kubeconfig"),
    ("federation.cli.token", "token"),  # issue 8
    ("federation.cli.approve", "COMMANDS"),  # issue 19
    ("federation.certs", "certs"),  # issue 8
    ("federation.cli.federate", "federate"),  # issue 15
    ("federation.cli.history", "COMMANDS"),  # issue 17
]




@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ubernetes")
@click.option(
    "--server",
    "-s",
    envvar="UBERNETES_SERVER",
    default=None,
    help=f"Federation API URL, or several comma-separated (HA: tried in turn) (env UBERNETES_SERVER; "
         f"default {DEFAULT_SERVER}).",
)
@click.option("--token", envvar="UBERNETES_TOKEN", default=None, metavar="TOKEN",
              help="Bearer token for the federation API (env UBERNETES_TOKEN; default: the kubeconfig's for that server).")
@click.option("--certificate-authority", envvar="UBERNETES_CERTIFICATE_AUTHORITY", default=None, metavar="FILE",
              help="CA file to verify an HTTPS federation API with.")
@click.pass_context
def main(ctx: click.Context, server: str | None, token: str | None = None,
         certificate_authority: str | None = None) -> None:
    """ubernetes: an emulator of Kubernetes Cluster Federation."""
    ctx.ensure_object(dict)
    ctx.obj["server"] = server
    ctx.obj["token"] = token
    ctx.obj["certificate_authority"] = certificate_authority


def _register() -> None:
    for module_name, attr in COMMANDS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name == module_name:
                continue
            raise
        found = getattr(module, attr, None)
        if found is None:
            continue
        for cmd in found if isinstance(found, (list, tuple)) else [found]:
            main.add_command(cmd)


_register()
