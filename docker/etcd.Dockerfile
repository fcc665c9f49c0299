# etcd for the compose `ha` profile, from Debian's `etcd-server` package (3.4) on the same
# base image as the project's Dockerfile (no other registry image). Each member's command
# (name, peers, data directory) is in compose.yaml.
#
#   DOCKER_BUILDKIT=0 docker build --network host -f docker/etcd.Dockerfile \
#       --build-arg BASE_IMAGE=local/python:3.11-bookworm -t ubernetes-etcd docker
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends etcd-server \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o etcd -g etcd /var/lib/etcd/data
# The project's healthcheck script (only its `http` check, standard library only) for compose.
COPY healthcheck.py /usr/local/bin/ubernetes-healthcheck
RUN chmod 0755 /usr/local/bin/ubernetes-healthcheck
USER etcd
# 2379: clients (the API servers); 2380: the peers.
ENTRYPOINT ["/usr/bin/etcd"]
