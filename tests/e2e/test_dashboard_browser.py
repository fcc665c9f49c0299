"""The dashboard in a real browser (issue 17): headless Chromium (Debian's package) driven by
Playwright against a real ``ubernetes up`` with tokens, TLS and the launcher's fault API.

Log in with the admin token, see three clusters Ready, press crash on one, and see within a
few seconds its shard voted down and its zone name answered by a CNAME; a screenshot is saved
(``UBERNETES_DASHBOARD_SHOT`` names where, for docs/img/dashboard.png).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from clusters.testing import free_port
from tests.conftest import random_pool, stop_process

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install .[test])")
if not os.path.exists(CHROMIUM):
    pytest.skip("no Chromium: install Debian's chromium package (.ci/run does)", allow_module_level=True)

CLUSTERS = ("aws-us-east-1a", "aws-us-east-1b", "gcp-europe-west1-b")
CRASHED = "aws-us-east-1a"


@pytest.fixture(scope="module")
def up(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dashboard")
    topo = tmp / "topology.yaml"
    topo.write_text(yaml.safe_dump({
        "clusters": [
            {"name": n, "provider": n.split("-")[0], "region": "europe-west1" if n.startswith("gcp") else "us-east-1",
             "zones": [n.split("-", 1)[1] if n.startswith("gcp") else n[4:]], "lbPool": random_pool(i)}
            for i, n in enumerate(CLUSTERS)],
        "services": [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
                      "spec": {"type": "LoadBalancer", "selector": {"app": "web"},
                               "ports": [{"name": "http", "port": 8000, "protocol": "TCP"}]}}],
    }))
    api, dns, control, base = free_port(), free_port(), free_port(), free_port()
    log_path = tmp / "up.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "federation", "up", "-f", str(topo), "--api-port", str(api), "--dns-port", str(dns),
         "--cluster-base-port", str(base), "--control-listen", f"127.0.0.1:{control}", "--no-color",
         "--store", str(tmp / "fed.db"), "--kubeconfig", ""],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while "dashboard " not in log_path.read_text() or "tokens " not in log_path.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.2)
        text = log_path.read_text()
        url = re.search(r"dashboard\s+(\S+)", text).group(1)
        tokens = Path(re.search(r"tokens\s+(\S+)", text).group(1))
        admin = tokens.read_text().splitlines()[0].split(",")[0]
        print(next(line for line in text.splitlines() if "  dashboard " in line))
        yield {"url": url, "admin": admin, "log": log_path}
    finally:
        stop_process(proc)
        log.close()


def test_log_in_see_clusters_crash_one_and_watch_it_fail_over(up, tmp_path):
    shot = Path(os.environ.get("UBERNETES_DASHBOARD_SHOT") or tmp_path / "dashboard.png")
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_context(ignore_https_errors=True, viewport={"width": 1400, "height": 1000}).new_page()
            page.goto(up["url"])
            # the page is public, its data is not: a wrong token is refused
            page.fill("#token", "not-a-token")
            page.click("#login-button")
            playwright_api.expect(page.locator("#login-error")).to_contain_text("401")
            page.fill("#token", up["admin"])
            page.click("#login-button")
            ready = page.locator(".cluster.Ready")
            playwright_api.expect(ready).to_have_count(3, timeout=20_000)
            zone = page.locator('table.dns tr[data-level="zone"][data-where="us-east-1a"]')
            playwright_api.expect(zone.locator(".cname-target")).to_have_text("", timeout=10_000)
            playwright_api.expect(zone).to_contain_text("NOERROR")
            page.click(f'button[data-action="crash"][data-cluster="{CRASHED}"]')
            started = time.monotonic()
            shard = page.locator(f'table.shards tr[data-shard="{CRASHED}"] .standing')
            playwright_api.expect(shard).to_have_text("voted down", timeout=8_000)
            voted = time.monotonic() - started
            # the zone has no healthy shard left: it is answered by a CNAME to the region
            playwright_api.expect(zone.locator(".cname-target")).to_have_text(re.compile(r"us-east-1\.example\.com\.$"),
                                                                             timeout=8_000)
            cname = time.monotonic() - started
            playwright_api.expect(page.locator(f'.cluster[data-cluster="{CRASHED}"] .phase')).to_have_text(
                "Offline", timeout=10_000)
            playwright_api.expect(page.locator("#timeline")).to_contain_text(f"ClusterOffline: cluster {CRASHED}")
            # the failover history: the crash's incident, step by step, from its FailoverRecords
            incident = page.locator(f'#incidents .incident[data-incident^="{CRASHED}.down"]')
            playwright_api.expect(incident.locator('tr.step[data-step="Fault"]')).to_have_count(1, timeout=10_000)
            playwright_api.expect(incident.locator('tr.step[data-step="Verdict"]').first).to_contain_text(CRASHED)
            page.screenshot(path=str(shot), full_page=True)
            print(f"shard voted down {voted:.2f} s and zone CNAME {cname:.2f} s after the click; screenshot {shot}")
            assert shot.stat().st_size > 10_000
        finally:
            browser.close()
