"""Unbound's configuration for a client namespace of ``up --netns`` (issue 16), as text.

Real clients resolve through a caching resolver, so every client namespace runs Unbound
(Debian's ``unbound``) with stub zones for the federation's domain and ``clusterset.local``
pointing at our responder, and that namespace's ``resolv.conf`` names it: glibc's
``getaddrinfo`` in the namespace (``ip netns exec``) asks Unbound, which caches our answers
for their TTL, as a real client's resolver would. The settings follow docs/dns.md ("Behind
a caching resolver"); the root is a stub at a closed loopback port, so nothing is ever
asked beyond the federation's zones and no packet leaves the namespace. Options a scenario
varies (``cache-min-ttl``, ``serve-expired``, ``prefetch``) come in as ``options``.
"""

from __future__ import annotations

from pathlib import Path

# A port nothing listens on inside the client namespace: the "root" never answers.
CLOSED_ROOT = "127.0.0.1@9"
RESOLVER_OPTIONS = ("cache-min-ttl", "cache-max-ttl", "serve-expired", "serve-expired-ttl", "prefetch",
                    "cache-max-negative-ttl", "infra-host-ttl")


class ResolverOptionError(ValueError):
    pass


def parse_options(pairs: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``KEY=VALUE`` flags into Unbound ``server:`` options, only the known ones."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or key not in RESOLVER_OPTIONS or not value.strip():
            raise ResolverOptionError(f"--resolver-option {pair!r}: must be KEY=VALUE with KEY one of "
                                      f"{', '.join(RESOLVER_OPTIONS)}")
        out[key] = value.strip()
    return out


def config(*, workdir: Path, interfaces: list[str], outgoing: str, responder: str, domain: str,
           options: dict[str, str] | None = None) -> str:
    """``unbound.conf`` for one client namespace; ``responder`` is ``ADDR@PORT``."""
    zones = [domain.strip(".") + ".", "clusterset.local."]
    lines = [
        "server:",
        *(f"    interface: {i}" for i in interfaces),
        "    port: 53",
        "    do-ip6: no",
        "    do-daemonize: no",
        '    chroot: ""',
        '    username: ""',
        f'    directory: "{workdir}"',
        f'    pidfile: "{workdir}/unbound.pid"',
        "    use-syslog: no",
        f'    logfile: "{workdir}/unbound.log"',
        "    verbosity: 1",
        "    access-control: 127.0.0.0/8 allow",
        "    access-control: 198.18.0.0/15 allow",
        f"    outgoing-interface: {outgoing}",
        "    do-not-query-localhost: no",
        "    use-caps-for-id: yes",
        *(f'    domain-insecure: "{z}"' for z in zones),
        *(f"    {k}: {v}" for k, v in sorted((options or {}).items())),
        'stub-zone:\n    name: "."',
        f"    stub-addr: {CLOSED_ROOT}",
    ]
    for z in zones:
        lines += ["stub-zone:", f'    name: "{z}"', f"    stub-addr: {responder}"]
    return "\n".join(lines) + "\n"
