"""The client namespaces' Unbound configuration (issue 16): stub zones to our responder only."""

from __future__ import annotations

from pathlib import Path

import pytest

from federation.launch import unboundconf


def conf(**options: str) -> str:
    return unboundconf.config(workdir=Path("/run/u"), interfaces=["127.0.0.1", "198.18.0.200"], outgoing="198.18.0.200",
                              responder="198.18.0.3@1053", domain="example.com", options=options)


def test_the_federation_zones_are_stubs_to_our_responder_and_the_root_goes_nowhere() -> None:
    text = conf()
    assert 'stub-zone:\n    name: "example.com."\n    stub-addr: 198.18.0.3@1053' in text
    assert 'stub-zone:\n    name: "clusterset.local."\n    stub-addr: 198.18.0.3@1053' in text
    assert f'name: "."\n    stub-addr: {unboundconf.CLOSED_ROOT}' in text
    assert 'domain-insecure: "example.com."' in text  # unsigned zones below a signed parent
    assert "interface: 198.18.0.200" in text and "outgoing-interface: 198.18.0.200" in text
    assert "port: 53" in text


def test_resolver_options_are_known_keys_only() -> None:
    options = unboundconf.parse_options(["cache-min-ttl=30", "serve-expired = yes"])
    assert options == {"cache-min-ttl": "30", "serve-expired": "yes"}
    assert "    cache-min-ttl: 30\n" in conf(**options) and "    serve-expired: yes\n" in conf(**options)
    for bad in ("cache-min-ttl", "chroot=/", "prefetch="):
        with pytest.raises(unboundconf.ResolverOptionError, match="KEY=VALUE"):
            unboundconf.parse_options([bad])
