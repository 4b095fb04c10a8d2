#!/usr/bin/env bash
# Installs the tools the tests use besides the services: independent Parquet
# readers (pyarrow, duckdb from PyPI) that check the lake from outside, and
# Debian's chromium for the console's browser tests. Idempotent and quick
# when everything is there.
set -euo pipefail
SVC_NAME=tools
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if ! python3 -c 'import pyarrow, duckdb' 2>/dev/null; then
    log "installing pyarrow and duckdb from PyPI"
    python3 -m pip install --quiet --disable-pip-version-check pyarrow duckdb ||
        die "pip install pyarrow duckdb failed"
fi

if ! command -v chromium >/dev/null 2>&1; then
    log "installing chromium (Debian)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq chromium >/dev/null || die "apt-get install chromium failed"
fi
log "test tools ready: $(python3 -c 'import pyarrow, duckdb; print("pyarrow", pyarrow.__version__, "duckdb", duckdb.__version__)'), $(chromium --version 2>/dev/null | head -1)"
