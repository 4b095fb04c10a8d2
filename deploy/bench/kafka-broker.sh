#!/usr/bin/env bash
# Runs a single-node Apache Kafka broker (KRaft: broker and controller in one
# JVM), fetched from Maven Central, for the Kafka produce benchmark
# (bench/kafkaproduce) that compares Lambdaflow's Kafka listener with it.
# Nothing here is committed: jars, data and logs live under
# $LF_SERVICES_DIR/kafka-broker.
#
#   deploy/bench/kafka-broker.sh start   fetch if needed, format, start, wait until it answers
#   deploy/bench/kafka-broker.sh stop
#   deploy/bench/kafka-broker.sh fetch   only the jars (bench/peers compiles its producer against them)
#   deploy/bench/kafka-broker.sh env     print `export LF_BENCH_KAFKA=127.0.0.1:<port>`
#
# Environment: LF_KAFKA_VERSION (org.apache.kafka:kafka_2.13, default 4.1.1),
# LF_BENCH_KAFKA_PORT (59092), LF_BENCH_KAFKA_CONTROLLER_PORT (59093);
# LF_SERVICES_DIR, LF_JAVA, LF_MAVEN_REPO: see deploy/dev/lib.sh.
set -euo pipefail
SVC_NAME=kafka-broker
# shellcheck source-path=SCRIPTDIR source=../dev/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../dev/lib.sh"

VERSION="${LF_KAFKA_VERSION:-4.1.1}"
PORT="${LF_BENCH_KAFKA_PORT:-59092}"
CPORT="${LF_BENCH_KAFKA_CONTROLLER_PORT:-59093}"
DIR="$LF_SERVICES_DIR/kafka-broker"
PIDFILE="$DIR/kafka.pid"
MARKER="kafka.Kafka"

fetch() {
    maven_jars "$DIR" "$VERSION" "org.apache.kafka:kafka_2.13:$VERSION" \
        "org.apache.logging.log4j:log4j-slf4j-impl:2.24.3"
}

ready() { port_open "$PORT"; }

start() {
    lock_service "$DIR"
    if pid_alive "$PIDFILE" "$MARKER" && ready; then
        log "already running on $PORT"
        return 0
    fi
    fetch
    find_java
    local data="$DIR/data"
    rm -rf "$data" # a benchmark starts from an empty log
    mkdir -p "$data"
    cat >"$DIR/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CPORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$data
num.partitions=4
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
PROPS
    cat >"$DIR/log4j2.properties" <<'LOG'
rootLogger.level=WARN
rootLogger.appenderRef.out.ref=out
appender.out.type=Console
appender.out.name=out
appender.out.layout.type=PatternLayout
appender.out.layout.pattern=%d %p %c{1}: %m%n
LOG
    local cp="$DIR/lib/*"
    "$JAVA" -cp "$cp" -Dlog4j2.configurationFile="$DIR/log4j2.properties" kafka.tools.StorageTool \
        format -t "$(cat /proc/sys/kernel/random/uuid | tr -d '-' | head -c 22)" -c "$DIR/server.properties" >"$DIR/format.log" 2>&1 ||
        { tail_log "$DIR/format.log"; die "formatting the Kafka log failed"; }
    log "starting Apache Kafka $VERSION on 127.0.0.1:$PORT"
    nohup "$JAVA" -Xms512m -Xmx1g -XX:+UseG1GC -cp "$cp" -Dlog4j2.configurationFile="$DIR/log4j2.properties" \
        kafka.Kafka "$DIR/server.properties" >"$DIR/kafka.log" 2>&1 8>&- &
    echo $! >"$PIDFILE"
    wait_ready 120 "$PIDFILE" "$MARKER" ready || { tail_log "$DIR/kafka.log"; die "Kafka did not start"; }
    log "Kafka ready"
}

stop() { stop_pid "$PIDFILE" "$MARKER" 60; }

case "${1:-}" in
start) start ;;
stop) stop ;;
fetch) fetch ;;
env) echo "export LF_BENCH_KAFKA=127.0.0.1:$PORT" ;;
*) echo "usage: $0 start|stop|fetch|env" >&2; exit 2 ;;
esac
