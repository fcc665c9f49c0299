"""``pods/log`` and ``pods/exec`` of a member cluster: what ``kubectl logs`` and ``kubectl exec`` use.

Simulated containers run no processes; their output is what :mod:`clusters.simshell` says
their command writes (a container without a command is a server and says so), and an exec
runs its command through the same interpreter with the container's seccomp profile
(:mod:`clusters.seccomp`).

Exec speaks the protocol kubectl 1.30+ uses first: a WebSocket (a ``GET`` with
``Upgrade: websocket``) with subprotocol ``v5.channel.k8s.io`` (``v4.channel.k8s.io`` for the
official Python client), every binary message prefixed by its channel (1 stdout, 2 stderr,
3 the error channel, which carries a ``Status``: ``Success``, or ``Failure`` with reason
``NonZeroExitCode`` and a cause ``ExitCode`` holding the code). SPDY (``POST`` with
``Upgrade: SPDY/3.1``, what kubectl falls back to only when the WebSocket upgrade fails) is
refused with a ``Status`` that says to use WebSocket.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import WSMsgType, web

from apimachinery.errors import APIError, not_found
from clusters import clusterdns, seccomp, simshell

EXEC_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDOUT, STDERR, ERROR = 1, 2, 3
SECCOMP_ROOT = web.AppKey("seccomp_root", str)
RESOLVE = web.AppKey("resolve", object)  # (name, namespace) -> (name, addresses): clusters.clusterdns
PODS = web.AppKey("pods", dict)  # the member's pods by (namespace, name): ClusterState.pods
FOLLOW_POLL = 0.2


def _bad(message: str) -> APIError:
    return APIError(400, message, reason="BadRequest")


def _pod(request: web.Request) -> dict[str, Any]:
    ns, name = request.match_info["namespace"], request.match_info["name"]
    pod = request.app[PODS].get((ns, name))
    if pod is None:
        raise not_found("pods", name)
    return pod


def _containers(pod: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    spec = pod.get("spec") or {}
    return list(spec.get("initContainers") or []), list(spec.get("containers") or [])


def pick_container(pod: dict[str, Any], name: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(container spec, its status) for ``?container=`` (the only one when not given)."""
    inits, mains = _containers(pod)
    pod_name = pod["metadata"]["name"]
    if not name:
        if len(mains) != 1:
            extra = f" or one of the init containers: [{' '.join(c['name'] for c in inits)}]" if inits else ""
            raise _bad(f"a container name must be specified for pod {pod_name}, choose one of: "
                       f"[{' '.join(c['name'] for c in mains)}]{extra}")
        name = mains[0]["name"]
    spec = next((c for c in inits + mains if c.get("name") == name), None)
    if spec is None:
        raise _bad(f"container {name} is not valid for pod {pod_name}")
    status = pod.get("status") or {}
    statuses = (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])
    return spec, next((s for s in statuses if s.get("name") == name), {})


def machine(pod: dict[str, Any], container: dict[str, Any], root: str | None,
            resolve: Any = None) -> simshell.Machine:
    """What the container sees; ``resolve(name, namespace)`` is the cluster's DNS (clusters.clusterdns)."""
    hostname = (pod.get("spec") or {}).get("hostname") or pod["metadata"]["name"]
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME": hostname}
    env.update({str(e["name"]): str(e.get("value", "")) for e in container.get("env") or [] if isinstance(e, dict) and "name" in e})
    env.setdefault("HOME", "/root")
    namespace = pod["metadata"].get("namespace", "default")
    fqdn = clusterdns.pod_fqdn(pod)
    files = simshell.default_files(hostname)
    files["/etc/resolv.conf"] = clusterdns.resolv_conf(namespace)
    ip = (pod.get("status") or {}).get("podIP")
    if ip:  # the kubelet's own line in the pod's /etc/hosts
        files["/etc/hosts"] += f"{ip}\t{fqdn + chr(9) if fqdn else ''}{hostname}\n"
    kwargs = {"resolve": lambda name: resolve(name, namespace)} if resolve is not None else {}
    return simshell.Machine(hostname=hostname, env=env, files=files, fqdn=fqdn,
                            denied=seccomp.denied_syscalls(pod, container["name"], root), **kwargs)


def container_output(pod: dict[str, Any], container: dict[str, Any], root: str | None) -> list[str]:
    """The lines one run of the container writes."""
    argv = [str(a) for a in (container.get("command") or []) + (container.get("args") or [])]
    if not argv:
        ports = ", ".join(str(p.get("containerPort")) for p in container.get("ports") or [] if isinstance(p, dict))
        return [f"{container.get('image', '')}: simulated server started" + (f", listening on port {ports}" if ports else "")]
    result = simshell.run(argv, machine(pod, container, root))
    return (result.stdout + result.stderr).splitlines()


def container_exit(pod: dict[str, Any], container: dict[str, Any], root: str | None) -> int:
    """The exit code of one run of the container's command (clusters.workloads asks)."""
    argv = [str(a) for a in (container.get("command") or []) + (container.get("args") or [])]
    return simshell.run(argv, machine(pod, container, root)).code if argv else 0


def _started_at(status: dict[str, Any], pod: dict[str, Any]) -> str:
    state = status.get("state") or {}
    for key in ("running", "terminated"):
        if (state.get(key) or {}).get("startedAt"):
            return state[key]["startedAt"]
    return (pod.get("status") or {}).get("startTime") or pod["metadata"].get("creationTimestamp", "")


async def logs(request: web.Request) -> web.StreamResponse:
    pod = _pod(request)
    q = request.query
    spec, status = pick_container(pod, q.get("container"))
    name, pod_name = spec["name"], pod["metadata"]["name"]
    previous = q.get("previous", "false").lower() == "true"
    if previous and not status.get("restartCount"):
        raise _bad(f'previous terminated container "{name}" in pod "{pod_name}" not found')
    waiting = (status.get("state") or {}).get("waiting")
    if not previous and (not status or waiting):
        reason = (waiting or {}).get("reason", "ContainerCreating")
        raise _bad(f'container "{name}" in pod "{pod_name}" is waiting to start: {reason}')
    lines = container_output(pod, spec, request.app.get(SECCOMP_ROOT))
    tail = q.get("tailLines")
    if tail is not None:
        if not tail.lstrip("-").isdigit():
            raise _bad(f'tailLines: Invalid value: "{tail}": must be an integer')
        lines = lines[-int(tail):] if int(tail) > 0 else ([] if int(tail) == 0 else lines)
    if q.get("timestamps", "false").lower() == "true":
        stamp = _started_at(status, pod).replace("Z", ".000000000Z") if "." not in _started_at(status, pod) else _started_at(status, pod)
        lines = [f"{stamp} {line}" for line in lines]
    response = web.StreamResponse(headers={"Content-Type": "text/plain"})
    await response.prepare(request)
    await response.write("".join(line + "\n" for line in lines).encode())
    if q.get("follow", "false").lower() == "true" and "running" in (status.get("state") or {}):
        await _follow(request, pod)
    await response.write_eof()
    return response


async def _follow(request: web.Request, pod: dict[str, Any]) -> None:
    """A running simulated container writes nothing more: hold the stream until the pod goes
    (or is replaced) or the client hangs up."""
    key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
    uid = pod["metadata"]["uid"]
    while True:
        current = request.app[PODS].get(key)
        if current is None or current["metadata"]["uid"] != uid or request.transport is None or request.transport.is_closing():
            return
        await asyncio.sleep(FOLLOW_POLL)


def exit_status(code: int, argv: list[str]) -> dict[str, Any]:
    """The error channel's ``Status`` for an exit code (what the kubelet sends)."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: error executing command {argv}, exit code {code}",
            "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


async def exec_(request: web.Request) -> web.StreamResponse:
    # The pod and container first: kubectl 1.32 retries a refused WebSocket upgrade over SPDY
    # and prints the SPDY answer, so that answer must carry the same error.
    pod = _pod(request)
    spec, status = pick_container(pod, request.query.get("container"))
    if "running" not in (status.get("state") or {}):
        raise _bad(f'container {spec["name"]} is not running in pod {pod["metadata"]["name"]}')
    argv = request.query.getall("command", [])
    if not argv:
        raise _bad("you must specify at least one command for the container")
    upgrade = request.headers.get("Upgrade", "").lower()
    if upgrade.startswith("spdy"):
        raise _bad("this cluster serves exec over WebSocket only (subprotocols v5.channel.k8s.io, v4.channel.k8s.io); "
                   "SPDY/3.1 is not supported: use kubectl 1.30 or newer, which asks for WebSocket first")
    if upgrade != "websocket":
        raise _bad("exec needs a connection upgrade: WebSocket with subprotocol v5.channel.k8s.io")
    asked = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
    if not any(p in EXEC_PROTOCOLS for p in asked):
        raise _bad(f"no supported exec subprotocol in {asked}: this cluster speaks {', '.join(EXEC_PROTOCOLS)}")
    ws = web.WebSocketResponse(protocols=EXEC_PROTOCOLS, heartbeat=None)
    await ws.prepare(request)
    result = simshell.run(argv, machine(pod, spec, request.app.get(SECCOMP_ROOT), request.app.get(RESOLVE)))
    tty = request.query.get("tty", "false").lower() == "true"
    if result.stdout and request.query.get("stdout", "true").lower() != "false":
        await ws.send_bytes(bytes([STDOUT]) + result.stdout.encode())
    if result.stderr:
        await ws.send_bytes(bytes([STDOUT if tty else STDERR]) + result.stderr.encode())
    await ws.send_bytes(bytes([ERROR]) + json.dumps(exit_status(result.code, argv)).encode())
    await _drain(ws)
    return ws


async def _drain(ws: web.WebSocketResponse) -> None:
    """Close, reading what the client still sends (stdin, the v5 close signal) for a moment."""
    try:
        await asyncio.wait_for(ws.close(), timeout=2.0)
    except asyncio.TimeoutError:
        pass
    if not ws.closed:
        async for msg in ws:  # pragma: no cover - close() above normally finishes it
            if msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                break


def routes(app: web.Application, *, pods: dict[Any, dict[str, Any]], seccomp_root: str, resolve: Any = None) -> None:
    app[PODS], app[SECCOMP_ROOT] = pods, seccomp_root
    if resolve is not None:
        app[RESOLVE] = resolve
    item = "/api/v1/namespaces/{namespace}/pods/{name}"
    app.router.add_get(f"{item}/log", logs)
    app.router.add_get(f"{item}/exec", exec_)
    app.router.add_post(f"{item}/exec", exec_)
