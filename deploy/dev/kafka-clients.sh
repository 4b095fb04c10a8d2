#!/usr/bin/env bash
# Fetches the Apache Kafka Java client (org.apache.kafka:kafka-clients and
# its dependencies) from Maven Central into $LF_SERVICES_DIR/kafka-clients/lib,
# for the tests that run the Java client against Lambdaflow's Kafka listener.
# Nothing here is committed. Idempotent: returns at once when that version
# is there.
#
# Environment: LF_KAFKA_CLIENTS_VERSION (default 4.1.1); LF_SERVICES_DIR,
# LF_MAVEN_REPO: see lib.sh.
set -euo pipefail
SVC_NAME=kafka-clients
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VERSION="${LF_KAFKA_CLIENTS_VERSION:-4.1.1}"
maven_jars "$LF_SERVICES_DIR/kafka-clients" "$VERSION" \
    "org.apache.kafka:kafka-clients:$VERSION" "org.slf4j:slf4j-nop:1.7.36"
