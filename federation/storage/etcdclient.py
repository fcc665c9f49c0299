"""A small synchronous client for etcd v3's own JSON gateway (``/v3/kv/...``, ``/v3/watch``).

Why the gateway and not a gRPC client library: every etcd v3 server (3.4 in Debian's
``etcd-server``) serves it on the client port with no extra process; it needs nothing beyond
the standard library (``http.client`` with keep-alive, ``json``, ``base64``); and the
well-kept Python gRPC clients for etcd pull in grpcio and generated stubs for the few calls
the store makes (range, txn, watch, compaction). Why synchronous: the :class:`Store`
protocol is synchronous (the registry calls it from the event loop, as it calls SQLite), so a
store call is one blocking keep-alive request of about a millisecond on loopback, and the
watch runs in a thread of its own (docs/architecture.md, "The etcd store").

Keys and values travel base64-encoded; 64-bit numbers come back as strings; a zero field is
omitted. Connections are per thread (the event loop and ``asyncio.to_thread`` workers both
call the store). Several endpoints: a request goes to the member that answered last and
moves on to the next when a member refuses the connection, drops it, or says it has no
leader; only when none answers is it :class:`EtcdUnavailable`. A request that timed out is
not retried elsewhere (it may have been applied; the caller reports it as unavailable).

Failing fast: the store calls block their caller (the API server's event loop), so once
etcd is unavailable (no quorum, every member down, or cut off), calls in the next
``fail_fast`` seconds raise :class:`EtcdUnavailable` at once instead of each waiting out
its timeout; the first call after that window asks etcd again. Without it, a burst of
requests during an outage queued behind each other's timeouts and answered 503 tens of
seconds late (measured: a write 20 s+ with two of three members down).
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import threading
import time
from typing import Any, Iterator

# gRPC status codes etcd answers with when the member cannot serve now (no leader, a
# request timed out inside raft, the member is stopping): another member may serve it.
_UNAVAILABLE_CODES = {4, 14}
_HEADERS = {"Content-Type": "application/json"}


class EtcdError(Exception):
    """etcd refused the request (for example ``mvcc: required revision has been compacted``)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class EtcdUnavailable(Exception):
    """No etcd member answered; the message says what each one did."""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str | None) -> bytes:
    return base64.b64decode(text) if text else b""


def prefix_end(prefix: bytes) -> bytes:
    """etcd's range_end for "every key starting with ``prefix``": the prefix with its last
    byte incremented (trailing 0xff bytes dropped)."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"


def parse_endpoint(text: str) -> tuple[str, int]:
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"{text!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


class Gateway:
    """Requests to etcd's JSON gateway over keep-alive connections, with failover between
    ``endpoints`` ((host, port) pairs of the members' client URLs)."""

    def __init__(self, endpoints: list[tuple[str, int]], *, timeout: float = 5.0, fail_fast: float = 2.0) -> None:
        if not endpoints:
            raise ValueError("no etcd endpoint")
        self.endpoints = endpoints
        self.timeout = timeout
        self.fail_fast = fail_fast
        self._down: tuple[float, str] | None = None  # (monotonic time until which we fail fast, why)
        self._last_failure: str | None = None
        self._last_ok = 0.0
        self._current = 0  # the member that answered last
        self._local = threading.local()
        self._watch_lock = threading.Lock()
        self._watch_conns: set[http.client.HTTPConnection] = set()
        self._closed = False

    def name(self, index: int) -> str:
        host, port = self.endpoints[index]
        return f"{host}:{port}"

    def _conn(self, index: int) -> http.client.HTTPConnection:
        conns = getattr(self._local, "conns", None)
        if conns is None:
            conns = self._local.conns = {}
        conn = conns.get(index)
        if conn is None:
            host, port = self.endpoints[index]
            conn = conns[index] = http.client.HTTPConnection(host, port, timeout=self.timeout)
        return conn

    def _drop(self, index: int) -> None:
        conn = getattr(self._local, "conns", {}).pop(index, None)
        if conn is not None:
            conn.close()

    @property
    def unavailable(self) -> str | None:
        """Why the last request that needed etcd's quorum failed, or None if it succeeded."""
        return self._last_failure

    def call_local(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """A request any member answers from its own copy (a serializable range read, which
        needs no quorum): not held back by the fail-fast window, and its outcome says
        nothing about the quorum."""
        return self._call(path, body)

    def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``body`` to ``path`` (``/v3/kv/range``...) and return etcd's answer."""
        down = self._down
        if down is not None and time.monotonic() < down[0]:
            raise EtcdUnavailable(f"{down[1]} (not asking again for {self.fail_fast:g} s)")
        began = time.monotonic()
        try:
            answer = self._call(path, body)
        except EtcdUnavailable as err:
            self._down = (time.monotonic() + self.fail_fast, str(err))
            if began >= self._last_ok:  # a request sent during an outage that ended since says nothing now
                self._last_failure = str(err)
            raise
        self._down = self._last_failure = None
        self._last_ok = time.monotonic()
        return answer

    def _call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        payload = json.dumps(body, separators=(",", ":")).encode()
        problems: list[str] = []
        n = len(self.endpoints)
        start = self._current
        # One more attempt than members: a keep-alive connection the member closed while
        # idle fails once, then a fresh one to the same member goes through.
        for attempt in range(n + 1):
            index = (start + attempt) % n
            conn = self._conn(index)
            try:
                conn.request("POST", path, payload, _HEADERS)
                resp = conn.getresponse()
                data = resp.read()
            except socket.timeout:
                self._drop(index)
                raise EtcdUnavailable(f"etcd at {self.name(index)} did not answer {path} within "
                                      f"{self.timeout:g} s") from None
            except (OSError, http.client.HTTPException) as e:
                self._drop(index)
                problems.append(f"{self.name(index)}: {_why(e)}")
                continue
            if resp.status == 200:
                self._current = index
                return json.loads(data)
            code, message = _error(resp.status, data)
            if code in _UNAVAILABLE_CODES or resp.status in (502, 503):
                problems.append(f"{self.name(index)}: {message}")
                continue
            raise EtcdError(code, message)
        raise EtcdUnavailable("no etcd member answered (" + "; ".join(dict.fromkeys(problems)) + ")")

    def watch(self, create_request: dict[str, Any], *, idle_timeout: float) -> Iterator[dict[str, Any]]:
        """One watch stream: yields each response's ``result`` as etcd sends it. Ends with
        :class:`EtcdUnavailable` when the stream breaks or is idle for ``idle_timeout`` s
        (the caller resumes from its last revision); :meth:`close_watches` ends it at once."""
        problems: list[str] = []
        n = len(self.endpoints)
        for attempt in range(n):
            index = (self._current + attempt) % n
            host, port = self.endpoints[index]
            conn = http.client.HTTPConnection(host, port, timeout=idle_timeout)
            with self._watch_lock:  # known before it connects, so close() can always break it
                if self._closed:
                    raise EtcdUnavailable("the client is closed")
                self._watch_conns.add(conn)
            try:
                conn.request("POST", "/v3/watch", json.dumps({"create_request": create_request}).encode(), _HEADERS)
                resp = conn.getresponse()
            except (OSError, http.client.HTTPException) as e:
                self._forget(conn)
                problems.append(f"{self.name(index)}: {_why(e)}")
                continue
            if resp.status != 200:
                code, message = _error(resp.status, resp.read())
                self._forget(conn)
                problems.append(f"{self.name(index)}: {message}")
                continue
            break
        else:
            raise EtcdUnavailable("no etcd member accepted the watch (" + "; ".join(problems) + ")")
        try:
            if self._closed:  # closed while it connected (nothing to shut down then)
                raise EtcdUnavailable("the client is closed")
            buf = bytearray()
            while True:
                try:
                    chunk = resp.read1(1 << 16)
                except (OSError, http.client.HTTPException, ValueError) as e:
                    raise EtcdUnavailable(f"the watch on {self.name(index)} broke: {e!r}") from None
                if not chunk:
                    raise EtcdUnavailable(f"the watch on {self.name(index)} ended")
                scanned = len(buf)
                buf += chunk
                while (i := buf.find(b"\n", scanned)) >= 0:
                    line = bytes(buf[:i])
                    del buf[:i + 1]
                    scanned = 0
                    if line.strip():
                        message = json.loads(line)
                        if "error" in message:
                            err = message["error"]
                            raise EtcdError(int(err.get("grpc_code") or err.get("code") or 2),
                                            str(err.get("message")))
                        yield message.get("result") or {}
        finally:
            self._forget(conn)

    def _forget(self, conn: http.client.HTTPConnection) -> None:
        with self._watch_lock:
            self._watch_conns.discard(conn)
        conn.close()

    def close_watches(self) -> None:
        """Break every open watch stream (from another thread) and refuse new ones."""
        with self._watch_lock:
            self._closed = True
            conns = list(self._watch_conns)
        for conn in conns:
            if conn.sock is not None:
                try:
                    conn.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.close_watches()
        for conn in getattr(self._local, "conns", {}).values():
            conn.close()
        self._local = threading.local()


def _why(e: BaseException) -> str:
    return e.strerror if isinstance(e, OSError) and e.strerror else (str(e) or type(e).__name__)


def _error(status: int, data: bytes) -> tuple[int, str]:
    try:
        body = json.loads(data)
        return int(body.get("code") or 2), str(body.get("message") or body.get("error") or status)
    except (ValueError, AttributeError):
        return 2, f"HTTP {status}: {data[:200]!r}"
