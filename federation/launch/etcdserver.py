"""Local etcd members as child processes: for the tests, the store benchmark and ``up --ha``.

No system service runs here (or on a user's laptop, usually): a member is started with its
data directory in the caller's run directory, on free loopback ports, and stopped by its
pid. Debian's ``etcd-server`` package provides the binary; without it,
:func:`etcd_binary` says which package to install.
"""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from federation.launch.ports import free_port

PACKAGE_HINT = "etcd is not installed: apt-get install etcd-server (Debian's etcd v3 server package)"


def etcd_binary() -> str | None:
    return shutil.which("etcd")


@dataclass
class EtcdMember:
    name: str
    data_dir: Path
    client_port: int
    peer_port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"


class EtcdCluster:
    """``size`` etcd members on loopback, their data under ``run_dir``. :attr:`url` is the
    ``--store`` value for them (``etcd://HOST:PORT,...``)."""

    def __init__(self, run_dir: Path, *, size: int = 1, progress_interval: str = "1s") -> None:
        binary = etcd_binary()
        if binary is None:
            raise RuntimeError(PACKAGE_HINT)
        self.binary = binary
        self.run_dir = Path(run_dir)
        self.progress_interval = progress_interval
        self.members = [
            EtcdMember(f"etcd{i}", self.run_dir / f"etcd{i}.data", free_port(), free_port(), self.run_dir / f"etcd{i}.log")
            for i in range(size)
        ]

    @property
    def url(self) -> str:
        return "etcd://" + ",".join(m.endpoint for m in self.members)

    def _command(self, m: EtcdMember) -> list[str]:
        initial = ",".join(f"{o.name}={o.peer_url}" for o in self.members)
        return [
            self.binary, "--name", m.name, "--data-dir", str(m.data_dir),
            "--listen-client-urls", f"http://{m.endpoint}", "--advertise-client-urls", f"http://{m.endpoint}",
            "--listen-peer-urls", m.peer_url, "--initial-advertise-peer-urls", m.peer_url,
            "--initial-cluster", initial, "--initial-cluster-state", "new",
            "--initial-cluster-token", f"ubernetes-{self.run_dir.name}",
            # Progress notifications tell each API server's watch how far it has got when
            # nothing under its prefix changes (the default is every 10 minutes).
            "--experimental-watch-progress-notify-interval", self.progress_interval,
            "--logger", "zap", "--log-outputs", "stderr",
        ]

    def start_member(self, index: int) -> None:
        m = self.members[index]
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with m.log_path.open("ab") as log:
            m.proc = subprocess.Popen(self._command(m), stdout=log, stderr=subprocess.STDOUT)

    def start(self, timeout: float = 20.0) -> "EtcdCluster":
        for i in range(len(self.members)):
            self.start_member(i)
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Until every running member answers a read through the JSON gateway (a cluster
        answers once it has a leader)."""
        deadline = time.monotonic() + timeout
        for m in self.members:
            if m.proc is None:
                continue
            while True:
                if m.proc.poll() is not None:
                    raise RuntimeError(f"etcd member {m.name} exited with {m.proc.returncode}: "
                                       f"{m.log_path.read_text()[-2000:]}")
                if _answers(m.client_port):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"etcd member {m.name} did not answer within {timeout:g} s")
                time.sleep(0.05)

    def stop_member(self, index: int, *, kill: bool = False) -> None:
        m = self.members[index]
        if m.proc is None:
            return
        if kill:
            m.proc.kill()
        else:
            m.proc.terminate()
        try:
            m.proc.wait(10)
        except subprocess.TimeoutExpired:
            m.proc.kill()
            m.proc.wait()
        m.proc = None

    def wait_leader(self, timeout: float = 10.0) -> None:
        """Until the running members agree on a leader that is one of them.

        After the raft leader dies, the followers go on forwarding proposals to it until
        their election timeout (1 s by default) passes; etcd answers those only after its
        own request timeout (7 s), so a write sent in that window waits out the store's
        timeout and answers 503. Experiments that mean to measure writes after a member
        loss, not during the election, wait here first."""
        deadline = time.monotonic() + timeout
        while True:
            running = [m for m in self.members if m.proc is not None and m.proc.poll() is None]
            views = [_status(m.client_port) for m in running]
            ids = {v[0] for v in views if v is not None}
            leaders = {v[1] for v in views if v is not None}
            if running and None not in views and len(leaders) == 1 and leaders <= ids:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"etcd members did not agree on a live leader within {timeout:g} s: {views}")
            time.sleep(0.05)

    def stop(self) -> None:
        for i in range(len(self.members)):
            self.stop_member(i)

    def __enter__(self) -> "EtcdCluster":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _status(port: int) -> tuple[str, str] | None:
    """(this member's ID, the leader's ID it knows) from ``/v3/maintenance/status``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        conn.request("POST", "/v3/maintenance/status", b"{}", {"Content-Type": "application/json"})
        resp = conn.getresponse()
        if resp.status != 200:
            return None
        body = json.loads(resp.read())
        leader = body.get("leader")
        return (body["header"]["member_id"], leader) if leader else None
    except (OSError, ValueError, KeyError):
        return None
    finally:
        conn.close()


def _answers(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        conn.request("POST", "/v3/kv/range", b'{"key":"AA=="}', {"Content-Type": "application/json"})
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()
