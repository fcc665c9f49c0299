"""The kubectl-style CLI against a real federation API server process on an ephemeral port.

The server runs as ``ubernetes federation-apiserver --store :memory:``; the CLI runs
in-process through click's CliRunner (fast) and, for the flags kubectl treats as global
and for the connection error, as the real ``ubernetes`` console script.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest
import yaml
from click.testing import CliRunner

from federation.cli import main
from federation.launch.localfed import free_port
from tests.conftest import apiserver

WEB = """\
apiVersion: v1
kind: Service
metadata:
  name: {name}
  labels: {{app: {name}, tier: front}}
spec:
  type: LoadBalancer
  selector: {{app: {name}}}
  ports:
  - {{name: http, port: {port}, targetPort: 8080}}
"""

CLUSTER = """\
apiVersion: federation/v1beta1
kind: Cluster
metadata: {{name: {name}}}
spec:
  provider: aws
  serverAddressByClientCIDRs:
  - {{clientCIDR: 0.0.0.0/0, serverAddress: "http://127.0.0.1:{port}"}}
"""





def ubernetes_command() -> list[str]:
    script = Path(sys.executable).parent / "ubernetes"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from federation.cli import main; main()"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with apiserver(tmp_path_factory.mktemp("apiserver")) as url:
        yield url


def make_runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)  # click < 8.2 mixes stderr into output by default
    except TypeError:
        return CliRunner()


@pytest.fixture
def kubectl(server: str):
    """Run ``ubernetes ARGS`` in-process against the test server; returns the click Result."""
    runner = make_runner()

    def run(*args: str, input: str | None = None, env: dict[str, str | None] | None = None):
        return runner.invoke(main, list(args), input=input, env={"UBERNETES_SERVER": server, **(env or {})})

    return run


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def lines(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines()]


# --- apply ----------------------------------------------------------------------------


def test_apply_creates_then_unchanged_then_configured(kubectl, tmp_path: Path) -> None:
    path = write(tmp_path, "web.yaml", WEB.format(name="apply-web", port=80) + "---\n" + CLUSTER.format(name="apply-c1", port=9101))
    first = kubectl("apply", "-f", path)
    assert first.exit_code == 0, first.stderr
    assert first.stdout.splitlines() == ["service/apply-web created", "cluster.federation/apply-c1 created"]

    again = kubectl("apply", "-f", path)
    assert again.exit_code == 0, again.stderr
    assert again.stdout.splitlines() == ["service/apply-web unchanged", "cluster.federation/apply-c1 unchanged"]

    write(tmp_path, "web.yaml", WEB.format(name="apply-web", port=8081) + "---\n" + CLUSTER.format(name="apply-c1", port=9101))
    changed = kubectl("apply", "-f", path)
    assert changed.exit_code == 0, changed.stderr
    assert changed.stdout.splitlines() == ["service/apply-web configured", "cluster.federation/apply-c1 unchanged"]
    got = json.loads(kubectl("get", "service", "apply-web", "-o", "json").stdout)
    assert [p["port"] for p in got["spec"]["ports"]] == [8081]


def test_apply_removes_what_the_last_apply_set(kubectl, tmp_path: Path) -> None:
    path = write(tmp_path, "sel.yaml", WEB.format(name="apply-sel", port=80))
    assert kubectl("apply", "-f", path).exit_code == 0
    write(tmp_path, "sel.yaml", WEB.format(name="apply-sel", port=80).replace("  selector: {app: apply-sel}\n", ""))
    result = kubectl("apply", "-f", path)
    assert result.stdout.strip() == "service/apply-sel configured"
    got = json.loads(kubectl("get", "svc", "apply-sel", "-o", "json").stdout)
    assert "selector" not in got["spec"]


def test_apply_from_stdin_json(kubectl) -> None:
    doc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "stdin-web"}, "spec": {"ports": [{"port": 53, "protocol": "UDP"}]}}
    result = kubectl("apply", "-f", "-", input=json.dumps(doc))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == "service/stdin-web created"
    table = lines(kubectl("get", "svc", "stdin-web").stdout)
    assert table[1][:5] == ["stdin-web", "ClusterIP", "<none>", "<none>", "53/UDP"]


def test_apply_unknown_kind_applies_the_rest_and_fails(kubectl, tmp_path: Path) -> None:
    deployment = "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: nope}\n"  # served nowhere
    path = write(tmp_path, "mixed.yaml", deployment + "---\n" + WEB.format(name="mixed-web", port=80))
    result = kubectl("apply", "-f", path)
    assert result.exit_code == 1
    assert result.stdout.strip() == "service/mixed-web created"
    assert 'no matches for kind "PodDisruptionBudget" in version "policy/v1"' in result.stderr
    assert "mixed.yaml" in result.stderr


def test_apply_malformed_yaml_applies_nothing(kubectl, tmp_path: Path) -> None:
    path = write(tmp_path, "bad.yaml", WEB.format(name="bad-web", port=80) + "---\nmetadata: {name: [unclosed\n")
    result = kubectl("apply", "-f", path)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: error parsing {path}: line ")
    missing = kubectl("get", "svc", "bad-web")
    assert missing.exit_code == 1


def test_apply_invalid_object_reports_the_server_status(kubectl, tmp_path: Path) -> None:
    path = write(tmp_path, "port.yaml", WEB.format(name="port-web", port=70000))
    result = kubectl("apply", "-f", path)
    assert result.exit_code == 1
    assert result.stderr.startswith(f'Error from server (Invalid): error when creating "{path}": ')
    assert "spec.ports[0].port" in result.stderr


def test_apply_an_invalid_document_among_valid_ones_applies_the_others_and_fails(kubectl, tmp_path: Path) -> None:
    """kubectl's rule (issue 8): the server refuses one document, the others still apply, exit 1."""
    docs = [WEB.format(name="multi-a", port=80), WEB.format(name="multi-bad", port=70000), WEB.format(name="multi-c", port=81)]
    path = write(tmp_path, "multi.yaml", "---\n".join(docs))
    result = kubectl("apply", "-f", path)
    assert result.exit_code == 1
    assert result.stdout.split() == ["service/multi-a", "created", "service/multi-c", "created"]
    assert result.stderr.startswith(f'Error from server (Invalid): error when creating "{path}"')
    assert "(document 2)" in result.stderr and 'Service "multi-bad" is invalid: spec.ports[0].port' in result.stderr
    assert kubectl("get", "svc", "multi-a").exit_code == 0 and kubectl("get", "svc", "multi-c").exit_code == 0
    assert kubectl("get", "svc", "multi-bad").exit_code == 1


def test_apply_namespace_mismatch(kubectl) -> None:
    doc = WEB.format(name="ns-web", port=80).replace("metadata:\n", "metadata:\n  namespace: prod\n")
    result = kubectl("apply", "-f", "-", "-n", "staging", input=doc)
    assert result.exit_code == 1
    assert 'the namespace from the provided object "prod" does not match the namespace "staging"' in result.stderr


# --- get ------------------------------------------------------------------------------


def test_get_services_table_and_formats(kubectl, tmp_path: Path) -> None:
    assert kubectl("apply", "-f", write(tmp_path, "t.yaml", WEB.format(name="get-web", port=80))).exit_code == 0
    result = kubectl("get", "services")
    assert result.exit_code == 0, result.stderr
    table = lines(result.stdout)
    assert table[0] == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "SHARDS", "AGE"]
    row = next(r for r in table[1:] if r[0] == "get-web")
    assert row[1] == "LoadBalancer"
    assert row[4] == "80/TCP"
    assert row[5].count("/") == 1 and all(part.isdigit() for part in row[5].split("/"))

    wide = lines(kubectl("get", "svc", "get-web", "-o", "wide").stdout)
    assert wide[0][-1] == "SELECTOR" and wide[1][-1] == "app=get-web"

    one = yaml.safe_load(kubectl("get", "service", "get-web", "-o", "yaml").stdout)
    assert (one["kind"], one["metadata"]["name"], one["metadata"]["namespace"]) == ("Service", "get-web", "default")

    listed = json.loads(kubectl("get", "svc", "-o", "json").stdout)
    assert listed["kind"] == "List"
    assert "get-web" in [i["metadata"]["name"] for i in listed["items"]]
    assert all(i["kind"] == "Service" for i in listed["items"])

    assert "service/get-web" in kubectl("get", "svc", "-o", "name").stdout.splitlines()
    assert kubectl("get", "service/get-web", "-o", "name").stdout == "service/get-web\n"


def test_get_all_namespaces_and_selector(kubectl, tmp_path: Path) -> None:
    prod = WEB.format(name="ns-api", port=443).replace("metadata:\n", "metadata:\n  namespace: prod\n")
    assert kubectl("apply", "-f", write(tmp_path, "p.yaml", prod)).exit_code == 0
    assert kubectl("apply", "-f", write(tmp_path, "d.yaml", WEB.format(name="ns-default", port=80))).exit_code == 0

    everywhere = lines(kubectl("get", "svc", "-A").stdout)
    assert everywhere[0][:2] == ["NAMESPACE", "NAME"]
    assert ["prod", "ns-api"] in [r[:2] for r in everywhere[1:]]
    assert ["default", "ns-default"] in [r[:2] for r in everywhere[1:]]

    only_prod = lines(kubectl("get", "svc", "-n", "prod").stdout)
    assert [r[0] for r in only_prod[1:]] == ["ns-api"]

    selected = lines(kubectl("get", "svc", "-A", "-l", "app=ns-api").stdout)
    assert [r[1] for r in selected[1:]] == ["ns-api"]

    empty = kubectl("get", "svc", "-n", "nowhere")
    assert empty.exit_code == 0
    assert empty.stdout == ""
    assert "No resources found in nowhere namespace." in empty.stderr


def test_get_clusters(kubectl, tmp_path: Path) -> None:
    # Nothing listens on this address, so the health controller may call it Offline; the CLI
    # shows whichever conditions the server holds.
    assert kubectl("apply", "-f", write(tmp_path, "c.yaml", CLUSTER.format(name="get-c1", port=1))).exit_code == 0
    table = lines(kubectl("get", "clusters").stdout)
    assert table[0] == ["NAME", "READY", "OFFLINE", "PROVIDER", "REGION", "ZONES", "AGE"]
    row = next(r for r in table[1:] if r[0] == "get-c1")
    assert row[1] in ("True", "False", "Unknown") and row[2] in ("True", "False", "Unknown")
    assert row[3] == "aws"

    wide = lines(kubectl("get", "cluster", "get-c1", "-o", "wide").stdout)
    assert wide[0][-1] == "API-ADDRESS" and wide[1][-1] == "http://127.0.0.1:1"

    obj = yaml.safe_load(kubectl("get", "cluster", "get-c1", "-o", "yaml").stdout)
    assert obj["apiVersion"] == "federation/v1beta1" and obj["kind"] == "Cluster"


def test_get_missing_is_not_found(kubectl) -> None:
    result = kubectl("get", "service", "no-such-service")
    assert result.exit_code == 1
    assert result.stderr.strip() == 'Error from server (NotFound): services "no-such-service" not found'
    assert kubectl("get", "widgets").exit_code == 1


def test_get_dnsrecords_table(kubectl) -> None:
    result = kubectl("get", "dnsrecords")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "" or lines(result.stdout)[0] == ["NAME", "TYPE", "TTL", "TARGETS"]


def test_get_every_kind_prints_a_table(kubectl) -> None:
    """Every kind the federation serves prints through ``get`` (a kind with only a
    server-side printer once raised KeyError): the table the server gives kubectl."""
    from federation.resources import ALL

    assert kubectl("apply", "-f", "-", input=(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: flags, namespace: default}\ndata: {a: '1'}\n")).exit_code == 0
    for kind in ALL:
        for extra in ((), ("-A",), ("-o", "wide")):
            result = kubectl("get", kind.plural, *extra)
            assert result.exit_code == 0 and "Traceback" not in result.output, (kind.plural, extra, result.output)
    cm = lines(kubectl("get", "configmaps").stdout)
    assert cm[0][:2] == ["NAME", "DATA"] and cm[1][:2] == ["flags", "1"], cm
    assert lines(kubectl("get", "cm", "-A").stdout)[0][:2] == ["NAMESPACE", "NAME"]


# --- describe -------------------------------------------------------------------------


def test_describe_cluster_and_service(kubectl, tmp_path: Path) -> None:
    docs = WEB.format(name="desc-web", port=80) + "---\n" + CLUSTER.format(name="desc-c1", port=1)
    assert kubectl("apply", "-f", write(tmp_path, "desc.yaml", docs)).exit_code == 0

    cluster = kubectl("describe", "cluster", "desc-c1")
    assert cluster.exit_code == 0, cluster.stderr
    fields = {line.split(":", 1)[0]: line.split(":", 1)[1].strip() for line in cluster.stdout.splitlines() if ":" in line and not line.startswith(" ")}
    assert fields["Name"] == "desc-c1"
    assert fields["Provider"] == "aws"
    assert fields["API Addresses"] == "http://127.0.0.1:1 (clientCIDR 0.0.0.0/0)"
    assert "Conditions" in fields

    service = kubectl("describe", "service", "desc-web", "-n", "default")
    assert service.exit_code == 0, service.stderr
    text = service.stdout
    assert "Name:                  desc-web" in text
    assert "Type:                  LoadBalancer" in text
    assert "Port:                  http  80/TCP" in text
    assert "TargetPort:            8080/TCP" in text
    assert "last-applied-configuration" not in text

    missing = kubectl("describe", "cluster", "no-such-cluster")
    assert missing.exit_code == 1
    assert 'Error from server (NotFound): clusters.federation "no-such-cluster" not found' in missing.stderr


# --- delete ---------------------------------------------------------------------------


def test_delete_then_not_found(kubectl, tmp_path: Path) -> None:
    docs = WEB.format(name="del-web", port=80) + "---\n" + CLUSTER.format(name="del-c1", port=1)
    assert kubectl("apply", "-f", write(tmp_path, "del.yaml", docs)).exit_code == 0

    gone = kubectl("delete", "service", "del-web")
    assert gone.exit_code == 0, gone.stderr
    assert gone.stdout == 'service "del-web" deleted\n'

    again = kubectl("delete", "service", "del-web")
    assert again.exit_code == 1
    assert again.stderr == 'Error from server (NotFound): services "del-web" not found\n'
    assert kubectl("delete", "svc", "del-web", "--ignore-not-found").exit_code == 0

    cluster = kubectl("delete", "cluster", "del-c1")
    assert cluster.stdout == 'cluster.federation "del-c1" deleted\n'
    assert kubectl("get", "cluster", "del-c1").exit_code == 1


def test_delete_by_file(kubectl, tmp_path: Path) -> None:
    path = write(tmp_path, "f.yaml", WEB.format(name="delf-web", port=80))
    assert kubectl("apply", "-f", path).exit_code == 0
    result = kubectl("delete", "-f", path)
    assert result.stdout == 'service "delf-web" deleted\n'


# --- --server wherever it stands, and connection errors ------------------------------


def test_server_flag_before_and_after_the_verb(kubectl, server: str) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    no_env = {"UBERNETES_SERVER": None}
    assert kubectl("--server", server, "get", "clusters", env=no_env).exit_code == 0
    assert kubectl("get", "clusters", "--server", server, env=no_env).exit_code == 0
    assert kubectl("get", "clusters", "-s", server, env=no_env).exit_code == 0
    # The verb's flag wins over the group's, and both win over the environment.
    assert kubectl("--server", dead, "get", "clusters", "--server", server, env=no_env).exit_code == 0
    assert kubectl("get", "clusters", "--server", server, env={"UBERNETES_SERVER": dead}).exit_code == 0
    refused = kubectl("--server", server, "get", "clusters", "--server", dead)
    assert refused.exit_code == 1


def test_real_console_script(server: str, tmp_path: Path) -> None:
    cmd = ubernetes_command()
    env = {k: v for k, v in os.environ.items() if k != "UBERNETES_SERVER"}
    path = write(tmp_path, "s.yaml", WEB.format(name="script-web", port=80))

    before = subprocess.run(cmd + ["--server", server, "apply", "-f", path], capture_output=True, text=True, env=env, timeout=30)
    assert before.returncode == 0, before.stderr
    assert before.stdout == "service/script-web created\n"

    after = subprocess.run(cmd + ["get", "svc", "script-web", "--server", server], capture_output=True, text=True, env=env, timeout=30)
    assert after.returncode == 0, after.stderr
    assert after.stdout.splitlines()[1].split()[0] == "script-web"

    from_env = subprocess.run(cmd + ["delete", "svc", "script-web"], capture_output=True, text=True, env={**env, "UBERNETES_SERVER": server}, timeout=30)
    assert from_env.stdout == 'service "script-web" deleted\n'


def test_connection_refused_is_one_line(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "UBERNETES_SERVER"}
    result = subprocess.run(
        ubernetes_command() + ["get", "clusters", "--server", f"http://127.0.0.1:{port}"],
        capture_output=True, text=True, env=env, timeout=30,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == f"The connection to the server 127.0.0.1:{port} was refused - did you specify the right host or port?\n"


# --- with a real member cluster ------------------------------------------------------


def test_tables_with_a_real_member_cluster(kubectl, server: str, tmp_path: Path) -> None:
    """A member joins; its Cluster shows Ready with its zone, and a service shows its shard."""
    port = free_port()
    name = "cli-member"
    log = (tmp_path / "member.log").open("w+")
    member = subprocess.Popen(
        ubernetes_command() + [
            "cluster", "--name", name, "--region", "cli-region", "--zones", "cli-zone-a", "--provider", "onprem",
            "--listen", f"127.0.0.1:{port}", "--lb-pool", f"127.77.{port % 250}.0/24", "--federation", server,
            "--pod-ready-delay", "0",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        svc = WEB.format(name="member-web", port=port + 1 if port < 65535 else port - 1)
        assert kubectl("apply", "-f", write(tmp_path, "m.yaml", svc)).exit_code == 0

        def row(*args: str) -> list[str] | None:
            for r in lines(kubectl(*args).stdout)[1:]:
                if r and r[0] in (name, "member-web"):
                    return r
            return None

        deadline = time.monotonic() + 30
        cluster_row = service_row = None
        while time.monotonic() < deadline:
            cluster_row, service_row = row("get", "clusters", name), row("get", "svc", "member-web")
            if cluster_row and cluster_row[1] == "True" and service_row and service_row[5].startswith("1/"):
                break
            if member.poll() is not None:
                break
            time.sleep(0.3)
        log.seek(0)
        assert cluster_row and cluster_row[1:6] == ["True", "False", "onprem", "cli-region", "cli-zone-a"], log.read()
        assert service_row and service_row[3].startswith(f"127.77.{port % 250}."), service_row
        assert service_row[5] == "1/1"

        described = kubectl("describe", "svc", "member-web").stdout
        assert "Shards:                1/1 healthy" in described
        assert name in described
    finally:
        member.terminate()
        try:
            member.wait(10)
        except subprocess.TimeoutExpired:
            member.kill()
            member.wait()
        log.close()
