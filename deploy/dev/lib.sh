# shellcheck shell=bash
# Shared helpers for deploy/dev/*.sh. Sourced, never executed.
#
# Environment (all optional):
#   LF_SERVICES_DIR    where jars, data, logs and pid files live (default <repo>/.services)
#   LF_SERVICES_WAIT   seconds to wait for a service to become ready (default 180)
#   LF_JAVA            java binary to use (default: Java 17 if present, else `java` on PATH)
#   LF_MAVEN_REPO      Maven local repository (default: Maven's own, ~/.m2/repository)

DEV_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$DEV_DIR/../.." && pwd)"
LF_SERVICES_DIR="${LF_SERVICES_DIR:-$REPO_ROOT/.services}"
mkdir -p "$LF_SERVICES_DIR"
LF_SERVICES_DIR="$(cd "$LF_SERVICES_DIR" && pwd)"
LF_SERVICES_WAIT="${LF_SERVICES_WAIT:-180}"

log() { printf '[%s %s] %s\n' "$(date +%H:%M:%S)" "${SVC_NAME:-dev}" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# tail_log FILE: print the last 60 lines of a service log to stderr.
tail_log() {
    local f="$1"
    if [[ -f "$f" ]]; then
        echo "----- last 60 lines of $f -----" >&2
        tail -n 60 "$f" >&2 || true
        echo "----- end of $f -----" >&2
    else
        echo "(no log at $f)" >&2
    fi
}

# port_open PORT [HOST]: true if something accepts TCP connections there.
port_open() {
    local port="$1" host="${2:-127.0.0.1}"
    timeout 2 bash -c "exec 3<>/dev/tcp/$host/$port" 2>/dev/null
}

# pid_alive PIDFILE MARKER: true if the pid in PIDFILE runs and its command line holds MARKER.
pid_alive() {
    local pidfile="$1" marker="$2" pid
    [[ -f "$pidfile" ]] || return 1
    pid="$(cat "$pidfile" 2>/dev/null)" || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$marker"
}

# stop_pid PIDFILE MARKER [SECONDS]: SIGTERM, wait, then SIGKILL; removes PIDFILE.
stop_pid() {
    local pidfile="$1" marker="$2" secs="${3:-60}" pid i
    if ! pid_alive "$pidfile" "$marker"; then
        rm -f "$pidfile"
        log "not running"
        return 0
    fi
    pid="$(cat "$pidfile")"
    log "stopping pid $pid"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < secs * 5; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "pid $pid still alive after ${secs}s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
    fi
    rm -f "$pidfile"
    log "stopped"
}

# lock_service DIR: serialises start/stop of one service (fd 8). Processes we launch must close fd 8 (8>&-).
lock_service() {
    mkdir -p "$1"
    exec 8>"$1/.lock"
    flock -w 900 8 || die "could not lock $1/.lock"
}

# find_java: sets JAVA to a java binary (prefers Java 17, which both Cassandra 5.0 and OpenSearch 2.19 support).
find_java() {
    if [[ -n "${LF_JAVA:-}" ]]; then
        JAVA="$LF_JAVA"
    elif [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]] && "$JAVA_HOME/bin/java" -version 2>&1 | grep -q 'version "17'; then
        JAVA="$JAVA_HOME/bin/java"
    elif [[ -x /usr/lib/jvm/java-17-openjdk-amd64/bin/java ]]; then
        JAVA=/usr/lib/jvm/java-17-openjdk-amd64/bin/java
    elif command -v java >/dev/null; then
        JAVA="$(command -v java)"
    else
        die "no java found; install openjdk-17-jdk-headless or set LF_JAVA"
    fi
    local ver
    ver="$("$JAVA" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1)"
    if [[ "$ver" != 17 ]]; then
        log "warning: $JAVA is Java $ver; these services are tested on Java 17 (set LF_JAVA)"
    fi
}

# maven_fetch DIR: in DIR (which holds pom.xml) copy all runtime dependencies into DIR/lib.tmp.
# Maven runs are serialised across services with a lock, since they share ~/.m2.
maven_fetch() {
    local dir="$1"
    command -v mvn >/dev/null || die "mvn not found (install Debian package maven)"
    rm -rf "$dir/lib.tmp"
    if (
        flock 9
        cd "$dir"
        mvn -B -q -Dstyle.color=never ${LF_MAVEN_REPO:+-Dmaven.repo.local="$LF_MAVEN_REPO"} -f pom.xml dependency:copy-dependencies \
            -DincludeScope=runtime -DoutputDirectory="$dir/lib.tmp" -Dmdep.useRepositoryLayout=false
    ) 9>"$LF_SERVICES_DIR/.maven.lock" >"$dir/maven.log" 2>&1; then
        return 0
    fi
    echo "----- last 30 lines of $dir/maven.log -----" >&2
    tail -n 30 "$dir/maven.log" >&2 || true
    return 1
}

# wait_ready SECONDS PIDFILE MARKER CHECKFN: polls CHECKFN every second until it succeeds.
# Fails early if the process dies.
wait_ready() {
    local secs="$1" pidfile="$2" marker="$3" check="$4" start now
    start=$SECONDS
    while :; do
        if "$check"; then
            return 0
        fi
        if ! pid_alive "$pidfile" "$marker"; then
            log "process exited during startup"
            return 1
        fi
        now=$SECONDS
        if ((now - start >= secs)); then
            log "not ready after ${secs}s"
            return 1
        fi
        sleep 1
    done
}

# The daemon helpers below take the calling script's PIDFILE, MARKER, LOG
# and HOME_DIR: every service script names its files so.

# running_and_ready CHECKFN WHERE: in start(), when the service already runs,
# waits until CHECKFN says it is ready (exit 1 with its log if it never is)
# and returns 0; returns 1 when it does not run, so start() goes on to launch it.
running_and_ready() {
    local check="$1" where="$2"
    pid_alive "$PIDFILE" "$MARKER" || return 1
    if "$check"; then
        log "already running (pid $(cat "$PIDFILE")), $where"
        return 0
    fi
    log "already running (pid $(cat "$PIDFILE")) but not ready yet; waiting"
    if wait_ready "$LF_SERVICES_WAIT" "$PIDFILE" "$MARKER" "$check"; then
        log "ready, $where"
        return 0
    fi
    tail_log "$LOG"
    exit 1
}

# launch CHECKFN WHERE T0 COMMAND...: runs COMMAND in HOME_DIR in a session of
# its own (it outlives the script; its output goes to LOG), records its pid
# and waits until CHECKFN says it is ready. A service that dies or is not
# ready in LF_SERVICES_WAIT seconds, or a start interrupted, is stopped with
# its log shown and the script exits 1: nothing half-started stays behind.
launch() {
    local check="$1" where="$2" t0="$3"
    shift 3
    echo "=== $(date -Is) starting ===" >>"$LOG"
    (
        cd "$HOME_DIR"
        exec setsid "$@" </dev/null >>"$LOG" 2>&1 8>&-
    ) &
    echo $! >"$PIDFILE"
    trap 'log "interrupted"; tail_log "$LOG"; stop_pid "$PIDFILE" "$MARKER" 30; exit 1' INT TERM
    if wait_ready "$LF_SERVICES_WAIT" "$PIDFILE" "$MARKER" "$check"; then
        trap - INT TERM
        log "ready, $where (pid $(cat "$PIDFILE"), $((SECONDS - t0))s)"
        return 0
    fi
    tail_log "$LOG"
    stop_pid "$PIDFILE" "$MARKER" 30 || true
    exit 1
}

# service_status NAME CHECKFN WHERE: status's line, and its exit code: 0
# while the service runs (ready or not), 3 when it is stopped.
service_status() {
    local name="$1" check="$2" where="$3"
    if pid_alive "$PIDFILE" "$MARKER"; then
        if "$check"; then
            echo "$name: running (pid $(cat "$PIDFILE")), ready, $where"
        else
            echo "$name: running (pid $(cat "$PIDFILE")), not ready, $where"
        fi
        return 0
    fi
    echo "$name: stopped"
    return 3
}

# maven_jars DIR VERSION GROUP:ARTIFACT:VERSION...: the jars of the given
# artifacts and their runtime dependencies into DIR/lib, from Maven Central,
# unless DIR/lib already holds them for VERSION (DIR/lib/.complete). Only
# the generated DIR/pom.xml and the jars are written; nothing is built.
maven_jars() {
    local dir="$1" version="$2" dep g a v
    shift 2
    if [[ -f "$dir/lib/.complete" && "$(cat "$dir/lib/.complete")" == "$version" ]]; then
        return 0
    fi
    mkdir -p "$dir"
    {
        printf '<?xml version="1.0" encoding="UTF-8"?>\n<!-- Generated by %s: only used to fetch jars. -->\n' "${SVC_NAME:-deploy}"
        printf '<project xmlns="http://maven.apache.org/POM/4.0.0">\n  <modelVersion>4.0.0</modelVersion>\n'
        printf '  <groupId>dev.lambdaflow</groupId>\n  <artifactId>%s-runtime</artifactId>\n  <version>1</version>\n  <packaging>pom</packaging>\n  <dependencies>\n' "${SVC_NAME:-jars}"
        for dep in "$@"; do
            IFS=: read -r g a v <<<"$dep"
            printf '    <dependency><groupId>%s</groupId><artifactId>%s</artifactId><version>%s</version></dependency>\n' "$g" "$a" "$v"
        done
        printf '  </dependencies>\n</project>\n'
    } >"$dir/pom.xml"
    log "fetching $* with Maven"
    maven_fetch "$dir" || die "could not fetch $* (see $dir/maven.log)"
    rm -rf "$dir/lib"
    mv "$dir/lib.tmp" "$dir/lib"
    echo "$version" >"$dir/lib/.complete"
    log "fetched $(find "$dir/lib" -name '*.jar' | wc -l) jars into $dir/lib"
}
