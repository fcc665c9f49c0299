#!/bin/sh
# Stop the Docker daemon that docker/start-dockerd.sh started (by the pid in its pid file);
# a daemon that someone else started is left alone. Waits up to 20 s, then SIGKILL.
set -u
RUN_DIR=${UBERNETES_DOCKER_RUN_DIR:-/run/ubernetes-docker}
PIDFILE=$RUN_DIR/dockerd.pid
[ -f "$PIDFILE" ] || { echo "stop-dockerd: no $PIDFILE; nothing to stop"; exit 0; }
PID=$(cat "$PIDFILE")
if ! kill -0 "$PID" 2>/dev/null; then
    rm -f "$PIDFILE"
    echo "stop-dockerd: dockerd $PID is not running"
    exit 0
fi
kill -TERM "$PID"
i=0
while kill -0 "$PID" 2>/dev/null && [ "$i" -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
if kill -0 "$PID" 2>/dev/null; then
    echo "stop-dockerd: dockerd $PID still running after 20 s; killing it" >&2
    kill -KILL "$PID" 2>/dev/null
fi
rm -f "$PIDFILE"
echo "stop-dockerd: stopped dockerd $PID"
