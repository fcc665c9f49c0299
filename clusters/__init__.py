"""The member cluster simulator: one OS process per simulated Kubernetes cluster.

Layers, lowest first (a lower module never imports a higher one):

- ``state``: the simulated objects in memory (nodes, services, pods, endpoints, events) and
  the pure helpers they need (validation, address pools). No I/O, no asyncio.
- ``chaos``: the fault switches (issue 5) that the API and the data plane consult.
- ``dataplane``: real listeners on load-balancer addresses.
- ``controller``: the cluster's own reconcile loop (pod readiness, endpoints, LB addresses).
- ``watch``: watch events for the API, from diffs of the state (no I/O but waiting).
- ``api``: the Kubernetes-shaped HTTP API.
- ``agent``: joins the federation and renews the cluster's lease.
- ``command``: the ``ubernetes cluster`` click command that wires it all together.
"""
