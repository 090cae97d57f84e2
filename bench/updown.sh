#!/usr/bin/env bash
# `up -d` and `down` of 1, 10, 50 and 200 trivial services: rcompose against docker compose
# (the reference binary, talking to a private dockerd), the same compose file and busybox image
# from the test bed for both.
# Usage: bench/updown.sh [RUNS]      (default 3; root: containers, dockerd)
# Results: bench/results/updown.md, and updown.csv for bench/plot.
# BENCH_UPDOWN_COUNTS overrides the service counts (default "1 10 50 200").
#
# Each round runs both tools, docker first in odd rounds and rcompose first in even ones, so a
# drift in the machine's load is shared. Every run uses a new project name, so nothing of the
# previous run is reused (the containers, layers and networks are all created anew), and the
# stores live on a private ext4 filesystem (see the ext4 note in bench/lib.sh). One untimed
# round of 1 service warms both up. `down` follows `up` at once; the services exit on SIGTERM.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-3}"
read -r -a counts <<<"${BENCH_UPDOWN_COUNTS:-1 10 50 200}"
. bench/lib.sh
[[ $EUID -eq 0 ]] || bench_die "bench/updown.sh needs root (containers, dockerd)"

bench_testbed
bench_rcompose_build
bench_compose_ref
max=0
for n in "${counts[@]}"; do ((n > max)) && max=$n; done
bench_side_by_side updown $((4096 + 20 * max))
"$DOCKER" pull -q busybox >/dev/null

# 1 always: the warm-up round uses it.
for n in 1 "${counts[@]}"; do
    mkdir -p "$work/p$n"
    bench_trivial_compose "$work/p$n/compose.yaml" "$n"
done
(cd "$work/p1" && "$RCOMPOSE" pull -q >/dev/null)

# One run of one tool: up -d, check that N containers run, down; prints "UP_MS DOWN_MS", with
# "failed" for a command that failed (its output is logged and the project brought down): a
# failure is a result to report, not a reason to lose the other runs.
# A subshell: the warm-up calls it from the main shell, whose directory must not change.
one() (
    local tool="$1" n="$2" project="$3" up down running cmd
    if [[ $tool == docker ]]; then cmd=("$DC"); else cmd=("$RCOMPOSE"); fi
    cd "$work/p$n"
    if ! up=$(bench_time_ms "${cmd[@]}" -p "$project" up -d); then
        "${cmd[@]}" -p "$project" down >/dev/null 2>&1 || bench_die "$tool: down after a failed up failed ($project)"
        echo failed
        return 0
    fi
    if [[ $tool == docker ]]; then
        running=$("$DOCKER" ps -q --filter "label=com.docker.compose.project=$project" | wc -l)
    else
        running=$("$RCOMPOSE" -p "$project" ps -q --status running | wc -l)
    fi
    if ! down=$(bench_time_ms "${cmd[@]}" -p "$project" down); then
        # A second down finishes the job (docker: "network ... has active endpoints" when it
        # removes the network before the last endpoint is gone).
        down=failed
        "${cmd[@]}" -p "$project" down >/dev/null 2>&1 || bench_die "$tool: down failed twice ($project)"
    fi
    ((running == n)) || bench_die "$tool: $running of $n containers running after up -d ($project)"
    echo "$up $down"
)

one docker 1 udwarmd >/dev/null
one rcompose 1 udwarmr >/dev/null
load0=$(bench_loadavg)
declare -A med
declare -a runs_txt
failures=()
for n in "${counts[@]}"; do
    d_up=() d_down=() r_up=() r_down=()
    for ((i = 1; i <= runs; i++)); do
        order=(docker rcompose)
        ((i % 2)) || order=(rcompose docker)
        for tool in "${order[@]}"; do
            read -r up down < <(one "$tool" "$n" "ud${n}x${i}${tool:0:1}")
            bench_log "$n services, run $i/$runs, $tool: up -d $up ms, down $down ms"
            if [[ $up == failed ]]; then
                failures+=("$n services, run $i, $tool up -d")
                continue
            fi
            if [[ $down == failed ]]; then
                failures+=("$n services, run $i, $tool down")
            elif [[ $tool == docker ]]; then
                d_down+=("$down")
            else
                r_down+=("$down")
            fi
            if [[ $tool == docker ]]; then d_up+=("$up"); else r_up+=("$up"); fi
        done
    done
    med[$n, docker, up]=$(median "${d_up[@]}")
    med[$n, docker, down]=$(median "${d_down[@]}")
    med[$n, rcompose, up]=$(median "${r_up[@]}")
    med[$n, rcompose, down]=$(median "${r_down[@]}")
    runs_txt[$n]="docker up ${d_up[*]}; rcompose up ${r_up[*]}; docker down ${d_down[*]}; rcompose down ${r_down[*]}"
done
load1=$(bench_loadavg)

mkdir -p bench/results
csv=bench/results/updown.csv
{
    echo "services,tool,op,median_ms"
    for n in "${counts[@]}"; do
        for tool in docker rcompose; do
            for op in up down; do
                echo "$n,$tool,$op,${med[$n, $tool, $op]}"
            done
        done
    done
} >"$csv"
s() { awk -v ms="$1" 'BEGIN { printf "%.0f", ms }'; }
out=bench/results/updown.md
{
    echo "# up -d / down: rcompose vs docker compose ($(date -u +%Y-%m-%d))"
    echo
    echo "Machine: $(bench_machine). $(bench_versions)."
    echo "Load average before / after: $load0 / $load1 (other work shares the 2 cores)."
    echo
    echo "N trivial busybox services (\`sh -c \"trap 'exit 0' TERM; sleep 3600 & wait\"\`) on the" \
        "project's default network; $runs runs per tool and count, alternating, each on a new" \
        "project name. Median wall time of the command, ms."
    echo
    echo "| services | docker up -d | rcompose up -d | ratio | docker down | rcompose down | ratio |"
    echo "|---|---|---|---|---|---|---|"
    for n in "${counts[@]}"; do
        echo "| $n | $(s "${med[$n, docker, up]}") | $(s "${med[$n, rcompose, up]}")" \
            "| $(ratio "${med[$n, docker, up]}" "${med[$n, rcompose, up]}")x" \
            "| $(s "${med[$n, docker, down]}") | $(s "${med[$n, rcompose, down]}")" \
            "| $(ratio "${med[$n, docker, down]}" "${med[$n, rcompose, down]}")x |"
    done
    echo
    echo "Ratio: docker median / rcompose median (above 1: rcompose is faster)."
    echo
    if ((${#failures[@]})); then
        echo "**Failed runs** (the command exited non-zero; left out of the medians): $(printf "%s; " "${failures[@]}" | sed "s/; $//")."
        echo
    fi
    echo "All runs (ms):"
    echo
    for n in "${counts[@]}"; do
        echo "- $n: ${runs_txt[$n]}"
    done
    echo
    echo "Command: \`sudo bench/updown.sh $runs\`"
} >"$out"
cat "$out"
