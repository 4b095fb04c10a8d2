#!/usr/bin/env bash
# Fetches parquet-java (parquet-mr: org.apache.parquet:parquet-hadoop, the
# Parquet reader of Spark and Hive, with its dependencies) from Maven
# Central into $LF_SERVICES_DIR/parquet-java/lib, for the tests that read
# the lake with it (internal/parquetjava). parquet-java reads local
# files without a Hadoop installation, but its codec factory loads Hadoop's
# classes: Hadoop's two shaded client jars bring them without Hadoop's
# dependency tree. Nothing here is committed. Idempotent: returns at once
# when those versions are there.
#
# Environment: LF_PARQUET_JAVA_VERSION (default 1.18.2),
# LF_PARQUET_JAVA_HADOOP_VERSION (default 3.4.2); LF_SERVICES_DIR,
# LF_MAVEN_REPO: see lib.sh.
set -euo pipefail
SVC_NAME=parquet-java
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VERSION="${LF_PARQUET_JAVA_VERSION:-1.18.2}"
HADOOP="${LF_PARQUET_JAVA_HADOOP_VERSION:-3.4.2}"
maven_jars "$LF_SERVICES_DIR/parquet-java" "$VERSION hadoop $HADOOP" \
    "org.apache.parquet:parquet-hadoop:$VERSION" \
    "org.apache.hadoop:hadoop-client-api:$HADOOP" "org.apache.hadoop:hadoop-client-runtime:$HADOOP" \
    "org.slf4j:slf4j-nop:1.7.36"
