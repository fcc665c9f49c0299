"""A TCP relay with a partition switch: how ``up --ha`` cuts one API server off from etcd.

In ``up --ha`` each API server reaches each etcd member through a relay of the launcher's
(a loopback port of its own), so ``ubernetes chaos partition-etcd N`` can cut replica N off
from etcd while the others keep talking to it, with no root and no firewall rules. A
partition behaves as a network that drops packets, not as one that refuses them: bytes in
flight stop moving (held, as TCP would keep retransmitting them), new connections are
accepted and then hear nothing, and the API server sees its etcd requests time out. Healing
lets the held bytes through, as a healed link would.
"""

from __future__ import annotations

import asyncio
import contextlib


class Relay:
    """Forwards connections on ``host:port`` (a free port; :attr:`port`) to ``target``."""

    def __init__(self, target: tuple[str, int], *, host: str = "127.0.0.1") -> None:
        self.target = target
        self.host = host
        self.port = 0
        self._server: asyncio.base_events.Server | None = None
        self._open = asyncio.Event()
        self._open.set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._closed = False

    @property
    def partitioned(self) -> bool:
        return not self._open.is_set()

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    async def start(self) -> "Relay":
        self._server = await asyncio.start_server(self._serve, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def partition(self) -> None:
        self._open.clear()

    def heal(self) -> None:
        self._open.set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            await self._open.wait()  # a new connection during a partition hears nothing until it heals
            if self._closed:
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.target)
            except OSError:
                return  # the target is down: the client sees its connection closed, as with a dead member
            self._writers.add(up_writer)
            try:
                await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
            finally:
                up_writer.close()
                self._writers.discard(up_writer)
        finally:
            writer.close()
            self._writers.discard(writer)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self._open.wait()  # held, not dropped, while partitioned
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(ConnectionError, OSError, RuntimeError):
                writer.write_eof()

    async def close(self) -> None:
        """Stop listening and end every connection (each side sees a reset)."""
        self._closed = True
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._open.set()  # the pipes held by a partition wake, find their transports gone, and end
        await asyncio.sleep(0)
        if self._server is not None:
            await self._server.wait_closed()
