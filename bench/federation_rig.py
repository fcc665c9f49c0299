"""A whole federation on loopback as real processes, for the benchmarks that need one.

``bench/soak`` and ``bench/scale`` both start the same set of processes: the federation
API server with its controllers and tokens on (data-plane checks off), the DNS responder
reading with the reader token, and member clusters hosted many to a process by
``python -m clusters.host`` (``ubernetes cluster-host``), joining with the bootstrap token,
everything over TLS as ``ubernetes up`` runs it. This module holds that process
management (start, watch for early exits, stop everything) and the per-process readings
(CPU seconds, RSS), so the two benchmarks measure the same federation.

Every socket is on 127.0.0.0/8. :meth:`Rig.stop` stops every process :meth:`Rig.spawn`
started (SIGTERM, then SIGKILL after 15 s); callers run it in a ``finally``.
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable

ROOT = Path(__file__).resolve().parent.parent
for _path in (str(ROOT / "dns"), str(ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from federation.certs import create_certs  # noqa: E402
from federation.api.security import make_local_credentials  # noqa: E402

SERVICES = "/api/v1/namespaces/default/services"
CLUSTERS = "/apis/federation/v1beta1/clusters"
SECRETS = "/api/v1/namespaces/federation-system/secrets"
DOMAIN = "example.com"
FEDERATION_NAME = "myfed"


def free_port(udp_too: bool = False) -> int:
    from federation.launch.localfed import free_port as pick

    return pick("127.0.0.1", udp_too=udp_too)


def raise_open_files_limit(wanted: int | None = None) -> tuple[int, int]:
    """Raise this process's soft RLIMIT_NOFILE to ``wanted`` (default: the hard limit).

    Children inherit it, so call this before spawning. Returns (soft, hard) afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        target = wanted or 1 << 20
    else:
        target = hard if wanted is None else min(wanted, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):  # above the kernel's nr_open: keep what we have
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def proc_status_mib(pid: int, field: str) -> float | None:
    """A memory line of /proc/PID/status (``VmRSS``, ``VmHWM``) in MiB, or None when gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def peak_rss_mib(pid: int) -> float | None:
    return proc_status_mib(pid, "VmHWM")


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` (all its threads), from /proc/PID/stat."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # the command name may hold spaces
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime (fields 14, 15)


def machine_busy_seconds() -> float:
    """CPU seconds every core of this machine has been busy since boot (/proc/stat), for telling
    the benchmark's own load from everyone else's."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / CLOCK_TICKS  # user nice system idle iowait irq softirq steal


def is_ready(cluster: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (cluster.get("status") or {}).get("conditions") or [])


@dataclass
class HostProcess:
    """One ``clusters.host`` process: which cluster indices it runs and when it was started."""

    name: str
    first: int
    count: int
    started: float  # time.monotonic() just before the spawn
    stats_file: Path


class Rig:
    """The processes of one federation under test, in the working directory ``work``."""

    def __init__(self, work: Path, *, prefix: str) -> None:
        self.work = work
        self.prefix = prefix
        self.creds = make_local_credentials(work)
        # Tokens go only over https (issue 19), so the rig runs with TLS as `up` does.
        self.pki = create_certs(work / "pki", hosts=["127.0.0.1"])
        self.api_port = free_port()
        self.dns_port = free_port(udp_too=True)
        self.api_url = f"https://127.0.0.1:{self.api_port}"
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}
        self.hosts: list[HostProcess] = []
        self.may_exit: set[str] = set()  # processes whose exit is not a failure (a load generator)

    # ---- starting

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        log = self.work / f"{name}.log"
        self.logs[name] = log
        proc = subprocess.Popen(argv, stdout=log.open("wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=dict(os.environ, **(env or {})))
        self.procs[name] = proc
        return proc

    def tls(self, *, serve: bool) -> list[str]:
        args = ["--certificate-authority", str(self.pki["ca.crt"])]
        if serve:
            args += ["--tls-cert-file", str(self.pki["server.crt"]), "--tls-private-key-file", str(self.pki["server.key"])]
        return args

    def start_apiserver(self) -> subprocess.Popen:
        return self.spawn("apiserver", [
            sys.executable, "-m", "federation", "federation-apiserver", "--listen", f"127.0.0.1:{self.api_port}",
            "--store", str(self.work / "federation.db"), "--token-file", str(self.creds.token_file),
            "--no-dataplane-checks", "--auto-approve-clusters", "*", *self.tls(serve=True)])

    def start_dns(self) -> subprocess.Popen:
        return self.spawn("dns", [
            sys.executable, "-m", "federation", "dns", "--federation", self.api_url, *self.tls(serve=False),
            "--listen", f"127.0.0.1:{self.dns_port}", "--domain", DOMAIN, "--log-level", "warning"],
            env={"UBERNETES_TOKEN": self.creds.reader})

    def start_hosts(self, clusters: int, per_host: int) -> list[HostProcess]:
        """``clusters`` member clusters, ``per_host`` to a ``clusters.host`` process, all at once."""
        for first in range(0, clusters, per_host):
            self.start_host(first, min(per_host, clusters - first))
        return self.hosts

    def start_host(self, first: int, count: int) -> HostProcess:
        """One ``clusters.host`` process running clusters ``first`` .. ``first + count - 1``."""
        name = f"host{len(self.hosts)}"
        stats = self.work / f"{name}.json"
        started = time.monotonic()
        self.spawn(name, [
            sys.executable, "-m", "clusters.host", "--count", str(count), "--first-index", str(first),
            "--prefix", self.prefix, "--federation", self.api_url, "--stats-file", str(stats),
            "--credential-dir", str(self.work / "credentials"), *self.tls(serve=True),
        ], env={"UBERNETES_BOOTSTRAP_TOKEN": self.creds.bootstrap})
        host = HostProcess(name, first, count, started, stats)
        self.hosts.append(host)
        return host

    def admin_client(self, timeout: float = 30) -> Any:
        from apimachinery.client import APIClient

        return APIClient(self.api_url, timeout=timeout, token=self.creds.admin, ca_file=str(self.pki["ca.crt"]))

    def signal_hosts(self, sig: int) -> None:
        for host in self.hosts:
            proc = self.procs[host.name]
            if proc.poll() is None:
                proc.send_signal(sig)

    # ---- watching and stopping

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None and name not in self.may_exit:
                tail = self.logs[name].read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail}")

    async def wait(self, what: str, predicate: Callable[[], Awaitable[Any]], timeout: float,
                   interval: float = 0.5, progress: Callable[[Any], None] | None = None) -> None:
        """Until ``predicate()`` returns True (anything else: what it says is the state so far)."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                last = await predicate()
                if last is True:
                    return
            except Exception as err:  # noqa: BLE001 - keep waiting, say what the last failure was
                last = err
            if progress is not None:
                progress(last)
            await asyncio.sleep(interval)
        raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last})")

    def kind_of(self, name: str) -> str:
        return "member host" if name.startswith("host") else name

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def host_stats(self) -> tuple[list[float], int]:
        """(every lease-renewal latency, failed agent steps) from the hosts' --stats-file (after stop)."""
        import json

        renewals: list[float] = []
        failed = 0
        for host in self.hosts:
            if not host.stats_file.exists():
                continue
            for stats in json.loads(host.stats_file.read_text()).values():
                renewals += stats["renewals"]
                failed += stats["failed"]
        return renewals, failed
