#!/usr/bin/env bash
# An S3-compatible object store for local tests and CI: the Versity S3 Gateway
# (versitygw, Apache-2.0) over a local directory, built from its Go module.
#
#   deploy/dev/s3.sh start|stop|status|restart|build
#
# Environment:
#   LF_S3_PORT         TCP port on 127.0.0.1 (default 57070)
#   LF_S3_BUCKET       bucket created on start (default lambdaflow-test)
#   LF_S3_ACCESS_KEY   root access key (default lambdaflow)
#   LF_S3_SECRET_KEY   root secret key (default lambdaflow-secret)
#   LF_S3_REGION       region the server signs for (default us-east-1)
#   LF_SERVICES_DIR, LF_SERVICES_WAIT: see lib.sh
#
# Path-style addressing only (http://127.0.0.1:57070/<bucket>/<key>), no TLS, one root account: for
# tests only. It serves PutObject, GetObject with ranges, ListObjectsV2, DeleteObject(s), multipart
# uploads and conditional writes (If-None-Match: * and If-Match: <etag> on PutObject and
# CompleteMultipartUpload; 412 PreconditionFailed when the condition fails). See docs/object-storage.md.
#
# Files: $LF_SERVICES_DIR/s3/{bin/versitygw,bin/VERSION,data/<bucket>/…,log/s3.log,pid}. The binary is
# built once per version with `go install` through the Go module proxy (about 90 s on two cores with
# an empty module cache; nothing to do afterwards). Objects are plain files under data/, their
# metadata in extended attributes (the file system must support user xattrs, as ext4 and xfs do).
set -euo pipefail
SVC_NAME=s3
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# The server's version: bump it here (and in docs/object-storage.md) to upgrade.
VERSITYGW_MODULE=github.com/versity/versitygw
VERSITYGW_VERSION=v1.8.0

PORT="${LF_S3_PORT:-57070}"
BUCKET="${LF_S3_BUCKET:-lambdaflow-test}"
ACCESS="${LF_S3_ACCESS_KEY:-lambdaflow}"
SECRET="${LF_S3_SECRET_KEY:-lambdaflow-secret}"
REGION="${LF_S3_REGION:-us-east-1}"
HOME_DIR="$LF_SERVICES_DIR/s3"
BIN="$HOME_DIR/bin/versitygw"
DATA="$HOME_DIR/data"
LOG="$HOME_DIR/log/s3.log"
PIDFILE="$HOME_DIR/pid"
MARKER="$BIN"
ENDPOINT="http://127.0.0.1:$PORT"

# build: go install the pinned version into $HOME_DIR/bin unless it is there already.
build() {
    if [[ -x "$BIN" && "$(cat "$HOME_DIR/bin/VERSION" 2>/dev/null)" == "$VERSITYGW_VERSION" ]]; then
        return 0
    fi
    command -v go >/dev/null || die "go not found: the S3 server is built from its Go module"
    mkdir -p "$HOME_DIR/bin"
    log "building versitygw $VERSITYGW_VERSION with go install (once per version; ~90 s with an empty module cache)"
    local t0=$SECONDS
    # Outside the repository, so that its go.mod plays no part.
    if ! (cd "$HOME_DIR" && GOBIN="$HOME_DIR/bin.tmp" GOFLAGS=-buildvcs=false \
        go install "$VERSITYGW_MODULE/cmd/versitygw@$VERSITYGW_VERSION") >"$HOME_DIR/build.log" 2>&1; then
        tail_log "$HOME_DIR/build.log"
        die "go install $VERSITYGW_MODULE/cmd/versitygw@$VERSITYGW_VERSION failed"
    fi
    mv -f "$HOME_DIR/bin.tmp/versitygw" "$BIN"
    rmdir "$HOME_DIR/bin.tmp" 2>/dev/null || true
    echo "$VERSITYGW_VERSION" >"$HOME_DIR/bin/VERSION"
    log "built versitygw $VERSITYGW_VERSION in $((SECONDS - t0))s"
}

# s3curl METHOD PATH: a SigV4-signed request with an empty body; prints the HTTP status.
s3curl() {
    curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X "$1" \
        -H 'x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' \
        --aws-sigv4 "aws:amz:$REGION:s3" --user "$ACCESS:$SECRET" "$ENDPOINT$2" 2>/dev/null || true
}

s3_ready() { [[ "$(s3curl GET /)" == 200 ]]; }

create_bucket() {
    local code
    code="$(s3curl PUT "/$BUCKET")"
    case "$code" in
    200) log "created bucket $BUCKET" ;;
    409) ;; # BucketAlreadyOwnedByYou
    *) die "creating bucket $BUCKET answered HTTP $code" ;;
    esac
}

start() {
    lock_service "$HOME_DIR"
    command -v curl >/dev/null || die "curl not found (Debian package curl)"
    build
    if pid_alive "$PIDFILE" "$MARKER"; then
        s3_ready || die "running (pid $(cat "$PIDFILE")) but not answering on $ENDPOINT with the configured keys"
        create_bucket
        log "already running (pid $(cat "$PIDFILE")) on $ENDPOINT"
        return 0
    fi
    if port_open "$PORT"; then
        die "port $PORT is already in use by another process (set LF_S3_PORT)"
    fi
    local t0=$SECONDS
    mkdir -p "$DATA" "$(dirname "$LOG")"
    echo "=== $(date -Is) starting ===" >>"$LOG"
    # The keys go through the environment, not argv, so ps does not show them.
    ROOT_ACCESS_KEY_ID="$ACCESS" ROOT_SECRET_ACCESS_KEY="$SECRET" \
        nohup "$BIN" --port "127.0.0.1:$PORT" --region "$REGION" --quiet posix "$DATA" \
        >>"$LOG" 2>&1 </dev/null 8>&- &
    echo $! >"$PIDFILE"
    if ! wait_ready "$LF_SERVICES_WAIT" "$PIDFILE" "$MARKER" s3_ready; then
        tail_log "$LOG"
        stop_pid "$PIDFILE" "$MARKER" 10
        die "the S3 server did not start"
    fi
    create_bucket
    log "ready on $ENDPOINT, bucket $BUCKET (pid $(cat "$PIDFILE"), $((SECONDS - t0))s)"
}

stop() {
    lock_service "$HOME_DIR"
    stop_pid "$PIDFILE" "$MARKER" 30
}

status() { service_status s3 s3_ready "$ENDPOINT"; }

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
restart) stop; start ;;
build) lock_service "$HOME_DIR"; build ;;
*) echo "usage: $0 start|stop|status|restart|build" >&2; exit 2 ;;
esac
