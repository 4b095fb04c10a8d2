#!/usr/bin/env bash
# Starts/stops the real services the tests use: PostgreSQL, Cassandra 5.0, OpenSearch 2.19 and an
# S3-compatible object store (versitygw).
#
#   deploy/dev/services.sh up [postgres|cassandra|opensearch|s3 ...] start (all by default), in parallel
#   deploy/dev/services.sh down [SERVICE ...]                        stop
#   deploy/dev/services.sh status [SERVICE ...]
#   deploy/dev/services.sh env                                       print `export LF_TEST_...` lines
#
# Typical use (Makefile / CI):
#   deploy/dev/services.sh up && eval "$(deploy/dev/services.sh env)" && go test ./...
#
# Environment: LF_PG_PORT (55432), LF_CASSANDRA_PORT (9042), LF_CASSANDRA_STORAGE_PORT (7000),
# LF_OPENSEARCH_PORT (9200), LF_OPENSEARCH_TRANSPORT_PORT (9300), LF_S3_PORT (57070), LF_S3_BUCKET,
# LF_S3_ACCESS_KEY, LF_S3_SECRET_KEY, LF_S3_REGION (see s3.sh), LF_SERVICES_DIR (<repo>/.services),
# LF_SERVICES_WAIT (180 s per service to become ready once launched),
# LF_SERVICES_UP_TIMEOUT (480 s: cap on `up` as a whole, downloads included).
set -euo pipefail
SVC_NAME=services
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ALL=(postgres cassandra opensearch s3)

pick() {
    if (($# == 0)); then
        SERVICES=("${ALL[@]}")
        return
    fi
    SERVICES=()
    local s
    for s in "$@"; do
        case "$s" in
        postgres | pg | postgresql) SERVICES+=(postgres) ;;
        cassandra) SERVICES+=(cassandra) ;;
        opensearch | os | elasticsearch) SERVICES+=(opensearch) ;;
        s3 | versitygw | object-storage) SERVICES+=(s3) ;;
        *) die "unknown service '$s' (known: ${ALL[*]})" ;;
        esac
    done
}

up() {
    pick "$@"
    local cap="${LF_SERVICES_UP_TIMEOUT:-480}" t0=$SECONDS s
    local -A pids=()
    log "starting ${SERVICES[*]} (cap ${cap}s)"
    for s in "${SERVICES[@]}"; do
        timeout -k 20 "$cap" "$DEV_DIR/$s.sh" start &
        pids[$s]=$!
    done
    local failed=()
    for s in "${SERVICES[@]}"; do
        if ! wait "${pids[$s]}"; then
            failed+=("$s")
        fi
    done
    if ((${#failed[@]})); then
        log "FAILED: ${failed[*]} (after $((SECONDS - t0))s; logs under $LF_SERVICES_DIR/<service>/log)"
        exit 1
    fi
    log "all up: ${SERVICES[*]} ($((SECONDS - t0))s)"
}

down() {
    pick "$@"
    local s rc=0
    local -A pids=()
    for s in "${SERVICES[@]}"; do
        "$DEV_DIR/$s.sh" stop &
        pids[$s]=$!
    done
    for s in "${SERVICES[@]}"; do
        wait "${pids[$s]}" || rc=1
    done
    return $rc
}

status() {
    pick "$@"
    local s rc=0
    for s in "${SERVICES[@]}"; do
        "$DEV_DIR/$s.sh" status || rc=3
    done
    return $rc
}

env_lines() {
    echo "export LF_TEST_POSTGRES_DSN='postgres://postgres@127.0.0.1:${LF_PG_PORT:-55432}/${LF_PG_DATABASE:-lambdaflow}?sslmode=disable'"
    echo "export LF_TEST_CASSANDRA_HOSTS='127.0.0.1:${LF_CASSANDRA_PORT:-9042}'"
    echo "export LF_TEST_OPENSEARCH_URL='http://127.0.0.1:${LF_OPENSEARCH_PORT:-9200}'"
    echo "export LF_TEST_S3_ENDPOINT='http://127.0.0.1:${LF_S3_PORT:-57070}'"
    echo "export LF_TEST_S3_BUCKET='${LF_S3_BUCKET:-lambdaflow-test}'"
    echo "export LF_TEST_S3_REGION='${LF_S3_REGION:-us-east-1}'"
    echo "export LF_TEST_S3_ACCESS_KEY='${LF_S3_ACCESS_KEY:-lambdaflow}'"
    echo "export LF_TEST_S3_SECRET_KEY='${LF_S3_SECRET_KEY:-lambdaflow-secret}'"
    # The Kafka Java client's jars (deploy/dev/kafka-clients.sh, from test-tools.sh).
    echo "export LF_TEST_KAFKA_CLIENTS_LIB='$LF_SERVICES_DIR/kafka-clients/lib'"
    # Prometheus and promtool (deploy/dev/prometheus.sh, from test-tools.sh).
    echo "export LF_TEST_PROMETHEUS_BIN='$LF_SERVICES_DIR/prometheus/bin'"
}

cmd="${1:-}"
shift || true
case "$cmd" in
up | start) up "$@" ;;
down | stop) down "$@" ;;
status) status "$@" ;;
env) env_lines ;;
*) echo "usage: $0 up|down|status [postgres|cassandra|opensearch|s3 ...] | env" >&2; exit 2 ;;
esac
