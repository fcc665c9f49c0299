"""The federation's well-known names, defined once (issue 11).

Labels, annotations, namespaces, Secret name prefixes and HTTP headers that more than one
module reads or writes: the federation's API server and controllers, the member simulator
(``clusters/``), the responder (``fedns``), the CLI and the benchmarks. Each was written out
in two to five places; a typo in one copy would have been a silent mismatch between the
writer and the reader of a name. A name used by one module only stays in that module.

A leaf: it imports nothing, so every package may import it (``clusters`` and ``fedns``
do, without knowing each other), and so may the pure planners.
"""

from __future__ import annotations

# -- namespaces ------------------------------------------------------------------------

# Where the federation keeps its own objects: the members' Leases, the access and
# credential Secrets, bootstrap tokens (Federation v1's namespace of the same name).
SYSTEM_NAMESPACE = "federation-system"
# Where each member renews its Lease (the default of Settings.lease_namespace).
LEASE_NAMESPACE = SYSTEM_NAMESPACE
# The namespaces every Kubernetes cluster has, in the order a new cluster makes them.
KUBERNETES_NAMESPACES = ("default", "kube-system", "kube-public")
# The label Kubernetes puts on every Namespace, its own name (selectable in kubectl).
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"

# -- the federation's labels and annotations ----------------------------------------------

# On every member copy and on each Cluster: which federation it belongs to.
FEDERATION_LABEL = "federation.kubernetes.io/federation-name"
# On a member copy: its federated object (``<ns>/<name>``, its uid, its kind).
OWNER_ANNOTATION = "federation.kubernetes.io/owner"
OWNER_UID_ANNOTATION = "federation.kubernetes.io/owner-uid"
OWNER_KIND_ANNOTATION = "federation.kubernetes.io/owner-kind"
# On a federated object being deleted: the DeleteOptions propagationPolicy it was given.
DELETION_PROPAGATION_ANNOTATION = "federation.kubernetes.io/deletion-propagation"
# What the user sets on a federated object (federation.planners.placement reads them).
PLACEMENT_ANNOTATION = "federation.kubernetes.io/placement"
OVERRIDES_ANNOTATION = "federation.kubernetes.io/overrides"
PREFERENCES_ANNOTATION = "federation.kubernetes.io/deployment-preferences"
# On a federated object (issue 15, KubeFed's kubefed.io/conflict-resolution): "adopt" lets
# the federation take over a member's own object of the same name instead of AlreadyExists.
CONFLICT_RESOLUTION_ANNOTATION = "federation.kubernetes.io/conflict-resolution"
# On a member copy of a federated kind (issue 15): a hash of what was last written there, so a
# copy that differs from it was changed in the member (drift), not by a new template.
TEMPLATE_HASH_ANNOTATION = "federation.kubernetes.io/template-hash"

# -- Kubernetes' own labels and annotations that both sides read ---------------------------

# kubectl apply's bookkeeping: never copied to members, hidden by describe.
LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"
CHANGE_CAUSE_ANNOTATION = "kubernetes.io/change-cause"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
# Node (and Cluster) topology: the member's nodes carry both; the federation reads either.
ZONE_LABEL = "topology.kubernetes.io/zone"
REGION_LABEL = "topology.kubernetes.io/region"
LEGACY_ZONE_LABEL = "failure-domain.beta.kubernetes.io/zone"
LEGACY_REGION_LABEL = "failure-domain.beta.kubernetes.io/region"

# -- the member simulator's names -------------------------------------------------------

# On a Cluster: the member's cloud provider (aws, gcp, onprem).
PROVIDER_LABEL = "ubernetes.io/provider"
# On a Service: how many pods the member simulates for it.
PODS_ANNOTATION = "ubernetes.io/pods"
# On a simulated pod: the Service it belongs to (label) and the zone it runs in.
SERVICE_LABEL = "ubernetes.io/service"
ZONE_ANNOTATION = "ubernetes.io/zone"
# On a Job's pod template (issue 15): how many seconds its pods run before they exit
# (the member's --workload job-pod-duration otherwise).
RUN_SECONDS_ANNOTATION = "ubernetes.io/run-seconds"
# Kubernetes' own: what a Job's pods and selector carry, and a CronJob's Jobs.
JOB_UID_LABEL = "batch.kubernetes.io/controller-uid"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
CRONJOB_SCHEDULED_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"
DAEMONSET_GENERATION_LABEL = "pod-template-generation"

# -- Secrets -----------------------------------------------------------------------------

# ``federation-system/cluster-access-<cluster>``: the token the federation uses on a member.
ACCESS_SECRET_PREFIX = "cluster-access-"

# -- the data plane's answer headers (a member's load balancer; the demo client reads them) --

CLUSTER_HEADER = "X-Ubernetes-Cluster"
ZONE_HEADER = "X-Ubernetes-Zone"
REGION_HEADER = "X-Ubernetes-Region"
POD_HEADER = "X-Ubernetes-Pod"

# -- addresses ---------------------------------------------------------------------------

# The federation API a client, the responder or the publisher talks to when told none.
DEFAULT_SERVER = "http://127.0.0.1:8080"
