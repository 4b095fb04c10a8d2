#!/usr/bin/env bash
# Fetches the systems Lambdaflow is compared with and builds the small Java programs that drive them.
# Nothing here is committed: jars, classes and data live under $LF_SERVICES_DIR/peers.
#
#   deploy/bench/peers.sh fetch     Apache Kafka (broker, KRaft) and Apache Flink from Maven Central, DuckDB from PyPI
#   deploy/bench/peers.sh duckdb    only DuckDB (what bench/backfill needs)
#   deploy/bench/peers.sh build     compile bench/peers/java/*.java against those jars
#   deploy/bench/peers.sh env       print the `export LF_PEERS_…` lines the harness (bench/peers) reads
#
# Environment:
#   LF_KAFKA_VERSION   org.apache.kafka:kafka_2.13 version (default 4.1.1; see deploy/bench/kafka-broker.sh)
#   LF_FLINK_VERSION   org.apache.flink version (default 2.1.1)
#   LF_SERVICES_DIR, LF_JAVA, LF_MAVEN_REPO: see deploy/dev/lib.sh
#
# Files: $LF_SERVICES_DIR/peers/flink/{pom.xml,lib/,maven.log}, $LF_SERVICES_DIR/peers/classes/; Kafka's
# jars in $LF_SERVICES_DIR/kafka-broker/lib (deploy/bench/kafka-broker.sh).
set -euo pipefail
SVC_NAME=peers
# shellcheck source-path=SCRIPTDIR source=../dev/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../dev/lib.sh"

KAFKA_LIB="$LF_SERVICES_DIR/kafka-broker/lib"
FLINK_VERSION="${LF_FLINK_VERSION:-2.1.1}"
PEERS="$LF_SERVICES_DIR/peers"
SRC="$REPO_ROOT/bench/peers/java"

fetch() {
    # The broker is deploy/bench/kafka-broker.sh's (the harness starts and stops it); its jars
    # hold the client that KafkaLoad.java uses.
    "$REPO_ROOT/deploy/bench/kafka-broker.sh" fetch
    maven_jars "$PEERS/flink" "$FLINK_VERSION" \
        "org.apache.flink:flink-streaming-java:$FLINK_VERSION" \
        "org.apache.flink:flink-clients:$FLINK_VERSION" \
        "org.apache.flink:flink-connector-datagen:$FLINK_VERSION"
    duckdb
}

duckdb() {
    if ! python3 -c 'import duckdb' 2>/dev/null; then
        log "installing duckdb from PyPI"
        python3 -m pip install --quiet --disable-pip-version-check duckdb || die "pip install duckdb failed"
    fi
}

build() {
    find_java
    local javac="${JAVA%/java}/javac" out="$PEERS/classes" stamp
    command -v "$javac" >/dev/null || javac=javac
    stamp="$(cat "$SRC"/*.java "$KAFKA_LIB/.complete" "$PEERS"/flink/lib/.complete | sha256sum | cut -c1-16)"
    if [[ -f "$out/.stamp" && "$(cat "$out/.stamp")" == "$stamp" ]]; then
        return 0
    fi
    rm -rf "$out"
    mkdir -p "$out/kafka" "$out/flink"
    "$javac" -nowarn -d "$out/kafka" -cp "$KAFKA_LIB/*" "$SRC/KafkaLoad.java" || die "javac KafkaLoad failed"
    "$javac" -nowarn -d "$out/flink" -cp "$PEERS/flink/lib/*" "$SRC/FlinkWindowJob.java" || die "javac FlinkWindowJob failed"
    echo "$stamp" >"$out/.stamp"
    log "compiled $(find "$out" -name '*.class' | wc -l) classes into $out"
}

env_lines() {
    find_java
    echo "export LF_PEERS_DIR=$PEERS"
    echo "export LF_PEERS_JAVA=$JAVA"
    echo "export LF_PEERS_KAFKA_LIB=$KAFKA_LIB"
    echo "export LF_PEERS_KAFKA_VERSION=$(cat "$KAFKA_LIB/.complete")"
    echo "export LF_PEERS_FLINK_VERSION=$(cat "$PEERS/flink/lib/.complete")"
}

case "${1:-}" in
fetch) fetch ;;
duckdb) duckdb ;;
build) build ;;
env) env_lines ;;
*) echo "usage: $0 fetch|duckdb|build|env" >&2; exit 2 ;;
esac
