"""UDP in batches: ``recvmmsg``/``sendmmsg`` in a thread of the worker, through ctypes.

Why it exists: per query, the event loop's UDP path costs an ``epoll`` wake-up share, one
``recvfrom`` and one ``sendto``, each a system call; measured here (dnsperf, one process, a
trivial handler) that is 6.3 us of kernel time and 1.9 us of ours a query, 80-89k q/s. Reading
up to :data:`BATCH` datagrams with one ``recvmmsg`` and answering them with one ``sendmmsg`` cut
the kernel's share to 4.2 us and gave 123-127k q/s (docs/benchmarks.md). Python's standard library
has neither call, so this module binds them from libc with ctypes: the message headers, buffers
and address slots are allocated once, and the per-datagram work is a few ``struct`` reads and
writes into them.

The thread blocks in ``recvmmsg`` with ``MSG_WAITFORONE`` (wait for the first datagram, then take
whatever else is queued) and a receive timeout, so :meth:`BatchedUDP.stop` is seen within
:data:`POLL_S`. The handler is the same one the event loop's TCP path calls; it reads the served
table, which the loop thread replaces whole (a reference swap), so no lock is needed.

Linux only (``recvmmsg`` is Linux's): :func:`available` says whether it can run, and
:mod:`fedns.server` falls back to the event loop's datagram transport where it cannot, or when
``--udp-io loop`` asks for it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import socket
import struct
import sys
import threading
import time
from typing import Callable

log = logging.getLogger("fedns.mmsg")

BATCH = 64  # datagrams per recvmmsg
BUFSIZE = 4096  # a query larger than this arrives truncated (MSG_TRUNC) and is dropped
NAMESIZE = 128  # room for any sockaddr (sockaddr_in6 is 28 bytes)
POLL_S = 0.2  # receive timeout: how soon stop() is noticed
MSG_WAITFORONE = 0x10000
MSG_TRUNC = 0x20


class _IOVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _MsgHdr(ctypes.Structure):
    _fields_ = [
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.c_void_p),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    ]


class _MMsgHdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _MsgHdr), ("msg_len", ctypes.c_uint)]


_SIZE = ctypes.sizeof(_MMsgHdr)
_IOV_SIZE = ctypes.sizeof(_IOVec)
_LEN = _MMsgHdr.msg_len.offset
_NAME = _MsgHdr.msg_name.offset
_NAMELEN = _MsgHdr.msg_namelen.offset
_FLAGS = _MsgHdr.msg_flags.offset


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.recvmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p]
        libc.sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _libc()


def available() -> bool:
    """Whether batched UDP can run here (Linux with recvmmsg and sendmmsg in libc)."""
    return _LIBC is not None


def peer_address(name: bytes | memoryview) -> str | None:
    """The client's address from a sockaddr the kernel wrote (IPv4 or IPv6)."""
    family = int.from_bytes(name[0:2], sys.byteorder)
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, bytes(name[4:8]))
    if family == socket.AF_INET6:
        return socket.inet_ntop(socket.AF_INET6, bytes(name[8:24]))
    return None


class BatchedUDP:
    """Serve ``handle`` on a bound UDP socket from a thread, a batch of datagrams at a time.

    ``with_peer``: call ``handle(wire, False, client_address)`` (a client topology is in use)
    instead of ``handle(wire)``. ``replay`` (optional): ``replay(bytes after the ID)`` gives
    the stored reply after its ID to a query seen before, or None; a hit is copied straight
    into its send slot behind the query's ID, and ``observe(seconds, hits)`` is told once per
    batch how long the hits took together (``handle`` times itself). The socket stays the
    caller's; :meth:`stop` ends the thread.
    """

    def __init__(self, sock: socket.socket, handle: Callable[..., "bytes | None"], *, with_peer: bool = False,
                 replay: Callable[[bytes], "bytes | None"] | None = None,
                 observe: Callable[[float, int], None] | None = None) -> None:
        if _LIBC is None:
            raise OSError(errno.ENOSYS, "recvmmsg/sendmmsg are not available here")
        self.sock = sock
        self.handle = handle
        self.with_peer = with_peer
        self.replay = replay
        self.observe = observe
        self.batches = 0  # recvmmsg calls that returned datagrams
        self.datagrams = 0
        self.send_errors = 0
        self.handler_errors = 0
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.sock.setblocking(True)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 0, int(POLL_S * 1e6)))
        self._thread = threading.Thread(target=self._run, name="fedns-udp", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stopping = True
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stopping:
            try:
                self._serve()
            except Exception:  # never let the thread end while the worker runs
                log.exception("batched UDP loop failed; restarting it")

    def _serve(self) -> None:
        libc = _LIBC
        assert libc is not None
        recvmmsg, sendmmsg = libc.recvmmsg, libc.sendmmsg
        fd = self.sock.fileno()
        bufs = ctypes.create_string_buffer(BATCH * BUFSIZE)
        names = ctypes.create_string_buffer(BATCH * NAMESIZE)
        in_iov = (_IOVec * BATCH)()
        in_msgs = (_MMsgHdr * BATCH)()
        replies = ctypes.create_string_buffer(BATCH * BUFSIZE)
        out_iov = (_IOVec * BATCH)()
        out_msgs = (_MMsgHdr * BATCH)()
        bufs_at, names_at = ctypes.addressof(bufs), ctypes.addressof(names)
        replies_at = ctypes.addressof(replies)
        for i in range(BATCH):
            in_iov[i].iov_base = bufs_at + i * BUFSIZE
            in_iov[i].iov_len = BUFSIZE
            hdr = in_msgs[i].msg_hdr
            hdr.msg_name = names_at + i * NAMESIZE
            hdr.msg_namelen = NAMESIZE
            hdr.msg_iov = ctypes.addressof(in_iov) + i * _IOV_SIZE
            hdr.msg_iovlen = 1
            out_msgs[i].msg_hdr.msg_iov = ctypes.addressof(out_iov) + i * _IOV_SIZE
            out_msgs[i].msg_hdr.msg_iovlen = 1
        in_at, out_at = ctypes.addressof(in_msgs), ctypes.addressof(out_msgs)
        ins = memoryview(in_msgs).cast("B")
        outs = memoryview(out_msgs).cast("B")
        out_iovs = memoryview(out_iov).cast("B")
        data = memoryview(bufs).cast("B")
        out_data = memoryview(replies).cast("B")
        name_view = memoryview(names).cast("B")
        u32 = struct.Struct("I")
        read_u32, write_u32 = u32.unpack_from, u32.pack_into
        write_ptr = struct.Struct("P").pack_into
        write_iov = struct.Struct("PN").pack_into
        pointer_value, void_p = ctypes.cast, ctypes.c_void_p
        handle, with_peer, replay, observe = self.handle, self.with_peer, self.replay, self.observe
        clock = time.perf_counter
        held: list[bytes] = [b""] * BATCH  # a reply too big to copy stays alive until sendmmsg is done
        while not self._stopping:
            n = recvmmsg(fd, in_at, BATCH, MSG_WAITFORONE, None)
            if n <= 0:
                err = ctypes.get_errno()
                if n < 0 and err not in (errno.EAGAIN, errno.EINTR, errno.EWOULDBLOCK):
                    if err == errno.EBADF:
                        return
                    log.warning("recvmmsg: %s", errno.errorcode.get(err, err))
                continue
            self.batches += 1
            self.datagrams += n
            k = hits = 0
            began = clock()
            missed = 0.0  # seconds in handle(), which times itself
            for i in range(n):
                at = i * _SIZE
                length = read_u32(ins, at + _LEN)[0]
                namelen = read_u32(ins, at + _NAMELEN)[0]
                write_u32(ins, at + _NAMELEN, NAMESIZE)  # the kernel overwrote it; room again
                if read_u32(ins, at + _FLAGS)[0] & MSG_TRUNC:
                    continue
                start = i * BUFSIZE
                tail = replay(bytes(data[start + 2:start + length])) if replay is not None and length > 12 else None
                if tail is not None:
                    hits += 1
                    size = len(tail) + 2
                    if size <= BUFSIZE:  # the query's ID, then the stored reply, into the slot
                        slot = k * BUFSIZE
                        out_data[slot:slot + 2] = data[start:start + 2]
                        out_data[slot + 2:slot + size] = tail
                        write_iov(out_iovs, k * _IOV_SIZE, replies_at + slot, size)
                    else:
                        reply = held[k] = bytes(data[start:start + 2]) + tail
                        write_iov(out_iovs, k * _IOV_SIZE, pointer_value(reply, void_p).value, size)
                else:
                    wire = bytes(data[start:start + length])
                    entered = clock()
                    try:
                        if with_peer:
                            reply = handle(wire, False, peer_address(name_view[i * NAMESIZE:i * NAMESIZE + namelen]))
                        else:
                            reply = handle(wire)
                    except Exception:  # the handler guards itself; this only keeps the batch going
                        self.handler_errors += 1
                        log.exception("handling a %d-byte datagram failed; dropped", length)
                        continue
                    finally:
                        missed += clock() - entered
                    if not reply:
                        continue
                    size = len(reply)
                    if size <= BUFSIZE:  # copied into its slot: no ctypes object per reply
                        slot = k * BUFSIZE
                        out_data[slot:slot + size] = reply
                        write_iov(out_iovs, k * _IOV_SIZE, replies_at + slot, size)
                    else:
                        held[k] = reply
                        write_iov(out_iovs, k * _IOV_SIZE, pointer_value(reply, void_p).value, size)
                at = k * _SIZE
                write_ptr(outs, at + _NAME, names_at + i * NAMESIZE)
                write_u32(outs, at + _NAMELEN, namelen)
                k += 1
            if hits and observe is not None:
                observe(clock() - began - missed, hits)
            sent = 0
            while sent < k:
                r = sendmmsg(fd, out_at + sent * _SIZE, k - sent, 0)
                if r <= 0:  # the message at ``sent`` failed (an ICMP error of an earlier send, say): skip it
                    self.send_errors += 1
                    sent += 1
                else:
                    sent += r
