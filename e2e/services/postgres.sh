#!/usr/bin/env bash
# PostgreSQL from Debian's `postgresql` package, on 127.0.0.1:15432, database `weft`, user
# `postgres` with trust auth, data under $WEFT_SERVICES_DIR/postgres/data.
# Usage: postgres.sh up|start|stop|restart|down|status|url [--keep] [--kill]
# (--kill stops with `pg_ctl -m immediate`: a crash, recovered from the WAL on the next start).
# PostgreSQL refuses to run as root: as root the server runs as the `postgres` system user.
set -euo pipefail
SERVICE=postgres
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PORT=${WEFT_POSTGRES_PORT:-15432}
DATA="$SERVICE_DIR/data"
SOCK="$SERVICE_DIR/sock"

svc_url() { printf 'postgres://postgres@127.0.0.1:%s/weft\n' "$PORT"; }

# The newest installed server's bin directory (Debian's layout), or nothing.
installed_pg_bin() {
    local dir best=
    for dir in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V); do
        [[ -x $dir/pg_ctl ]] && best=$dir
    done
    [[ -n $best ]] && printf '%s\n' "$best"
}

# The server's bin directory, installing the package when there is none.
pg_bin() {
    if ! installed_pg_bin; then
        apt_install postgresql
        installed_pg_bin || die "no PostgreSQL server binaries after installing"
    fi
}

# Runs a command as the user owning the cluster, from / (root's cwd may be unreadable to it).
as_pg() {
    if [[ $(id -u) == 0 ]]; then
        (cd / && runuser -u postgres -- "$@")
    else
        (cd / && "$@")
    fi
}

ensure_user() {
    [[ $(id -u) == 0 ]] || return 0
    if ! id -u postgres >/dev/null 2>&1; then
        log "creating the postgres system user"
        useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash postgres
    fi
}

server_pid() {
    [[ -f $DATA/postmaster.pid ]] && read_pid "$DATA/postmaster.pid"
}

svc_healthy() {
    local bin
    server_pid >/dev/null || return 1
    bin=$(installed_pg_bin) || return 1
    "$bin/psql" -X -q -h 127.0.0.1 -p "$PORT" -U postgres -d weft -tAc 'select 1' \
        >/dev/null 2>&1
}

svc_start() {
    local bin pid
    bin=$(pg_bin)
    ensure_user
    if server_pid >/dev/null; then
        # Running but not answering: stop it and start again.
        svc_stop 0
    fi
    require_free_port "$PORT"
    mkdir -p "$SERVICE_DIR" "$SOCK"
    [[ $(id -u) == 0 ]] && chown postgres: "$SERVICE_DIR" "$SOCK"
    if [[ $(id -u) == 0 ]] && ! runuser -u postgres -- test -w "$SERVICE_DIR"; then
        die "the postgres user cannot reach $SERVICE_DIR: set WEFT_SERVICES_DIR to a folder it can enter"
    fi
    if [[ ! -f $DATA/PG_VERSION ]]; then
        log "initdb $DATA"
        rm -rf "$DATA"
        as_pg "$bin/initdb" -D "$DATA" -U postgres --auth=trust --encoding=UTF8 \
            --locale=C.UTF-8 >"$SERVICE_DIR/initdb.log" 2>&1 \
            || { show_log "$SERVICE_DIR/initdb.log"; die "initdb failed"; }
    fi
    [[ $(id -u) == 0 ]] && touch "$SERVICE_LOG" && chown postgres: "$SERVICE_LOG"
    log "starting on 127.0.0.1:$PORT"
    if ! (
        close_fds
        as_pg "$bin/pg_ctl" -D "$DATA" -l "$SERVICE_LOG" -w -t 60 -o \
            "-c listen_addresses=127.0.0.1 -p $PORT -k $SOCK -c max_connections=200" \
            start </dev/null >&2
    ); then
        show_log
        die "pg_ctl start failed"
    fi
    pid=$(server_pid) || { show_log; die "no postmaster after start"; }
    wait_for 60 "pg_isready" "$pid" "$bin/pg_isready" -q -h 127.0.0.1 -p "$PORT" -U postgres || exit 1
    if [[ -z $("$bin/psql" -X -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -tAc \
        "select 1 from pg_database where datname = 'weft'") ]]; then
        "$bin/createdb" -h 127.0.0.1 -p "$PORT" -U postgres weft
    fi
    svc_healthy || { show_log; die "started, but select 1 on database weft fails"; }
    log "ready (pid $pid)"
}

# svc_stop KILL : a fast shutdown (rolls back open transactions, flushes), or with KILL an
# immediate one, which leaves recovery to the next start like a crash would.
svc_stop() {
    local bin mode=fast pid
    pid=$(server_pid) || return 0
    [[ ${1:-0} == 1 ]] && mode=immediate
    bin=$(pg_bin)
    log "stopping (pid $pid, -m $mode)"
    as_pg "$bin/pg_ctl" -D "$DATA" -m "$mode" -w -t 60 stop >&2 || stop_pid "$pid" 30
}

service_main "$@"; exit
