#!/bin/bash
# Container entry point of the scaler image, run beside the challenge simulator (simulator:v1.3.3)
# in one pod. See docs/running-with-challenge-simulator.md and the wire contract (shared docs,
# wire-contract.md, section "Processes and ports").
#
# Behaviour matched from the challenge's own run.sh (public repository
# AliyunContainerService/scaler, file run.sh; the challenge forbade changing it):
#   1. start ./scaler in the background;
#   2. probe 127.0.0.1:9001 (the scaler's gRPC port) once a second until it accepts a TCP
#      connection;
#   3. then probe :9000 (the simulator's stats HTTP) the same way until it accepts;
#   4. then probe :9000 once a second; when it stops accepting, the run is over: stop the scaler.
#   Probes are plain TCP connects with `nc -z`, as in the original (netcat is in the image).
#   The original probes `localhost`; we use 127.0.0.1 so an IPv6 ::1 answer cannot differ.
#
# Where the original is silent or weak, this script adds (none of it changes a normal run):
#   - the scaler is stopped with SIGTERM first (so it can destroy its slots), then SIGKILL after a
#     bounded wait (SCALER_STOP_TIMEOUT seconds, default 15); the original sent one SIGTERM and
#     exited at once;
#   - the script exits with the scaler's exit status (the original always exited 0);
#   - if the scaler dies before the run ends, the script exits at once with its status instead of
#     waiting forever for :9001;
#   - SIGTERM/SIGINT to this script (pod deletion: it is PID 1) stops the scaler the same way;
#   - without nc, bash's /dev/tcp does the probe.
#
# Environment (defaults equal the contract):
#   SCALER_HOST (127.0.0.1)  SCALER_PORT (9001)  STATS_HOST (127.0.0.1)  STATS_PORT (9000)
#   SCALER_STOP_TIMEOUT (15)  NC_BIN (nc; a name that does not resolve selects /dev/tcp)
# Kubernetes injects `<SERVICE>_PORT=tcp://ip:port` for every Service in the namespace (a Service
# named "scaler" gives SCALER_PORT=tcp://...): a value that is not a plain number is ignored.

set -u

log() {
    printf '[run.sh] %s\n' "$*"
}

# number VAR DEFAULT: prints $VAR if it is a plain decimal number, else DEFAULT (with a warning).
number() {
    local name=$1 default=$2 value=${!1-}
    if [[ -z $value ]]; then
        printf '%s\n' "$default"
    elif [[ $value =~ ^[0-9]+$ ]]; then
        printf '%s\n' "$value"
    else
        log "ignoring $name='$value' (not a number); using $default" >&2
        printf '%s\n' "$default"
    fi
}

SCALER_HOST=${SCALER_HOST:-127.0.0.1}
STATS_HOST=${STATS_HOST:-127.0.0.1}
SCALER_PORT=$(number SCALER_PORT 9001)
STATS_PORT=$(number STATS_PORT 9000)
STOP_TIMEOUT=$(number SCALER_STOP_TIMEOUT 15)
NC_BIN=${NC_BIN:-nc}

# port_open HOST PORT: succeeds when HOST:PORT accepts a TCP connection.
if command -v "$NC_BIN" >/dev/null 2>&1; then
    port_open() {
        "$NC_BIN" -z -w 2 "$1" "$2" >/dev/null 2>&1
    }
    log "probing ports with $NC_BIN -z"
else
    port_open() {
        if command -v timeout >/dev/null 2>&1; then
            # shellcheck disable=SC2016  # $1/$2 are expanded by the inner bash
            timeout 2 bash -c ': <>"/dev/tcp/$1/$2"' probe "$1" "$2" >/dev/null 2>&1
        else
            (: <>"/dev/tcp/$1/$2") >/dev/null 2>&1
        fi
    }
    log "$NC_BIN not found; probing ports with bash /dev/tcp"
fi

cd "$(dirname "${BASH_SOURCE[0]}")" || exit 1

SCALER_PID=

# finish: reap the scaler (already exited) and exit with its status.
finish() {
    local status=0
    wait "$SCALER_PID" 2>/dev/null || status=$?
    log "scaler exited with status $status"
    exit "$status"
}

# stop_scaler REASON: SIGTERM, bounded wait, SIGKILL, then exit with the scaler's status.
stop_scaler() {
    trap '' TERM INT
    log "$1; stopping the scaler (pid $SCALER_PID) with SIGTERM"
    kill -TERM "$SCALER_PID" 2>/dev/null
    local deadline=$((SECONDS + STOP_TIMEOUT))
    while kill -0 "$SCALER_PID" 2>/dev/null && ((SECONDS < deadline)); do
        sleep 0.2
    done
    if kill -0 "$SCALER_PID" 2>/dev/null; then
        log "scaler still running after ${STOP_TIMEOUT}s; sending SIGKILL"
        kill -KILL "$SCALER_PID" 2>/dev/null
    fi
    finish
}

# scaler_alive: true while the scaler runs; when it has died, exits this script with its status.
scaler_alive() {
    kill -0 "$SCALER_PID" 2>/dev/null && return 0
    log "scaler stopped before the run ended"
    finish
}

# wait_for_port HOST PORT WHAT: probe once a second until it accepts (or the scaler dies).
wait_for_port() {
    until port_open "$1" "$2"; do
        scaler_alive
        sleep 1
    done
    log "$3 ($1:$2) is now available"
}

./scaler &
SCALER_PID=$!
trap 'stop_scaler "run.sh received a termination signal"' TERM INT
log "scaler is starting (pid $SCALER_PID)"

wait_for_port "$SCALER_HOST" "$SCALER_PORT" "scaler"
wait_for_port "$STATS_HOST" "$STATS_PORT" "simulator stats"

while port_open "$STATS_HOST" "$STATS_PORT"; do
    scaler_alive
    sleep 1
done
stop_scaler "simulator stats ($STATS_HOST:$STATS_PORT) stopped answering"
