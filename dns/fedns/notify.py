"""NOTIFY (RFC 1996): tell secondaries at once that a zone changed.

Without it a secondary polls the SOA every ``refresh`` seconds (60 here); with it the
secondary asks for the new serial as soon as we have it, usually by IXFR, and a change
shows on the secondary within a second. On every new serial, each configured secondary
(``--notify HOST:PORT``, repeatable) is sent a NOTIFY for each zone over UDP, with the
new SOA in the answer section, and sent again with backoff (0.25 s, doubling) until it
acknowledges or ``retries`` resends have gone unanswered. A newer serial replaces any
NOTIFY still being retried for the same zone and secondary.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Iterable

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from fedns.table import AnswerTable

log = logging.getLogger("fedns.notify")


class Notifier:
    def __init__(
        self,
        targets: Iterable[tuple[str, int]],
        *,
        retries: int = 5,
        first_timeout: float = 0.25,
    ) -> None:
        self.targets = list(targets)
        self.retries = retries
        self.first_timeout = first_timeout
        self.sent = 0
        self.acked = 0
        self.failed = 0
        self.last_serial: int | None = None
        self._tasks: dict[tuple[str, int, str], asyncio.Task] = {}

    def changed(self, table: AnswerTable) -> None:
        """A view listener: NOTIFY every secondary of every zone's new SOA."""
        if not self.targets or table.serial == self.last_serial:
            return
        self.last_serial = table.serial
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        for soa in table.zone.soas.values():
            for host, port in self.targets:
                key = (host, port, soa.name)
                old = self._tasks.get(key)
                if old is not None and not old.done():
                    old.cancel()
                self._tasks[key] = loop.create_task(self._notify(host, port, soa.name, soa.ttl, soa.rdatas[0]))

    def message(self, zone: str, ttl: int, soa: str) -> dns.message.Message:
        msg = dns.message.make_query(zone, dns.rdatatype.SOA)
        msg.flags = dns.flags.AA  # and no RD
        msg.set_opcode(dns.opcode.NOTIFY)
        msg.answer.append(dns.rrset.from_text(zone, ttl, dns.rdataclass.IN, dns.rdatatype.SOA, soa))
        return msg

    async def _notify(self, host: str, port: int, zone: str, ttl: int, soa: str) -> None:
        timeout = self.first_timeout
        for attempt in range(self.retries + 1):
            msg = self.message(zone, ttl, soa)
            self.sent += 1
            try:
                reply = await dns.asyncquery.udp(msg, host, port=port, timeout=timeout)
            except (dns.exception.Timeout, OSError, dns.exception.DNSException) as err:
                log.debug("NOTIFY %s to %s:%d: %s (attempt %d)", zone, host, port, err or "timeout", attempt + 1)
                if not isinstance(err, dns.exception.Timeout):
                    await asyncio.sleep(timeout)  # refused at once: wait as a timeout would
                timeout = min(timeout * 2, 4.0)
                continue
            self.acked += 1
            log.info("NOTIFY %s serial %s to %s:%d: %s", zone, soa.split()[2], host, port, reply.rcode())
            return
        self.failed += 1
        log.warning("NOTIFY %s to %s:%d: no answer after %d tries", zone, host, port, self.retries + 1)

    async def close(self) -> None:
        tasks = [t for t in self._tasks.values() if not t.done()]
        for t in tasks:
            t.cancel()
        for t in tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):
                pass
        self._tasks.clear()
