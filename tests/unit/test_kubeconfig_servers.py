"""Several API servers in the kubeconfig (issue 13, ``up --ha``): the federation's entry names
the first as its ``server`` (kubectl's) and all of them in the ``ubernetes.io/servers``
extension, which the CLI reads when no ``--server`` is given."""

from __future__ import annotations

import click
import yaml

from federation.cli.kubectl import resolve_server
from federation.kubeconfig import SERVERS_EXTENSION, build, credentials_for, servers_for

URLS = ["https://127.0.0.1:8080", "https://127.0.0.1:8081", "https://127.0.0.1:8082"]


def test_the_federation_entry_names_the_first_server_and_lists_every_one():
    config = build("myfed", ",".join(URLS), [], token="t0k", certificate_authority="/ca.crt")
    cluster = config["clusters"][0]["cluster"]
    assert cluster["server"] == URLS[0] and cluster["certificate-authority"] == "/ca.crt"
    assert cluster["extensions"] == [{"name": SERVERS_EXTENSION, "extension": {"servers": URLS}}]
    assert "extensions" not in build("myfed", URLS[0], [])["clusters"][0]["cluster"], "one server: no extension"


def test_the_cli_without_server_uses_every_api_server_the_kubeconfig_lists(tmp_path, monkeypatch):
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(build("myfed", ",".join(URLS), [], token="t0k")))
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.delenv("UBERNETES_SERVER", raising=False)
    monkeypatch.delenv("UBERNETES_TOKEN", raising=False)
    assert servers_for(URLS[0], path) == URLS
    assert servers_for(URLS[1], path) == [URLS[1]], "no entry names the second as its server"
    assert credentials_for(URLS[0], path) == ("t0k", None)
    found = resolve_server(click.Context(click.Command("get"), obj={}), None)
    assert (found.urls, found.token) == (",".join(URLS), "t0k")
    # an address the user gives is taken as given
    assert resolve_server(click.Context(click.Command("get"), obj={}), URLS[0]).urls == URLS[0]


def test_without_a_kubeconfig_a_server_is_just_itself(tmp_path):
    assert servers_for("http://127.0.0.1:9999", tmp_path / "missing") == ["http://127.0.0.1:9999"]
