"""The small command interpreter that simulated containers run (``kubectl exec``, logs).

A member cluster runs no real processes: a container's command, and a command sent with
``kubectl exec``, is interpreted here over a tiny in-memory file system, so the answer is
the same on every machine and needs no privileges. The commands (docs/pods.md lists them):

- ``getent hosts NAME`` and ``nslookup NAME``: the member's cluster DNS names
  (:mod:`clusters.clusterdns`), e.g. a StatefulSet pod's ``web-0.nginx``; ``hostname -f``
  prints the pod's own such name;
- ``echo ARGS...``, ``cat FILE...``, ``ls [DIR...]``, ``env``, ``hostname``, ``true``,
  ``false``, ``exit N``, ``sleep N`` (returns at once), ``kubectl version``;
- ``chmod MODE FILE...``: subject to the container's seccomp profile: a profile that denies
  the ``chmod`` syscall (``SCMP_ACT_ERRNO``) makes it fail with "Operation not permitted",
  exit 1, as coreutils' chmod does under Docker 1.10's seccomp;
- ``sh -c "A && B; C"`` (or ``/bin/sh``): the commands in turn, ``&&`` stopping at the
  first failure, the exit code of the last one run.

Anything else exits 127 with ``exec: "NAME": executable file not found in $PATH``, the
runtime's words. Everything here is pure: :func:`run` returns what a real shell would have
written and its exit code.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from dataclasses import dataclass, field
from typing import Callable

KUBECTL_VERSION = 'Client Version: version.Info{Major:"1", Minor:"3", GitVersion:"v1.3.0", GitCommit:"ubernetes-sim", GitTreeState:"clean", GoVersion:"go1.6.2", Compiler:"gc", Platform:"linux/amd64"}'
NOT_FOUND = 127


@dataclass
class Machine:
    """What a simulated container sees: its host name, environment, files, and denied syscalls."""

    hostname: str
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # absolute path -> content
    denied: frozenset[str] = frozenset()  # syscalls the seccomp profile refuses
    fqdn: str = ""  # the pod's own DNS name, when it has one (a StatefulSet's pods)
    # a name -> (the name that answered, its addresses), the cluster's DNS
    resolve: Callable[[str], tuple[str, list[str]]] = lambda name: (name, [])

    def directories(self) -> set[str]:
        dirs = {"/"}
        for path in self.files:
            parent = posixpath.dirname(path)
            while parent not in dirs:
                dirs.add(parent)
                parent = posixpath.dirname(parent)
        return dirs


@dataclass
class Result:
    stdout: str = ""
    stderr: str = ""
    code: int = 0

    def then(self, other: "Result") -> "Result":
        return Result(self.stdout + other.stdout, self.stderr + other.stderr, other.code)


def default_files(hostname: str) -> dict[str, str]:
    return {
        "/etc/hostname": hostname + "\n",
        "/etc/hosts": f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n",
        "/etc/os-release": 'PRETTY_NAME="ubernetes simulated container"\nID=ubernetes\n',
        "/bin/sh": "", "/bin/ls": "", "/bin/cat": "", "/bin/echo": "", "/bin/chmod": "",
    }


def run(argv: list[str], machine: Machine) -> Result:
    """Run one command (argv as exec gives it) on ``machine``."""
    if not argv:
        return Result(stderr="exec: no command given\n", code=NOT_FOUND)
    name = posixpath.basename(argv[0])
    if name in ("sh", "bash") and len(argv) >= 3 and argv[1] == "-c":
        return run_script(argv[2], machine)
    handler = COMMANDS.get(name)
    if handler is None:
        return Result(stderr=f'exec: "{argv[0]}": executable file not found in $PATH\n', code=NOT_FOUND)
    return handler(argv[1:], machine)


def run_script(script: str, machine: Machine) -> Result:
    """``sh -c``: commands split on ``;`` and ``&&`` (no quoting across them, no pipes)."""
    result = Result()
    for sequence in (s for s in re.split(r";|\n", script) if s.strip()):
        for i, part in enumerate(sequence.split("&&")):
            if i and result.code != 0:
                break
            try:
                words = shlex.split(part)
            except ValueError as err:
                return result.then(Result(stderr=f"sh: syntax error: {err}\n", code=2))
            if not words:
                continue
            if words[0] == "exit":
                return result.then(Result(code=_int(words[1] if len(words) > 1 else "0", 2)))
            step = run(words, machine)
            if step.code == NOT_FOUND:
                step = Result(stdout=step.stdout, stderr=f"sh: 1: {words[0]}: not found\n", code=NOT_FOUND)
            result = result.then(step)
    return result


def _int(text: str, default: int) -> int:
    return int(text) if text.isdigit() else default


def _path(machine: Machine, path: str) -> str:
    return posixpath.normpath(posixpath.join(machine.env.get("PWD", "/"), path))


def _echo(args: list[str], m: Machine) -> Result:
    newline = "\n"
    if args[:1] == ["-n"]:
        args, newline = args[1:], ""
    return Result(stdout=" ".join(args) + newline)


def _cat(args: list[str], m: Machine) -> Result:
    out, err, code = [], [], 0
    for a in args:
        p = _path(m, a)
        if p in m.files:
            out.append(m.files[p])
        elif p in m.directories():
            err.append(f"cat: {a}: Is a directory\n")
            code = 1
        else:
            err.append(f"cat: {a}: No such file or directory\n")
            code = 1
    return Result("".join(out), "".join(err), code)


def _ls(args: list[str], m: Machine) -> Result:
    dirs = m.directories()
    out, err, code = [], [], 0
    targets = [a for a in args if not a.startswith("-")] or ["."]
    for a in targets:
        p = _path(m, a)
        if p in m.files:
            out.append(a + "\n")
            continue
        if p not in dirs:
            err.append(f"ls: cannot access '{a}': No such file or directory\n")
            code = 2
            continue
        children = sorted({posixpath.basename(x) for x in list(m.files) + list(dirs)
                           if x != p and posixpath.dirname(x) == p})
        if len(targets) > 1:
            out.append(f"{a}:\n")
        out.extend(c + "\n" for c in children)
    return Result("".join(out), "".join(err), code)


def _chmod(args: list[str], m: Machine) -> Result:
    if len(args) < 2:
        return Result(stderr="chmod: missing operand\n", code=1)
    mode, paths = args[0], args[1:]
    if not re.fullmatch(r"[0-7]{3,4}|[ugoa]*[-+=][rwxXst]*", mode):
        return Result(stderr=f"chmod: invalid mode: '{mode}'\n", code=1)
    err, code = [], 0
    for a in paths:
        p = _path(m, a)
        if p not in m.files and p not in m.directories():
            err.append(f"chmod: cannot access '{a}': No such file or directory\n")
            code = 1
        elif "chmod" in m.denied or "fchmodat" in m.denied:
            err.append(f"chmod: changing permissions of '{a}': Operation not permitted\n")
            code = 1
    return Result(stderr="".join(err), code=code)


def _env(args: list[str], m: Machine) -> Result:
    return Result(stdout="".join(f"{k}={v}\n" for k, v in m.env.items()))


def _getent(args: list[str], m: Machine) -> Result:
    if len(args) != 2 or args[0] not in ("hosts", "ahosts"):
        return Result(stderr="getent: this simulated getent knows only 'hosts NAME'\n", code=1)
    name, addresses = m.resolve(args[1])
    return Result(stdout="".join(f"{ip:<15} {name}\n" for ip in addresses), code=0 if addresses else 2)


def _nslookup(args: list[str], m: Machine) -> Result:
    if len(args) != 1:
        return Result(stderr="Usage: nslookup HOST\n", code=1)
    name, addresses = m.resolve(args[0])
    head = "Server:\t\t10.96.0.10\nAddress:\t10.96.0.10:53\n\n"
    if not addresses:
        return Result(stdout=head + f"** server can't find {args[0]}: NXDOMAIN\n\n", code=1)
    return Result(stdout=head + "".join(f"Name:\t{name}\nAddress: {ip}\n" for ip in addresses) + "\n")


def _kubectl(args: list[str], m: Machine) -> Result:
    if args[:1] == ["version"]:
        return Result(stdout=KUBECTL_VERSION + "\n")
    return Result(stderr=f"kubectl: this simulated kubectl knows only 'version', not {' '.join(args)!r}\n", code=1)


COMMANDS = {
    "echo": _echo,
    "cat": _cat,
    "ls": _ls,
    "chmod": _chmod,
    "env": _env,
    "hostname": lambda args, m: Result(stdout=(m.fqdn or m.hostname if args[:1] == ["-f"] else m.hostname) + "\n"),
    "getent": lambda args, m: _getent(args, m),
    "nslookup": lambda args, m: _nslookup(args, m),
    "true": lambda args, m: Result(),
    "false": lambda args, m: Result(code=1),
    "sleep": lambda args, m: Result(),
    "exit": lambda args, m: Result(code=_int(args[0] if args else "0", 2)),
    "kubectl": _kubectl,
}
