#!/usr/bin/env bash
# Apache Kafka in KRaft mode (one combined broker + controller) from its Maven Central jars:
# clients on 127.0.0.1:19092, controller on 127.0.0.1:19093, data under
# $WEFT_SERVICES_DIR/kafka/data. The jars are fetched once with Maven (kafka/pom.xml) into
# ${WEFT_CACHE_DIR:-~/.cache/weft}/kafka-<version>/libs and reused from there.
# Usage: kafka.sh up|start|stop|restart|down|status|url [--keep] [--kill]
# (--kill stops with SIGKILL: a crash; the broker recovers its log on the next start).
set -euo pipefail
SERVICE=kafka
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PORT=${WEFT_KAFKA_PORT:-19092}
CONTROLLER_PORT=${WEFT_KAFKA_CONTROLLER_PORT:-19093}
CONF="$SERVICES_HOME/kafka"
VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$CONF/pom.xml")
LIBS="$WEFT_CACHE_DIR/kafka-$VERSION/libs"
PIDFILE="$SERVICE_DIR/kafka.pid"
PROPS="$SERVICE_DIR/server.properties"
# -XX:TieredStopAtLevel=1: quicker start on two cores; plenty for a test broker.
JAVA_OPTS=(-Xms256m -Xmx512m -XX:+UseG1GC -XX:TieredStopAtLevel=1 -XX:+ExitOnOutOfMemoryError
    -Djava.awt.headless=true "-Dlog4j2.configurationFile=file:$CONF/log4j2.properties")

svc_url() { printf 'kafka://127.0.0.1:%s\n' "$PORT"; }

# Java 17+ and Maven, from Debian when missing.
ensure_tools() {
    local missing=()
    command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
    command -v mvn >/dev/null 2>&1 || missing+=(maven)
    ((${#missing[@]} == 0)) || apt_install "${missing[@]}"
}

# Fills the jar cache unless it is complete (a marker written last; a partial download is
# never used).
ensure_libs() {
    [[ -f $LIBS/.complete ]] && return 0
    ensure_tools
    local tmp="$LIBS.tmp.$$" mvnlog="$WEFT_CACHE_DIR/kafka-$VERSION/mvn.log"
    mkdir -p "$WEFT_CACHE_DIR/kafka-$VERSION"
    rm -rf "$tmp"
    log "fetching Kafka $VERSION jars with Maven into $LIBS"
    if ! (close_fds && mvn -B -q -Dstyle.color=never -f "$CONF/pom.xml" \
        dependency:copy-dependencies "-Dkafka.libs=$tmp") >"$mvnlog" 2>&1 </dev/null; then
        rm -rf "$tmp"
        show_log "$mvnlog"
        die "Maven could not fetch the Kafka jars"
    fi
    rm -rf "$LIBS"
    mv "$tmp" "$LIBS"
    touch "$LIBS/.complete"
}

# kafka_java [JAVA ARGS...] : runs a JVM on the cached jars, quiet (tools log at WARN).
kafka_java() {
    java "${JAVA_OPTS[@]}" -Dkafka.log.level=WARN -cp "$LIBS/*" "$@"
}

# The pid of our broker, if it is alive (and still a Kafka JVM, not a reused pid).
server_pid() {
    local pid
    pid=$(read_pid "$PIDFILE") || return 1
    [[ $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) == *' kafka.Kafka '* ]] || return 1
    printf '%s\n' "$pid"
}

# Healthy enough for `up` to return at once: our JVM alive and its listener accepting.
svc_healthy() {
    server_pid >/dev/null && port_open "$PORT"
}

# Asks the broker for its topics: metadata served means the broker is usable by clients.
metadata_ok() {
    timeout 60 java -Xmx128m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
        "-Dlog4j2.configurationFile=file:$CONF/log4j2.properties" -Dkafka.log.level=ERROR \
        -cp "$LIBS/*" org.apache.kafka.tools.TopicCommand \
        --bootstrap-server "127.0.0.1:$PORT" --list >/dev/null
}

# started_since OFFSET : the log, from byte OFFSET on, says the server started. (Not
# `tail | grep -q`: with pipefail, grep quitting early makes tail's SIGPIPE a failure.)
started_since() {
    grep -q 'Kafka Server started' <(tail -c "+$(($1 + 1))" "$SERVICE_LOG" 2>/dev/null)
}

svc_start() {
    local pid offset cluster_id
    ensure_tools
    ensure_libs
    if server_pid >/dev/null; then
        svc_stop 0
    fi
    require_free_port "$PORT" "$CONTROLLER_PORT"
    mkdir -p "$SERVICE_DIR/data"
    sed -e "s|@PORT@|$PORT|g" -e "s|@CONTROLLER_PORT@|$CONTROLLER_PORT|g" \
        -e "s|@DATA@|$SERVICE_DIR/data|g" "$CONF/server.properties.in" >"$PROPS"
    if [[ ! -f $SERVICE_DIR/data/meta.properties ]]; then
        cluster_id=$(kafka_java kafka.tools.StorageTool random-uuid)
        log "formatting $SERVICE_DIR/data (cluster $cluster_id)"
        kafka_java kafka.tools.StorageTool format -t "$cluster_id" -c "$PROPS" \
            --ignore-formatted >>"$SERVICE_LOG" 2>&1 || { show_log; die "StorageTool format failed"; }
    fi
    offset=$(stat -c %s "$SERVICE_LOG" 2>/dev/null || echo 0)
    printf '\n--- start %s\n' "$(date -Is)" >>"$SERVICE_LOG"
    log "starting Kafka $VERSION on 127.0.0.1:$PORT (controller $CONTROLLER_PORT)"
    pid=$(spawn "$SERVICE_LOG" java "${JAVA_OPTS[@]}" -Dkafka.log.level=INFO -cp "$LIBS/*" \
        kafka.Kafka "$PROPS")
    printf '%s\n' "$pid" >"$PIDFILE"
    wait_for 180 "'Kafka Server started'" "$pid" started_since "$offset" || exit 1
    wait_for 120 "metadata (TopicCommand --list)" "$pid" metadata_ok || exit 1
    log "ready (pid $pid)"
}

# svc_stop KILL : SIGTERM (a controlled shutdown, flushing the logs) or SIGKILL.
svc_stop() {
    local pid signal=TERM
    pid=$(server_pid) || { rm -f "$PIDFILE"; return 0; }
    [[ ${1:-0} == 1 ]] && signal=KILL
    log "stopping (pid $pid, SIG$signal)"
    stop_pid "$pid" 90 "$signal"
    rm -f "$PIDFILE"
    wait_ports_closed "$PORT" "$CONTROLLER_PORT" || true
}

service_main "$@"; exit
