"""Helpers for tests that run member clusters as real processes on ephemeral ports.

Integration tests use real processes and real sockets; these helpers keep that cheap:
a free port, a random LB pool in 127.0.0.0/8 (so parallel test runs do not collide), and a
:class:`Process` that captures stderr to a file (a pipe nobody reads would block the child)
and is always killed at the end.
"""

from __future__ import annotations

import json
import ssl
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from typing import Any


def free_port(host: str = "127.0.0.1") -> int:
    """A free TCP port outside the ephemeral range (see federation.launch.localfed.free_port)."""
    from federation.launch.localfed import free_port as pick

    return pick(host)


def random_lb_pool() -> str:
    """A /28 somewhere in 127.20.0.0 .. 127.250.255.0: unlikely to be used by anything else."""
    return f"127.{random.randint(20, 250)}.{random.randint(0, 255)}.0/28"


def http(method: str, url: str, body: Any = None, *, timeout: float = 5.0, content_type: str = "application/json",
         ca_file: str | None = None, headers: dict[str, str] | None = None) -> tuple[int, Any, dict[str, str]]:
    """One request; returns (status, parsed JSON or text, headers). Never raises on 4xx/5xx.
    ``ca_file``: verify an HTTPS server against this CA; ``headers``: more request headers."""
    data = None
    if body is not None:
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        data = data.encode() if isinstance(data, str) else data
    sent = {"Content-Type": content_type} if data is not None else {}
    req = urllib.request.Request(url, data=data, method=method, headers={**sent, **(headers or {})})
    try:
        context = ssl.create_default_context(cafile=ca_file) if ca_file else None
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
            status, raw, headers = resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as err:
        status, raw, headers = err.code, err.read(), dict(err.headers)
    text = raw.decode("utf-8", "replace")
    try:
        return status, json.loads(text), headers
    except ValueError:
        return status, text, headers


def wait_until(predicate, *, timeout: float = 10.0, interval: float = 0.05, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except AssertionError:
            raise
        except Exception as exc:  # noqa: BLE001 - keep polling; report the last one
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}" + (f" (last error: {last_exc!r})" if last_exc else ""))


class Process:
    """A child process with its stderr in a temporary file."""

    def __init__(self, args: list[str], *, env: dict[str, str] | None = None) -> None:
        self.args = args
        self._log = tempfile.NamedTemporaryFile(prefix="ubernetes-test-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def logs(self) -> str:
        with open(self._log.name, encoding="utf-8", errors="replace") as f:
            return f.read()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            self.proc.send_signal(sig)

    def terminate(self, timeout: float = 5.0) -> int:
        self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()
        self.proc.wait()

    def close(self) -> None:
        self.kill()
        self._log.close()
        try:
            os.unlink(self._log.name)
        except OSError:
            pass


class ClusterProcess(Process):
    """``python -m clusters ...`` on a free port with a random LB pool."""

    def __init__(
        self,
        *,
        name: str = "test-cluster",
        region: str = "us-east-1",
        zones: str = "us-east-1a",
        provider: str = "aws",
        port: int | None = None,
        lb_pool: str | None = None,
        federation: str | None = None,
        extra: list[str] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.lb_pool = lb_pool or random_lb_pool()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [
            sys.executable, "-m", "clusters",
            "--name", name, "--region", region, "--zones", zones, "--provider", provider,
            "--listen", f"127.0.0.1:{self.port}", "--lb-pool", self.lb_pool,
        ]  # fmt: skip
        if federation:
            args += ["--federation", federation]
        super().__init__(args + list(extra or []))

    def wait_ready(self, timeout: float = 15.0) -> "ClusterProcess":
        def up() -> bool:
            if not self.alive():
                raise AssertionError(f"cluster exited early with {self.proc.returncode}:\n{self.logs()}")
            try:
                return http("GET", self.url + "/healthz", timeout=1)[0] == 200
            except OSError:
                return False

        wait_until(up, timeout=timeout, what=f"cluster API at {self.url}")
        return self
