# Prometheus for the compose demo, from Debian's `prometheus` package on the same base image
# as the project's Dockerfile (no other registry image). Its scrape configuration
# (docker/prometheus.yml) is baked in: the build context is docker/ (compose.yaml).
#
#   DOCKER_BUILDKIT=0 docker build --network host -f docker/prometheus.Dockerfile \
#       --build-arg BASE_IMAGE=local/python:3.11-bookworm -t ubernetes-prometheus docker
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o prometheus -g prometheus /var/lib/prometheus/data
COPY prometheus.yml /etc/prometheus/prometheus.yml
# The project's healthcheck script (only its `http` check, standard library only) for compose.
COPY healthcheck.py /usr/local/bin/ubernetes-healthcheck
RUN chmod 0755 /usr/local/bin/ubernetes-healthcheck
USER prometheus
# 9090: the web UI and the HTTP API (/api/v1/targets, /api/v1/query).
ENTRYPOINT ["/usr/bin/prometheus", "--config.file=/etc/prometheus/prometheus.yml", \
            "--storage.tsdb.path=/var/lib/prometheus/data", "--storage.tsdb.retention.time=1d", \
            "--web.listen-address=0.0.0.0:9090"]
