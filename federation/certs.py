"""``ubernetes certs create DIR``: a throwaway CA and server certificates for local demos.

TLS for the federation API and member APIs is optional (issue 8); this helper makes what
it needs with the ``openssl`` command (no Python dependency): ``ca.crt``/``ca.key``, and
``server.crt``/``server.key`` signed by that CA for ``localhost``, ``127.0.0.1`` and ``::1``
plus any ``--host`` given. Not for production: the CA key sits beside the certificates.
"""

from __future__ import annotations

import ipaddress
import secrets
import shutil
import subprocess
from pathlib import Path

import click


def _run(args: list[str], cwd: Path) -> None:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise click.ClickException(f"openssl {' '.join(args[1:3])} failed: {done.stderr.strip()[-400:]}")


def _openssl() -> str:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise click.ClickException("the openssl command is needed (Debian: apt-get install openssl)")
    return openssl


def _alt_names(hosts: list[str] | tuple[str, ...]) -> str:
    alt = []
    for name in dict.fromkeys(["localhost", "127.0.0.1", "::1", *hosts]):
        try:
            ipaddress.ip_address(name)
            alt.append(f"IP:{name}")
        except ValueError:
            alt.append(f"DNS:{name}")
    return ",".join(alt)


def create_certs(directory: Path, *, hosts: list[str] | tuple[str, ...] = (), days: int = 30) -> dict[str, Path]:
    """Write ca.crt, ca.key, server.crt, server.key into ``directory``; return their paths."""
    openssl = _openssl()
    directory.mkdir(parents=True, exist_ok=True)
    _run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
          "-days", str(days), "-subj", "/CN=ubernetes-demo-ca", "-addext", "basicConstraints=critical,CA:TRUE",
          "-addext", "keyUsage=critical,keyCertSign,cRLSign"], directory)
    (directory / "ca.key").chmod(0o600)
    issue_server_cert(directory, "server", hosts=hosts, days=days)
    return {n: directory / f"{n}" for n in ("ca.crt", "ca.key", "server.crt", "server.key")}


def issue_server_cert(directory: Path, stem: str, *, hosts: list[str] | tuple[str, ...] = (),
                      days: int = 30) -> tuple[Path, Path]:
    """Sign ``STEM.crt`` (key ``STEM.key``, P-256) for ``hosts`` and loopback with the CA in
    ``directory``: every member gets its own key (issue 19), so one member's key cannot
    impersonate another member or the federation."""
    openssl = _openssl()
    crt, key = directory / f"{stem}.crt", directory / f"{stem}.key"
    csr, ext = directory / f"{stem}.csr", directory / f"{stem}.ext"
    _run([openssl, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
          "-keyout", key.name, "-out", csr.name, "-subj", f"/CN={stem}"], directory)
    ext.write_text(f"subjectAltName={_alt_names(hosts)}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    _run([openssl, "x509", "-req", "-in", csr.name, "-CA", "ca.crt", "-CAkey", "ca.key",
          "-set_serial", str(secrets.randbits(63)), "-out", crt.name, "-days", str(days), "-extfile", ext.name], directory)
    for leftover in (csr, ext):
        leftover.unlink(missing_ok=True)
    key.chmod(0o600)
    return crt, key


@click.group("certs")
def certs() -> None:
    """Certificates for local TLS demos."""


@certs.command("create")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--host", "hosts", multiple=True, help="Another name or IP for the server certificate (repeatable).")
@click.option("--days", type=click.IntRange(1, 3650), default=30, show_default=True)
def create(directory: str, hosts: tuple[str, ...], days: int) -> None:
    """Make a throwaway CA and a server certificate for localhost in DIRECTORY."""
    paths = create_certs(Path(directory), hosts=hosts, days=days)
    for name, path in paths.items():
        click.echo(f"{name:<11} {path}")
    click.echo(f"Serve with --tls-cert-file {paths['server.crt']} --tls-private-key-file {paths['server.key']}; "
               f"clients: --certificate-authority {paths['ca.crt']}")
