#!/usr/bin/env bash
# `up -d --wait` of web + redis (compose-examples/web-redis: redis:7 and the test bed's python:3
# running app.py, healthchecks every second, web waiting for redis to be healthy), then `down`:
# rcompose against docker compose, the same file and images from the test bed.
# Usage: bench/wait.sh [RUNS]      (default 5; root: containers, dockerd)
# Results: bench/results/wait.md. BENCH_WAIT_PORT: the host port web is published on (18673).
#
# Runs alternate (docker first in odd rounds), each on a new project name, after one untimed
# round. `up --wait` returns when both services are healthy, so its time is dominated by the
# healthchecks: redis's first check passes about one interval (1 s) after it starts, then web
# starts and needs one more. What differs between the tools is the time around that.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-5}"
port="${BENCH_WAIT_PORT:-18673}"
. bench/lib.sh
[[ $EUID -eq 0 ]] || bench_die "bench/wait.sh needs root (containers, dockerd)"

bench_testbed
bench_rcompose_build
bench_compose_ref
bench_side_by_side wait 4096

# The example as it is, but published on 127.0.0.1 and a port of our own (8000 may be taken).
mkdir -p "$work/project"
cp compose-examples/web-redis/app.py "$work/project/"
sed "s/- \"8000:8000\"/- \"127.0.0.1:$port:8000\"/" compose-examples/web-redis/compose.yaml \
    >"$work/project/compose.yaml"
grep -q "127.0.0.1:$port:8000" "$work/project/compose.yaml" ||
    bench_die "compose-examples/web-redis/compose.yaml: its ports line changed; update bench/wait.sh"
cd "$work/project"
"$DC" pull -q >/dev/null 2>&1
"$RCOMPOSE" pull -q >/dev/null

# One run: up -d --wait, a request through the published port, down; prints "UP_MS DOWN_MS".
one() {
    local tool="$1" project="$2" up down cmd
    if [[ $tool == docker ]]; then cmd=("$DC"); else cmd=("$RCOMPOSE"); fi
    up=$(bench_time_ms "${cmd[@]}" -p "$project" up -d --wait)
    [[ $(curl -fsS --max-time 5 "http://127.0.0.1:$port/") == *"seen 1 times"* ]] ||
        bench_die "$tool: web on 127.0.0.1:$port did not count in redis after up --wait ($project)"
    down=$(bench_time_ms "${cmd[@]}" -p "$project" down)
    echo "$up $down"
}

one docker wtwarmd >/dev/null
one rcompose wtwarmr >/dev/null
load0=$(bench_loadavg)
d_up=() d_down=() r_up=() r_down=()
for ((i = 1; i <= runs; i++)); do
    order=(docker rcompose)
    ((i % 2)) || order=(rcompose docker)
    for tool in "${order[@]}"; do
        read -r up down < <(one "$tool" "wt${i}${tool:0:1}")
        if [[ $tool == docker ]]; then
            d_up+=("$up") d_down+=("$down")
        else
            r_up+=("$up") r_down+=("$down")
        fi
        bench_log "run $i/$runs, $tool: up -d --wait $up ms, down $down ms"
    done
done
load1=$(bench_loadavg)
cd - >/dev/null

du=$(median "${d_up[@]}") ru=$(median "${r_up[@]}")
dd=$(median "${d_down[@]}") rd=$(median "${r_down[@]}")
s() { awk -v ms="$1" 'BEGIN { printf "%.2f", ms / 1000 }'; }
out=bench/results/wait.md
{
    echo "# up -d --wait of web + redis: rcompose vs docker compose ($(date -u +%Y-%m-%d))"
    echo
    echo "Machine: $(bench_machine). $(bench_versions)."
    echo "Load average before / after: $load0 / $load1 (other work shares the 2 cores)."
    echo
    echo "compose-examples/web-redis (redis:7, python:3 from the test bed; healthchecks every 1 s;" \
        "web depends on redis being healthy), published on 127.0.0.1:$port. $runs runs per tool," \
        "alternating, new project name each; after each up, one request checks that web counts in" \
        "redis. Median wall time, seconds."
    echo
    echo "| | docker compose | rcompose | ratio |"
    echo "|---|---|---|---|"
    echo "| up -d --wait | $(s "$du") | $(s "$ru") | $(ratio "$du" "$ru")x |"
    echo "| down | $(s "$dd") | $(s "$rd") | $(ratio "$dd" "$rd")x |"
    echo
    echo "All runs (ms): docker up ${d_up[*]}; rcompose up ${r_up[*]};" \
        "docker down ${d_down[*]}; rcompose down ${r_down[*]}."
    echo
    echo "Command: \`sudo bench/wait.sh $runs\`"
} >"$out"
cat "$out"
