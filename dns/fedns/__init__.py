"""fedns: the federation's authoritative DNS responder (``ubernetes dns``).

It lists and watches the federation's ``DNSRecord`` objects and answers for the
federation's domain and ``clusterset.local.`` over UDP and TCP. The layers, lowest first:

- :mod:`fedns.records`: DNSRecord specs checked and merged into record sets (pure);
- :mod:`fedns.zone`: the zones and how a question resolves in them (pure);
- :mod:`fedns.table`: every answer rendered ahead of time as wire bytes (pure);
- :mod:`fedns.handler`: one message in, one reply out: the protocol rules (pure);
- :mod:`fedns.wire`: a query's structure read by hand, for replies to broken ones (pure);
- :mod:`fedns.view`: the last-known records and the table served from them;
- :mod:`fedns.server`: UDP and TCP sockets; :mod:`fedns.sync`: list and watch;
  :mod:`fedns.status`: the HTTP status page;
- :mod:`fedns.topology`: answers ordered nearest the client first (pure);
- :mod:`fedns.transfer`: AXFR/IXFR and the zone history; :mod:`fedns.notify`: NOTIFY;
- :mod:`fedns.secondary`: Knot as our secondary; :mod:`fedns.publish`: RFC 2136 publishing;
- :mod:`fedns.app`: all of it as one :class:`Responder`; :mod:`fedns.command`: the CLI.

The directory ``dns/`` is not a package: ``dns`` is dnspython's import name.
"""

from fedns.app import Responder, Settings, serve
from fedns.handler import Handler
from fedns.records import RecordSet, collect, parse_spec
from fedns.table import AnswerTable, build_table
from fedns.view import ZoneView
from fedns.zone import Resolution, Zone, ZoneConfig

__all__ = [
    "AnswerTable",
    "Handler",
    "RecordSet",
    "Resolution",
    "Responder",
    "Settings",
    "Zone",
    "ZoneConfig",
    "ZoneView",
    "build_table",
    "collect",
    "parse_spec",
    "serve",
]
