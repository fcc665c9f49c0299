# A stand-in for the official slim Python image, made from Debian's packages only
# (docker/make-base-image.sh builds it; see docs/compose.md). ca/ holds the build machine's
# extra CA certificates, if any, so that pip in later builds trusts what the host trusts.
ARG DEBIAN_IMAGE=local/debian:bookworm
FROM ${DEBIAN_IMAGE}
COPY ca/ /usr/local/share/ca-certificates/
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && update-ca-certificates >/dev/null \
 && rm -rf /var/lib/apt/lists/*
# pip in a virtual environment carries its own CA bundle: point it at the system's.
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    LANG=C.UTF-8
CMD ["python3"]
