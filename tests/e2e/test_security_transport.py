"""Bearer tokens never cross plain HTTP to another host (issue 19).

The rule lives in :mod:`apimachinery.transport`; every client applies it: the member's
agent (refused at start, before any connection), the CLI, and the async client the
responder and the controllers use. Nothing here sends traffic off the machine: the refusals
happen before a socket is opened.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from apimachinery.transport import InsecureTokenTransport, check_token_transport, is_loopback_host
from apimachinery.client import APIClient


@pytest.mark.parametrize("url", ["https://fed.example:8080", "http://127.0.0.1:8080", "http://127.9.9.9",
                                 "http://[::1]:8080", "http://localhost:8080", "127.0.0.1:8080"])
def test_allowed_transports(url):
    check_token_transport(url, "secret")


@pytest.mark.parametrize("url", ["http://fed.example:8080", "http://10.0.0.1", "fed.example:8080", "http://[2001:db8::1]"])
def test_plain_http_off_host_is_refused_unless_allowed(url):
    with pytest.raises(InsecureTokenTransport, match="plain HTTP"):
        check_token_transport(url, "secret")
    check_token_transport(url, "secret", allow_http=True)
    check_token_transport(url, None)  # no token, nothing to protect


def test_loopback_names():
    assert is_loopback_host("127.0.0.2") and is_loopback_host("[::1]") and is_loopback_host("LOCALHOST")
    assert not is_loopback_host("10.0.0.1") and not is_loopback_host("example.com")


async def test_async_client_refuses_before_connecting():
    client = APIClient("http://10.255.255.1:1", token="secret", timeout=1)
    started = time.monotonic()
    with pytest.raises(InsecureTokenTransport):
        await client.get("/healthz")
    assert time.monotonic() - started < 0.5  # no connection attempt to wait for
    await client.close()


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "federation", *args], capture_output=True, text=True, timeout=30)


def test_member_refuses_to_join_over_plain_http_off_host():
    done = _run("cluster", "--name", "c9", "--region", "r", "--zones", "z", "--provider", "aws",
                "--listen", "127.0.0.1:0", "--federation", "http://10.255.255.1:1",
                "--bootstrap-token", "abcdef.0123456789abcdef")
    assert done.returncode != 0
    assert "refusing to send a bearer token over plain HTTP to http://10.255.255.1:1" in done.stderr
    assert "Traceback" not in done.stderr


def test_cli_refuses_to_send_its_token_over_plain_http_off_host():
    done = _run("--server", "http://10.255.255.1:1", "--token", "secret", "get", "clusters")
    assert done.returncode != 0 and "refusing to send a bearer token over plain HTTP" in done.stderr
