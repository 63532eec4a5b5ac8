#!/usr/bin/env bash
# NATS with JetStream (file storage) from Debian's `nats-server` package: clients on
# 127.0.0.1:14222, monitoring on 127.0.0.1:18222, the store under $WEFT_SERVICES_DIR/nats/store.
# Usage: nats.sh up|start|stop|restart|down|status|url [--keep] [--kill]
# (--kill stops with SIGKILL: a crash; JetStream recovers its store on the next start).
set -euo pipefail
SERVICE=nats
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PORT=${WEFT_NATS_PORT:-14222}
MONITOR_PORT=${WEFT_NATS_MONITOR_PORT:-18222}
PIDFILE="$SERVICE_DIR/nats.pid"
HEALTHZ="http://127.0.0.1:$MONITOR_PORT/healthz?js-enabled-only=true"

svc_url() { printf 'nats://127.0.0.1:%s\n' "$PORT"; }

nats_bin() {
    if ! command -v nats-server >/dev/null 2>&1 && [[ ! -x /usr/sbin/nats-server ]]; then
        apt_install nats-server
    fi
    command -v nats-server 2>/dev/null || printf '/usr/sbin/nats-server\n'
}

healthz() { curl -sf --max-time 2 "$HEALTHZ"; }

svc_healthy() {
    read_pid "$PIDFILE" >/dev/null && healthz >/dev/null 2>&1
}

svc_start() {
    local bin pid
    bin=$(nats_bin)
    command -v curl >/dev/null 2>&1 || apt_install curl
    if pid=$(read_pid "$PIDFILE"); then
        svc_stop 0
    fi
    require_free_port "$PORT" "$MONITOR_PORT"
    mkdir -p "$SERVICE_DIR/store"
    log "starting on 127.0.0.1:$PORT (monitoring $MONITOR_PORT, store $SERVICE_DIR/store)"
    printf '\n--- start %s\n' "$(date -Is)" >>"$SERVICE_LOG"
    # -n: a fixed server name, so the JetStream store is the same across restarts.
    pid=$(spawn "$SERVICE_LOG" "$bin" -n weft -a 127.0.0.1 -p "$PORT" \
        -m "$MONITOR_PORT" -js -sd "$SERVICE_DIR/store")
    printf '%s\n' "$pid" >"$PIDFILE"
    wait_for 60 "healthz" "$pid" healthz || exit 1
    log "ready (pid $pid)"
}

svc_stop() {
    local pid signal=TERM
    pid=$(read_pid "$PIDFILE") || { rm -f "$PIDFILE"; return 0; }
    [[ ${1:-0} == 1 ]] && signal=KILL
    log "stopping (pid $pid, SIG$signal)"
    stop_pid "$pid" 30 "$signal"
    rm -f "$PIDFILE"
    wait_ports_closed "$PORT" "$MONITOR_PORT" || true
}

service_main "$@"; exit
