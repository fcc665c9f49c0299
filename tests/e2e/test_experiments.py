"""Every shipped scenario, in its fast form, against real federations; and a fast compare.

Each scenario runs as its own ``ubernetes experiment run --fast`` process (a fresh
federation of real processes on free ports and fresh LB pools), a few at a time, and the
test for a scenario checks the expectations the scenario states, from its summary.json,
plus the files a run must leave behind. The comparison runs at a time scale of 0.05.
Scenarios on etcd-HA are left to test_control_plane_experiment.py (they need etcd).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from federation.experiments.eventsfile import parse_bytes
from federation.experiments.scenario import parse_scenario

ROOT = Path(__file__).resolve().parents[2]
# Scenarios on etcd-HA (controlPlane: etcd-ha) need etcd: test_control_plane_experiment.py runs them.
SCENARIOS = sorted(p for p in (ROOT / "experiments").glob("*.yaml")
                   if parse_scenario(p.read_text(), source=p.name).control_plane == "sqlite")
PARALLEL = 3
pytestmark = pytest.mark.timeout(400)


async def _run(args: list[str], log: Path) -> int:
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "federation", *args, stdout=out, stderr=out,
                                                    stdin=asyncio.subprocess.DEVNULL)
        try:
            return await asyncio.wait_for(proc.wait(), 240)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            return -9


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, Path, Path]]:
    base = tmp_path_factory.mktemp("experiments")
    jobs = {s.stem: (["experiment", "run", str(s), "--fast", "--no-progress", "--out", str(base / s.stem)], base / s.stem)
            for s in SCENARIOS}
    jobs["compare"] = (["experiment", "compare", str(ROOT / "experiments" / "cluster-crash.yaml"), "--time-scale", "0.05",
                        "--jobs", "3", "--no-progress", "--out", str(base / "compare")], base / "compare")

    async def main() -> dict[str, tuple[int, Path, Path]]:
        gate = asyncio.Semaphore(PARALLEL)

        async def one(name: str) -> tuple[int, Path, Path]:
            args, out = jobs[name]
            async with gate:
                log = base / f"{name}.log"
                return await _run(args, log), out, log

        # the compare (three federations at once) first, so it never runs last and alone
        names = ["compare"] + [n for n in jobs if n != "compare"]
        done = await asyncio.gather(*(one(n) for n in names))
        return dict(zip(names, done))

    return asyncio.run(main())


def test_eight_scenarios_are_shipped():
    assert {s.stem for s in SCENARIOS} >= {
        "cluster-crash", "zone-outage", "region-outage", "control-plane-partition", "data-plane-blackhole",
        "flapping-cluster", "control-plane-outage", "endpoint-degradation",
    }


@pytest.mark.parametrize("scenario", [s.stem for s in SCENARIOS])
def test_scenario_meets_its_expectations(results, scenario):
    code, out, log = results[scenario]
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else None
    assert summary is not None, f"no summary.json; log:\n{log.read_text()[-3000:]}"
    expectations = summary["aggregate"]["expectations"]
    assert expectations, "the scenario states no expectation"
    failed = {k: v for k, v in expectations.items() if not v["ok"]}
    assert not failed, f"{failed}\n{(out / 'report.md').read_text()}"
    assert code == 0, log.read_text()[-3000:]
    read = parse_bytes((out / "events.jsonl").read_bytes())  # the viewer's reader: no line may be bad
    assert not read.truncated and not read.warnings, read.warnings
    events = read.events
    kinds = {e["kind"] for e in events}
    assert {"meta", "shards", "fault", "dns", "client", "end"} <= kinds
    assert (out / "report.md").read_text().startswith("# ")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    assert (out / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_crash_figures_are_real(results):
    """The crash converges (a number, not 'never'), clients failed only briefly, nothing stale."""
    _, out, _ = results["cluster-crash"]
    fault = json.loads((out / "summary.json").read_text())["runs"][0]["faults"][0]
    assert fault["convergenceLast"] is not None and fault["convergenceFirst"] is not None
    assert fault["stale"] == 0
    assert fault["detection"] is not None and fault["detection"] <= fault["convergenceFirst"] + 0.5
    assert fault["recovery"] is not None
    assert fault["clientRequests"] > fault["clientFailures"]


def test_compare_puts_three_profiles_side_by_side(results):
    code, out, log = results["compare"]
    assert code == 0, log.read_text()[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) == {"federation-v1", "kubefed", "ubernetes"}
    report = (out / "report.md").read_text()
    assert "| figure | federation-v1 | kubefed | ubernetes |" in report
    ours = summary["ubernetes"]["runs"][0]["faults"][0]
    v1 = summary["federation-v1"]["runs"][0]["faults"][0]
    kubefed = summary["kubefed"]["runs"][0]["faults"][0]
    assert ours["convergenceLast"] is not None and ours["stale"] == 0
    # Federation v1 removes the crashed cluster's records once its (scaled) probe fails.
    assert v1["converged"] is True
    # KubeFed keeps an Offline cluster's records: the crashed shard is never removed.
    assert kubefed["converged"] is False
