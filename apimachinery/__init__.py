"""The Kubernetes-shaped API machinery every process of ubernetes shares.

A leaf package: it imports nothing from `federation`, `clusters` or `fedns`. The federation
API server and every member cluster are built from it, so the same request gets the same
answer from both by construction (issue 11). Body decoding with its limits, errors as
classes, kinds as data, storage, the generic server, the client and informers live here.
"""
