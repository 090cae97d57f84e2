#!/usr/bin/env bash
# Create-to-exit of one container: `rcompose run --rm -T bb true` against `docker run --rm
# busybox true`, same image from the test bed, same machine, alternating (hyperfine).
# Usage: bench/run.sh [RUNS]      (results: bench/results/run.md; root: apt-get, dockerd)
#
# Both sides include everything from the command to the exit: rcompose loads the compose file,
# finds the image, creates the writable layer, cgroup and namespaces, runs `true` and removes
# it all; docker's CLI asks dockerd, which asks containerd and runc to do the same.
#
# rcompose is measured twice: as hyperfine runs it (back to back, so the project's supervisor
# lingering after the previous run serves the next one), and "cold", with
# RCOMPOSE_SUPERVISOR_LINGER_MS=0 on a second project, so that every run starts a supervisor.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-30}"
. bench/lib.sh
[[ $EUID -eq 0 ]] || bench_die "bench/run.sh needs root (containers, dockerd)"

bench_testbed
bench_rcompose_build
work=$(mktemp -d /var/tmp/rcb-run.XXXXXX)
cleanup() {
    bench_docker_down
    rm -rf "$work"
}
trap cleanup EXIT
bench_docker_up
"$DOCKER" pull -q busybox >/dev/null

export RCOMPOSE_ROOT="$work/root" RCOMPOSE_RUN="$work/run"
mkdir -p "$work/project"
printf 'services:\n  bb:\n    image: busybox\n' >"$work/project/compose.yaml"
cd "$work/project"
"$RCOMPOSE" pull -q >/dev/null

json="$work/run.json"
rc_cmd="$RCOMPOSE run --rm -T bb true"
rc_cold_cmd="env RCOMPOSE_SUPERVISOR_LINGER_MS=0 $RCOMPOSE -p cold run --rm -T bb true"
dk_cmd="$DOCKER run --rm busybox true"
bench_hyperfine "$json" "$runs" --warmup 3 -n rcompose "$rc_cmd" -n rcompose-cold "$rc_cold_cmd" \
    -n docker "$dk_cmd"
r_med=$(bench_hyperfine_median_ms "$json" rcompose)
c_med=$(bench_hyperfine_median_ms "$json" rcompose-cold)
d_med=$(bench_hyperfine_median_ms "$json" docker)
# The projects' networks (and a lingering supervisor) go with the temporary state.
"$RCOMPOSE" down >/dev/null 2>&1 || true
"$RCOMPOSE" -p cold down >/dev/null 2>&1 || true
cd - >/dev/null

out=bench/results/run.md
{
    echo "# create-to-exit: rcompose run vs docker run ($(date -u +%Y-%m-%d))"
    echo
    echo "Machine: $(bench_machine). rcompose $(git rev-parse --short HEAD) (release build);" \
        "$("$DOCKER" version --format 'docker {{.Server.Version}}'), containerd" \
        "$(containerd --version | awk '{ print $3 }')."
    echo
    echo "busybox from the test bed registry; $runs runs each after 3 warm-ups (hyperfine -N)."
    echo
    echo "| | docker run --rm busybox true | rcompose run --rm -T bb true | same, supervisor started per run |"
    echo "|---|---|---|---|"
    echo "| median (ms) | $d_med | $r_med | $c_med |"
    echo
    echo "**Ratio** (docker / rcompose): **$(ratio "$d_med" "$r_med")x** (cold: $(ratio "$d_med" "$c_med")x)."
    echo
    echo "Load average when done: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo
    echo "Command: \`sudo bench/run.sh $runs\`"
} >"$out"
cat "$out"
