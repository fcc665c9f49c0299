"""The load-balancer data plane: real HTTP listeners on each LoadBalancer service's address.

Federated DNS is only worth testing if the address it hands out answers. So every
``type: LoadBalancer`` service of a member gets an address from the cluster's ``--lb-pool``
and this module really binds that address on each of the service's TCP ports, with a tiny
HTTP responder that says which cluster, zone, region and pod served the request (JSON body,
plus ``X-Ubernetes-Cluster`` and friends as headers for ``curl -i``). On Linux every address
of 127.0.0.0/8 is local, so each cluster takes its own slice (e.g. 127.10.1.0/24).

One aiohttp low-level server per service; when the service's address or ports change the
whole listener is rebuilt (rare, and simpler than diffing sockets). A port that fails to
bind is returned to the caller as an error (written to the service's status and events),
never raised. A service with no ready endpoint answers 503; a black-holed data plane
(chaos) accepts connections and never answers, as a dropped route does.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from clusters.chaos import Chaos
from clusters.state import ClusterState, Key, Topology
from federation.names import CLUSTER_HEADER, POD_HEADER, REGION_HEADER, ZONE_HEADER

log = logging.getLogger("ubernetes.cluster.dataplane")

BIND_FAILED = "ubernetes.io/BindFailed"


@dataclass
class _Listener:
    ip: str
    ports: tuple[int, ...]
    runner: web.ServerRunner
    sites: dict[int, web.TCPSite] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)
    served: int = 0


class DataPlane:
    """Keeps one listener per LoadBalancer service in step with what the controller asks."""

    def __init__(self, *, state: ClusterState, chaos: Chaos, federation_name: str = "") -> None:
        self.state = state
        self.chaos = chaos
        self.topology: Topology = state.topology
        self.federation_name = federation_name
        self._listeners: dict[Key, _Listener] = {}

    def keys(self) -> list[Key]:
        return list(self._listeners)

    def errors(self, key: Key) -> dict[int, str]:
        listener = self._listeners.get(key)
        return dict(listener.errors) if listener else {}

    async def ensure(self, key: Key, ip: str, ports: list[int]) -> dict[int, str]:
        """Listen on ``ip`` at ``ports`` for the service ``key``; returns {port: error} for failures.

        Idempotent: an unchanged listener is left alone, except that ports that failed to
        bind are tried again.
        """
        wanted = tuple(sorted(set(ports)))
        listener = self._listeners.get(key)
        if listener is not None and (listener.ip, listener.ports) != (ip, wanted):
            await self.remove(key)
            listener = None
        if listener is None:
            server = web.Server(self._handler(key), access_log=None)
            runner = web.ServerRunner(server, shutdown_timeout=0.5)
            await runner.setup()
            listener = _Listener(ip=ip, ports=wanted, runner=runner)
            self._listeners[key] = listener
        for port in wanted:
            if port in listener.sites:
                continue
            site = web.TCPSite(listener.runner, ip, port, reuse_address=True, shutdown_timeout=0.5)
            try:
                await site.start()
            except OSError as err:
                message = f"cannot listen on {ip}:{port}: {err.strerror or err}"
                if listener.errors.get(port) != message:
                    log.warning("lb %s/%s: %s", key[0], key[1], message)
                listener.errors[port] = message
                continue
            listener.sites[port] = site
            if listener.errors.pop(port, None) is not None:
                log.info("lb %s/%s: %s:%d now bound", key[0], key[1], ip, port)
            else:
                log.info("lb %s/%s: listening on http://%s:%d", key[0], key[1], ip, port)
        return dict(listener.errors)

    async def remove(self, key: Key) -> None:
        listener = self._listeners.pop(key, None)
        if listener is None:
            return
        await listener.runner.cleanup()
        log.info("lb %s/%s: stopped listening on %s", key[0], key[1], listener.ip)

    async def close(self) -> None:
        for key in list(self._listeners):
            await self.remove(key)

    def _handler(self, key: Key):
        ns, name = key
        t = self.topology

        async def handle(request: web.BaseRequest) -> web.StreamResponse:
            if self.chaos.dataPlaneBlackholed:
                # accept and stay silent until the client gives up (or we shut down)
                await asyncio.sleep(3600)
            listener = self._listeners.get(key)
            pods = self.state.ready_pods(key)
            headers = {CLUSTER_HEADER: t.name, REGION_HEADER: t.region}
            body: dict[str, Any] = {
                "cluster": t.name,
                "region": t.region,
                "provider": t.provider,
                "federation": self.federation_name,
                "namespace": ns,
                "service": name,
            }
            if not pods:
                body["error"] = f'service "{ns}/{name}" has no ready endpoints in cluster {t.name}'
                headers["Connection"] = "close"
                return web.json_response(body, status=503, headers=headers)
            served = listener.served if listener else 0
            if listener:
                listener.served += 1
            pod = pods[served % len(pods)]
            sock = request.transport.get_extra_info("sockname") if request.transport else None
            body.update(
                zone=pod["zone"],
                pod=pod["name"],
                podIP=pod["ip"],
                node=pod["node"],
                address=f"{sock[0]}:{sock[1]}" if sock else None,
                method=request.method,
                path=request.path_qs,
            )
            headers.update({ZONE_HEADER: pod["zone"], POD_HEADER: pod["name"]})
            return web.json_response(body, headers=headers)

        return handle
