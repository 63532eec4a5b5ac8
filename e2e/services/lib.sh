# Shared by the service scripts (sourced, not run): where state lives, logging to stderr,
# a per-service lock, installing Debian packages, waiting for readiness, stopping a process.
#
# Layout of the state of one service:
#   ${WEFT_SERVICES_DIR:-/tmp/weft-services}/<name>/      data, pid file, server.log
#   ${WEFT_SERVICES_DIR:-/tmp/weft-services}/.<name>.lock  held while a command changes it
# Downloads and builds that outlive the state (the Kafka jars, the Kubernetes binaries) go to
# ${WEFT_CACHE_DIR:-$HOME/.cache/weft}.

WEFT_SERVICES_DIR="${WEFT_SERVICES_DIR:-/tmp/weft-services}"
WEFT_CACHE_DIR="${WEFT_CACHE_DIR:-${HOME:-/root}/.cache/weft}"
SERVICES_HOME="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SERVICE_DIR="$WEFT_SERVICES_DIR/$SERVICE"
SERVICE_LOG="$SERVICE_DIR/server.log"

# Everything but the `NAME URL` lines goes to stderr, so `$(up ...)` captures only those.
log() { printf '[%s] %s\n' "$SERVICE" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# Serialises commands on one service (two test binaries may call `up` at the same moment).
# A script may set SERVICE_LOCK_TIMEOUT (seconds, default 900) before sourcing this file.
lock_service() {
    mkdir -p "$WEFT_SERVICES_DIR"
    exec 9>"$WEFT_SERVICES_DIR/.$SERVICE.lock"
    flock -w "${SERVICE_LOCK_TIMEOUT:-900}" 9 || die "timed out waiting for another command on $SERVICE"
}

# Runs a command as root: directly when we are root, else through passwordless sudo.
as_root() {
    if [[ $(id -u) == 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo -n "$@"
    else
        die "need root to run: $*"
    fi
}

# apt_install PACKAGE... : installs the Debian packages, refreshing the lists once if the
# first attempt fails (a fresh machine has none). Waits for a dpkg lock held by someone else.
apt_install() {
    log "installing $* (apt)"
    local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -y -q)
    if ! as_root "${apt[@]}" install --no-install-recommends "$@" >&2; then
        as_root "${apt[@]}" update >&2
        as_root "${apt[@]}" install --no-install-recommends "$@" >&2
    fi
}

# True when something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# Fails with a clear message when PORT is taken by something that is not this service.
require_free_port() {
    local port
    for port in "$@"; do
        if port_open "$port"; then
            die "127.0.0.1:$port is in use by another process (not $SERVICE under $SERVICE_DIR)"
        fi
    done
}

# wait_ports_closed PORT... : after a stop, waits (up to 30 s) until nothing listens there
# any more: a killed JVM's main thread turns zombie before its other threads have exited
# and closed the sockets.
wait_ports_closed() {
    local port deadline=$((SECONDS + 30))
    for port in "$@"; do
        while port_open "$port"; do
            ((SECONDS < deadline)) || { log "127.0.0.1:$port still open after stopping"; return 1; }
            sleep 0.1
        done
    done
}

# pid_alive PID : the process exists and is not a zombie.
pid_alive() {
    [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null \
        && [[ $(ps -o stat= -p "$1" 2>/dev/null) != Z* ]]
}

# The pid recorded in FILE, if that process is still alive.
read_pid() {
    local pid
    [[ -f $1 ]] || return 1
    pid=$(head -n1 "$1" 2>/dev/null | tr -d '[:space:]')
    pid_alive "$pid" && printf '%s\n' "$pid"
}

show_log() {
    local file=${1:-$SERVICE_LOG}
    if [[ -f $file ]]; then
        log "last lines of $file:"
        tail -n "${2:-60}" "$file" | sed 's/^/    /' >&2
    else
        log "no log at $file"
    fi
}

# wait_for SECONDS WHAT PID CHECK... : polls CHECK until it succeeds. Gives up, printing the
# server log's tail, when the time is out or when PID (if not empty) has exited.
wait_for() {
    local timeout=$1 what=$2 pid=$3
    shift 3
    local deadline=$((SECONDS + timeout))
    until "$@" >/dev/null 2>&1; do
        if [[ -n $pid ]] && ! pid_alive "$pid"; then
            log "$what: the server (pid $pid) exited"
            show_log
            return 1
        fi
        if ((SECONDS >= deadline)); then
            log "$what: not ready after ${timeout}s"
            show_log
            return 1
        fi
        sleep 0.2
    done
}

# stop_pid PID SECONDS [SIGNAL] : sends SIGNAL (TERM), waits, then KILLs what is left.
stop_pid() {
    local pid=$1 timeout=$2 signal=${3:-TERM}
    pid_alive "$pid" || return 0
    kill "-$signal" "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + timeout))
    while pid_alive "$pid"; do
        if ((SECONDS >= deadline)); then
            log "pid $pid still running after ${timeout}s: killing it"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.2
            deadline=$((SECONDS + 5))
        fi
        sleep 0.1
    done
}

# Closes every inherited descriptor above stderr (call in a subshell before starting a
# server): a server must not hold our lock (fd 9) nor a caller's pipe, or `$(up ...)`
# would never see end of file.
close_fds() {
    local fd
    for fd in /proc/"$BASHPID"/fd/*; do
        fd=${fd##*/}
        if ((fd > 2 && fd != 255)); then
            eval "exec $fd>&-" 2>/dev/null || true
        fi
    done
}

# spawn LOG COMMAND... : runs a server fully detached (own session, no inherited
# descriptors, output appended to LOG) and prints its pid.
spawn() {
    local logfile=$1
    shift
    (
        close_fds
        exec setsid "$@" </dev/null >>"$logfile" 2>&1
    ) &
    printf '%s\n' "$!"
}

# The main of a service script: dispatches `SCRIPT COMMAND [--keep] [--kill]` to the
# functions the script defines: svc_url, svc_healthy, svc_start, svc_stop (KILL as $1).
service_main() {
    local cmd=${1:-}
    shift || true
    local keep=0 kill=0 arg
    for arg in "$@"; do
        case $arg in
        --keep) keep=1 ;;
        --kill) kill=1 ;;
        *) die "unknown option $arg" ;;
        esac
    done
    case $cmd in
    up | start)
        lock_service
        if svc_healthy; then
            log "already running"
        else
            svc_start
        fi
        printf '%s %s\n' "$SERVICE" "$(svc_url)"
        ;;
    stop)
        lock_service
        svc_stop "$kill"
        ;;
    restart)
        lock_service
        svc_stop "$kill"
        svc_start
        printf '%s %s\n' "$SERVICE" "$(svc_url)"
        ;;
    down)
        lock_service
        svc_stop "$kill"
        if ((!keep)) && [[ -d $SERVICE_DIR ]]; then
            rm -rf "$SERVICE_DIR"
            log "removed $SERVICE_DIR"
        fi
        ;;
    status)
        if svc_healthy; then
            printf '%s running %s\n' "$SERVICE" "$(svc_url)"
        elif [[ -d $SERVICE_DIR ]]; then
            printf '%s stopped %s\n' "$SERVICE" "$SERVICE_DIR"
            return 3
        else
            printf '%s absent\n' "$SERVICE"
            return 3
        fi
        ;;
    url) printf '%s\n' "$(svc_url)" ;;
    *) die "usage: $(basename "$0") up|start|stop|restart|down|status|url [--keep] [--kill]" ;;
    esac
}
