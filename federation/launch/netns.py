"""Runs a :mod:`federation.launch.netnsplan` plan: builds the namespaces, breaks and heals them.

The I/O half of netns mode (issue 16): every command comes from the pure planner and runs
here with ``subprocess``, as root. :func:`clean_leftovers` deletes the namespaces a
SIGKILLed launcher left (found by name; their processes killed first), so each start
begins clean. Faults are tracked by id so ``heal`` undoes exactly what ``apply`` did.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from federation.launch import netnsplan

NETNS_ETC = Path("/etc/netns")


class NetnsUnavailable(RuntimeError):
    pass


def check_root() -> None:
    """Raise with what to do when this process cannot make network namespaces."""
    if os.geteuid() != 0:
        raise NetnsUnavailable("netns mode needs root (network namespaces, veth pairs and iptables); "
                               "run as root or leave out --netns for the app-level faults")
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            raise NetnsUnavailable(f"netns mode needs {tool!r} (apt-get install iproute2 iptables)")


def unavailable_reason() -> str | None:
    """Why network namespaces cannot be made here (None: they can), tried with a real one."""
    try:
        check_root()
    except NetnsUnavailable as err:
        return str(err)
    probe = f"{netnsplan.PREFIX}{os.getpid()}-probe"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    subprocess.run(["ip", "netns", "delete", probe], capture_output=True)
    return None if made.returncode == 0 else f"ip netns add failed: {made.stderr.strip()}"


def run(cmd: tuple[str, ...], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(cmd), capture_output=True, text=True, timeout=20)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {done.returncode}: {done.stderr.strip()}")
    return done


def namespaces() -> list[str]:
    out = run(("ip", "netns", "list"), check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def delete_namespace(name: str) -> None:
    for pid in run(("ip", "netns", "pids", name), check=False).stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    run(("ip", "netns", "delete", name), check=False)
    shutil.rmtree(NETNS_ETC / name, ignore_errors=True)


def clean_leftovers() -> list[str]:
    """Delete every namespace of ours whose launcher is gone; their names."""
    names = namespaces()
    gone = netnsplan.leftovers(names, alive=[p for p in {netnsplan.run_of(n) for n in names} if p and _alive(p)])
    for pid in {netnsplan.run_of(n) for n in gone}:
        run(("ip", "link", "del", f"{netnsplan.run_name(pid or 0)}h"), check=False)  # the root end of its link
    for name in gone:
        delete_namespace(name)
    return gone


def free_subnet() -> int:
    """A third octet of 198.18.x.0/24 that no link of the root namespace uses yet."""
    used = run(("ip", "-4", "addr", "show"), check=False).stdout
    for k in range(256):
        if f"198.18.{k}." not in used:
            return k
    raise RuntimeError("every 198.18.x.0/24 is in use in the root namespace")


class Netns:
    """One run's namespaces: ``build()``, ``apply()``/``heal()`` faults, ``close()``."""

    def __init__(self, plan: netnsplan.NetnsPlan) -> None:
        self.plan = plan
        self.faults: dict[str, netnsplan.FaultPlan] = {}
        self.relays: dict[str, subprocess.Popen[str]] = {}  # fault id -> its delaying relay

    def build(self) -> "Netns":
        try:
            for cmd in self.plan.setup:
                run(cmd)
            for client in self.plan.clients:
                (NETNS_ETC / client.netns).mkdir(parents=True, exist_ok=True)
        except BaseException:
            self.close()
            raise
        return self

    def resolv_conf(self, client: netnsplan.Node, nameserver: str) -> Path:
        path = NETNS_ETC / client.netns / "resolv.conf"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(netnsplan.resolv_conf(nameserver))
        return path

    def exec_argv(self, node: netnsplan.Node, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", node.netns, *argv]

    def apply(self, fault_id: str, fp: netnsplan.FaultPlan) -> None:
        if fault_id in self.faults:
            self.heal(fault_id)
        if fp.relay is not None:  # listening before any packet is sent its way
            self.relays[fault_id] = start_relay(fp.relay)
        self.faults[fault_id] = fp
        try:
            for cmd in fp.apply:
                run(cmd)
        except BaseException:
            self.heal(fault_id)
            raise

    def heal(self, fault_id: str) -> bool:
        fp = self.faults.pop(fault_id, None)
        if fp is None:
            return False
        for cmd in fp.heal:
            run(cmd, check=False)
        relay = self.relays.pop(fault_id, None)
        if relay is not None:
            relay.terminate()
            try:
                relay.wait(5)
            except subprocess.TimeoutExpired:
                relay.kill()
                relay.wait()
        return True

    def heal_all(self) -> None:
        for fault_id in list(self.faults):
            self.heal(fault_id)

    def close(self) -> None:
        for cmd in self.plan.teardown:
            if cmd[:3] == ("ip", "netns", "delete"):
                delete_namespace(cmd[-1])
            else:
                run(cmd, check=False)


def start_relay(relay: netnsplan.Relay) -> subprocess.Popen[str]:
    """The delaying relay of :mod:`federation.launch.delayrelay`, inside ``relay.netns``, listening."""
    argv = ["ip", "netns", "exec", relay.netns, sys.executable, "-m", "federation.launch.delayrelay",
            "--ms", f"{relay.delay_ms:g}", "--jitter", f"{relay.jitter_ms:g}", "--tcp-port", str(relay.tcp_port),
            "--udp-port", str(relay.udp_port), "--udp-target", relay.udp_target,
            "--udp-port-to", str(relay.udp_dport or 0)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                            preexec_fn=die_with_parent)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line != "ready":
        proc.kill()
        proc.wait()
        raise RuntimeError(f"the delaying relay in {relay.netns} did not start (said {line!r})")
    return proc


def die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def has_netem(netns: str) -> bool:
    """Whether the kernel has the netem qdisc (tried on a dummy link in ``netns``)."""
    run(("ip", "-n", netns, "link", "add", "ubn-probe", "type", "dummy"), check=False)
    ok = run(("ip", "netns", "exec", netns, "tc", "qdisc", "add", "dev", "ubn-probe", "root", "netem", "delay", "1ms"),
             check=False).returncode == 0
    run(("ip", "-n", netns, "link", "del", "ubn-probe"), check=False)
    return ok
