"""One worker of ``ubernetes dns --workers N``: a responder that follows the zone feed.

Started by :mod:`fedns.workers` as ``python -m fedns.worker FD``, where FD is its end of a
socketpair. The first frame says who it is (its settings, index and log level), the
second is the zone (a snapshot, :mod:`fedns.feed`); only then does it bind its own
SO_REUSEPORT UDP and TCP sockets and say ``ready``, so it never answers from an empty
zone. After that, in order: ``step`` and ``snapshot`` frames change its table at the
serial they carry, and ``status`` frames are answered with its status document and raw
counters, which the supervisor sums into ``/status`` and ``/metrics``.

It stops cleanly on SIGTERM (what the supervisor sends) and when the socket closes (the
supervisor is gone, even by SIGKILL: no orphans). SIGINT is ignored: Ctrl-C reaches the
whole process group and the supervisor decides the order of the stop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
from typing import Any

from apimachinery import eventloop
from apimachinery.logsetup import setup_logging
from fedns.app import Responder, Settings
from fedns.feed import frame, read_frame

log = logging.getLogger("fedns.worker")


def counters(responder: Responder) -> dict[str, Any]:
    """What the supervisor sums across workers for ``/metrics`` (fedns.metrics reads these)."""
    h = responder.handler
    return {
        "rcodes": list(h.rcodes),
        "qtypes": {t: n for t, n in enumerate(h.qtypes) if n},
        "durationCounts": list(h.duration_counts),
        "durationSum": h.duration_sum,
    }


async def run(sock: socket.socket) -> None:
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    hello = await read_frame(reader)
    if hello is None or hello[0] != "start":
        return
    _, settings, index, log_level = hello
    assert isinstance(settings, Settings)
    setup_logging(f"dns-{index}", log_level)
    logging.getLogger("fedns.server").setLevel(logging.WARNING)  # the supervisor announces the address
    responder = Responder(settings)
    responder.view.freeze_after_build = True
    first = await read_frame(reader)
    if first is None:
        return
    _, serial, static, specs = first
    await responder.view.follow_snapshot(static, specs, serial)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await responder.start()
    writer.write(frame(("ready", index, os.getpid(), responder.port)))
    log.info("worker %d (pid %d) serving %d record sets, serial %d", index, os.getpid(),
             responder.view.record_count, responder.view.serial)

    async def follow() -> None:
        while True:
            message = await read_frame(reader)
            if message is None:
                return  # the supervisor is gone
            kind = message[0]
            if kind == "step":
                responder.view.follow_step(message[2], message[1])
            elif kind == "snapshot":
                await responder.view.follow_snapshot(message[2], message[3], message[1])
            elif kind == "status":
                document = responder.status_document()
                document["lastChangeUnix"] = responder.view.last_change  # for /metrics' timestamp
                writer.write(frame(("status", message[1], document, counters(responder))))

    following = loop.create_task(follow())
    stopping = loop.create_task(stop.wait())
    try:
        await asyncio.wait({following, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (following, stopping):
            task.cancel()
        log.info("worker %d stopping", index)
        await responder.stop()
        writer.close()
    if following.done() and not following.cancelled() and following.exception() is not None:
        raise following.exception()  # type: ignore[misc]


def main(argv: list[str]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sock = socket.socket(fileno=int(argv[1]))
    eventloop.run(run(sock))


if __name__ == "__main__":
    main(sys.argv)
