"""A local federation of real processes: API server, DNS responder and member clusters.

Used by ``ubernetes up``, by the integration tests and by the failover experiments, so the
three start, break and stop a federation the same way. Every child is its own OS process
(``python -m federation ...``) that dies with its parent (``PR_SET_PDEATHSIG``), gets
SIGTERM on a clean stop and SIGKILL if it does not go in time: no orphans.
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import aiohttp

from apimachinery.client import APIClient
from federation.planners.health import is_ready
from apimachinery.errors import APIError, Conflict
from federation.launch.netns import die_with_parent
from federation.launch.ports import free_port
from federation.launch.topology import ClusterSpec, Topology


LogSink = Callable[[str, str], None]


@dataclass(frozen=True)
class Placement:
    """Where each process runs (issue 16, ``up --netns``): its listen address, and the argv
    prefix that starts it there (``ip netns exec NS``). Keyed by process name (``apiserver``,
    ``dns``, a cluster's name); a process not named runs on the federation's ``host``."""

    hosts: dict[str, str] = field(default_factory=dict)
    prefixes: dict[str, tuple[str, ...]] = field(default_factory=dict)






@dataclass
class Child:
    name: str
    argv: list[str]
    proc: asyncio.subprocess.Process | None = None
    reader: asyncio.Task[None] | None = None
    lines: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=5000))

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None


class LocalFederation:
    def __init__(
        self,
        topology: Topology,
        *,
        api_port: int = 0,
        dns_port: int = 0,
        cluster_ports: dict[str, int] | None = None,
        store: str = ":memory:",
        apiserver_args: list[str] | None = None,
        cluster_args: list[str] | None = None,
        dns_args: list[str] | None = None,
        log_sink: LogSink | None = None,
        host: str = "127.0.0.1",
        auth: bool = False,
        tls: bool | None = None,
        workdir: str | None = None,
        auto_approve: list[str] | None = None,
        api_replicas: int = 1,
        etcd_members: int = 0,
        control: tuple[str, int] | None = None,
        placement: Placement | None = None,
    ) -> None:
        self.topology = topology
        self.placement = placement or Placement()
        self.control = control  # where the launcher's fault API listens: the dashboard's buttons go there
        # issue 19: with tokens on, the members trusted as soon as they join (default: all ours)
        self.auto_approve = [c.name for c in topology.clusters] if auto_approve is None else auto_approve
        self.host = host
        self.api_port = api_port or free_port(host)
        # issue 13 (`up --ha`): several API servers on an etcd cluster the launcher runs,
        # each reaching each etcd member through a relay of ours (partition-etcd).
        # Given an api_port, the replicas take the ports after it (as `up --ha` says); else free ones.
        self.api_ports = [self.api_port] + [self.api_port + i if api_port else free_port(host)
                                            for i in range(1, api_replicas)]
        self.etcd_members = etcd_members
        self.etcd: Any = None  # federation.launch.etcdserver.EtcdCluster once started
        self.relays: list[list[Any]] = []  # per API server, one Relay per etcd member
        self._run_dir = workdir
        self.dns_port = dns_port or free_port(host, udp_too=True)
        self.cluster_ports = dict(cluster_ports or {})
        for spec in topology.clusters:
            self.cluster_ports.setdefault(spec.name, free_port(host))
        self.store = store
        self.apiserver_args = apiserver_args or []
        self.cluster_args = cluster_args or []
        self.dns_args = dns_args or []
        self.log_sink = log_sink
        self.children: dict[str, Child] = {}
        self._flaps: dict[str, asyncio.Task[None]] = {}
        # issue 8: auth=True writes a token file (admin, DNS reader, bootstrap) into workdir
        # and turns tokens on everywhere; self.credentials then holds them.
        self.credentials = None
        self._tmpdir = None
        if auth:
            from federation.api.security import make_local_credentials

            if workdir is None:
                self._tmpdir = tempfile.TemporaryDirectory(prefix="ubernetes-auth-")
                workdir = self._tmpdir.name
            self.credentials = make_local_credentials(Path(workdir))
        # With tokens on, the APIs serve HTTPS with a throwaway CA (default): kubectl never
        # sends a bearer token over plain HTTP, so tokens without TLS would lock it out.
        self.tls = auth if tls is None else tls
        self.pki: dict[str, Path] | None = None
        if self.tls:
            from federation.certs import create_certs

            if workdir is None:
                self._tmpdir = self._tmpdir or tempfile.TemporaryDirectory(prefix="ubernetes-tls-")
                workdir = self._tmpdir.name
            self.pki = create_certs(Path(workdir) / "pki", hosts=[host, *self.placement.hosts.values()])
        self.api = APIClient(self.api_urls, timeout=3.0, token=self.admin_token, ca_file=self.ca_file)

    @property
    def admin_token(self) -> str | None:
        return self.credentials.admin if self.credentials else None

    @property
    def ca_file(self) -> str | None:
        return str(self.pki["ca.crt"]) if self.pki else None

    def _tls_args(self, *, serve: bool, member: str | None = None) -> list[str]:
        """Flags for a child: serve HTTPS with the demo certificate (a member with a key of
        its own, issue 19), trust the demo CA."""
        if not self.pki:
            return []
        args = ["--certificate-authority", str(self.pki["ca.crt"])]
        if serve:
            crt, key = self._member_cert(member) if member else (self.pki["server.crt"], self.pki["server.key"])
            args += ["--tls-cert-file", str(crt), "--tls-private-key-file", str(key)]
        return args

    def _member_cert(self, name: str) -> tuple[Path, Path]:
        from federation.certs import issue_server_cert

        assert self.pki is not None
        directory = self.pki["ca.crt"].parent
        crt, key = directory / f"member-{name}.crt", directory / f"member-{name}.key"
        if not (crt.exists() and key.exists()):  # a restarted member keeps its key
            crt, key = issue_server_cert(directory, f"member-{name}", hosts=[self.host_of(name)])
        return crt, key

    def server_ssl_context(self) -> Any:
        """The federation's server TLS context (the launcher's fault API serves with it)."""
        if not self.pki:
            return None
        from federation.api.security import server_ssl_context

        return server_ssl_context(str(self.pki["server.crt"]), str(self.pki["server.key"]))

    # -------------------------------------------------------------- addresses

    def host_of(self, name: str) -> str:
        """The address process ``name`` listens on (its namespace's, in netns mode)."""
        return self.placement.hosts.get(name, self.host)

    @property
    def dns_host(self) -> str:
        return self.host_of("dns")

    @property
    def api_url(self) -> str:
        """The first API server (the only one unless HA)."""
        return self.replica_url(0)

    def replica_url(self, index: int) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host_of('apiserver')}:{self.api_ports[index]}"

    @property
    def api_urls(self) -> str:
        """Every API server, comma-separated: what the members, the responder and the CLI get."""
        return ",".join(self.replica_url(i) for i in range(len(self.api_ports)))

    @staticmethod
    def apiserver_name(index: int) -> str:
        return "apiserver" if index == 0 else f"apiserver-{index}"

    def cluster_url(self, name: str) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host_of(name)}:{self.cluster_ports[name]}"

    def spec(self, name: str) -> ClusterSpec:
        for spec in self.topology.clusters:
            if spec.name == name:
                return spec
        raise KeyError(name)

    # -------------------------------------------------------------- processes

    async def _spawn(self, name: str, argv: list[str], env_extra: dict[str, str] | None = None) -> Child:
        child = self.children.get(name)
        if child is not None and child.running:
            return child
        child = Child(name, argv)
        env = dict(os.environ, PYTHONUNBUFFERED="1", **(env_extra or {}))
        prefix = self.placement.prefixes.get(name, ())  # e.g. ip netns exec NS (issue 16)
        child.proc = await asyncio.create_subprocess_exec(
            *prefix, sys.executable, "-m", "federation", *argv,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            stdin=asyncio.subprocess.DEVNULL, env=env, preexec_fn=die_with_parent,
        )
        child.reader = asyncio.create_task(self._pump(child))
        self.children[name] = child
        return child

    async def _pump(self, child: Child) -> None:
        assert child.proc is not None and child.proc.stdout is not None
        async for raw in child.proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            child.lines.append(line)
            if self.log_sink is not None:
                self.log_sink(child.name, line)

    async def stop_child(self, name: str, *, kill: bool = False, timeout: float = 5.0) -> int | None:
        child = self.children.get(name)
        if child is None or child.proc is None:
            return None
        if child.proc.returncode is None:
            try:
                child.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                await asyncio.wait_for(child.proc.wait(), timeout)
            except asyncio.TimeoutError:
                child.proc.kill()
                await child.proc.wait()
        if child.reader is not None:
            try:
                await asyncio.wait_for(child.reader, 2.0)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                child.reader.cancel()
        return child.proc.returncode

    def logs(self, name: str) -> str:
        child = self.children.get(name)
        return "\n".join(child.lines) if child else ""

    # -------------------------------------------------------------- components

    async def start_api(self, index: int | None = None) -> None:
        """Start the API server ``index`` (default: every one not running) on the store."""
        indices = range(len(self.api_ports)) if index is None else [index]
        for i in indices:
            await self._spawn(self.apiserver_name(i), [
                "federation-apiserver",
                "--listen", f"{self.host_of('apiserver')}:{self.api_ports[i]}",
                "--store", self.store_for(i),
                "--federation-name", self.topology.federation,
                "--dns-domain", self.topology.domain,
                *(["--token-file", str(self.credentials.token_file),
                   # issue 19: our own members are trusted as they join; any other join waits for an admin
                   "--auto-approve-clusters", ",".join(self.auto_approve)]
                  if self.credentials else []),
                *self._tls_args(serve=True),
                "--dns-responder", f"{self.dns_host}:{self.dns_port}",  # the history's Served step and the dashboard's DNS panel (issue 17)
                *self._launcher_args(),
                *self.apiserver_args,
            ])
        await self.wait_for(self._api_up, 20, "the federation API to answer")
        if self.credentials:
            from federation.api.security import publish_bootstrap_token

            await publish_bootstrap_token(self.api, self.credentials.bootstrap)

    @property
    def control_url(self) -> str | None:
        """The launcher's fault API, when :attr:`control` is set."""
        if self.control is None:
            return None
        host, port = self.control
        shown = f"[{host}]" if ":" in host else host
        return f"{'https' if self.tls else 'http'}://{shown}:{port}"

    @property
    def ui_url(self) -> str:
        return f"{self.api_url}/ui/"

    def _launcher_args(self) -> list[str]:
        """The API server's flags for the dashboard's fault buttons: the fault API and its token."""
        if self.control_url is None:
            return []
        args = ["--launcher-url", self.control_url]
        if self.credentials is not None:
            path = self.credentials.token_file.parent / "launcher.token"
            path.write_text(self.credentials.admin + "\n")
            path.chmod(0o600)
            args += ["--launcher-token-file", str(path)]
        return args

    def store_for(self, index: int) -> str:
        """API server ``index``'s ``--store``: the launcher's etcd through its relays, or :attr:`store`."""
        if not self.relays:
            return self.store
        return "etcd://" + ",".join(r.endpoint for r in self.relays[index])

    async def start_etcd(self) -> None:
        """The etcd cluster of ``up --ha`` (real etcd processes, data in the run directory) and
        a relay per API server and member."""
        from federation.launch.etcdserver import EtcdCluster
        from federation.launch.relay import Relay

        if self._run_dir is None:
            self._tmpdir = self._tmpdir or tempfile.TemporaryDirectory(prefix="ubernetes-etcd-")
            self._run_dir = self._tmpdir.name
        self.etcd = EtcdCluster(Path(self._run_dir) / "etcd", size=self.etcd_members)
        await asyncio.to_thread(self.etcd.start)
        self.relays = [[await Relay(("127.0.0.1", m.client_port)).start() for m in self.etcd.members]
                       for _ in self.api_ports]
    async def _api_up(self) -> bool:
        try:
            return (await self.api.get("/healthz", timeout=1.0)) == "ok"
        except Exception:  # noqa: BLE001
            return False

    async def start_dns(self) -> None:
        argv = [
            "dns",
            "--federation", self.api_urls,
            "--listen", f"{self.dns_host}:{self.dns_port}",
            "--domain", self.topology.domain,
            *self._tls_args(serve=False),
            *self.dns_args,
        ]
        await self._spawn("dns", argv, {"UBERNETES_TOKEN": self.credentials.reader} if self.credentials else None)

    async def start_cluster(self, name: str) -> None:
        spec = self.spec(name)
        argv = [
            "cluster",
            "--name", spec.name,
            "--region", spec.region,
            "--zones", ",".join(spec.zones),
            "--provider", spec.provider,
            "--listen", f"{self.host_of(name)}:{self.cluster_ports[name]}",
            "--lb-pool", spec.lb_pool,
            "--federation", self.api_urls,
            "--federation-name", self.topology.federation,
            "--nodes-per-zone", str(spec.nodes_per_zone),
            "--pods-per-service", str(spec.pods_per_service),
            *(["--token-file", str(self.credentials.member_token_file),
               "--credential-file", str(self.credentials.token_file.parent / "credentials" / f"{name}.token")]
              if self.credentials else []),
            *self._tls_args(serve=True, member=name),
            *self.cluster_args,
        ]
        await self._spawn(name, argv, {"UBERNETES_BOOTSTRAP_TOKEN": self.credentials.bootstrap} if self.credentials else None)

    async def kill_cluster(self, name: str) -> None:
        await self.stop_child(name, kill=True)

    # -------------------------------------------------------------- faults (issue 5)
    # The ones that need the process table; the rest are switches on each member's /chaos.

    def clusters_in(self, *, zone: str | None = None, region: str | None = None) -> list[str]:
        """Names of the clusters with a node in ``zone``, or in ``region``."""
        return [
            c.name for c in self.topology.clusters
            if (zone is not None and zone in c.zones) or (region is not None and c.region == region)
        ]

    async def crash(self, names: list[str]) -> None:
        """SIGKILL these member clusters at once (a crash, a zone or a region outage)."""
        await asyncio.gather(*(self.kill_cluster(n) for n in names))

    async def restart(self, names: list[str]) -> None:
        """Start these member clusters again (only those not running); they rejoin by themselves."""
        await asyncio.gather(*(self.start_cluster(n) for n in names))

    def start_flap(self, name: str, *, period: float) -> None:
        """Kill the member, start it again ``period`` seconds later, and so on, until stop_flap."""
        self.stop_flap(name)

        async def flap() -> None:
            while True:
                await self.kill_cluster(name)
                await asyncio.sleep(period)
                await self.start_cluster(name)
                await asyncio.sleep(period)

        self._flaps[name] = asyncio.create_task(flap(), name=f"flap {name}")

    def stop_flap(self, name: str) -> bool:
        task = self._flaps.pop(name, None)
        if task is not None:
            task.cancel()
        return task is not None

    async def chaos(self, name: str, patch: dict[str, Any] | None) -> dict[str, Any]:
        """Merge ``patch`` into the member's chaos switches (None heals them all)."""
        async with APIClient(self.cluster_url(name), timeout=3.0, token=self.admin_token, ca_file=self.ca_file) as client:
            if patch is None:
                return await client.delete("/chaos")
            return await client.post("/chaos", patch)

    async def stop_api(self, index: int | None = None) -> None:
        """SIGKILL an API server (default: every one, and so the controllers); DNS keeps its last records."""
        indices = range(len(self.api_ports)) if index is None else [index]
        await asyncio.gather(*(self.stop_child(self.apiserver_name(i), kill=True) for i in indices))

    def api_running(self, index: int) -> bool:
        child = self.children.get(self.apiserver_name(index))
        return bool(child and child.running)

    def identity_of(self, index: int) -> str | None:
        """The identity API server ``index`` stands for leader election with (from its log)."""
        child = self.children.get(self.apiserver_name(index))
        for line in reversed(child.lines if child else []):
            if "standing for leader of the controllers as " in line:
                return line.rsplit(" as ", 1)[1].strip()
        return None

    async def leader(self) -> int | None:
        """Which API server holds the controllers' Lease now (None: none, or unknown)."""
        from federation.api.leaderelection import LEASE_NAME
        from federation.names import LEASE_NAMESPACE

        try:
            lease = await self.api.get(f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases/{LEASE_NAME}")
        except (APIError, OSError, asyncio.TimeoutError, aiohttp.ClientError):
            return None
        holder = (lease.get("spec") or {}).get("holderIdentity")
        return next((i for i in range(len(self.api_ports)) if holder and self.identity_of(i) == holder), None)

    async def kill_leader(self) -> int:
        """SIGKILL the API server that leads the controllers; its index."""
        index = await self.leader()
        if index is None or not self.api_running(index):
            raise APIError(409, "no running API server holds the controllers' Lease now")
        await self.stop_api(index)
        return index

    def _etcd_index(self, index: int) -> int:
        if self.etcd is None:
            raise APIError(409, "this federation runs no etcd of the launcher's (start it with up --ha)")
        if not 0 <= index < len(self.etcd.members):
            raise APIError(404, f"no etcd member {index}; there are {len(self.etcd.members)} (0-based)")
        return index

    async def kill_etcd(self, index: int) -> None:
        await asyncio.to_thread(self.etcd.stop_member, self._etcd_index(index), kill=True)

    async def start_etcd_member(self, index: int) -> None:
        if self.etcd.members[self._etcd_index(index)].proc is None:
            self.etcd.start_member(index)

    def partition_etcd(self, index: int, *, heal: bool = False) -> None:
        """Cut API server ``index`` off from every etcd member (or heal it)."""
        if not self.relays:
            raise APIError(409, "this federation runs no etcd of the launcher's (start it with up --ha)")
        if not 0 <= index < len(self.api_ports):
            raise APIError(404, f"no API server {index}; there are {len(self.api_ports)} (0-based)")
        for relay in self.relays[index]:
            relay.heal() if heal else relay.partition()

    async def heal_control_plane(self) -> None:
        """Every etcd member and API server running and reachable again."""
        for i in range(len(self.relays)):
            self.partition_etcd(i, heal=True)
        if self.etcd is not None:
            for i in range(len(self.etcd.members)):
                await self.start_etcd_member(i)
        if not all(self.api_running(i) for i in range(len(self.api_ports))):
            await self.start_api()

    async def start(self, *, wait_ready: bool = True, timeout: float = 30.0) -> None:
        if self.etcd_members and self.etcd is None:
            await self.start_etcd()
        await self.start_api()
        await self.start_dns()
        await asyncio.gather(*(self.start_cluster(c.name) for c in self.topology.clusters))
        if wait_ready:
            await self.wait_clusters_ready([c.name for c in self.topology.clusters], timeout=timeout)

    async def apply_objects(self) -> list[dict[str, Any]]:
        created = []
        for obj in self.topology.objects:
            ns = (obj.get("metadata") or {}).get("namespace") or "default"
            try:
                created.append(await self.api.post(f"/api/v1/namespaces/{ns}/services", obj))
            except APIError as err:
                if not isinstance(err, Conflict):
                    raise
        return created

    async def stop(self) -> None:
        for name in list(self._flaps):
            self.stop_flap(name)
        control = {"dns", *(self.apiserver_name(i) for i in range(len(self.api_ports)))}
        await asyncio.gather(*(self.stop_child(n) for n in self.children if n not in control))
        await asyncio.gather(*(self.stop_child(n) for n in control if n in self.children))
        await self.api.close()
        for relay in (r for per_server in self.relays for r in per_server):
            await relay.close()
        self.relays = []
        if self.etcd is not None:
            await asyncio.to_thread(self.etcd.stop)
            self.etcd = None
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    async def __aenter__(self) -> "LocalFederation":
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    # -------------------------------------------------------------- waiting

    async def wait_for(self, predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
            await asyncio.sleep(interval)

    async def clusters(self) -> dict[str, dict[str, Any]]:
        items = (await self.api.get("/apis/federation/v1beta1/clusters")).get("items") or []
        return {c["metadata"]["name"]: c for c in items}

    async def wait_clusters_ready(self, names: list[str], timeout: float = 30.0) -> None:
        async def all_ready() -> bool:
            try:
                found = await self.clusters()
            except Exception:  # noqa: BLE001
                return False
            return all(n in found and is_ready(found[n]) and (found[n].get("status") or {}).get("zones") for n in names)

        try:
            await self.wait_for(all_ready, timeout, f"clusters {', '.join(names)} to be Ready")
        except TimeoutError as e:
            raise TimeoutError(f"{e}\n{await self._readiness_report(names)}") from None

    async def _readiness_report(self, names: list[str]) -> str:
        """What each cluster's object says and the last lines each process wrote: why a
        federation did not come up, in the error itself (CI keeps nothing else)."""
        try:
            found = await self.clusters()
        except Exception as e:  # noqa: BLE001
            found, lines = {}, [f"listing clusters failed: {e}"]
        else:
            lines = []
        for name in names:
            status = (found.get(name) or {}).get("status") or {}
            conditions = [(c.get("type"), c.get("status"), c.get("reason")) for c in status.get("conditions") or []]
            lines.append(f"{name}: {'registered' if name in found else 'not registered'}, "
                         f"conditions {conditions}, zones {status.get('zones')}")
        for child in self.children.values():
            state = "running" if child.running else f"exited {child.proc.returncode if child.proc else None}"
            lines.append(f"--- {child.name} ({state}), last lines:")
            lines.extend("    " + line for line in list(child.lines)[-6:])
        return "\n".join(lines)
