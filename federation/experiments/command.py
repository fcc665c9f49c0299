"""``ubernetes experiment run|compare``: run scenarios and write their reports."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import click

from apimachinery import eventloop
from federation.experiments import analysis, plot, report
from federation.experiments.runner import run_once
from federation.experiments.scenario import (CONTROL_PLANES, PROFILES, Scenario, ScenarioError, control_plane_form,
                                             fast_form, parse_scenario, profile_form)


def load(path: str, *, fast: bool) -> Scenario:
    try:
        scenario = parse_scenario(Path(path).read_text(), source=path)
        return fast_form(scenario) if fast else scenario
    except ScenarioError as err:
        raise click.ClickException(str(err)) from None


def _picture(events: list[dict[str, Any]], path: Path, title: str) -> str | None:
    if not plot.available():
        click.echo("matplotlib is not installed (pip install 'ubernetes[plot]'): no timeline.png", err=True)
        return None
    plot.plot_timeline(events, path, title=title)
    return path.name


async def run_scenario(scenario: Scenario, out: Path, *, repeat: int, progress: bool) -> dict[str, Any]:
    """Run ``repeat`` times; write every run's files and the aggregated ones; return the summary."""
    out.mkdir(parents=True, exist_ok=True)
    runs, all_events = [], []
    for i in range(repeat):
        where = out if repeat == 1 else out / f"run-{i + 1}"
        label = scenario.name if repeat == 1 else f"{scenario.name} {i + 1}/{repeat}"
        events = await run_once(scenario, where, progress=progress, label=label)
        summary = analysis.analyse(events)
        if repeat > 1:
            report.write_summary(where, summary)
        runs.append(summary)
        all_events.append(events)
    agg = analysis.aggregate(runs)
    met = analysis.targets(agg, scenario.targets)
    picture = _picture(all_events[0], out / "timeline.png", scenario.name)
    result = {"scenario": scenario.name, "aggregate": agg, "targets": met, "runs": runs}
    report.write_summary(out, result)
    (out / "report.md").write_text(report.render(scenario, agg, runs, met, picture))
    result["events"] = all_events
    return result


@click.group("experiment")
def experiment() -> None:
    """Failover experiments: run a scenario against a fresh local federation (docs/experiments.md)."""


@experiment.command("run")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--repeat", type=click.IntRange(1, 100), default=1, show_default=True, help="Runs, each on a fresh federation.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Output directory [default: experiments-out/<scenario>-<time>].")
@click.option("--fast", is_flag=True, help="The scenario's short form (its 'fast' section), as the test suite runs it.")
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr (default: when a terminal).")
@click.option("--control-plane", type=click.Choice(list(CONTROL_PLANES)), default=None,
              help="Run on this control plane instead of the scenario's controlPlane (default sqlite).")
def run_command(file: str, repeat: int, out_dir: str | None, fast: bool, progress: bool | None,
                control_plane: str | None) -> None:
    """Run the scenario FILE and write events.jsonl, summary.json, report.md and timeline.png."""
    scenario = load(file, fast=fast)
    if control_plane is not None:
        try:
            scenario = control_plane_form(scenario, control_plane)
        except ScenarioError as err:
            raise click.ClickException(str(err)) from None
    out = Path(out_dir or f"experiments-out/{Path(file).stem}-{time.strftime('%Y%m%d-%H%M%S')}")
    result = eventloop.run(run_scenario(scenario, out, repeat=repeat, progress=sys.stderr.isatty() if progress is None else progress))
    click.echo((out / "report.md").read_text())
    click.echo(f"written to {out}/ (events.jsonl, summary.json, report.md{', timeline.png' if (out / 'timeline.png').exists() else ''})")
    if not all(v["ok"] for v in result["aggregate"]["expectations"].values()):
        sys.exit(1)


@experiment.command("compare")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--profile", "profiles", multiple=True, type=click.Choice(list(PROFILES)),
              help="Profiles to compare [default: all: federation-v1, kubefed, ubernetes].")
@click.option("--control-plane", "control_planes", multiple=True, type=click.Choice(list(CONTROL_PLANES)),
              help="Compare control planes instead of profiles: the scenario as written (its own timeline and "
                   "settings) on each, e.g. --control-plane sqlite --control-plane etcd-ha.")
@click.option("--time-scale", type=click.FloatRange(0.001, 10), default=1.0, show_default=True,
              help="Multiply every period, timeout, TTL and the timeline by this (0.05 runs the comparison in minutes).")
@click.option("--repeat", type=click.IntRange(1, 100), default=1, show_default=True)
@click.option("--jobs", type=click.IntRange(1, 8), default=1, show_default=True, help="Profiles run at the same time.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None)
@click.option("--progress/--no-progress", default=None)
def compare_command(file: str, profiles: tuple[str, ...], control_planes: tuple[str, ...], time_scale: float,
                    repeat: int, jobs: int, out_dir: str | None, progress: bool | None) -> None:
    """Run FILE under Federation v1's, KubeFed's and our settings (or, with --control-plane,
    on one SQLite API server and on etcd-HA); one report and one picture."""
    base = load(file, fast=False)
    if control_planes and (profiles or time_scale != 1.0):
        raise click.UsageError("--control-plane compares the scenario as written: give it without --profile and --time-scale")
    names = list(dict.fromkeys(control_planes)) or list(profiles or PROFILES)
    try:
        forms = {n: control_plane_form(base, n) if control_planes else profile_form(base, n, time_scale=time_scale)
                 for n in names}
    except ScenarioError as err:
        raise click.ClickException(str(err)) from None
    out = Path(out_dir or f"experiments-out/{Path(file).stem}-compare-{time.strftime('%Y%m%d-%H%M%S')}")
    show = (sys.stderr.isatty() if progress is None else progress) and jobs == 1

    async def main() -> dict[str, dict[str, Any]]:
        gate = asyncio.Semaphore(jobs)

        async def one(profile: str) -> dict[str, Any]:
            async with gate:
                return await run_scenario(forms[profile], out / profile, repeat=repeat, progress=show)

        done = await asyncio.gather(*(one(p) for p in names))
        return dict(zip(names, done))

    results = eventloop.run(main())
    picture = None
    if plot.available():
        plot.plot_compare({p: r["events"][0] for p, r in results.items()}, out / "compare.png",
                          title=f"{base.name}: {', '.join(names)}")
        picture = "compare.png"
    else:
        click.echo("matplotlib is not installed (pip install 'ubernetes[plot]'): no compare.png", err=True)
    report.write_summary(out, {p: {k: v for k, v in r.items() if k != "events"} for p, r in results.items()})
    text = report.render_compare(base, results, picture, time_scale, control_planes=bool(control_planes))
    (out / "report.md").write_text(text)
    click.echo(text)
    click.echo(f"written to {out}/")

