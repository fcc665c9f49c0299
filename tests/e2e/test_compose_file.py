"""compose.yaml, the Dockerfile and .dockerignore checked without a Docker daemon (fast).

Every service must run a real ``ubernetes`` command that parses with the flags it is given,
publish ports that do not collide, depend only on services that exist and have a
healthcheck, and the demo must keep its promised shape (two providers, three regions, a
region with two zones, LB addresses that are the containers' own). The end-to-end run with a
real daemon is tests/e2e/test_compose_e2e.py (``make test-compose``).
"""

from __future__ import annotations

import importlib.util
import inspect
import re
import shutil
import subprocess
import tomllib
import urllib.parse
from collections import Counter
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from federation.cli import main as ubernetes

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
ALL: dict[str, dict[str, Any]] = COMPOSE["services"]
# The demo, as `docker compose up` starts it (no profile), and the `ha` profile's additions.
SERVICES = {name: spec for name, spec in ALL.items() if not spec.get("profiles")}
HA = {name: spec for name, spec in ALL.items() if "ha" in (spec.get("profiles") or [])}
HA_ENV = dict(line.split("=", 1) for line in (ROOT / "docker" / "ha.env").read_text().splitlines()
              if line.strip() and not line.startswith("#"))
# The services that run our image (the others, Prometheus, run Debian's packages on its base).
OURS = {name: spec for name, spec in SERVICES.items() if spec["image"].startswith("${UBERNETES_IMAGE:-")}
PROMETHEUS_CONFIG = yaml.safe_load((ROOT / "docker" / "prometheus.yml").read_text())
VARIABLE = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def substitute(text: str, env: dict[str, str] | None = None) -> str:
    """${VAR:-default} as compose reads it with ``env`` (default: VAR unset)."""
    return VARIABLE.sub(lambda m: (env or {}).get(m.group(1)) or m.group(2) or "", text)


def image_files() -> dict[str, Path]:
    """Paths in the image that the Dockerfile copies from the repository (``COPY src /dest``)."""
    text = (ROOT / "Dockerfile").read_text()
    return {dest: ROOT / src for src, dest in re.findall(r"^COPY (?!--from)(\S+) (/\S+)$", text, re.M)}


def in_repository(argv: list[str]) -> list[str]:
    """ARGV with the image's copied files replaced by their sources, so that click's checks
    of existing files look at what the image will hold."""
    files = image_files()
    out = []
    for arg in argv:
        flag, eq, value = arg.partition("=")
        if eq and value in files:
            arg = f"{flag}={files[value]}"
        out.append(str(files.get(arg, arg)))
    return out


def parse_command(argv: list[str], env: dict[str, str] | None = None) -> tuple[str, click.Context]:
    """Parse ``ubernetes ARGV`` the way click does at run time (variables substituted from
    ``env``, as compose does), without running anything."""
    name, *rest = in_repository([substitute(a, env) for a in argv])
    root = click.Context(ubernetes, info_name="ubernetes", obj={"server": None})
    command = ubernetes.get_command(root, name)
    assert command is not None, f"`ubernetes {name}` is not a command"
    return name, command.make_context(name, rest, parent=root)


def load_healthcheck() -> Any:
    spec = importlib.util.spec_from_file_location("ubernetes_healthcheck", ROOT / "docker" / "healthcheck.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def contexts() -> dict[str, tuple[str, click.Context]]:
    return {service: parse_command(spec["command"]) for service, spec in OURS.items()}


def test_file_format_both_compose_versions_read() -> None:
    # 2.4: the newest format docker-compose 1.29 knows with depends_on conditions; v2 reads it too.
    assert COMPOSE["version"] == "2.4"
    assert set(COMPOSE) <= {"version", "services", "networks", "volumes"} | {k for k in COMPOSE if k.startswith("x-")}


@pytest.mark.parametrize("service", sorted(OURS))
def test_every_command_is_a_real_ubernetes_command_that_parses(service: str) -> None:
    spec = SERVICES[service]
    assert spec["image"].startswith("${UBERNETES_IMAGE:-"), "one image for every component"
    assert isinstance(spec["command"], list), "exec form: no shell between init and our process"
    name, ctx = parse_command(spec["command"])
    assert name in {"federation-apiserver", "dns", "cluster", "client"}
    assert spec.get("init") is True, "an init as PID 1, so signals reach our process"


def test_components_listen_on_all_interfaces_of_their_container() -> None:
    for service, (name, ctx) in contexts().items():
        if name != "client":
            assert ctx.params["listen"].startswith("0.0.0.0:"), service


def test_ports_do_not_collide_and_stay_on_loopback_by_default() -> None:
    published = []
    for service, spec in ALL.items():
        for entry in spec.get("ports", []):
            host_ip, host_port, container = substitute(entry).split(":")
            proto = container.partition("/")[2] or "tcp"
            assert host_ip == "127.0.0.1", f"{service}: {entry} is published beyond loopback"
            published.append((host_ip, int(host_port), proto))
    assert [p for p, n in Counter(published).items() if n > 1] == []
    assert ("127.0.0.1", 8080, "tcp") in published
    assert {("127.0.0.1", 1053, "udp"), ("127.0.0.1", 1053, "tcp")} <= set(published)


def test_published_ports_reach_what_the_component_listens_on() -> None:
    parsed = contexts()
    for service, spec in OURS.items():
        for entry in spec.get("ports", []):
            container_port = int(substitute(entry).split(":")[2].partition("/")[0])
            assert parsed[service][1].params["listen"].endswith(f":{container_port}"), (service, entry)


def test_dependencies_exist_are_healthy_conditions_and_form_no_cycle() -> None:
    for service, spec in ALL.items():
        for dep, how in (spec.get("depends_on") or {}).items():
            # a service may only wait for one that runs whenever it does
            assert dep in (SERVICES if service in SERVICES else ALL), f"{service} depends on unknown {dep}"
            assert how == {"condition": "service_healthy"}, (service, dep)
            assert "healthcheck" in ALL[dep], f"{dep} has no healthcheck to wait for"
    order: list[str] = []

    def visit(service: str, path: tuple[str, ...]) -> None:
        assert service not in path, f"dependency cycle: {' -> '.join(path + (service,))}"
        for dep in SERVICES[service].get("depends_on") or {}:
            visit(dep, path + (service,))
        if service not in order:
            order.append(service)

    for service in SERVICES:
        visit(service, ())
    assert order[0] == "federation" and order.index("client") == len(OURS) - 1


@pytest.mark.parametrize("service", sorted(ALL))
def test_every_service_has_a_healthcheck_the_image_can_run(service: str) -> None:
    health = ALL[service]["healthcheck"]
    test = health["test"]
    assert test[0] == "CMD" and test[1] == "ubernetes-healthcheck", test
    checks = load_healthcheck().CHECKS
    assert test[2] in checks, f"unknown check {test[2]!r}"
    assert len(test[3:]) == len(inspect.signature(checks[test[2]]).parameters), test
    for key in ("interval", "timeout", "retries"):
        assert key in health, f"{service}: healthcheck.{key}"


def test_healthchecks_probe_what_each_component_serves() -> None:
    parsed = contexts()
    for service, spec in OURS.items():
        name, ctx = parsed[service]
        kind, *args = spec["healthcheck"]["test"][2:]
        if name == "client":
            assert (kind, args[0]) == ("fresh", ctx.params["status_file"])
        elif name == "dns":
            assert kind == "dns" and args[0].endswith(ctx.params["listen"].rpartition(":")[2])
        else:
            assert kind == "http" and f":{ctx.params['listen'].rpartition(':')[2]}/healthz" in args[0]


def test_the_demo_topology_is_as_promised() -> None:
    clusters = {s: ctx.params for s, (name, ctx) in contexts().items() if name == "cluster"}
    assert len(clusters) >= 4
    assert len({p["provider"] for p in clusters.values()}) >= 2
    regions = Counter(p["region"] for p in clusters.values())
    assert len(regions) >= 3 and max(regions.values()) >= 2, "three regions, one of them with two zones"
    assert len({p["name"] for p in clusters.values()}) == len(clusters)
    fed_port = contexts()["federation"][1].params["listen"].rpartition(":")[2]
    for service, params in clusters.items():
        assert service == f"cluster-{params['name']}", "service names say which cluster they run"
        assert params["lb_address"] == "auto", "LB addresses are the container's own"
        assert urllib.parse.urlsplit(params["advertise"]).hostname == service, "the federation probes the service name"
        assert params["federation"] == f"http://federation:{fed_port}"
        assert "federation" in SERVICES[service]["depends_on"]


def test_client_resolves_a_zone_name_through_our_responder() -> None:
    parsed = contexts()
    params = parsed["client"][1].params
    assert params["dns_server"].split(":")[0] == "dns"
    assert params["dns_server"].split(":")[1] == parsed["dns"][1].params["listen"].rpartition(":")[2]
    zones = {(ctx.params["region"], z) for name, ctx in parsed.values() if name == "cluster" for z in ctx.params["zones"]}
    wanted = {f"web.default.myfed.svc.{zone}.{region}.example.com." for region, zone in zones}
    assert set(params["names"]) <= wanted and params["names"]
    assert params["apply_file"] == str(image_files()["/etc/ubernetes/web.yaml"])
    sample = yaml.safe_load(Path(params["apply_file"]).read_text())
    assert sample["spec"]["ports"][0]["port"] == params["port"]
    assert set(SERVICES["client"]["depends_on"]) == set(OURS) - {"client", "federation"}


def test_federation_store_is_on_a_named_volume() -> None:
    spec = SERVICES["federation"]
    store = contexts()["federation"][1].params["store_path"]
    mounts = [v.split(":") for v in spec["volumes"]]
    assert any(store.startswith(target + "/") and source in COMPOSE["volumes"] for source, target in mounts)


def test_dockerfile_base_is_an_argument_and_runs_unprivileged() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:3\.\d+-slim$", text, re.M)
    assert re.findall(r"^FROM (\S+)", text, re.M) == ["${BASE_IMAGE}", "${BASE_IMAGE}"]
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] not in {"root", "0"}
    assert 'ENTRYPOINT ["ubernetes"]' in text
    for copied in re.findall(r"^COPY (?!--from)(\S+)", text, re.M):
        assert (ROOT / copied).exists(), f"COPY {copied}: no such file"


def test_build_context_keeps_the_virtualenv_and_git_out() -> None:
    rules = [r.strip() for r in (ROOT / ".dockerignore").read_text().splitlines() if r.strip() and not r.startswith("#")]
    assert rules[0] == "*", "deny everything, then allow what the image needs"
    allowed = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
    copied = set(re.findall(r"^COPY (?!--from)(\S+?)/? ", (ROOT / "Dockerfile").read_text(), re.M))
    assert copied <= allowed, f"COPY of files the context leaves out: {copied - allowed}"


def setuptools_config() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def package_roots() -> set[str]:
    """The repository's top-level directories that hold the installed packages."""
    config = setuptools_config()
    where = config.get("package-dir", {})
    return {where.get(name, name.replace(".", "/")).split("/")[0] for name in config["packages"]}


def test_the_image_installs_every_package() -> None:
    # The image installs the project non-editably: a package missing from pyproject.toml's
    # list is missing from the image, and `ubernetes` fails to start there.
    listed = set(setuptools_config()["packages"])
    found = {
        ".".join(p.parent.relative_to(ROOT).parts).removeprefix("dns.")
        for top in package_roots()
        for p in (ROOT / top).rglob("__init__.py")
    }
    assert found <= listed, f"packages missing from pyproject.toml: {sorted(found - listed)}"


def test_the_image_build_copies_every_package_directory() -> None:
    # `pip install .` in the build stage fails outright when a listed package's directory
    # was not copied in (CI once went red on exactly this).
    text = (ROOT / "Dockerfile").read_text()
    copied = {src.rstrip("/") for src, dest in re.findall(r"^COPY (?!--from)(\S+) (\S+)$", text, re.M)}
    assert package_roots() <= copied, f"Dockerfile does not copy {sorted(package_roots() - copied)}"


@pytest.mark.parametrize("compose", [["docker-compose"], ["docker", "compose"]], ids=["compose-1.29", "compose-v2"])
def test_compose_validates_the_file(compose: list[str]) -> None:
    if shutil.which(compose[0]) is None:
        pytest.skip(f"{compose[0]} is not installed")
    if compose == ["docker", "compose"] and subprocess.run(compose + ["version"], capture_output=True).returncode != 0:
        pytest.skip("no Compose v2 plugin for docker")
    out = subprocess.run([*compose, "-f", str(ROOT / "compose.yaml"), "config", "-q"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    ha = subprocess.run([*compose, "-f", str(ROOT / "compose.yaml"), "--profile", "ha", "--env-file",
                         str(ROOT / "docker" / "ha.env"), "config", "--services"], capture_output=True, text=True, timeout=60)
    assert ha.returncode == 0, ha.stderr
    assert set(ha.stdout.split()) == set(ALL), "the ha profile starts every service"


# --------------------------------------------------------------------------- Prometheus (issue 17)


def scrape_targets() -> dict[str, set[str]]:
    """job -> its ``host:port`` targets in docker/prometheus.yml."""
    return {
        job["job_name"]: {t for sc in job.get("static_configs", []) for t in sc["targets"]}
        for job in PROMETHEUS_CONFIG["scrape_configs"]
    }


def metrics_endpoints() -> dict[str, str]:
    """service -> the ``service:port`` where its process serves /metrics, from its command."""
    found = {}
    for service, (name, ctx) in contexts().items():
        if name in {"federation-apiserver", "cluster"}:
            found[service] = f"{service}:{ctx.params['listen'].rpartition(':')[2]}"
        elif name == "dns":
            assert ctx.params["status_listen"], "the responder serves /metrics only with --status-listen"
            assert ctx.params["status_listen"].startswith("0.0.0.0:"), "reachable from the Prometheus container"
            found[service] = f"{service}:{ctx.params['status_listen'].rpartition(':')[2]}"
    return found


def test_prometheus_is_built_from_debian_on_the_projects_base_image() -> None:
    spec = SERVICES["prometheus"]
    assert spec["build"]["context"] == "docker"
    assert spec["build"]["args"]["BASE_IMAGE"] == SERVICES["federation"]["build"]["args"]["BASE_IMAGE"]
    text = (ROOT / "docker" / spec["build"]["dockerfile"]).read_text()
    assert re.findall(r"^FROM (\S+)", text, re.M) == ["${BASE_IMAGE}"], "one stage, on the same base: no other image"
    assert re.search(r"^ARG BASE_IMAGE=python:3\.\d+-slim$", text, re.M)
    assert re.search(r"apt-get install .*\bprometheus\b", text), "Debian's prometheus package"
    assert "/etc/prometheus/prometheus.yml" in text and "/usr/bin/prometheus" in text
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] not in {"root", "0"}
    for copied in re.findall(r"^COPY (\S+)", text, re.M):
        assert (ROOT / "docker" / copied).exists(), f"COPY {copied}: not in the build context docker/"


def test_prometheus_publishes_its_api_on_loopback_and_waits_for_readiness() -> None:
    spec = SERVICES["prometheus"]
    assert [substitute(p) for p in spec["ports"]] == ["127.0.0.1:9090:9090"]
    assert "--web.listen-address=0.0.0.0:9090" in (ROOT / "docker" / "prometheus.Dockerfile").read_text()
    assert spec["healthcheck"]["test"][2:] == ["http", "http://127.0.0.1:9090/-/ready"]
    assert "interconnect" in spec["networks"]


def test_prometheus_scrapes_every_container_that_serves_metrics() -> None:
    targets = scrape_targets()
    every = set().union(*targets.values())
    wanted = metrics_endpoints()
    assert set(wanted) == set(OURS) - {"client"}, "every component but the client serves /metrics"
    assert set(wanted.values()) == every, f"missing {set(wanted.values()) - every}, unknown {every - set(wanted.values())}"
    assert targets["federation"] == {wanted["federation"]}
    assert targets["dns"] == {wanted["dns"]}
    assert targets["members"] == {wanted[s] for s in wanted if s.startswith("cluster-")}
    for job in PROMETHEUS_CONFIG["scrape_configs"]:
        assert job.get("metrics_path", "/metrics") == "/metrics" and job.get("scheme", "http") == "http"
    assert float(PROMETHEUS_CONFIG["global"]["scrape_interval"].rstrip("s")) <= 15


# --------------------------------------------------------------------------- profile ha (issue 13)


def flags(argv: list[str]) -> dict[str, str]:
    return dict(a[2:].split("=", 1) for a in argv if a.startswith("--") and "=" in a)


API_SERVERS = ["federation", "federation-1", "federation-2"]
ETCD = sorted(s for s in HA if s.startswith("etcd-"))


def test_the_ha_profile_adds_three_etcd_members_and_two_api_servers() -> None:
    assert set(HA) == {"etcd-0", "etcd-1", "etcd-2", "federation-1", "federation-2"}
    for service in HA:
        assert HA[service]["profiles"] == ["ha"] and HA[service].get("init") is True, service
        assert "interconnect" in HA[service]["networks"], service


def test_etcd_is_built_from_debian_on_the_projects_base_image() -> None:
    spec = HA["etcd-0"]
    assert spec["build"]["context"] == "docker"
    assert spec["build"]["args"]["BASE_IMAGE"] == SERVICES["federation"]["build"]["args"]["BASE_IMAGE"]
    text = (ROOT / "docker" / spec["build"]["dockerfile"]).read_text()
    assert re.findall(r"^FROM (\S+)", text, re.M) == ["${BASE_IMAGE}"], "one stage, on the same base: no other image"
    assert re.search(r"^ARG BASE_IMAGE=python:3\.\d+-slim$", text, re.M)
    assert re.search(r"apt-get install .*\betcd-server\b", text), "Debian's etcd-server package"
    assert 'ENTRYPOINT ["/usr/bin/etcd"]' in text
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] not in {"root", "0"}
    for copied in re.findall(r"^COPY (\S+)", text, re.M):
        assert (ROOT / "docker" / copied).exists(), f"COPY {copied}: not in the build context docker/"


def test_the_etcd_members_form_one_cluster_each_on_its_own_volume() -> None:
    peers = {}
    for service in ETCD:
        spec = HA[service]
        f = flags(spec["command"])
        assert f["name"] == service
        assert f["advertise-client-urls"] == f"http://{service}:2379" and f["listen-client-urls"] == "http://0.0.0.0:2379"
        assert f["initial-advertise-peer-urls"] == f"http://{service}:2380" and f["listen-peer-urls"] == "http://0.0.0.0:2380"
        peers[service] = f["initial-advertise-peer-urls"]
        source, target = spec["volumes"][0].split(":")
        assert source in COMPOSE["volumes"] and f["data-dir"] == target, "each member's data on a named volume"
        assert spec["healthcheck"]["test"][2:] == ["http", "http://127.0.0.1:2379/health"]
        assert spec["restart"] == "on-failure"
    clusters = {flags(HA[s]["command"])["initial-cluster"] for s in ETCD}
    tokens = {flags(HA[s]["command"])["initial-cluster-token"] for s in ETCD}
    assert len(clusters) == 1 and len(tokens) == 1, "one cluster, the same peers everywhere"
    assert dict(p.split("=", 1) for p in clusters.pop().split(",")) == peers
    assert len({HA[s]["volumes"][0] for s in ETCD}) == 3


def test_with_ha_env_every_api_server_is_on_the_etcd_cluster() -> None:
    members = {f"{s}:{flags(HA[s]['command'])['listen-client-urls'].rpartition(':')[2]}" for s in ETCD}
    for service in API_SERVERS:
        spec = ALL[service]
        name, ctx = parse_command(spec["command"], HA_ENV)
        assert name == "federation-apiserver" and ctx.params["listen"] == "0.0.0.0:8080"
        store = ctx.params["store_path"]
        assert store.startswith("etcd://") and set(store[len("etcd://"):].split(",")) == members, (service, store)
        assert spec["restart"] == "on-failure", "started again until etcd answers"
        assert spec["healthcheck"]["test"][2:] == ["http", "http://127.0.0.1:8080/healthz"]
    for service in ("federation-1", "federation-2"):
        assert set(HA[service]["depends_on"]) == set(ETCD)
    # without the env file the demo keeps its SQLite file (test_federation_store_is_on_a_named_volume)
    assert not parse_command(SERVICES["federation"]["command"])[1].params["store_path"].startswith("etcd://")


def test_with_ha_env_every_client_of_the_api_is_given_every_api_server() -> None:
    wanted = [f"http://{s}:8080" for s in API_SERVERS]
    assert HA_ENV["UBERNETES_FEDERATION"].split(",") == wanted
    for service, spec in OURS.items():
        name, ctx = parse_command(spec["command"], HA_ENV)
        if name in ("dns", "cluster"):
            assert ctx.params["federation"].split(",") == wanted, service
        elif name == "client":
            assert ctx.params["server"].split(",") == wanted, service
