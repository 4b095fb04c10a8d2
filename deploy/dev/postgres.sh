#!/usr/bin/env bash
# A private PostgreSQL cluster for local tests and CI (Debian's postgresql package).
#
#   deploy/dev/postgres.sh start|stop|status
#
# Environment:
#   LF_PG_PORT       TCP port on 127.0.0.1 (default 55432)
#   LF_PG_DATABASE   database created on start (default lambdaflow)
#   LF_SERVICES_DIR, LF_SERVICES_WAIT: see lib.sh
#
# Trust authentication, 127.0.0.1 only, fsync off: for tests only.
# DSN: postgres://postgres@127.0.0.1:$LF_PG_PORT/lambdaflow?sslmode=disable
#
# Files: $LF_SERVICES_DIR/pg/{data/,log/postgres.log,pid}. The data directory must be owned by the
# postgres user; when that user cannot reach $LF_SERVICES_DIR (e.g. the repo is under /root), the
# cluster lives in /var/tmp/lambdaflow-pg-<hash> and $LF_SERVICES_DIR/pg is a symlink to it.
set -euo pipefail
SVC_NAME=postgres
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PORT="${LF_PG_PORT:-55432}"
DB="${LF_PG_DATABASE:-lambdaflow}"
PGLINK="$LF_SERVICES_DIR/pg"

# as_pg CMD...: run CMD as the postgres user when we are root (root may not run initdb/postgres).
as_pg() {
    if [[ "$(id -u)" == 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

pg_bindir() { # newest /usr/lib/postgresql/<major>/bin that has the server (initdb)
    local f
    f="$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/initdb' 2>/dev/null | sort -V | tail -n1)"
    [[ -n "$f" && -x "$f" ]] && dirname "$f"
}

install_pg() {
    if BIN="$(pg_bindir)"; then
        return 0
    fi
    [[ "$(id -u)" == 0 ]] || die "PostgreSQL is not installed and we are not root: apt-get install postgresql"
    log "installing Debian package postgresql"
    export DEBIAN_FRONTEND=noninteractive
    local apt_opts=(-y -q -o Dpkg::Use-Pty=0 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
    (
        flock 9
        if ! apt-get install "${apt_opts[@]}" --no-install-recommends postgresql >/dev/null 2>&1; then
            apt-get update -q >/dev/null
            apt-get install "${apt_opts[@]}" --no-install-recommends postgresql >/dev/null
        fi
    ) 9>/tmp/lambdaflow-apt.lock
    BIN="$(pg_bindir)" || die "postgresql installed but no initdb found under /usr/lib/postgresql"
    log "installed $("$BIN/postgres" --version)"
}

# resolve_home: sets PGHOME to a directory the postgres user can use.
resolve_home() {
    if [[ -L "$PGLINK" ]]; then
        PGHOME="$(readlink -f "$PGLINK")"
    elif [[ "$(id -u)" != 0 ]] || runuser -u postgres -- test -x "$LF_SERVICES_DIR"; then
        PGHOME="$PGLINK"
    else
        # postgres cannot traverse the repo's path: keep the cluster where it can, link it into .services.
        PGHOME="/var/tmp/lambdaflow-pg-$(printf '%s' "$LF_SERVICES_DIR" | sha1sum | cut -c1-12)"
        log "postgres user cannot reach $LF_SERVICES_DIR; cluster lives in $PGHOME (linked from $PGLINK)"
        rm -rf "$PGLINK"
        ln -s "$PGHOME" "$PGLINK"
    fi
    DATA="$PGHOME/data"
    LOG="$PGHOME/log/postgres.log"
    PIDFILE="$PGHOME/pid"
}

prepare_dirs() {
    mkdir -p "$PGHOME/log"
    if [[ "$(id -u)" == 0 ]]; then
        chown postgres:postgres "$PGHOME" "$PGHOME/log"
        touch "$LOG"
        chown postgres:postgres "$LOG"
    fi
    chmod 755 "$PGHOME"
}

initdb_if_needed() {
    [[ -f "$DATA/PG_VERSION" ]] && return 0
    log "initdb $DATA"
    rm -rf "$DATA"
    as_pg "$BIN/initdb" -D "$DATA" -U postgres -A trust -E UTF8 --no-locale --no-sync >>"$LOG" 2>&1 ||
        { tail_log "$LOG"; die "initdb failed"; }
    cat >>"$DATA/postgresql.conf" <<CONF

# --- lambdaflow dev/test settings (deploy/dev/postgres.sh): not durable, loopback only ---
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = 200
shared_buffers = 128MB
fsync = off
synchronous_commit = off
full_page_writes = off
log_min_messages = warning
log_line_prefix = '%m [%p] %q%u@%d '
CONF
}

pg_ready() {
    "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" -U postgres -d postgres >/dev/null 2>&1
}

running_pid() {
    # postmaster.pid's first line is the postmaster pid
    [[ -f "$DATA/postmaster.pid" ]] || return 1
    local pid
    pid="$(head -n1 "$DATA/postmaster.pid")"
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
    echo "$pid"
}

create_db() {
    local exists
    exists="$("$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$DB'")"
    if [[ "$exists" != 1 ]]; then
        "$BIN/psql" -q -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -c "CREATE DATABASE \"$DB\"" >/dev/null
        log "created database $DB"
    fi
}

start() {
    lock_service "$LF_SERVICES_DIR/.pg-lock"
    install_pg
    resolve_home
    local pid
    if pid="$(running_pid)"; then
        echo "$pid" >"$PIDFILE"
        log "already running (pid $pid) on 127.0.0.1:$PORT"
        create_db
        return 0
    fi
    if port_open "$PORT"; then
        die "port $PORT is already in use by another process (set LF_PG_PORT)"
    fi
    local t0=$SECONDS
    prepare_dirs
    initdb_if_needed
    log "starting $("$BIN/postgres" --version | sed 's/.*) //') on 127.0.0.1:$PORT"
    echo "=== $(date -Is) starting ===" >>"$LOG"
    if ! as_pg "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -o "-p $PORT" -w -t "$LF_SERVICES_WAIT" start >/dev/null 2>&1 8>&-; then
        tail_log "$LOG"
        as_pg "$BIN/pg_ctl" -D "$DATA" -m immediate stop >/dev/null 2>&1 || true
        die "PostgreSQL did not start"
    fi
    local i
    for ((i = 0; i < 50; i++)); do
        pg_ready && break
        sleep 0.2
    done
    pg_ready || { tail_log "$LOG"; die "PostgreSQL not answering on 127.0.0.1:$PORT"; }
    running_pid >"$PIDFILE"
    create_db
    log "ready on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"), $((SECONDS - t0))s)"
}

stop() {
    lock_service "$LF_SERVICES_DIR/.pg-lock"
    if ! BIN="$(pg_bindir)"; then
        log "not installed, not running"
        return 0
    fi
    resolve_home
    if ! running_pid >/dev/null; then
        rm -f "$PIDFILE"
        log "not running"
        return 0
    fi
    log "stopping pid $(running_pid)"
    if ! as_pg "$BIN/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >/dev/null 2>&1; then
        log "fast stop failed; immediate stop"
        as_pg "$BIN/pg_ctl" -D "$DATA" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
    fi
    rm -f "$PIDFILE"
    log "stopped"
}

status() {
    if BIN="$(pg_bindir)"; then
        resolve_home
        local pid
        if pid="$(running_pid)"; then
            if pg_ready; then
                echo "postgres: running (pid $pid), ready on 127.0.0.1:$PORT"
            else
                echo "postgres: running (pid $pid), not answering on 127.0.0.1:$PORT"
            fi
            return 0
        fi
    fi
    echo "postgres: stopped"
    return 3
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
restart) stop; start ;;
*) echo "usage: $0 start|stop|status|restart" >&2; exit 2 ;;
esac
