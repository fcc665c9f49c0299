"""The join-and-lease agent: how a member cluster stays part of the federation by itself.

On start the agent makes sure the federation has this cluster's ``Cluster`` object (created
when missing, its spec merge-patched when it drifted), then renews the ``Lease``
``federation-system/<name>`` every lease period. It re-checks the Cluster object every few
renewals and after any failure, so a member whose Cluster was deleted, or whose federation
API restarted with an empty store, joins again without help: the level-triggered answer to
"what if the federation forgot me?".

Failures are retried with exponential backoff and jitter (tenacity), capped at two seconds:
a federation that comes back should see its members within a lease period or two. Each
change of state (joined, unreachable, back, partitioned) is logged once, not every retry.
While the chaos switch ``partitioned`` is on, the agent stays silent, as a member cut off
from the control plane would.

With a bootstrap token (issue 8) the agent first asks for a credential of its own
(``POST .../clusters/<name>/credential``) and uses it for everything after. A bootstrap
token gets only a new cluster's first credential (issue 19), so the agent keeps it in its
``credential_file`` (0600), as a kubelet keeps its certificate, and a restarted member
goes on with it; a credential the federation no longer accepts (401, e.g. after a store
wipe) is asked for again with the bootstrap token. When the member's own API needs a token, the
agent publishes it in the Secret ``federation-system/cluster-access-<name>`` that its
Cluster's ``spec.secretRef`` names, so the federation can reach it.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import ssl
import time
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client import CollectorRegistry, Counter, Histogram
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential_jitter

from clusters.chaos import Chaos
from federation.api.auth import access_secret
from federation.names import ACCESS_SECRET_PREFIX, FEDERATION_LABEL, LEASE_NAMESPACE, PROVIDER_LABEL, REGION_LABEL
from apimachinery.client import APIClient
from apimachinery.meta import now_micro
from apimachinery.errors import APIError, Conflict, Forbidden, NotFound, Unauthorized

log = logging.getLogger("ubernetes.cluster.agent")

CLUSTERS = "/apis/federation/v1beta1/clusters"
LEASES = f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases"
SECRETS = f"/api/v1/namespaces/{LEASE_NAMESPACE}/secrets"
LEASE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
ENSURE_EVERY = 5  # renewals between checks that the Cluster object still exists


def load_credential(path: Path | None, name: str) -> str | None:
    """The credential kept in ``path`` when it is one of cluster ``name``'s, else None."""
    if path is None:
        return None
    try:
        token = path.read_text().strip()
    except OSError:
        return None
    return token if token.startswith(f"{name}.") else None


def save_credential(path: Path | None, token: str) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.touch(mode=0o600)
    tmp.chmod(0o600)
    tmp.write_text(token + "\n")
    tmp.replace(path)


class _Retry(Exception):
    """Anything that should be retried with backoff (wraps the original error)."""


def cluster_object(*, name: str, provider: str, region: str, advertise: str, federation_name: str,
                   secret_ref: bool = False) -> dict[str, Any]:
    """The Cluster object this member registers (status belongs to the health controller)."""
    obj = {
        "apiVersion": "federation/v1beta1",
        "kind": "Cluster",
        "metadata": {
            "name": name,
            "labels": {
                FEDERATION_LABEL: federation_name,
                REGION_LABEL: region,
                PROVIDER_LABEL: provider,
            },
        },
        "spec": {
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": advertise}],
            "provider": provider,
        },
    }
    if secret_ref:
        obj["spec"]["secretRef"] = {"name": ACCESS_SECRET_PREFIX + name}  # type: ignore[index]
    return obj


def drifted(current: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any] | None:
    """The merge patch that brings ``current`` back to ``desired`` (spec and our labels), or None."""
    patch: dict[str, Any] = {}
    cur_spec = current.get("spec") or {}
    spec = {k: v for k, v in desired["spec"].items() if cur_spec.get(k) != v}
    if spec:
        patch["spec"] = spec
    cur_labels = (current.get("metadata") or {}).get("labels") or {}
    labels = {k: v for k, v in desired["metadata"]["labels"].items() if cur_labels.get(k) != v}
    if labels:
        patch["metadata"] = {"labels": labels}
    return patch or None


def describe(err: BaseException) -> str:
    if isinstance(err, _Retry) and err.__cause__ is not None:
        err = err.__cause__
    if isinstance(err, APIError):
        return f"{err.code} {err.reason}: {err.message}"
    if isinstance(err, asyncio.TimeoutError):
        return "timed out"
    return f"{type(err).__name__}: {err}".strip()


class Agent:
    def __init__(
        self,
        *,
        federation: str,
        name: str,
        provider: str,
        region: str,
        advertise: str,
        federation_name: str = "myfed",
        lease_period: float = 1.0,
        lease_duration: int = 5,
        chaos: Chaos | None = None,
        timeout: float = 2.0,
        max_backoff: float = 2.0,
        bootstrap_token: str | None = None,
        access_token: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        credential_file: Path | None = None,
        allow_http_token: bool = False,
        metrics_registry: CollectorRegistry | None = None,
    ) -> None:
        self.federation = federation
        self.allow_http_token = allow_http_token  # issue 19: tokens never cross plain HTTP off-host
        self.credential_file = credential_file
        self.timeout = timeout
        self.ssl_context = ssl_context
        self.access_token = access_token
        self.bootstrap = (APIClient(federation, timeout=timeout, token=bootstrap_token, ssl_context=ssl_context,
                                    allow_http_token=allow_http_token) if bootstrap_token else None)
        self.credential: str | None = None  # our own token (and in credential_file, when given)
        # Figures for bench/soak: latency of each successful renewal, and failed steps.
        self.renewal_latencies: collections.deque[float] = collections.deque(maxlen=100_000)
        self.failed_steps = 0
        # The same seen on the cluster's /metrics (issue 17; docs/metrics.md).
        registry = metrics_registry if metrics_registry is not None else CollectorRegistry()
        self._renewal_seconds = Histogram(
            "ubernetes_member_lease_renewal_duration_seconds",
            "Round trip of each successful renewal of the cluster's Lease at the federation, as the member sees it.",
            buckets=LEASE_BUCKETS, registry=registry)
        self._renewals_total = Counter(
            "ubernetes_member_lease_renewals_total", "Renewals of the cluster's Lease at the federation, by result.",
            ["result"], registry=registry)
        self.name = name
        self.lease_period = lease_period
        self.lease_duration = lease_duration
        self.chaos = chaos or Chaos()
        self.max_backoff = max_backoff
        self.desired = cluster_object(
            name=name, provider=provider, region=region, advertise=advertise, federation_name=federation_name,
            secret_ref=access_token is not None,
        )
        self.client = APIClient(federation, timeout=timeout, ssl_context=ssl_context)
        saved = load_credential(credential_file, name) if self.bootstrap else None
        if saved:
            self._use_credential(saved)
            log.info("using the credential kept in %s", credential_file)
        self.joined = False
        self._need_ensure = True
        self._renewals = 0
        self._failing: str | None = None  # description of the current failure, if any
        self._partitioned = False

    # ---- one step, no loops: testable on its own

    async def ensure_credential(self) -> None:
        """With a bootstrap token and no credential yet: ask for one and use it from now on."""
        if self.bootstrap is None or self.credential is not None:
            return
        try:
            answer = await self.bootstrap.post(f"{CLUSTERS}/{self.name}/credential", None)
        except APIError as err:
            if isinstance(err, Forbidden):
                log.error("the federation refuses us a credential: %s", err.message)
            raise
        token = answer.get("token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            raise ValueError("the federation answered a credential request without a token")
        await self.client.close()
        self._use_credential(token)
        save_credential(self.credential_file, token)
        log.info("got a credential of our own (user system:cluster:%s) with the bootstrap token", self.name)

    def _use_credential(self, token: str) -> None:
        self.credential = token
        self.client = APIClient(self.federation, timeout=self.timeout, token=token, ssl_context=self.ssl_context,
                                allow_http_token=self.allow_http_token)

    async def ensure_access_secret(self) -> None:
        """Publish the token the federation needs for our API, when it needs one."""
        if self.access_token is None:
            return
        secret = access_secret(self.name, self.access_token)
        path = f"{SECRETS}/{secret['metadata']['name']}"
        try:
            await self.client.patch(path, {"data": secret["data"]})
        except APIError as err:
            if not isinstance(err, NotFound):
                raise
            await self.client.post(SECRETS, secret)
            log.info("published the access token for our API in Secret %s/%s", LEASE_NAMESPACE, secret["metadata"]["name"])

    async def ensure_cluster(self) -> None:
        path = f"{CLUSTERS}/{self.name}"
        try:
            current = await self.client.get(path)
        except APIError as err:
            if not isinstance(err, NotFound):
                raise
            try:
                await self.client.post(CLUSTERS, self.desired)
                log.info("joined federation %s as Cluster %s", self.federation, self.name)
                return
            except APIError as err2:
                if not isinstance(err2, Conflict):
                    raise
                current = await self.client.get(path)
        patch = drifted(current, self.desired)
        if patch:
            await self.client.patch(path, patch)
            log.info("updated Cluster %s at %s: %s", self.name, self.federation, ", ".join(sorted(patch)))
        elif not self.joined:
            log.info("Cluster %s already registered at %s", self.name, self.federation)

    async def renew_lease(self) -> None:
        started = time.monotonic()
        try:
            await self._renew_lease()
        except Exception:
            self._renewals_total.labels("failure").inc()
            raise
        took = time.monotonic() - started
        self.renewal_latencies.append(took)
        self._renewal_seconds.observe(took)
        self._renewals_total.labels("success").inc()

    async def _renew_lease(self) -> None:
        spec = {"holderIdentity": self.name, "leaseDurationSeconds": self.lease_duration, "renewTime": now_micro()}
        try:
            await self.client.patch(f"{LEASES}/{self.name}", {"spec": spec})
        except APIError as err:
            if not isinstance(err, NotFound):
                raise
            lease = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": LEASE_NAMESPACE},
                "spec": {**spec, "acquireTime": spec["renewTime"], "leaseTransitions": 0},
            }
            try:
                await self.client.post(LEASES, lease)
            except APIError as err2:
                if not isinstance(err2, Conflict):
                    raise
                await self.client.patch(f"{LEASES}/{self.name}", {"spec": spec})
            self._need_ensure = True  # a lost lease may mean a federation with a fresh store

    async def step(self) -> None:
        """Ensure the Cluster when due, then renew the lease once. Raises _Retry on failure."""
        if self.chaos.partitioned:
            if not self._partitioned:
                log.warning("partitioned from the control plane (chaos): not renewing the lease")
                self._partitioned = True
            self._need_ensure = True
            return
        if self._partitioned:
            log.warning("partition healed: renewing the lease again")
            self._partitioned = False
        try:
            if self._need_ensure or self._renewals >= ENSURE_EVERY:
                await self.ensure_credential()
                await self.ensure_access_secret()
                await self.ensure_cluster()
                self._need_ensure = False
                self._renewals = 0
            await self.renew_lease()
            self._renewals += 1
        except asyncio.CancelledError:
            raise
        except (APIError, aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as err:
            self._need_ensure = True
            self.failed_steps += 1
            if isinstance(err, APIError) and isinstance(err, Unauthorized) and self.credential is not None and self.bootstrap:
                log.warning("the federation no longer accepts our credential; asking again with the bootstrap token")
                self.credential = None
            raise _Retry(describe(err)) from err
        if self._failing is not None:
            log.info("federation %s reachable again; Cluster %s and its lease are in place", self.federation, self.name)
            self._failing = None
        if not self.joined:
            log.info("lease %s/%s renewed every %gs (duration %ds)", LEASE_NAMESPACE, self.name, self.lease_period, self.lease_duration)
            self.joined = True

    def _before_sleep(self, retry_state: Any) -> None:
        err = retry_state.outcome.exception() if retry_state.outcome else None
        text = describe(err) if err else "unknown error"
        if self._failing is None:
            log.warning("federation %s: %s; retrying with backoff (max %gs)", self.federation, text, self.max_backoff)
        elif self._failing != text:
            log.info("federation %s still failing: %s", self.federation, text)
        self._failing = text

    # ---- the loop

    async def run(self) -> None:
        while True:
            async for attempt in AsyncRetrying(
                wait=wait_exponential_jitter(initial=0.1, max=self.max_backoff, jitter=0.25),
                retry=retry_if_exception_type(_Retry),
                before_sleep=self._before_sleep,
                reraise=True,
            ):
                with attempt:
                    await self.step()
            await asyncio.sleep(self.lease_period)

    async def unjoin(self, *, timeout: float = 3.0) -> None:
        """Best effort: delete our Cluster and Lease so the federation forgets us at once."""

        async def delete(path: str, what: str) -> None:
            try:
                await self.client.delete(path, timeout=timeout)
                log.info("unjoined: deleted %s", what)
            except APIError as err:
                if not isinstance(err, NotFound):
                    log.warning("unjoin: could not delete %s: %s", what, describe(err))
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as err:
                log.warning("unjoin: could not delete %s: %s", what, describe(err))

        try:
            await asyncio.wait_for(
                asyncio.gather(
                    delete(f"{CLUSTERS}/{self.name}", f"Cluster {self.name}"),
                    delete(f"{LEASES}/{self.name}", f"Lease {LEASE_NAMESPACE}/{self.name}"),
                ),
                timeout,
            )
        except asyncio.TimeoutError:
            log.warning("unjoin: federation did not answer within %gs", timeout)

    async def close(self) -> None:
        await self.client.close()
        if self.bootstrap is not None:
            await self.bootstrap.close()
