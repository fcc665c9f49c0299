"""One log format and set-up for every process of ubernetes (issue 11).

The federation API server, each member cluster (alone or many in a host process), the DNS
responder and the DNS publisher all call :func:`setup_logging` first thing, so their lines
read alike and ``ubernetes up``, which prefixes each child's output with the child's name,
merges them into one story::

    09:28:41.506 cluster/c1 INFO ubernetes.cluster: cluster c1 (...) API listening on http://127.0.0.1:37513, ...
    09:28:43.896 dns INFO fedns.server: serving DNS on 127.0.0.1:36212 (udp+tcp)
    09:29:04.108 apiserver WARNING aiohttp.server: rejected a malformed HTTP request: 400 Invalid character in Content-Length:

that is ``HH:MM:SS.mmm <process> LEVEL logger: message`` on stderr. It lives in the
machinery because every one of those processes already stands on it and it imports nothing
of theirs, so the responder needs nothing of the federation to log like it.
"""

from __future__ import annotations

import logging
import sys

from aiohttp.http_exceptions import HttpProcessingError

FORMAT = "%(asctime)s.%(msecs)03d {process} %(levelname)s %(name)s: %(message)s"
DATEFMT = "%H:%M:%S"


def setup_logging(process: str, level: str = "info") -> None:
    """Log at ``level`` (a name: debug, info, warning, error) to stderr as ``process``."""
    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, level.upper()),
        format=FORMAT.format(process=process.replace("%", "%%")),
        datefmt=DATEFMT,
        force=True,
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, MalformedRequestFilter) for f in server.filters):
        server.addFilter(MalformedRequestFilter())


class MalformedRequestFilter(logging.Filter):
    """aiohttp logs a garbage request as an ERROR with a traceback; one WARNING line is enough."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            first = (str(exc.message).strip().splitlines() or [""])[0]
            record.msg, record.args = "rejected a malformed HTTP request: %s %s", (exc.code, first)
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True
