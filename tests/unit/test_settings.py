"""Settings are defined once (issue 11): the API server's flags and the docs' table come from
federation/settings.py, so a default cannot differ between the code, --help and the docs."""

from __future__ import annotations

from pathlib import Path

import click
from click.testing import CliRunner

from federation.settings import Settings, flagged, markdown_table, settings_from, settings_options

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


def test_the_docs_carry_the_generated_table():
    text = DOC.read_text()
    start = text.index("<!-- settings table: generated from federation/settings.py -->\n") + len(
        "<!-- settings table: generated from federation/settings.py -->\n")
    end = text.index("<!-- end of settings table -->")
    assert text[start:end] == markdown_table(), "regenerate the table in docs/architecture.md"


def test_flags_carry_the_defaults_and_build_settings():
    seen = {}

    @click.command()
    @settings_options
    def cmd(**options):
        seen["settings"] = settings_from(options)
        seen["rest"] = options

    assert CliRunner().invoke(cmd, []).exit_code == 0
    assert seen["settings"] == Settings() and seen["rest"] == {}
    result = CliRunner().invoke(cmd, ["--dns-ttl", "30", "--no-dataplane-checks", "--offline-records", "remove"])
    assert result.exit_code == 0, result.output
    assert (seen["settings"].dns_ttl, seen["settings"].dataplane_checks, seen["settings"].offline_records) == (30, False, "remove")
    bad = CliRunner().invoke(cmd, ["--failure-threshold", "0"])
    assert bad.exit_code == 2 and "--failure-threshold" in bad.output
    assert {f.name for f in flagged()} >= {"health_period", "dns_ttl", "offline_records", "dataplane_checks"}


def test_the_docs_carry_the_members_generated_table():
    from apimachinery.flags import markdown_table as table_of
    from clusters.command import Options

    text = DOC.read_text()
    marker = "<!-- member settings table: generated from clusters/command.py -->\n"
    start = text.index(marker) + len(marker)
    end = text.index("<!-- end of member settings table -->")
    assert text[start:end] == table_of(Options), "regenerate the member table in docs/architecture.md"


def test_a_member_flag_and_cluster_host_share_the_default():
    from clusters.command import Options, cluster
    from clusters.host import cluster_options

    lease = next(p for p in cluster.params if p.name == "lease_period")
    built = cluster_options(index=3, prefix="sim", regions=2, zones_per_region=1, federation="http://127.0.0.1:1",
                            lease_period=Options.lease_period, pods_per_service=1, bootstrap_token=None)
    assert lease.default == Options.lease_period == built.lease_period
    assert (built.lease_duration, built.federation_name) == (Options.lease_duration, Options.federation_name)
