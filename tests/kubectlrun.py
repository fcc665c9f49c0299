"""The real kubectl from asyncio tests: one subprocess per command, against the federation
or one of a LocalFederation's members (test_federate_any_kind, test_batch_kinds)."""

from __future__ import annotations

import asyncio
import subprocess

import pytest


async def run(*cmd: str, timeout: float = 30) -> subprocess.CompletedProcess:
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return subprocess.CompletedProcess(cmd, proc.returncode, out.decode(), err.decode())


async def kubectl(fed, *args: str, cluster: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """``kubectl --server`` the federation's API (or ``cluster``'s); a failure fails the test
    with kubectl's output unless ``check`` is False."""
    server = fed.cluster_url(cluster) if cluster else fed.api_url
    result = await run("kubectl", "--server", server, *args)
    if check and result.returncode != 0:
        pytest.fail(f"kubectl {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result
