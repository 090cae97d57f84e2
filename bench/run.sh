#!/usr/bin/env bash
# Create-to-exit of one container: `rcompose run --rm -T bb true` against `docker run --rm
# busybox true`, same image from the test bed, same machine, alternating (hyperfine).
# Usage: bench/run.sh [RUNS]      (results: bench/results/run.md; root: apt-get, dockerd)
#
# Both sides include everything from the command to the exit: rcompose loads the compose file,
# finds the image, creates the writable layer, cgroup and namespaces, runs `true` and removes
# it all; docker's CLI asks dockerd, which asks containerd and runc to do the same.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-30}"
. bench/lib.sh
[[ $EUID -eq 0 ]] || bench_die "bench/run.sh needs root (containers, dockerd)"

bench_testbed
bench_rcompose_build
work=$(mktemp -d /var/tmp/rcb-run.XXXXXX)
cleanup() {
    bench_docker_stop
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
dk_cmd="$DOCKER run --rm busybox true"
bench_hyperfine "$json" "$runs" --warmup 3 -n rcompose "$rc_cmd" -n docker "$dk_cmd"
r_med=$(bench_hyperfine_median_ms "$json" rcompose)
d_med=$(bench_hyperfine_median_ms "$json" docker)
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
    echo "| | docker run --rm busybox true | rcompose run --rm -T bb true |"
    echo "|---|---|---|"
    echo "| median (ms) | $d_med | $r_med |"
    echo
    echo "**Ratio** (docker / rcompose): **$(ratio "$d_med" "$r_med")x**."
    echo
    echo "Command: \`sudo bench/run.sh $runs\`"
} >"$out"
cat "$out"
