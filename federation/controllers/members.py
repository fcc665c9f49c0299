"""Clients for member clusters' APIs, one per address and credential, reused across reconciles.

A member that configures tokens (issue 8) publishes the token the federation should use in
a Secret its Cluster names in ``spec.secretRef`` (Federation v1 kept each cluster's
credentials the same way). The Secret is read on every look-up, so a member that restarts
with a new token is reached with it at the next reconcile.
"""

from __future__ import annotations

import ssl
from typing import Any, Callable

from federation.client import APIClient

SecretLookup = Callable[[str, str], "dict[str, Any] | None"]  # (namespace, name) -> Secret or None
SECRET_NAMESPACE = "federation-system"


def server_address(cluster: dict[str, Any]) -> str | None:
    """The cluster's API URL from ``spec.serverAddressByClientCIDRs`` (first entry wins)."""
    for entry in (cluster.get("spec") or {}).get("serverAddressByClientCIDRs") or []:
        address = entry.get("serverAddress") if isinstance(entry, dict) else None
        if address:
            return address if "://" in address else f"http://{address}"
    return None


def secret_ref(cluster: dict[str, Any]) -> tuple[str, str] | None:
    """(namespace, name) of the Secret in ``spec.secretRef``, or None."""
    ref = (cluster.get("spec") or {}).get("secretRef")
    if not isinstance(ref, dict) or not isinstance(ref.get("name"), str) or not ref["name"]:
        return None
    namespace = ref.get("namespace")
    return (namespace if isinstance(namespace, str) and namespace else SECRET_NAMESPACE), ref["name"]


class MemberClients:
    def __init__(self, timeout: float, *, secrets: SecretLookup | None = None,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.timeout = timeout
        self.secrets = secrets
        self.ssl_context = ssl_context
        self._clients: dict[tuple[str, str | None], APIClient] = {}

    def token_for(self, cluster: dict[str, Any]) -> str | None:
        ref = secret_ref(cluster)
        if ref is None or self.secrets is None:
            return None
        from federation.auth import secret_value

        return secret_value(self.secrets(*ref), "token") or None

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
