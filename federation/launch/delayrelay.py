"""A delaying relay: latency on a namespace's link where the kernel has no netem (issue 16).

``tc qdisc add ... netem`` answers "Specified qdisc kind is unknown" on kernels built
without it (these machines), so ``chaos latency`` and ``chaos slow-dns`` in netns mode run
this relay inside the namespace instead, and iptables REDIRECTs the connections (and the
datagrams to one UDP port) arriving on the namespace's link to it
(:func:`federation.launch.netnsplan.fault`). The relay finds where each connection was
going with ``SO_ORIGINAL_DST``, connects there itself (from inside the namespace, so its
own connection is not redirected again) and holds every chunk the server sends back for the
delay before passing it on, as netem on the namespace's egress would: a round trip into the
namespace (request, answer; or a server's greeting) takes the delay longer. A connect
itself does not (the relay accepts it locally), unlike netem, which delays the handshake
too; a client that only connects (a TCP health check) sees no delay. A REDIRECTed datagram no longer
says which port it was sent to, so datagrams go on to one known port (``--udp-port-to``:
the DNS responder's, for slow-dns), and their answers are held as a connection's are.

Jitter draws each delay uniformly from ``[ms - jitter, ms + jitter]``; chunks of one
connection stay in order (a chunk never leaves before the one ahead of it), datagrams may
overtake each other, as on a real network.

Run as ``python -m federation.launch.delayrelay --ms 100 --tcp-port 15001 ...``; it prints
``ready`` once it listens, and stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import socket
import struct
import time

SO_ORIGINAL_DST = 80  # linux/netfilter_ipv4.h
IDLE_UDP = 30.0  # seconds an idle client's upstream datagram socket is kept


def original_destination(sock: socket.socket) -> tuple[str, int]:
    """Where a REDIRECTed connection was sent (the conntrack entry's original tuple)."""
    raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    port, packed = struct.unpack_from("!H4s", raw, 2)
    return socket.inet_ntoa(packed), port


class Delay:
    def __init__(self, ms: float, jitter_ms: float, *, rng: random.Random | None = None) -> None:
        self.ms, self.jitter_ms = ms, jitter_ms
        self.rng = rng or random.Random()

    def draw(self) -> float:
        """One delay, in seconds."""
        if not self.jitter_ms:
            return self.ms / 1000
        return max(0.0, self.rng.uniform(self.ms - self.jitter_ms, self.ms + self.jitter_ms)) / 1000


class TcpRelay:
    def __init__(self, delay: Delay) -> None:
        self.delay = delay

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        try:
            target = original_destination(sock)
            up_reader, up_writer = await asyncio.open_connection(*target)
        except OSError:
            writer.close()
            return
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._delayed(up_reader, writer))
        finally:
            up_writer.close()
            writer.close()

    async def _delayed(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Server to client: every chunk held for a drawn delay, never overtaking the one before."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def release() -> None:
            while True:
                due, data = await queue.get()
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    return
                writer.write(data)
                await writer.drain()

        sender = asyncio.create_task(release())
        last = 0.0
        try:
            while True:
                data = await reader.read(65536)
                last = max(last, time.monotonic() + self.delay.draw())
                queue.put_nowait((last, data))
                if not data:
                    break
            await sender
            writer.write_eof()
        except (ConnectionError, OSError, RuntimeError):
            pass
        finally:
            sender.cancel()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            writer.write_eof()
        except (ConnectionError, OSError, RuntimeError):
            pass


class _Upstream(asyncio.DatagramProtocol):
    """One client's socket toward the target: its answers go back to that client."""

    def __init__(self, relay: "UdpRelay", client: tuple[str, int]) -> None:
        self.relay, self.client = relay, client
        self.transport: asyncio.DatagramTransport | None = None
        self.used = time.monotonic()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.used = time.monotonic()
        asyncio.get_running_loop().call_later(self.relay.delay.draw(), self._answer, data)

    def _answer(self, data: bytes) -> None:
        if self.relay.transport is not None:
            self.relay.transport.sendto(data, self.client)


class UdpRelay(asyncio.DatagramProtocol):
    def __init__(self, delay: Delay, target: tuple[str, int]) -> None:
        self.delay, self.target = delay, target
        self.transport: asyncio.DatagramTransport | None = None
        self.upstreams: dict[tuple[str, int], _Upstream] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        asyncio.ensure_future(self._send(data, addr))

    async def _send(self, data: bytes, client: tuple[str, int]) -> None:
        up = self.upstreams.get(client)
        if up is None or up.transport is None:
            loop = asyncio.get_running_loop()
            _, up = await loop.create_datagram_endpoint(lambda: _Upstream(self, client), remote_addr=self.target)
            self.upstreams[client] = up
        up.used = time.monotonic()
        assert up.transport is not None
        up.transport.sendto(data)

    def expire(self) -> None:
        now = time.monotonic()
        for client, up in list(self.upstreams.items()):
            if now - up.used > IDLE_UDP and up.transport is not None:
                up.transport.close()
                del self.upstreams[client]


async def main(args: argparse.Namespace) -> None:
    delay = Delay(args.ms, args.jitter)
    server = await asyncio.start_server(TcpRelay(delay).serve, "0.0.0.0", args.tcp_port)
    udp = None
    if args.udp_port_to:
        _, udp = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: UdpRelay(delay, (args.udp_target, args.udp_port_to)), local_addr=("0.0.0.0", args.udp_port))
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), 10)
        except asyncio.TimeoutError:
            if udp is not None:
                udp.expire()
    server.close()


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="delayrelay", description="Delay what arrives on a namespace's link.")
    p.add_argument("--ms", type=float, required=True, help="Delay per round trip (on the answers), milliseconds.")
    p.add_argument("--jitter", type=float, default=0.0, help="Each delay drawn from ms +- jitter.")
    p.add_argument("--tcp-port", type=int, required=True, help="Where REDIRECTed connections arrive.")
    p.add_argument("--udp-port", type=int, default=0, help="Where REDIRECTed datagrams arrive.")
    p.add_argument("--udp-target", default="127.0.0.1", help="Address datagrams go on to.")
    p.add_argument("--udp-port-to", type=int, default=0, help="Port datagrams go on to (0: no UDP relay).")
    args = p.parse_args(argv)
    if args.ms < 0 or not 0 <= args.jitter <= args.ms:
        p.error("need ms >= 0 and 0 <= jitter <= ms")
    return args


if __name__ == "__main__":
    asyncio.run(main(parse()))
