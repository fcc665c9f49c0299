"""UDP and TCP listeners on one address and port, feeding :class:`~fedns.handler.Handler`.

Thin on purpose: all protocol decisions live in the handler, so this module is only
about sockets.

- UDP: on Linux, a thread reads batches of datagrams with ``recvmmsg`` and answers them with
  one ``sendmmsg`` (:mod:`fedns.mmsg`; ``udp_io="loop"`` turns it off). Elsewhere, or so
  asked, the event loop's datagram transport: one datagram, one reply. Stock asyncio reads every datagram with
  ``recvfrom(256 KiB)``, a buffer above glibc's mmap threshold that costs an mmap and
  munmap per packet; setting the transport's ``max_size`` to 65535 halved the fast
  path's cost (../shared/notes/dns-fast-path.md). uvloop does not need it.
- TCP (RFC 7766): many length-prefixed queries may arrive in one read (pipelining);
  all their replies go out in one write, which is what makes TCP fast. A client that
  does not read its replies stops us reading its queries (flow control), so memory
  stays bounded.

TCP slots are few (``max_connections``), so who may hold one is bounded (docs/dns.md,
"Limits and hardening"):

- only an answered message is activity: a connection without one for ``idle_timeout``
  seconds is closed, however many bytes trickle in (one byte every few seconds used
  to hold a slot forever);
- a connection lives ``max_lifetime`` seconds at most, busy or not;
- one client address holds ``max_per_client`` connections at most; beyond that, and
  beyond ``max_connections`` in all, a new connection is closed at once;
- a connection being closed that does not take its last replies within
  ``idle_timeout`` more seconds is aborted, so a client that never reads cannot keep
  a closing slot either.

All of it rides on one timer per connection; the read path only notes the time when a
read held an answered message.

Port 0 binds an ephemeral UDP port and then TCP on the same number, retrying when that
TCP port is taken, so tests and launchers get one port for both. With ``reuse_port`` both
sockets carry SO_REUSEPORT: each worker of ``--workers N`` binds its own pair on one address
and the kernel spreads datagrams and connections over them (:mod:`fedns.workers`).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from typing import Callable

from fedns import mmsg

log = logging.getLogger("fedns.server")

HandleFn = Callable[..., "bytes | None"]
UDP_IO = ("auto", "batched", "loop")


class _UDP(asyncio.DatagramProtocol):
    def __init__(self, handle: HandleFn) -> None:
        self.handle = handle
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        try:
            transport.max_size = 65535  # type: ignore[attr-defined]
        except AttributeError:  # uvloop's transport: reads are sized right already
            pass

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        reply = self.handle(data)
        if reply is not None:
            try:
                self.transport.sendto(reply, addr)  # type: ignore[union-attr]
            except OSError:
                pass

    def error_received(self, exc: Exception) -> None:  # ICMP errors from earlier sends
        pass


class _UDPWithPeer(_UDP):
    """The same, telling the handler who asks (a client topology is in use)."""

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        reply = self.handle(data, False, addr[0])
        if reply is not None:
            try:
                self.transport.sendto(reply, addr)  # type: ignore[union-attr]
            except OSError:
                pass


class _TCP(asyncio.Protocol):
    def __init__(self, server: "DNSServer") -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.peer: str | None = None
        self.admitted = False  # counted in server.connections and server.per_client
        self.started = 0.0
        self.last_activity = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if peer else None
        server = self.server
        if len(server.connections) >= server.max_connections:
            server.rejected += 1
            transport.abort()  # type: ignore[attr-defined]
            return
        held = server.per_client.get(self.peer, 0)
        if held >= server.max_per_client:
            server.rejected_per_client += 1
            transport.abort()  # type: ignore[attr-defined]
            return
        server.per_client[self.peer] = held + 1
        server.connections.add(self)
        self.admitted = True
        self.started = self.last_activity = self.loop.time()
        self.timer = self.loop.call_later(min(server.idle_timeout, server.max_lifetime), self._check)

    def _check(self) -> None:
        """The one timer: close when idle too long or past the lifetime, else look again."""
        server = self.server
        now = self.loop.time()
        left = self.started + server.max_lifetime - now
        if left <= 0:
            server.closed_lifetime += 1
            return self._close()
        idle = now - self.last_activity
        if idle >= server.idle_timeout:
            server.closed_idle += 1
            return self._close()
        self.timer = self.loop.call_later(min(server.idle_timeout - idle, left), self._check)

    def _close(self) -> None:
        """Close after the replies already written; abort if they are not taken in time."""
        transport = self.transport
        transport.close()  # type: ignore[union-attr]
        self.timer = self.loop.call_later(self.server.idle_timeout, transport.abort)  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        buf = self.buffer + data if self.buffer else data
        handle = self.server.handle
        replies = []
        i, n = 0, len(buf)
        while n - i >= 2:
            length = (buf[i] << 8) | buf[i + 1]
            if n - i - 2 < length:
                break
            reply = handle(buf[i + 2 : i + 2 + length], True, self.peer)
            i += 2 + length
            if reply is not None:
                if reply.__class__ is list:  # a zone transfer: several messages
                    for message in reply:
                        replies.append(len(message).to_bytes(2, "big"))
                        replies.append(message)
                    continue
                replies.append(len(reply).to_bytes(2, "big"))
                replies.append(reply)
        self.buffer = buf[i:]
        if replies:  # only an answered message is activity, not bytes
            self.last_activity = self.loop.time()
            self.transport.write(b"".join(replies))  # type: ignore[union-attr]

    def pause_writing(self) -> None:
        self.transport.pause_reading()  # type: ignore[union-attr]

    def resume_writing(self) -> None:
        self.transport.resume_reading()  # type: ignore[union-attr]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.admitted:
            self.admitted = False
            server = self.server
            server.connections.discard(self)
            held = server.per_client.get(self.peer, 1) - 1
            if held > 0:
                server.per_client[self.peer] = held
            else:
                server.per_client.pop(self.peer, None)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.buffer = b""


class DNSServer:
    """Serve ``handle(wire, tcp=...)`` over UDP and TCP on ``host:port`` (0: ephemeral)."""

    def __init__(
        self,
        handle: HandleFn,
        *,
        host: str = "127.0.0.1",
        port: int = 1053,
        idle_timeout: float = 10.0,
        max_connections: int = 256,
        max_lifetime: float = 120.0,
        max_per_client: int = 32,
        udp_peer: bool = False,
        reuse_port: bool = False,
        udp_io: str = "auto",
        replay: Callable[[bytes], bytes | None] | None = None,
        observe: Callable[[float, int], None] | None = None,
    ) -> None:
        if udp_io not in UDP_IO:
            raise ValueError(f"udp_io must be one of {', '.join(UDP_IO)}, not {udp_io!r}")
        self.handle = handle
        # Batched UDP answers queries seen before with these (fedns.handler.Handler.replay, .observe)
        self.replay, self.observe = replay, observe
        # "auto": batched (recvmmsg/sendmmsg in a thread) where it can run, else the loop's transport
        self.udp_io = udp_io
        # SO_REUSEPORT on both sockets: the workers of ``--workers N`` (fedns.workers) each
        # bind their own on the same address and the kernel spreads queries over them.
        self.reuse_port = reuse_port
        self.udp_peer = udp_peer  # pass the client's address to handle() for UDP too
        self.host = host
        self.port = port
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.max_lifetime = max_lifetime
        self.max_per_client = max_per_client
        self.connections: set[_TCP] = set()
        self.per_client: dict[str | None, int] = {}  # open connections by client address
        self.rejected = 0  # closed at once: max_connections reached
        self.rejected_per_client = 0  # closed at once: the client's max_per_client reached
        self.closed_idle = 0
        self.closed_lifetime = 0
        self._udp: asyncio.DatagramTransport | None = None
        self._batched: mmsg.BatchedUDP | None = None
        self._tcp: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        udp_sock, tcp_sock = self._bind()
        if self.udp_io == "batched" and not mmsg.available():
            udp_sock.close()
            tcp_sock.close()
            raise OSError("batched UDP (recvmmsg/sendmmsg) is not available on this platform")
        if self.udp_io != "loop" and mmsg.available():
            self._batched = mmsg.BatchedUDP(udp_sock, self.handle, with_peer=self.udp_peer,
                                            replay=self.replay, observe=self.observe)
            self._batched.start()
        else:
            self._udp, _ = await loop.create_datagram_endpoint(
                lambda: (_UDPWithPeer if self.udp_peer else _UDP)(self.handle), sock=udp_sock)
        self._tcp = await loop.create_server(lambda: _TCP(self), sock=tcp_sock, backlog=1024)
        log.info("serving DNS on %s (udp+tcp)", self.address)

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def _bind(self) -> tuple[socket.socket, socket.socket]:
        infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM)
        family, _, _, _, sockaddr = infos[0]
        attempts = 50 if self.port == 0 else 1
        for attempt in range(attempts):
            udp = socket.socket(family, socket.SOCK_DGRAM)
            try:
                if self.reuse_port:
                    udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                udp.bind(sockaddr)
                port = udp.getsockname()[1]
                try:
                    udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
                except OSError:
                    pass
                tcp = socket.socket(family, socket.SOCK_STREAM)
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if self.reuse_port:
                    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                try:
                    tcp.bind((sockaddr[0], port) + tuple(sockaddr[2:]))
                    tcp.listen(1024)
                except OSError as err:
                    tcp.close()
                    if err.errno == errno.EADDRINUSE and attempt + 1 < attempts:
                        udp.close()
                        continue
                    raise
            except OSError:
                udp.close()
                raise
            udp.setblocking(False)
            tcp.setblocking(False)
            self.port = port
            return udp, tcp
        raise OSError(errno.EADDRINUSE, f"no free port for both UDP and TCP on {self.host}")

    @property
    def udp_mode(self) -> str:
        """How UDP is being read: "batched" or "loop" (None before start)."""
        return "batched" if self._batched is not None else "loop"

    @property
    def udp_batches(self) -> dict[str, int] | None:
        """recvmmsg calls that returned datagrams and the datagrams they read (batched only)."""
        b = self._batched
        if b is None:
            return None
        return {"batches": b.batches, "datagrams": b.datagrams, "sendErrors": b.send_errors}

    async def close(self) -> None:
        if self._batched is not None:
            batched, self._batched = self._batched, None
            await asyncio.get_running_loop().run_in_executor(None, batched.stop)
            batched.sock.close()
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            for conn in list(self.connections):
                if conn.transport is not None:
                    conn.transport.abort()
            await self._tcp.wait_closed()
            self._tcp = None
