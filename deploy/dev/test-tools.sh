#!/usr/bin/env bash
# Installs the tools the tests use besides the services: independent Parquet
# readers that check the lake from outside (pyarrow, duckdb from PyPI;
# parquet-java, the reader of Spark and Hive, from Maven Central via
# parquet-java.sh),
# Debian's chromium and axe-core (npm) for the console's browser tests,
# iproute2 and nftables for the tests that run hosts in network namespaces
# (internal/netns), and the Kafka clients the Kafka listener is tested with
# (Debian's kcat, confluent-kafka from PyPI, the Java client from Maven
# Central via kafka-clients.sh), and Prometheus with promtool (Debian's
# package, unpacked by prometheus.sh) for the alerting rules and the
# Grafana dashboard's queries.
# Idempotent and quick when everything is there.
set -euo pipefail
SVC_NAME=tools
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if ! python3 -c 'import pyarrow, duckdb' 2>/dev/null; then
    log "installing pyarrow and duckdb from PyPI"
    python3 -m pip install --quiet --disable-pip-version-check pyarrow duckdb ||
        die "pip install pyarrow duckdb failed"
fi

if ! python3 -c 'import confluent_kafka' 2>/dev/null; then
    log "installing confluent-kafka from PyPI"
    python3 -m pip install --quiet --disable-pip-version-check confluent-kafka ||
        die "pip install confluent-kafka failed"
fi

"$(dirname "${BASH_SOURCE[0]}")/kafka-clients.sh" || die "fetching the Kafka Java client failed"
"$(dirname "${BASH_SOURCE[0]}")/parquet-java.sh" || die "fetching parquet-java failed"
"$(dirname "${BASH_SOURCE[0]}")/prometheus.sh" || die "fetching Prometheus failed"

# apt_install PACKAGE...: install Debian packages (serialised with the other scripts' apt runs).
apt_install() {
    log "installing $* (Debian)"
    export DEBIAN_FRONTEND=noninteractive
    (
        flock 9
        apt-get update -qq >/dev/null
        apt-get install -y -qq --no-install-recommends "$@" >/dev/null
    ) 9>/tmp/lambdaflow-apt.lock || die "apt-get install $* failed"
}

command -v chromium >/dev/null 2>&1 || apt_install chromium

# axe-core (npm), which the console's browser tests run in every page to find
# accessibility violations. Pinned, so a new rule set never fails a build
# unannounced; the e2e tests find it here (or at LF_AXE).
AXE_VERSION=4.14.1
AXE_DIR="$LF_SERVICES_DIR/tools"
if [[ "$(node -p "require('$AXE_DIR/node_modules/axe-core/package.json').version" 2>/dev/null)" != "$AXE_VERSION" ]]; then
    command -v npm >/dev/null 2>&1 || apt_install npm
    log "installing axe-core $AXE_VERSION from npm into $AXE_DIR"
    mkdir -p "$AXE_DIR"
    npm install --silent --no-audit --no-fund --prefix "$AXE_DIR" "axe-core@$AXE_VERSION" >/dev/null ||
        die "npm install axe-core@$AXE_VERSION failed"
fi
missing=()
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v nft >/dev/null 2>&1 || missing+=(nftables)
command -v kcat >/dev/null 2>&1 || missing+=(kcat)
((${#missing[@]} == 0)) || apt_install "${missing[@]}"
log "test tools ready: $(python3 -c 'import pyarrow, duckdb, confluent_kafka; print("pyarrow", pyarrow.__version__, "duckdb", duckdb.__version__, "confluent-kafka", confluent_kafka.__version__)'), $(chromium --version 2>/dev/null | head -1), $(nft --version 2>/dev/null), kcat $(kcat -V 2>&1 | awk "/^Version/{print \$2}"), axe-core $AXE_VERSION"
