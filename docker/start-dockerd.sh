#!/bin/sh
# Start a Docker daemon in the background unless one already answers.
#
# These machines have no init system: dockerd is started by hand, with its own data root,
# exec root and pid file, so that it can be found and stopped again by pid
# (docker/stop-dockerd.sh). The data root is kept between runs so that a base image made
# once (docker/make-base-image.sh) is not made again.
#
# Exit status: 0 when a daemon answers (already running, or started now; the pid file says
# which one we started), 3 when dockerd cannot run on this machine (not installed and cannot
# be installed, or it exits or stays silent): the last lines of its log say why. Callers
# that want to skip instead of fail test for 3.
set -u

DATA_ROOT=${UBERNETES_DOCKER_DATA_ROOT:-/var/lib/ubernetes-docker}
RUN_DIR=${UBERNETES_DOCKER_RUN_DIR:-/run/ubernetes-docker}
PIDFILE=$RUN_DIR/dockerd.pid
LOG=$RUN_DIR/dockerd.log
TIMEOUT=${UBERNETES_DOCKERD_TIMEOUT:-30}

if docker info >/dev/null 2>&1; then
    echo "start-dockerd: a Docker daemon already answers; using it"
    exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
    echo "start-dockerd: dockerd is missing; installing docker.io with apt-get"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io; } >/dev/null 2>&1; then
        echo "start-dockerd: cannot run dockerd: 'apt-get install docker.io' failed" >&2
        exit 3
    fi
fi

mkdir -p "$DATA_ROOT" "$RUN_DIR/exec"
if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    echo "start-dockerd: dockerd $(cat "$PIDFILE") is running but does not answer yet"
else
    rm -f "$PIDFILE"
    # setsid: the daemon outlives the shell that started it and gets no terminal signals.
    setsid dockerd --data-root "$DATA_ROOT" --exec-root "$RUN_DIR/exec" --pidfile "$PIDFILE" \
        --host unix:///var/run/docker.sock >"$LOG" 2>&1 </dev/null &
    STARTED=$!
    echo "start-dockerd: started dockerd (data root $DATA_ROOT, log $LOG)"
fi

waited=0
while [ "$waited" -lt $((TIMEOUT * 10)) ]; do
    if docker info >/dev/null 2>&1; then
        echo "start-dockerd: dockerd $(cat "$PIDFILE" 2>/dev/null) is ready after $((waited / 10)).$((waited % 10)) s"
        exit 0
    fi
    if [ -n "${STARTED:-}" ] && ! kill -0 "$STARTED" 2>/dev/null; then
        break  # it exited: the log says why
    fi
    sleep 0.1
    waited=$((waited + 1))
done

echo "start-dockerd: cannot run dockerd on this machine; last lines of $LOG:" >&2
tail -n 15 "$LOG" >&2 2>/dev/null
if [ -n "${STARTED:-}" ]; then kill "$STARTED" 2>/dev/null; fi
rm -f "$PIDFILE"
exit 3
