"""The experiment-report viewer in a real browser (issue 17): a real short experiment run
(``ubernetes experiment run --fast``: a federation of real processes, a crash, a heal), a
real federation API server with ``--reports-dir`` on its output and tokens on, and headless
Chromium (Debian's package) driven by Playwright, as in test_dashboard_browser.py.

Log in, open the run's report, and see its incident timeline: the steps of the crash drawn
from events.jsonl (fault injected, DNS changed, clients recovered when clients failed), at
the times summary.json gives, beside the run's own PNG; then upload the same events file
through the page's form and see it opened. A screenshot is saved
(``UBERNETES_REPORT_SHOT`` names where, for docs/img/report-viewer.png).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import apiserver

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install .[test])")
if not os.path.exists(CHROMIUM):
    pytest.skip("no Chromium: install Debian's chromium package (.ci/run does)", allow_module_level=True)
pytestmark = pytest.mark.timeout(300)
ADMIN = "report-viewer-admin-token"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A real fast cluster-crash run under reports/, and a token file for the API server."""
    tmp = tmp_path_factory.mktemp("viewer")
    out = tmp / "reports" / "cluster-crash"
    done = subprocess.run([sys.executable, "-m", "federation", "experiment", "run", str(ROOT / "experiments" / "cluster-crash.yaml"),
                           "--fast", "--no-progress", "--out", str(out)], capture_output=True, text=True, timeout=240)
    assert (out / "events.jsonl").exists(), done.stdout[-2000:] + done.stderr[-3000:]
    tokens = tmp / "tokens.csv"
    tokens.write_text(f'{ADMIN},admin,1,"system:masters"\n')
    return {"tmp": tmp, "reports": tmp / "reports", "out": out, "tokens": tokens,
            "fault": json.loads((out / "summary.json").read_text())["runs"][0]["faults"][0]}


def test_open_a_real_runs_report_and_see_its_incident_timeline(run, tmp_path):
    shot = Path(os.environ.get("UBERNETES_REPORT_SHOT") or tmp_path / "report-viewer.png")
    fault = run["fault"]
    with apiserver(tmp_path, "--no-controllers", "--token-file", str(run["tokens"]), "--reports-dir", str(run["reports"])) as url, \
            playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_context(viewport={"width": 1600, "height": 1100}).new_page()
            expect = playwright_api.expect
            page.goto(f"{url}/ui/")
            page.fill("#token", ADMIN)
            page.click("#login-button")
            row = page.locator('tr.report[data-report="cluster-crash"]')
            expect(row).to_contain_text("cluster-crash", timeout=10_000)
            expect(row).to_contain_text("met")  # summary.json's expectations
            row.locator("button.open-report").click()
            expect(page.locator("#report-title")).to_have_text("cluster-crash: cluster-crash", timeout=10_000)
            incident = page.locator('.incident[data-incident="crash"]')
            steps = incident.locator("tr.step")
            expect(steps.first).to_have_attribute("data-step", "fault")
            dns = incident.locator('tr.step[data-step="dns"]')
            expect(dns).to_contain_text("DNS changed")
            # the step sits where summary.json's figure puts it: fault + convergenceFirst
            expect(dns.locator("td").nth(3)).to_have_text(f"+{fault['convergenceFirst']:.2f} s")
            clients = incident.locator('tr.step[data-step="clients"]')
            if fault["clientFailures"]:
                expect(clients).to_contain_text("clients recovered")
                expect(clients).to_contain_text(f"first good request after {fault['clientFailures']} failed")
            else:
                expect(clients).to_have_count(0)
            expect(incident.locator('tr.step[data-step="heal"]')).to_contain_text("healed")
            # the drawing: a lane per cluster, per watched name and the clients; the crashed cluster went Offline
            svg = page.locator("#report-svg")
            expect(svg.locator("text.lane-label")).to_have_count(3 + 3 + 1)
            expect(svg.locator("rect.segment.Offline").first).to_be_attached()
            expect(svg.locator('line.step-mark[data-step="dns"]')).to_have_count(1)
            picture = page.locator("#report-picture")
            expect(picture).to_be_visible()
            assert page.evaluate("document.getElementById('report-picture').naturalWidth") > 100
            # interactive: zoom on the incident, and the drawing redraws over its window
            incident.locator("button.zoom").click()
            expect(svg).not_to_have_attribute("data-x0", "0")
            incident.locator("button.zoom").click()  # and back to the whole run for the picture
            expect(svg).to_have_attribute("data-x0", "0")
            page.locator("#reports-section").screenshot(path=str(shot))
            # upload the same events file through the page: stored under uploads/ and opened
            page.fill("#upload-name", "again")
            page.set_input_files("#upload-events", str(run["out"] / "events.jsonl"))
            page.click('#upload-form button[type="submit"]')
            expect(page.locator("#upload-status")).to_have_text("stored as uploads/again", timeout=10_000)
            expect(page.locator("#report-title")).to_have_text(re.compile(r"^uploads/again: cluster-crash$"))
            expect(page.locator('tr.report[data-report="uploads/again"]')).to_have_count(1)
            print(f"crash: DNS changed +{fault['convergenceFirst']} s, {fault['clientFailures']} client failures; screenshot {shot}")
            assert shot.stat().st_size > 10_000
        finally:
            browser.close()
    assert (run["reports"] / "uploads" / "again" / "events.jsonl").read_bytes() == (run["out"] / "events.jsonl").read_bytes()
