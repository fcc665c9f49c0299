"""The simulated containers' command interpreter and seccomp profiles (issue 14), table-driven."""

from __future__ import annotations

import pytest

from clusters import seccomp, simshell


def machine(denied: frozenset[str] = frozenset()) -> simshell.Machine:
    return simshell.Machine("web-0", {"A": "1"}, simshell.default_files("web-0"), denied)


@pytest.mark.parametrize("argv, stdout, stderr, code", [
    (["echo", "a", "b"], "a b\n", "", 0),
    (["hostname"], "web-0\n", "", 0),
    (["cat", "/etc/hostname"], "web-0\n", "", 0),
    (["cat", "/nope"], "", "cat: /nope: No such file or directory\n", 1),
    (["ls", "/etc"], "hostname\nhosts\nos-release\n", "", 0),
    (["env"], "A=1\n", "", 0),
    (["chmod", "600", "/etc/hosts"], "", "", 0),
    (["false"], "", "", 1),
    (["frob"], "", 'exec: "frob": executable file not found in $PATH\n', 127),
    (["sh", "-c", "echo a && false && echo b; echo c"], "a\nc\n", "", 0),
    (["sh", "-c", "echo a; exit 3; echo b"], "a\n", "", 3),
    (["sh", "-c", "frob"], "", "sh: 1: frob: not found\n", 127),
])
def test_commands(argv, stdout, stderr, code) -> None:
    assert simshell.run(argv, machine()) == simshell.Result(stdout, stderr, code)


def test_chmod_denied_by_the_profile() -> None:
    result = simshell.run(["chmod", "777", "/etc/hosts"], machine(frozenset({"chmod"})))
    assert result == simshell.Result("", "chmod: changing permissions of '/etc/hosts': Operation not permitted\n", 1)


@pytest.mark.parametrize("profile, denied", [
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"name": "chmod", "action": "SCMP_ACT_ERRNO"}]}, {"chmod"}),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []}, set()),
    ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"name": "chmod", "action": "SCMP_ACT_ALLOW"}]}, {"fchmodat"}),
])
def test_docker_profiles(profile, denied) -> None:
    assert seccomp.denied_by(profile) == denied


def test_container_annotation_wins_over_the_pods(tmp_path) -> None:
    (tmp_path / "prevent-chmod").write_text('{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"name":"chmod","action":"SCMP_ACT_ERRNO"}]}')
    pod = {"metadata": {"annotations": {"seccomp.security.alpha.kubernetes.io/pod": "localhost/prevent-chmod",
                                        "container.seccomp.security.alpha.kubernetes.io/free": "unconfined"}}}
    assert seccomp.denied_syscalls(pod, "app", str(tmp_path)) == {"chmod"}
    assert seccomp.denied_syscalls(pod, "free", str(tmp_path)) == frozenset()
