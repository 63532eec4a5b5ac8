#!/usr/bin/env bash
# A real Kubernetes API server without Docker, the way controller-runtime's envtest runs one:
# etcd (client 127.0.0.1:12379, peer 12380) and kube-apiserver (https://127.0.0.1:16443) as
# local processes; no controller-manager, scheduler or kubelet, so no Pod runs, namespaces
# never finish terminating and owner references are not garbage-collected (wait for a CRD's
# Established condition before using it).
#
# `up kube` prints `kube KUBECONFIG`: the path of a kubeconfig (cluster `weft`, user `admin` in
# group system:masters, certificates embedded) that `kubectl` and `kube::Client::try_default()`
# read through KUBECONFIG. Beside it:
#   $WEFT_SERVICES_DIR/kube/kubeconfig      the kubeconfig (rewritten on every start)
#   $WEFT_SERVICES_DIR/kube/bin/kubectl     kubectl of the same version (a link into the cache):
#                                           $WEFT_SERVICES_DIR/kube/bin/kubectl --kubeconfig=... get ns
#   $WEFT_SERVICES_DIR/kube/pki/            CA, apiserver, admin client and service-account keys
#   $WEFT_SERVICES_DIR/kube/etcd/           etcd's data;  server.log, etcd.log: the two logs
# `down kube` removes all of that; the binaries stay in the cache.
#
# Binaries: kube-apiserver, kubectl (k8s.io/kubernetes v1.35.4) and etcd (the version that
# module's go.mod names), built once with Go from the Go module proxy in a throwaway wrapper
# module under $TMPDIR, cached in ${WEFT_CACHE_DIR:-~/.cache/weft}/kube-v1.35.4/ and never
# rebuilt while present. A cold build downloads ~0.5 GB of modules and takes 8-15 minutes on
# two cores (progress on stderr, the Go output in build.log there).
#
# Ports: WEFT_KUBE_PORT (16443), WEFT_ETCD_PORT (12379), WEFT_ETCD_PEER_PORT (12380).
# Usage: kube.sh up|start|stop|restart|down|status|url [--keep] [--kill]
# (--kill stops both with SIGKILL: a crash; etcd recovers its data on the next start).
set -euo pipefail
SERVICE=kube
# The first `up` may build for 15 minutes under the service lock: wait that long for it.
SERVICE_LOCK_TIMEOUT=2700
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KUBE_VERSION=v1.35.4
# The staging modules (k8s.io/api, client-go, ...) are tagged v0.MINOR.PATCH for v1.MINOR.PATCH.
STAGING_VERSION=v0.${KUBE_VERSION#v1.}
BIN_DIR="$WEFT_CACHE_DIR/kube-$KUBE_VERSION"
BINARIES=(kube-apiserver kubectl etcd)

PORT=${WEFT_KUBE_PORT:-16443}
ETCD_PORT=${WEFT_ETCD_PORT:-12379}
ETCD_PEER_PORT=${WEFT_ETCD_PEER_PORT:-12380}
START_TIMEOUT=${WEFT_KUBE_START_TIMEOUT:-180}

PKI="$SERVICE_DIR/pki"
KUBECONFIG_FILE="$SERVICE_DIR/kubeconfig"
ETCD_LOG="$SERVICE_DIR/etcd.log"
ETCD_PIDFILE="$SERVICE_DIR/etcd.pid"
APISERVER_PIDFILE="$SERVICE_DIR/kube-apiserver.pid"

svc_url() { printf '%s\n' "$KUBECONFIG_FILE"; }

# curl and openssl, from Debian when missing.
ensure_tools() {
    local missing=()
    command -v curl >/dev/null 2>&1 || missing+=(curl)
    command -v openssl >/dev/null 2>&1 || missing+=(openssl)
    ((${#missing[@]} == 0)) || apt_install "${missing[@]}"
}

# ---------------------------------------------------------------------------------------
# Building the binaries

go_bin() {
    if command -v go >/dev/null 2>&1; then
        command -v go
    elif [[ -x /usr/local/go/bin/go ]]; then
        printf '/usr/local/go/bin/go\n'
    else
        die "Go (1.25 or newer) is needed to build kube-apiserver, kubectl and etcd once; none on PATH"
    fi
}

# run_step WHAT LOGFILE COMMAND... : runs COMMAND (low priority, output appended to LOGFILE),
# saying every minute that it is still at it; on failure shows the log's tail and dies.
run_step() {
    local what=$1 logfile=$2 start=$SECONDS pid next=60
    shift 2
    log "$what"
    printf '\n--- %s: %s\n' "$(date -Is)" "$*" >>"$logfile"
    (
        close_fds
        exec nice -n 10 "$@"
    ) </dev/null >>"$logfile" 2>&1 &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        sleep 1
        if ((SECONDS - start >= next)); then
            log "  ... still at it ($((SECONDS - start))s)"
            next=$((next + 60))
        fi
    done
    if ! wait "$pid"; then
        show_log "$logfile" 40
        die "failed: $what (full output in $logfile)"
    fi
    log "  done in $((SECONDS - start))s"
}

missing_binaries() {
    local name
    for name in "${BINARIES[@]}"; do
        [[ -x $BIN_DIR/$name ]] || printf '%s\n' "$name"
    done
}

# Builds what is missing from the cache; with all three present it does nothing at all.
ensure_binaries() {
    local missing
    missing=$(missing_binaries)
    [[ -z $missing ]] && return 0
    mkdir -p "$BIN_DIR"
    # One build at a time per cache, whichever services folder asked for it.
    exec 8>"$BIN_DIR/.build.lock"
    flock -w 3600 8 || die "timed out waiting for another build in $BIN_DIR"
    missing=$(missing_binaries)
    if [[ -n $missing ]]; then
        # shellcheck disable=SC2086 # one name per word
        build_binaries $missing
    fi
    exec 8>&-
}

# The wrapper module's packages: one import per binary, so that `go mod tidy` resolves
# exactly what the three builds need.
write_tools_go() {
    cat >"$1/tools.go" <<'EOF'
//go:build tools

// Package tools only pins the programs this throwaway module builds.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
EOF
}

# build_binaries NAME... : builds those of kube-apiserver, kubectl, etcd into $BIN_DIR.
build_binaries() {
    local go work out gomod etcd_version build_log="$BIN_DIR/build.log" started=$SECONDS
    local staging=() edits=() ldflags pkg name m minor
    go=$(go_bin)
    work=$(mktemp -d "${TMPDIR:-/tmp}/weft-kube-build.XXXXXX")
    out=$(mktemp -d "$BIN_DIR/.build.XXXXXX")
    # shellcheck disable=SC2064 # expand now: the locals are gone when the trap runs
    trap "rm -rf '$work' '$out'" EXIT
    : >"$build_log"
    log "building $* for Kubernetes $KUBE_VERSION into $BIN_DIR with $("$go" version)"
    log "(a cold build downloads ~0.5 GB and takes 8-15 min; wrapper module in $work, log in $build_log)"

    # Parallelism 2: the machines have two cores and the link of kube-apiserver needs ~2 GB.
    export GOFLAGS="${GOFLAGS:+$GOFLAGS }-p=${WEFT_KUBE_BUILD_JOBS:-2}" GOWORK=off \
        GO111MODULE=on CGO_ENABLED=0

    cd "$work"
    "$go" mod init weft.invalid/kube-build >>"$build_log" 2>&1
    run_step "downloading k8s.io/kubernetes@$KUBE_VERSION" "$build_log" \
        "$go" mod download k8s.io/kubernetes@"$KUBE_VERSION"
    gomod=$("$go" mod download -json k8s.io/kubernetes@"$KUBE_VERSION" \
        | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
    [[ -f $gomod ]] || die "no go.mod for k8s.io/kubernetes@$KUBE_VERSION (see $build_log)"

    # k8s.io/kubernetes replaces its staging modules with ./staging/src/k8s.io/...; outside
    # its repository they come from the proxy at the matching v0.x tag.
    mapfile -t staging < <(sed -n \
        's#^[[:space:]]*\(replace[[:space:]]\{1,\}\)\{0,1\}\(k8s\.io/[^[:space:]]\{1,\}\)[[:space:]]\{1,\}=>[[:space:]]\{1,\}\./staging/.*#\2#p' \
        "$gomod")
    ((${#staging[@]} > 0)) || die "found no './staging/' replace lines in $gomod"
    edits=(-require=k8s.io/kubernetes@"$KUBE_VERSION")
    for m in "${staging[@]}"; do
        edits+=(-replace="$m=$m@$STAGING_VERSION")
    done
    # etcd at the version Kubernetes itself is tested with (go.mod names server/v3 as
    # indirect; else take client/v3's version).
    etcd_version=$(awk '$1 == "go.etcd.io/etcd/server/v3" { print $2; exit }' "$gomod")
    [[ -n $etcd_version ]] \
        || etcd_version=$(awk '$1 == "go.etcd.io/etcd/client/v3" { print $2; exit }' "$gomod")
    [[ -n $etcd_version ]] || die "$gomod names no go.etcd.io/etcd version"
    edits+=(-require=go.etcd.io/etcd/server/v3@"$etcd_version")
    "$go" mod edit "${edits[@]}"
    log "  ${#staging[@]} staging modules at $STAGING_VERSION, etcd $etcd_version"
    write_tools_go "$work"
    run_step "resolving and downloading the modules (go mod tidy)" "$build_log" "$go" mod tidy

    minor=${KUBE_VERSION#v1.}
    minor=${minor%%.*}
    ldflags="-s -w"
    for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
        ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
        ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    done
    for name in "$@"; do
        case $name in
        etcd) pkg=go.etcd.io/etcd/server/v3 ;;
        *) pkg=k8s.io/kubernetes/cmd/$name ;;
        esac
        run_step "go build $pkg" "$build_log" \
            "$go" build -trimpath -ldflags "$ldflags" -o "$out/$name" "$pkg"
        mv -f "$out/$name" "$BIN_DIR/$name"
    done
    {
        printf 'kubernetes %s\netcd %s\n' "$KUBE_VERSION" "$etcd_version"
        "$go" version
        date -Is
    } >"$BIN_DIR/VERSIONS"
    cd /
    rm -rf "$work" "$out"
    trap - EXIT
    log "built $* in $((SECONDS - started))s ($(du -sh "$BIN_DIR" | cut -f1) in $BIN_DIR)"
}

# ---------------------------------------------------------------------------------------
# Certificates and kubeconfig

# A CA, the apiserver's serving certificate, an admin client certificate (group
# system:masters) and the service-account key pair; made once per services folder.
ensure_pki() {
    [[ -f $PKI/ca.crt && -f $PKI/apiserver.crt && -f $PKI/admin.crt && -f $PKI/sa.pub ]] \
        && return 0
    local tmp="$PKI.tmp.$$" cnf
    rm -rf "$tmp"
    mkdir -p "$tmp"
    cnf="$tmp/openssl.cnf"
    cat >"$cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign, digitalSignature
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost, DNS:kubernetes, DNS:kubernetes.default, DNS:kubernetes.default.svc
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
    log "creating the CA, apiserver, admin and service-account keys in $PKI"
    {
        openssl genrsa -out "$tmp/ca.key" 2048
        openssl req -x509 -new -key "$tmp/ca.key" -sha256 -days 3650 -subj /CN=weft-kube-ca \
            -config "$cnf" -extensions ca -out "$tmp/ca.crt"
        sign "$tmp" apiserver /CN=kube-apiserver server
        sign "$tmp" admin /O=system:masters/CN=admin client
        openssl genrsa -out "$tmp/sa.key" 2048
        openssl rsa -in "$tmp/sa.key" -pubout -out "$tmp/sa.pub"
    } >"$tmp/openssl.log" 2>&1 || { show_log "$tmp/openssl.log"; die "openssl failed"; }
    chmod 600 "$tmp"/*.key
    rm -f "$tmp"/*.csr "$tmp/openssl.log"
    rm -rf "$PKI"
    mv "$tmp" "$PKI"
}

# sign DIR NAME SUBJECT SECTION : a key and a certificate signed by DIR/ca.*.
sign() {
    local dir=$1 name=$2 subject=$3 section=$4
    openssl genrsa -out "$dir/$name.key" 2048
    openssl req -new -key "$dir/$name.key" -subj "$subject" -config "$dir/openssl.cnf" \
        -out "$dir/$name.csr"
    openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
        -set_serial "0x$(openssl rand -hex 16)" -days 3650 -sha256 \
        -extfile "$dir/openssl.cnf" -extensions "$section" -out "$dir/$name.crt"
}

b64() { base64 -w0 <"$1"; }

# The kubeconfig, with the certificates embedded, replaced atomically.
write_kubeconfig() {
    local tmp="$KUBECONFIG_FILE.tmp.$$"
    cat >"$tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: weft
  cluster:
    server: https://127.0.0.1:$PORT
    certificate-authority-data: $(b64 "$PKI/ca.crt")
users:
- name: admin
  user:
    client-certificate-data: $(b64 "$PKI/admin.crt")
    client-key-data: $(b64 "$PKI/admin.key")
contexts:
- name: weft
  context:
    cluster: weft
    user: admin
current-context: weft
preferences: {}
EOF
    chmod 600 "$tmp"
    mv -f "$tmp" "$KUBECONFIG_FILE"
}

# ---------------------------------------------------------------------------------------
# Processes

# pid_of PIDFILE BINARY : the recorded pid, if alive and still running our BINARY.
pid_of() {
    local pid
    pid=$(read_pid "$1") || return 1
    [[ $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) == "$BIN_DIR/$2 "* ]] || return 1
    printf '%s\n' "$pid"
}
etcd_pid() { pid_of "$ETCD_PIDFILE" etcd; }
apiserver_pid() { pid_of "$APISERVER_PIDFILE" kube-apiserver; }

etcd_health() {
    [[ $(curl -sf --max-time 2 "http://127.0.0.1:$ETCD_PORT/health") == *'"health":"true"'* ]]
}

# apiserver_get PATH : GET with the admin certificate.
apiserver_get() {
    curl -sf --max-time 5 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" \
        --key "$PKI/admin.key" "https://127.0.0.1:$PORT$1"
}
readyz() { apiserver_get /readyz; }
default_namespace() { apiserver_get /api/v1/namespaces/default; }

svc_healthy() {
    etcd_pid >/dev/null && apiserver_pid >/dev/null && readyz >/dev/null 2>&1
}

svc_start() {
    local pid
    ensure_tools
    ensure_binaries
    if etcd_pid >/dev/null || apiserver_pid >/dev/null; then
        # Running but not answering: stop what is left and start again.
        svc_stop 0
    fi
    require_free_port "$PORT" "$ETCD_PORT" "$ETCD_PEER_PORT"
    mkdir -p "$SERVICE_DIR/bin"
    ensure_pki
    write_kubeconfig
    ln -sfn "$BIN_DIR/kubectl" "$SERVICE_DIR/bin/kubectl"

    log "starting etcd on 127.0.0.1:$ETCD_PORT (peer $ETCD_PEER_PORT, data $SERVICE_DIR/etcd)"
    printf '\n--- start %s\n' "$(date -Is)" >>"$ETCD_LOG"
    pid=$(spawn "$ETCD_LOG" "$BIN_DIR/etcd" --name weft --data-dir "$SERVICE_DIR/etcd" \
        --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
        --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
        --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-cluster "weft=http://127.0.0.1:$ETCD_PEER_PORT" \
        --unsafe-no-fsync=true)
    printf '%s\n' "$pid" >"$ETCD_PIDFILE"
    SERVICE_LOG=$ETCD_LOG wait_for 60 "etcd /health" "$pid" etcd_health \
        || die "etcd did not become healthy (log: $ETCD_LOG)"

    # --endpoint-reconciler-type=none: the `kubernetes` Service's endpoints would be
    # 127.0.0.1, which validation rejects (an error in the log every 10 s otherwise).
    log "starting kube-apiserver $KUBE_VERSION on https://127.0.0.1:$PORT"
    printf '\n--- start %s\n' "$(date -Is)" >>"$SERVICE_LOG"
    pid=$(spawn "$SERVICE_LOG" "$BIN_DIR/kube-apiserver" \
        --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
        --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$PORT" \
        --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
        --client-ca-file="$PKI/ca.crt" \
        --service-account-issuer="https://127.0.0.1:$PORT" \
        --service-account-key-file="$PKI/sa.pub" \
        --service-account-signing-key-file="$PKI/sa.key" \
        --service-cluster-ip-range=10.0.0.0/24 \
        --authorization-mode=RBAC --disable-admission-plugins=ServiceAccount \
        --allow-privileged=true --endpoint-reconciler-type=none)
    printf '%s\n' "$pid" >"$APISERVER_PIDFILE"
    wait_for "$START_TIMEOUT" "kube-apiserver /readyz" "$pid" readyz \
        || die "kube-apiserver did not become ready (log: $SERVICE_LOG, etcd's: $ETCD_LOG)"
    # The apiserver creates namespace `default` itself, just after it reports ready.
    wait_for 60 "namespace default" "$pid" default_namespace \
        || die "kube-apiserver has no namespace default (log: $SERVICE_LOG)"
    log "ready (kube-apiserver pid $pid, etcd pid $(etcd_pid || echo '?')); kubectl: $SERVICE_DIR/bin/kubectl"
}

# svc_stop KILL : kube-apiserver first, then etcd; SIGTERM or, with KILL, SIGKILL.
svc_stop() {
    local pid signal=TERM
    [[ ${1:-0} == 1 ]] && signal=KILL
    if ! apiserver_pid >/dev/null && ! etcd_pid >/dev/null; then
        rm -f "$APISERVER_PIDFILE" "$ETCD_PIDFILE"
        return 0
    fi
    if pid=$(apiserver_pid); then
        log "stopping kube-apiserver (pid $pid, SIG$signal)"
        stop_pid "$pid" 60 "$signal"
    fi
    rm -f "$APISERVER_PIDFILE"
    if pid=$(etcd_pid); then
        log "stopping etcd (pid $pid, SIG$signal)"
        stop_pid "$pid" 30 "$signal"
    fi
    rm -f "$ETCD_PIDFILE"
    wait_ports_closed "$PORT" "$ETCD_PORT" "$ETCD_PEER_PORT" || true
}

service_main "$@"; exit
