"""``ubernetes up`` turns tokens and TLS on and the README's commands keep working (issue 8).

The admin token and the demo CA land in the kubeconfig (``$KUBECONFIG`` here, a temporary
file), so ``ubernetes get clusters``, ``ubernetes chaos`` and kubectl find them without a
flag, while a request without a token is refused. TLS comes with the tokens because kubectl
never sends a bearer token over plain HTTP.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys

import yaml

from clusters.testing import free_port, http, wait_until
from tests.conftest import random_pool


def _launcher_admits_only_its_admin(launcher: str, ca: str, admin: str) -> None:
    """The fault API can SIGKILL everything (issue 19): without the admin token, from another
    Origin, under another Host name or with a non-JSON body, nothing runs."""
    bearer = {"Authorization": f"Bearer {admin}"}
    crash = f"{launcher}/faults/crash"
    assert http("GET", f"{launcher}/faults", timeout=2, ca_file=ca)[0] == 401
    assert http("POST", crash, {"clusters": ["c1"]}, timeout=2, ca_file=ca)[0] == 401
    assert http("POST", crash, {"clusters": ["c1"]}, timeout=2, ca_file=ca,
                headers={"Authorization": "Bearer not-the-token"})[0] == 401
    # a cross-site form post from a web page: text/plain, a foreign Origin
    assert http("POST", crash, '{"clusters": ["c1"]}', content_type="text/plain", timeout=2, ca_file=ca,
                headers=bearer)[0] == 415
    assert http("POST", crash, {"clusters": ["c1"]}, timeout=2, ca_file=ca,
                headers={**bearer, "Origin": "https://evil.example"})[0] == 403
    # DNS rebinding: the browser sends the attacker's name as Host
    assert http("POST", crash, {"clusters": ["c1"]}, timeout=2, ca_file=ca,
                headers={**bearer, "Host": f"evil.example:{launcher.rsplit(':', 1)[1]}"})[0] == 403
    code, body, _ = http("GET", f"{launcher}/faults", timeout=2, ca_file=ca, headers=bearer)
    assert code == 200 and body["clusters"] == {"c1": "running"}, body  # nothing was crashed


def test_up_with_tokens_the_cli_uses_the_kubeconfig(tmp_path):
    topo = tmp_path / "topology.yaml"
    topo.write_text(yaml.safe_dump({"clusters": [
        {"name": "c1", "provider": "aws", "region": "us-east-1", "zones": ["us-east-1a"], "lbPool": random_pool(0)},
    ]}))
    api, dns, control, base = free_port(), free_port(), free_port(), free_port()
    kubeconfig = tmp_path / "kube" / "config"
    env = dict(os.environ, KUBECONFIG=str(kubeconfig))
    env.pop("UBERNETES_TOKEN", None)
    log = (tmp_path / "up.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "federation", "up", "-f", str(topo), "--api-port", str(api), "--dns-port", str(dns),
         "--cluster-base-port", str(base), "--control-listen", f"127.0.0.1:{control}", "--no-color"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
    )
    server = f"https://127.0.0.1:{api}"

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "federation", "--server", server, *args],
                              capture_output=True, text=True, timeout=30, env=env)

    try:
        wait_until(kubeconfig.exists, timeout=60, what="up to write the kubeconfig")
        wait_until(lambda: " True " in cli("get", "clusters").stdout, timeout=30, what="c1 Ready through the CLI")
        config = yaml.safe_load(kubeconfig.read_text())
        users = {u["name"]: u["user"] for u in config["users"]}
        assert users["myfed"]["token"] and users["c1"]["token"]
        assert config["current-context"] == "myfed"  # a new kubeconfig: plain kubectl finds the federation
        ca = {c["name"]: c["cluster"] for c in config["clusters"]}["myfed"]["certificate-authority"]
        assert http("GET", f"{server}/apis/federation/v1beta1/clusters", timeout=2, ca_file=ca)[0] == 401
        # Each member serves with a key of its own, not the federation's (issue 19).
        federation_cert = ssl.get_server_certificate(("127.0.0.1", api), ca_certs=ca)
        member_cert = ssl.get_server_certificate(("127.0.0.1", base), ca_certs=ca)
        assert federation_cert != member_cert
        # The member's /chaos needs the token too; the CLI has it from the kubeconfig.
        assert http("GET", f"https://127.0.0.1:{base}/chaos", timeout=2, ca_file=ca)[0] == 401
        if shutil.which("kubectl"):
            got = subprocess.run(["kubectl", "--context", "myfed", "get", "clusters"], capture_output=True,
                                 text=True, timeout=60, env=env)
            assert got.returncode == 0 and "c1" in got.stdout, got.stderr
            got = subprocess.run(["kubectl", "--context", "c1", "get", "nodes"], capture_output=True,
                                 text=True, timeout=60, env=env)
            assert got.returncode == 0 and "c1-" in got.stdout, got.stderr
        shown = cli("chaos", "latency", "c1", "0.1")
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["apiLatency"] == 0.1
        _launcher_admits_only_its_admin(f"https://127.0.0.1:{control}", ca, users["myfed"]["token"])
        shown = cli("chaos", "--launcher", f"https://127.0.0.1:{control}", "show")  # with the admin token
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["clusters"] == {"c1": "running"}
        # kubeconfig from the running federation, as an admin: member tokens from their Secrets.
        out = cli("kubeconfig", "-o", "-")
        assert out.returncode == 0, out.stderr
        written = {u["name"]: u["user"] for u in yaml.safe_load(out.stdout)["users"]}
        assert written["myfed"]["token"] == users["myfed"]["token"] and written["c1"].get("token")
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    assert proc.returncode == 0, (tmp_path / "up.log").read_text()[-3000:]
    # The entries up merged are gone with it: their CA lived in its temporary directory.
    left = yaml.safe_load(kubeconfig.read_text()) or {}
    assert not left.get("clusters") and not left.get("contexts") and not left.get("current-context")


def test_the_default_server_means_the_https_one_up_left_in_the_kubeconfig(tmp_path, monkeypatch):
    import click

    from federation.certs import create_certs
    from federation.cli.kubectl import resolve_server

    ca = str(create_certs(tmp_path / "pki")["ca.crt"])
    path = tmp_path / "config"
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.delenv("UBERNETES_SERVER", raising=False)
    monkeypatch.delenv("UBERNETES_TOKEN", raising=False)
    ctx = click.Context(click.Command("get"), obj={})
    assert resolve_server(ctx, None).url == "http://127.0.0.1:8080"  # no kubeconfig: the plain default
    path.write_text(yaml.safe_dump({
        "clusters": [{"name": "myfed", "cluster": {"server": "https://127.0.0.1:8080", "certificate-authority": ca}}],
        "users": [{"name": "myfed", "user": {"token": "t0k"}}],
        "contexts": [{"name": "myfed", "context": {"cluster": "myfed", "user": "myfed"}}],
    }))
    found = resolve_server(ctx, None)
    assert (found.url, found.token, found.ca_file) == ("https://127.0.0.1:8080", "t0k", ca)
    # An address the user gives is taken as given.
    assert resolve_server(ctx, "http://127.0.0.1:8080").url == "http://127.0.0.1:8080"
