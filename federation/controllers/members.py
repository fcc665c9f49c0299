"""Clients for member clusters' APIs, one per address and credential, reused across reconciles.

A member that configures tokens (issue 8) publishes the token the federation should use in
the Secret ``federation-system/cluster-access-<name>`` (Federation v1 kept each cluster's
credentials in a Secret too). The Secret is read on every look-up, so a member that
restarts with a new token is reached with it at the next reconcile. The token goes only
to an https address (issue 19); :meth:`MemberClients.withheld` says why one was not sent.
"""

from __future__ import annotations

import ssl
from typing import Any, Callable

from federation.api.auth import secret_value
from federation.names import ACCESS_SECRET_PREFIX, SYSTEM_NAMESPACE as SECRET_NAMESPACE
from apimachinery.client import APIClient

SecretLookup = Callable[[str, str], "dict[str, Any] | None"]  # (namespace, name) -> Secret or None


def server_address(cluster: dict[str, Any]) -> str | None:
    """The cluster's API URL from ``spec.serverAddressByClientCIDRs`` (first entry wins)."""
    for entry in (cluster.get("spec") or {}).get("serverAddressByClientCIDRs") or []:
        address = entry.get("serverAddress") if isinstance(entry, dict) else None
        if address:
            return address if "://" in address else f"http://{address}"
    return None


def access_secret(cluster: dict[str, Any]) -> tuple[str, str] | None:
    """(namespace, name) of the Secret the federation reads this cluster's token from.

    Always ``federation-system/cluster-access-<cluster name>``, whatever ``spec.secretRef``
    says (issue 19): a Cluster that named another member's Secret once had that member's
    token sent to an address of its choosing. The field stays for Federation v1's shape;
    only an admin may set it to anything but its default, and it is not followed."""
    name = (cluster.get("metadata") or {}).get("name")
    return (SECRET_NAMESPACE, ACCESS_SECRET_PREFIX + name) if isinstance(name, str) and name else None


class MemberClients:
    def __init__(self, timeout: float, *, secrets: SecretLookup | None = None,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.timeout = timeout
        self.secrets = secrets
        self.ssl_context = ssl_context
        self._clients: dict[tuple[str, str | None], APIClient] = {}

    def token_for(self, cluster: dict[str, Any]) -> str | None:
        """The member's access token, never for a plain-http address (issue 19)."""
        ref = access_secret(cluster)
        address = server_address(cluster)
        if ref is None or self.secrets is None or address is None or not address.lower().startswith("https://"):
            return None
        return secret_value(self.secrets(*ref), "token") or None

    def withheld(self, cluster: dict[str, Any]) -> str | None:
        """Why the federation holds back a token this cluster may expect, or None."""
        ref, default = (cluster.get("spec") or {}).get("secretRef"), access_secret(cluster)
        if default is None:
            return None
        if isinstance(ref, dict) and (ref.get("namespace") or SECRET_NAMESPACE, ref.get("name")) != default:
            return f"spec.secretRef is not followed: a member's token is read only from {default[0]}/{default[1]}"
        address = server_address(cluster)
        if (address is not None and not address.lower().startswith("https://") and self.secrets is not None
                and secret_value(self.secrets(*default), "token")):
            return f"the access token in {default[0]}/{default[1]} is not sent to {address}: not https"
        return None

    def for_cluster(self, cluster: dict[str, Any]) -> APIClient | None:
        address = server_address(cluster)
        if address is None:
            return None
        token = self.token_for(cluster)
        client = self._clients.get((address, token))
        if client is None:
            for (old_address, _), old in list(self._clients.items()):
                if old_address == address:  # a new token for this address: drop the old client
                    self._clients.pop((old_address, _))
                    self._drop(old)
            client = self._clients[(address, token)] = APIClient(
                address, timeout=self.timeout, token=token, ssl_context=self.ssl_context
            )
        return client

    @staticmethod
    def _drop(client: APIClient) -> None:
        import asyncio

        try:
            asyncio.get_running_loop().create_task(client.close())
        except RuntimeError:
            pass

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()
