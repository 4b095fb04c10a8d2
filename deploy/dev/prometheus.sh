#!/usr/bin/env bash
# Fetches Prometheus (the server and promtool) from Debian into
# $LF_SERVICES_DIR/prometheus/bin, unpacked from the package, not installed:
# nothing is started and nothing outside that directory changes. The tests
# run promtool on the alerting rules (deploy/prometheus) and a Prometheus
# server that scrapes a running pipeline and answers the Grafana
# dashboard's queries and the rules. Nothing here is committed. Idempotent:
# returns at once when both binaries are there.
#
# Environment: LF_SERVICES_DIR: see lib.sh.
set -euo pipefail
SVC_NAME=prometheus
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DIR="$LF_SERVICES_DIR/prometheus"
if [[ -x "$DIR/bin/prometheus" && -x "$DIR/bin/promtool" ]]; then
    exit 0
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
log "fetching Debian's prometheus package"
(
    flock 9
    cd "$tmp"
    apt-get update -qq >/dev/null
    # Downloaded as root into a directory of its own (apt's sandbox user
    # could not write there).
    apt-get download -qq -o APT::Sandbox::User=root prometheus >/dev/null
) 9>/tmp/lambdaflow-apt.lock || die "apt-get download prometheus failed"
dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/root" || die "unpacking the prometheus package failed"
mkdir -p "$DIR/bin.new"
cp "$tmp/root/usr/bin/prometheus" "$tmp/root/usr/bin/promtool" "$DIR/bin.new/"
rm -rf "$DIR/bin"
mv "$DIR/bin.new" "$DIR/bin"
log "ready: $("$DIR/bin/prometheus" --version 2>&1 | head -1)"
