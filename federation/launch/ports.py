"""Free ports for the servers a launcher, a test or a bench starts on loopback.

Shared by the launcher, the etcd members it runs and the tests, so every picker keeps the
same rule (below the ephemeral range, random so that parallel federations stay apart).
"""

from __future__ import annotations

import random
import socket

# Ports for servers are picked below the kernel's ephemeral range (32768-60999 by default),
# so an outgoing connection can never take a port between our pick and the child's bind;
# a random pick keeps parallel federations (the experiment suite runs five) apart.
SERVER_PORTS = (20000, 32000)


def free_port(host: str = "127.0.0.1", *, udp_too: bool = False) -> int:
    """A port free for TCP (and UDP, when asked) on ``host``, outside the ephemeral range."""
    for _ in range(200):
        port = random.randrange(*SERVER_PORTS)
        kinds = [socket.SOCK_STREAM, socket.SOCK_DGRAM] if udp_too else [socket.SOCK_STREAM]
        try:
            for kind in kinds:
                with socket.socket(socket.AF_INET, kind) as s:
                    s.bind((host, port))
        except OSError:
            continue
        return port
    raise RuntimeError(f"no free port found in {SERVER_PORTS[0]}-{SERVER_PORTS[1]} on {host}")
