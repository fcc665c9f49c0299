"""Clients for member clusters' APIs, one per address, reused across reconciles."""

from __future__ import annotations

from typing import Any

from federation.client import APIClient


def server_address(cluster: dict[str, Any]) -> str | None:
    """The cluster's API URL from ``spec.serverAddressByClientCIDRs`` (first entry wins)."""
    for entry in (cluster.get("spec") or {}).get("serverAddressByClientCIDRs") or []:
        address = entry.get("serverAddress") if isinstance(entry, dict) else None
        if address:
            return address if "://" in address else f"http://{address}"
    return None


class MemberClients:
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._clients: dict[str, APIClient] = {}

    def for_cluster(self, cluster: dict[str, Any]) -> APIClient | None:
        address = server_address(cluster)
        if address is None:
            return None
        client = self._clients.get(address)
        if client is None:
            client = self._clients[address] = APIClient(address, timeout=self.timeout)
        return client

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()
