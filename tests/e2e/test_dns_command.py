"""``ubernetes dns`` and ``python -m fedns`` as real processes: flags, logs, signals."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest
import yaml

from apimachinery import eventloop
from federation.launch.localfed import free_port

G = "web.default.myfed.svc.example.com."
SERVING = re.compile(r"serving DNS on 127\.0\.0\.1:(\d+) \(udp\+tcp\)")


def _ubernetes() -> str | None:
    exe = Path(sys.executable).with_name("ubernetes")
    return str(exe) if exe.exists() else shutil.which("ubernetes")


def start(argv: list[str], env: dict[str, str] | None = None) -> tuple[subprocess.Popen, int, list[str]]:
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines: list[str] = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            if proc.poll() is not None:
                raise AssertionError("exited early:\n" + "".join(lines))
            continue
        lines.append(line)
        m = SERVING.search(line)
        if m:
            return proc, int(m.group(1)), lines
    proc.kill()
    raise AssertionError("never said where it serves:\n" + "".join(lines))


def _status(port: int) -> dict:
    """GET /status; it starts just after the DNS listeners, so give it a few seconds."""
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=3) as resp:
                return json.load(resp)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.fixture()
def records_file(tmp_path: Path) -> Path:
    path = tmp_path / "records.yaml"
    path.write_text(
        yaml.safe_dump_all(
            [
                {
                    "apiVersion": "federation/v1beta1",
                    "kind": "DNSRecord",
                    "metadata": {"name": "a.web"},
                    "spec": {"name": G, "type": "A", "ttl": 5, "targets": ["127.10.1.1"]},
                },
                {"name": "svc.example.net.", "type": "A", "ttl": 5, "targets": ["127.0.0.3"]},
            ]
        )
    )
    return path


@pytest.mark.parametrize(
    "how,sig,loop",
    # the default install's loop, and the stock one a platform without uvloop runs (issue 12)
    [("module", signal.SIGTERM, "asyncio"), ("ubernetes", signal.SIGINT, None)],
)
def test_serves_and_stops_cleanly(records_file, how, sig, loop):
    if how == "ubernetes":
        exe = _ubernetes()
        if exe is None:
            pytest.skip("the ubernetes console script is not installed")
        argv = [exe, "dns"]
    else:
        argv = [sys.executable, "-m", "fedns"]
    status_port = free_port()  # the status says which event loop answers
    argv += [
        "--listen", "127.0.0.1:0",
        "--federation", "http://127.0.0.1:9",  # nothing listens there: serve the file's records anyway
        "--records", str(records_file),
        "--domain", "example.net",
        "--zone", "example.com",
        "--negative-ttl", "9",
        "--tcp-idle-timeout", "3",
        "--max-tcp-connections", "8",
        "--status-listen", f"127.0.0.1:{status_port}",
    ]
    env = dict(os.environ)
    env.pop(eventloop.ENV, None)
    if loop:
        env[eventloop.ENV] = loop
    proc, port, lines = start(argv, env=env)
    try:
        status = _status(status_port)
        uvloop_installed = importlib.util.find_spec("uvloop") is not None
        assert status["eventLoop"] == (loop or ("uvloop" if uvloop_installed else "asyncio"))
        reply = dns.query.udp(dns.message.make_query(G, "A"), "127.0.0.1", port=port, timeout=3)
        assert [r.to_text() for r in reply.answer[0]] == ["127.10.1.1"]
        reply = dns.query.tcp(dns.message.make_query("svc.example.net.", "A"), "127.0.0.1", port=port, timeout=3)
        assert [r.to_text() for r in reply.answer[0]] == ["127.0.0.3"]
        nx = dns.query.udp(dns.message.make_query("nope.example.net.", "A"), "127.0.0.1", port=port, timeout=3)
        assert nx.rcode() == dns.rcode.NXDOMAIN and nx.authority[0][0].minimum == 9
        refused = dns.query.udp(dns.message.make_query("x.clusterset.local.", "A"), "127.0.0.1", port=port, timeout=3)
        assert refused.rcode() == dns.rcode.REFUSED  # --zone replaced the default clusterset.local
    finally:
        proc.send_signal(sig)
        try:
            rc = proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    rest = proc.stderr.read()
    assert rc == 0, "".join(lines) + rest
    assert "Traceback" not in rest
    assert "stopping" in rest


def test_bad_flags_are_usage_errors():
    out = subprocess.run([sys.executable, "-m", "fedns", "--listen", "127.0.0.1:99999"], capture_output=True, text=True, timeout=20)
    assert out.returncode == 2 and "port must be a number between 0 and 65535" in out.stderr
    out = subprocess.run([sys.executable, "-m", "fedns", "--ns-address", "nope"], capture_output=True, text=True, timeout=20)
    assert out.returncode == 2 and "invalid zone settings" in out.stderr


def test_port_in_use_is_a_clear_error():
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        out = subprocess.run(
            [sys.executable, "-m", "fedns", "--listen", f"127.0.0.1:{port}", "--federation", ""],
            capture_output=True,
            text=True,
            timeout=20,
        )
    assert out.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in out.stderr
    assert "Traceback" not in out.stderr
