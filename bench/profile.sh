#!/usr/bin/env bash
# Where rcompose's `up -d` of N trivial services spends its time: a system-wide perf profile of
# the run, kept to rcompose's processes (the CLI, the supervisor, and each container's process
# until it execs busybox: all named "rcompose"). (strace -f cannot be used: it would wait for
# the supervisor, which outlives the command.)
# Usage: bench/profile.sh [N]      (default 50; root: containers, perf)
# Prints the reports; perf.data stays in bench/results/profile/ (not committed: .gitignore).
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-50}"
. bench/lib.sh
[[ $EUID -eq 0 ]] || bench_die "bench/profile.sh needs root (containers, perf)"
command -v perf >/dev/null || bench_apt_install linux-perf

bench_testbed
bench_rcompose_build
work=$(mktemp -d /var/tmp/rcb-prof.XXXXXX)
run_dir=$(mktemp -d /run/rcb-prof.XXXXXX)
out=bench/results/profile
mkdir -p "$out"
cleanup() {
    local p
    for p in $("$RCOMPOSE" ls -a -q 2>/dev/null); do
        "$RCOMPOSE" -p "$p" down -t 1 >/dev/null 2>&1 || bench_log "rcompose down of $p failed"
    done
    rm -rf "$work" "$run_dir"
}
trap cleanup EXIT
export RCOMPOSE_ROOT="$work/root" RCOMPOSE_RUN="$run_dir"
bench_trivial_compose "$work/compose.yaml" "$n"
repo=$PWD
cd "$work"
"$RCOMPOSE" pull -q >/dev/null
# Warm-up, as in updown.sh.
"$RCOMPOSE" -p prof0 up -d >/dev/null 2>&1
"$RCOMPOSE" -p prof0 down >/dev/null 2>&1

t=$(bench_time_ms perf record -q -a -g -o "$repo/$out/perf.data" -- "$RCOMPOSE" -p prof1 up -d)
bench_log "up -d of $n services under perf: $t ms (load average $(bench_loadavg))"
"$RCOMPOSE" -p prof1 down >/dev/null 2>&1
cd "$repo"

echo "== perf: rcompose processes by shared object (share of their samples)"
perf report -i "$out/perf.data" --comm rcompose --no-children --sort dso --stdio 2>/dev/null |
    grep -v '^#' | grep -v '^$' | head -n 15
echo "== perf: rcompose processes, top symbols"
perf report -i "$out/perf.data" --comm rcompose --no-children --sort sym --stdio -g none 2>/dev/null |
    grep -v '^#' | grep -v '^$' | head -n 40
