# One image for every component of ubernetes: the federation API server, the DNS responder,
# the member clusters and the demo client are all `ubernetes <command>` (see compose.yaml).
#
#   docker build -t ubernetes .
#
# On a machine that reaches no public image registry, make a local base from Debian's
# packages first (docker/make-base-image.sh) and pass it in:
#
#   DOCKER_BUILDKIT=0 docker build --network host \
#       --build-arg BASE_IMAGE=local/python:3.11-bookworm -t ubernetes .
ARG BASE_IMAGE=python:3.11-slim

# --- build: a virtual environment with the package and its dependencies ---------------------
FROM ${BASE_IMAGE} AS build
# Marks the build stage's image, which the legacy builder leaves behind untagged, so a
# clean-up can prune exactly these (tests/e2e/test_compose_e2e.py does).
LABEL io.ubernetes.stage=build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore
RUN python3 -m venv /opt/ubernetes
WORKDIR /src
# Dependencies first, in their own layer: editing the sources does not reinstall them.
COPY pyproject.toml README.md ./
RUN /opt/ubernetes/bin/python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' >requirements.txt \
 && /opt/ubernetes/bin/pip install -q -r requirements.txt
COPY apimachinery/ apimachinery/
COPY federation/ federation/
COPY clusters/ clusters/
COPY dns/ dns/
RUN /opt/ubernetes/bin/pip install -q --no-deps . \
 && /opt/ubernetes/bin/ubernetes --version
COPY docker/healthcheck.py /opt/ubernetes/bin/ubernetes-healthcheck
RUN chmod 0755 /opt/ubernetes/bin/ubernetes-healthcheck \
 && sed -i '1s|.*|#!/opt/ubernetes/bin/python3|' /opt/ubernetes/bin/ubernetes-healthcheck

# --- runtime: the base plus the virtual environment, run as an unprivileged user -------------
FROM ${BASE_IMAGE}
COPY --from=build /opt/ubernetes /opt/ubernetes
COPY docker/web.yaml /etc/ubernetes/web.yaml
# The federation's store goes in /var/lib/ubernetes/store (a named volume in compose.yaml: a
# new volume takes this directory's owner, so the unprivileged user can write it).
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/ubernetes --create-home ubernetes \
 && install -d -o ubernetes -g ubernetes /var/lib/ubernetes/store
ENV PATH=/opt/ubernetes/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER ubernetes
WORKDIR /var/lib/ubernetes
# Ports (no EXPOSE: each component listens on its own, set by its command in compose.yaml):
# 8080 the federation API, 1053 DNS (UDP and TCP), 9100 a member's API, 8000 the sample service.
ENTRYPOINT ["ubernetes"]
CMD ["--help"]
