#!/usr/bin/env bash
# Runs every fuzz target in turn (coverage-guided, through go test -fuzz).
#
#   FUZZTIME=30s   wall-clock time per target (go test -fuzztime), or
#   FUZZCPU=600    CPU-seconds per target instead: the target runs until its
#                  fuzzing processes (coordinator and workers, read from
#                  /proc; not the compiler) have used that much CPU, however
#                  busy the machine is; then it is interrupted, which ends a
#                  fuzz run cleanly.
#   FUZZFLAGS=     more go test flags, e.g. -parallel=1.
#   FUZZ=          a regular expression: only the targets whose
#                  "package Name" matches.
#
# Prints one line per target (CPU and wall seconds, executions, result) and
# writes them to artifacts/fuzz.txt. Fails if a target fails; the failing
# input is then in the package's testdata/fuzz, ready to become a test.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

targets=(
    "pipelines FuzzLoad"
    "pipelines/plan FuzzAggUnmarshal"
    "pipelines/event FuzzParseValue"
    "ingest FuzzDecode"
    "ingest FuzzRFC3339"
    "ingest FuzzDecodeTimeUnits"
    "broker FuzzDecodeEntry"
    "speed FuzzDecodePart"
    "batch FuzzManifestRecord"
    "batch FuzzReadViewFile"
    "batch FuzzPageDecoder"
    "kafka FuzzDecodeBatches"
    "sinks FuzzDecodeDeadLetterRecord"
    "sinks/elasticsearch FuzzIndexPattern"
    "pipetest FuzzLoadTestFile"
    "internal/httpapi FuzzRequest"
)

GO=${GO:-go}
mkdir -p artifacts
summary=artifacts/fuzz.txt
: >"$summary"
failed=0

# cpu_of PGID prints the CPU-seconds used so far by the test binaries of a
# process group (their own time and that of workers they have reaped).
cpu_of() {
    local ticks=0 p exe
    for p in $(pgrep -g "$1"); do
        # The executable, not comm: comm is cut to 15 characters.
        exe=$(readlink "/proc/$p/exe" 2>/dev/null) || continue
        [[ $exe == *.test ]] || continue
        ticks=$((ticks + $(awk '{print $14 + $15 + $16 + $17}' "/proc/$p/stat" 2>/dev/null || echo 0)))
    done
    echo $((ticks / $(getconf CLK_TCK)))
}

for t in "${targets[@]}"; do
    read -r pkg name <<<"$t"
    [[ -n ${FUZZ:-} && ! $t =~ $FUZZ ]] && continue
    log=$(mktemp)
    start=$(date +%s)
    if [[ -n ${FUZZCPU:-} ]]; then
        # A process group of its own, so that the interrupt reaches the
        # coordinator and its workers together.
        # shellcheck disable=SC2086
        setsid $GO test "./$pkg" -run '^$' -fuzz "^$name\$" -fuzztime 24h ${FUZZFLAGS:-} >"$log" 2>&1 &
        pid=$!
        cpu=0
        while kill -0 "$pid" 2>/dev/null; do
            sleep 2
            cpu=$(cpu_of "$pid")
            if ((cpu >= FUZZCPU)); then
                kill -INT -- "-$pid" 2>/dev/null
                break
            fi
        done
        wait "$pid"
    else
        # shellcheck disable=SC2086
        $GO test "./$pkg" -run '^$' -fuzz "^$name\$" -fuzztime "${FUZZTIME:-30s}" ${FUZZFLAGS:-} >"$log" 2>&1
        cpu=unmeasured
    fi
    wall=$(($(date +%s) - start))
    execs=$(grep -o 'execs: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    if grep -q -- '--- FAIL' "$log"; then
        result=FAIL
        failed=1
        grep -A8 -- '--- FAIL' "$log" >&2
    else
        result=ok
    fi
    [[ $cpu =~ ^[0-9]+$ ]] && cpu+=s
    line="$pkg $name cpu=$cpu wall=${wall}s execs=${execs:-0} $result"
    echo "$line" | tee -a "$summary"
    rm -f "$log"
done
exit $failed
