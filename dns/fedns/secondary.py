"""Knot DNS as a secondary of the responder: its configuration, and a process to run it.

Scale-out is real DNS servers taking our zones by AXFR/IXFR and answering for them
(docs/dns.md, "Scale-out"). This module writes the Knot configuration that does it and
starts ``knotd`` in the foreground with a private directory, so the test
(tests/e2e/test_dns_secondary.py), the benchmark (bench/dns_qps) and an operator use one
set-up. Knot is a Debian package (``knot``); nothing here installs it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterable


def knot_config(
    *,
    directory: str,
    listen: tuple[str, int],
    primary: tuple[str, int],
    zones: Iterable[str],
    workers: int | None = None,
) -> str:
    """A knot.conf for a secondary of ``primary`` serving ``zones`` on ``listen``.

    NOTIFY is accepted from the primary's address; zone files are never written (the
    zones live in Knot's journal), and serials come from us unchanged.
    """
    host, port = primary
    lines = [
        "server:",
        f'    rundir: "{directory}"',
        f"    listen: {listen[0]}@{listen[1]}",
    ]
    if workers:
        lines += [f"    udp-workers: {workers}", f"    tcp-workers: {workers}", "    background-workers: 1"]
    lines += [
        "log:",
        "  - target: stderr",
        "    any: info",
        "database:",
        f'    storage: "{directory}"',
        "remote:",
        "  - id: primary",
        f"    address: {host}@{port}",
        "acl:",
        "  - id: notify-from-primary",
        f"    address: {host}",
        "    action: notify",
        "template:",
        "  - id: default",
        f'    storage: "{directory}"',
        "    zonefile-sync: -1",
        "    zonefile-load: none",
        "    journal-content: all",
        "zone:",
    ]
    for zone in zones:
        lines += [f"  - domain: {zone.rstrip('.')}.", "    master: primary", "    acl: notify-from-primary"]
    return "\n".join(lines) + "\n"


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP right now (outside the ephemeral range)."""
    from federation.launch.localfed import free_port as pick

    return pick(host, udp_too=True)


class KnotSecondary:
    """``knotd`` running as a secondary on a loopback port; stop() ends it by its pid."""

    def __init__(
        self, *, primary: tuple[str, int], zones: Iterable[str], host: str = "127.0.0.1", workers: int | None = None
    ) -> None:
        self.binary = shutil.which("knotd") or "/usr/sbin/knotd"
        self.directory = tempfile.mkdtemp(prefix="fedns-knot-")
        self.host = host
        self.port = free_port(host)
        self.config = Path(self.directory, "knot.conf")
        self.config.write_text(
            knot_config(
                directory=self.directory,
                listen=(host, self.port),
                primary=primary,
                zones=list(zones),
                workers=workers,
            )
        )
        self.log = Path(self.directory, "knotd.log")
        self.process: subprocess.Popen | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which("knotd") is not None or os.path.exists("/usr/sbin/knotd")

    def start(self) -> "KnotSecondary":
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                [self.binary, "-c", str(self.config)], stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        return self

    def wait_serving(self, zone: str, *, timeout: float = 10.0) -> int:
        """Wait until Knot answers SOA for ``zone``; its serial."""
        import dns.message
        import dns.query
        import dns.rcode

        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"knotd exited with {self.process.returncode}: {self.log.read_text()[-2000:]}")
            try:
                reply = dns.query.udp(dns.message.make_query(zone, "SOA"), self.host, port=self.port, timeout=0.5)
                if reply.rcode() == dns.rcode.NOERROR and reply.answer:
                    return reply.answer[0][0].serial
                last = dns.rcode.to_text(reply.rcode())
            except Exception as err:  # not listening yet
                last = repr(err)
            time.sleep(0.05)
        raise TimeoutError(f"knotd does not serve {zone} ({last}): {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> "KnotSecondary":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
