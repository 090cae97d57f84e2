#!/usr/bin/env bash
# Footprint of 50 running containers: CPU time spent bringing them up and memory held while
# they run, of the tool plus its engine. docker: the docker compose CLI, dockerd, containerd and
# the containerd-shim-runc-v2 processes (and the runc runs they wait for); rcompose: the CLI and
# the project's `rcompose __supervise` process. The containers' own payload (busybox) is left
# out of memory on both sides; it is the same program.
# Usage: bench/footprint.sh [RUNS]      (default 3; root: containers, dockerd)
# Results: bench/results/footprint.md. BENCH_FOOTPRINT_N overrides the 50.
#
# Measured from /proc (bench/proc.py): CPU = utime + stime (+ waited-for children) of every
# engine process, after `up -d` minus before (processes born during the up count whole), plus
# the CLI's from GNU time; memory = sums of RSS, PSS (shared pages split) and VmHWM (each
# process's own peak) over the engine processes 5 s after `up -d` returned; idle CPU over the
# next 10 s. Runs alternate (docker first in odd rounds), each on a new project name.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-3}"
n="${BENCH_FOOTPRINT_N:-50}"
idle_s=10
. bench/lib.sh
[[ $EUID -eq 0 ]] || bench_die "bench/footprint.sh needs root (containers, dockerd)"
bench_apt_install time

bench_testbed
bench_rcompose_build
bench_compose_ref
bench_side_by_side foot $((4096 + 20 * n))
"$DOCKER" pull -q busybox >/dev/null
mkdir -p "$work/project"
bench_trivial_compose "$work/project/compose.yaml" "$n"
repo=$PWD
cd "$work/project"
"$RCOMPOSE" pull -q >/dev/null

proc() { python3 "$repo/bench/proc.py" "$@"; }
# The engine processes of one tool (pids, one per line), without the containers' payload.
engine_pids() {
    if [[ $1 == docker ]]; then
        # dockerd, containerd and the shims all carry the private engine's directory on their
        # command line.
        proc pids --not-exe busybox "$BENCH_DOCKER_DIR/"
    else
        proc pids --not-exe busybox "__supervise $2"
    fi
}
# Engine processes including the payload, for CPU: a container's set-up before it execs busybox
# (runc init, or rcompose's child) is charged to the container's own process.
tree_pids() {
    if [[ $1 == docker ]]; then proc pids "$BENCH_DOCKER_DIR/"; else proc pids "__supervise $2"; fi
}
tree_cpu() {
    local p
    p=$(tree_pids "$@")
    if [[ -n $p ]]; then proc cpu $p; else echo 0; fi
}

# One run: prints "CLI_CPU_MS ENGINE_CPU_MS CLI_MAXRSS_KB RSS_KB PSS_KB HWM_KB IDLE_CPU_MS N_PROCS".
one() {
    local tool="$1" project="$2" c0 c1 c2 cli pids mem cmd running
    if [[ $tool == docker ]]; then cmd=("$DC"); else cmd=("$RCOMPOSE"); fi
    c0=$(tree_cpu "$tool" "$project")
    # GNU time: user and system seconds and max RSS of the CLI and what it waited for.
    cli=$(/usr/bin/time -f '%U %S %M' "${cmd[@]}" -p "$project" up -d 2>&1 >/dev/null | tail -n 1)
    c1=$(tree_cpu "$tool" "$project")
    if [[ $tool == docker ]]; then
        running=$("$DOCKER" ps -q --filter "label=com.docker.compose.project=$project" | wc -l)
    else
        running=$("$RCOMPOSE" -p "$project" ps -q --status running | wc -l)
    fi
    ((running == n)) || bench_die "$tool: $running of $n containers running after up -d ($project)"
    sleep 5
    pids=$(engine_pids "$tool" "$project")
    [[ -n $pids ]] || bench_die "$tool: no engine process found ($project)"
    mem=$(proc mem $pids)
    c2=$(tree_cpu "$tool" "$project")
    sleep "$idle_s"
    local c3
    c3=$(tree_cpu "$tool" "$project")
    "${cmd[@]}" -p "$project" down >/dev/null 2>&1 || bench_die "$tool: down failed ($project)"
    read -r u s maxrss <<<"$cli"
    echo "$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.0f", (u + s) * 1000 }') $((c1 - c0)) $maxrss $mem $((c3 - c2)) $(wc -w <<<"$pids")"
}

# The private engine at rest, before any container: what docker costs with nothing running.
base_pids=$(engine_pids docker)
read -r base_rss base_pss _ < <(proc mem $base_pids)

load0=$(bench_loadavg)
declare -A all
for ((i = 1; i <= runs; i++)); do
    order=(docker rcompose)
    ((i % 2)) || order=(rcompose docker)
    for tool in "${order[@]}"; do
        read -r cli_cpu eng_cpu cli_rss rss pss hwm idle procs < <(one "$tool" "fp${i}${tool:0:1}")
        for k in cli_cpu eng_cpu cli_rss rss pss hwm idle procs; do
            all[$tool, $k]+="${!k} "
        done
        bench_log "run $i/$runs, $tool: CPU CLI $cli_cpu ms + engine $eng_cpu ms; engine RSS $rss kB, PSS $pss kB, $procs processes; idle CPU $idle ms/${idle_s}s"
    done
done
load1=$(bench_loadavg)
cd "$repo"

# Median of one measure of one tool, optionally divided (kB -> MB: 1024).
m() {
    local v
    # shellcheck disable=SC2086 # the values are a space-separated list
    v=$(median ${all[$1, $2]})
    awk -v v="$v" -v d="${3:-1}" 'BEGIN { printf (d == 1 ? "%.0f" : "%.1f"), v / d }'
}
cpu_total() {
    local t=() a b
    read -r -a a <<<"${all[$1, cli_cpu]}"
    read -r -a b <<<"${all[$1, eng_cpu]}"
    for ((j = 0; j < ${#a[@]}; j++)); do t+=($((a[j] + b[j]))); done
    median "${t[@]}" | awk '{ printf "%.0f", $1 }'
}
dt=$(cpu_total docker) rt=$(cpu_total rcompose)
out=bench/results/footprint.md
{
    echo "# footprint of $n running containers: rcompose vs docker compose ($(date -u +%Y-%m-%d))"
    echo
    echo "Machine: $(bench_machine). $(bench_versions)."
    echo "Load average before / after: $load0 / $load1 (other work shares the 2 cores)."
    echo
    echo "$n trivial busybox services, \`up -d\` on a new project; $runs runs per tool, alternating;" \
        "medians. docker's engine: dockerd, containerd, containerd-shim-runc-v2 (one per" \
        "container); rcompose's: the project's \`rcompose __supervise\` process. The containers'" \
        "busybox processes are not counted in memory."
    echo
    echo "| | docker compose | rcompose | ratio |"
    echo "|---|---|---|---|"
    echo "| CPU time of up -d, CLI (ms) | $(m docker cli_cpu) | $(m rcompose cli_cpu) | |"
    echo "| CPU time of up -d, engine (ms) | $(m docker eng_cpu) | $(m rcompose eng_cpu) | |"
    echo "| CPU time of up -d, total (ms) | $dt | $rt | $(ratio "$dt" "$rt")x |"
    echo "| peak RSS of the CLI (MB) | $(m docker cli_rss 1024) | $(m rcompose cli_rss 1024) | |"
    echo "| engine processes | $(m docker procs) | $(m rcompose procs) | |"
    echo "| engine RSS, sum (MB) | $(m docker rss 1024) | $(m rcompose rss 1024) | $(ratio "$(m docker rss)" "$(m rcompose rss)")x |"
    echo "| engine PSS, sum (MB) | $(m docker pss 1024) | $(m rcompose pss 1024) | $(ratio "$(m docker pss)" "$(m rcompose pss)")x |"
    echo "| engine peak RSS, sum of each process's VmHWM (MB) | $(m docker hwm 1024) | $(m rcompose hwm 1024) | |"
    echo "| engine CPU while idle, ${idle_s} s (ms) | $(m docker idle) | $(m rcompose idle) | |"
    echo
    echo "docker's engine with no container (dockerd + containerd at rest):" \
        "RSS $(awk -v v="$base_rss" 'BEGIN { printf "%.1f", v / 1024 }') MB," \
        "PSS $(awk -v v="$base_pss" 'BEGIN { printf "%.1f", v / 1024 }') MB; rcompose has no daemon."
    echo
    echo "Ratio: docker / rcompose. RSS counts shared pages (the shims' common binary) once per"
    echo "process; PSS splits them between the processes sharing them, so its sum is the memory"
    echo "really held. CPU includes the children each process waited for (runc runs, the shims'"
    echo "start-up) and the containers' set-up before they exec busybox."
    echo
    echo "Command: \`sudo bench/footprint.sh $runs\`"
} >"$out"
cat "$out"
