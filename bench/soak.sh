#!/usr/bin/env bash
# Soak: CYCLES `up -d --wait` / `down -v` cycles (default 1,000) of a stack with a healthcheck,
# a published port, a named volume and a depends_on condition, then PAIRS rounds (default 200)
# of two `run --rm` at once. Before, after and every CYCLES/10 cycles it records the open fds
# and RSS of rcompose's processes (while the stack is up), and after `down` the mounts, links,
# routes, nft rules, cgroups and files under RCOMPOSE_ROOT/RCOMPOSE_RUN; and the time of every
# cycle. It fails when any of those grew from the first cycle to the last, or when the last
# tenth of the cycles is more than 1.5 times slower than the first tenth.
# Usage: bench/soak.sh [CYCLES] [PAIRS]    (root: containers)
#   RCOMPOSE=path   the binary to soak (default: a release build of this tree)
#   SOAK_PORT=N     the published host port on 127.0.0.1 (default 18431)
# Results: bench/results/soak.md (the samples) and soak.csv (every cycle's time).
set -euo pipefail
cd "$(dirname "$0")/.."
cycles="${1:-1000}"
pairs="${2:-200}"
port="${SOAK_PORT:-18431}"
. bench/lib.sh
[[ $EUID -eq 0 ]] || bench_die "bench/soak.sh needs root (containers)"
bench_testbed
if [[ -z ${RCOMPOSE:-} ]]; then
    bench_rcompose_build
fi
work="$(mktemp -d /tmp/rcompose-soak.XXXXXX)"
export RCOMPOSE_ROOT="$work/root" RCOMPOSE_RUN="$work/run"
mkdir -p "$RCOMPOSE_ROOT" "$RCOMPOSE_RUN" "$work/p"
project="soak$$"
cleanup() {
    (cd "$work/p" && "$RCOMPOSE" -p "$project" down -v -t 1 >/dev/null 2>&1) || true
    rm -rf "$work"
}
trap cleanup EXIT

# Every process ends on SIGTERM (a shell with a trap as PID 1), so `down` never waits out a
# timeout; the healthcheck probes every 100 ms during the start period.
cat >"$work/p/compose.yaml" <<YAML
services:
  db:
    image: busybox
    command: [sh, -c, "trap 'exit 0' TERM; touch /data/ready; sleep 100000 & wait"]
    volumes: [data:/data]
    healthcheck:
      test: [CMD, test, -f, /data/ready]
      interval: 5s
      start_period: 60s
      start_interval: 100ms
  web:
    image: busybox
    command: [sh, -c, "trap 'exit 0' TERM; echo ok >/tmp/index.html; httpd -f -p 80 -h /tmp & wait"]
    ports: ["127.0.0.1:$port:80"]
    # Healthy once httpd answers: \`up --wait\` returns with the page served.
    healthcheck:
      test: [CMD, wget, -q, -O, /dev/null, http://127.0.0.1/]
      interval: 5s
      start_period: 60s
      start_interval: 100ms
    depends_on:
      db: {condition: service_healthy}
  job:
    image: busybox
    profiles: [job]
    volumes: [data:/data]
volumes:
  data: {}
YAML
rc() { (cd "$work/p" && "$RCOMPOSE" -p "$project" "$@"); }
rc pull -q >/dev/null 2>&1 || rc pull >/dev/null

# rcompose's own processes: its executable, whatever their arguments (the supervisor runs as
# `rcompose __supervise`); containers run other executables.
rcompose_pids() {
    find /proc -mindepth 2 -maxdepth 2 -path '/proc/[0-9]*/exe' -lname "$(readlink -f "$RCOMPOSE")" \
        2>/dev/null | cut -d/ -f3
}
proc_fds_rss_once() {
    local fds=0 rss=0 n=0 pid
    for pid in $(rcompose_pids); do
        n=$((n + 1))
        fds=$((fds + $(ls "/proc/$pid/fd" 2>/dev/null | wc -l)))
        rss=$((rss + $(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)))
    done
    echo "$n $fds $rss"
}
# A health probe in flight holds a few descriptors for a moment: the fewest of three reads.
proc_fds_rss() {
    local best="" line k
    for k in 1 2 3; do
        line="$(proc_fds_rss_once)"
        if [[ -z $best ]] || (($(cut -d' ' -f2 <<<"$line") < $(cut -d' ' -f2 <<<"$best"))); then
            best="$line"
        fi
    done
    echo "$best"
}
host_state() {
    local mounts links routes nft cgroups files
    mounts=$(wc -l </proc/self/mountinfo)
    links=$(ip -o link | wc -l)
    routes=$(ip route show table all | wc -l)
    nft=$(nft list ruleset 2>/dev/null | wc -l)
    cgroups=$(find /sys/fs/cgroup -type d 2>/dev/null | wc -l)
    files=$(find "$RCOMPOSE_ROOT" "$RCOMPOSE_RUN" 2>/dev/null | wc -l)
    echo "$mounts $links $routes $nft $cgroups $files"
}
now_ms() { date +%s%3N; }

report=bench/results/soak.md
csv=bench/results/soak.csv
mkdir -p bench/results
echo "cycle,ms" >"$csv"
samples=()
every=$((cycles / 10))
((every > 0)) || every=1
read -r -a base_host <<<"$(host_state)"
samples+=("| before | - | - | - | ${base_host[*]} |")
first_up="" last_up="" first_host="" last_host=""
times=()
for ((i = 1; i <= cycles; i++)); do
    t0=$(now_ms)
    rc up -d --wait >/dev/null 2>&1 || bench_die "cycle $i: up failed"
    # The published port answers.
    exec 9<>"/dev/tcp/127.0.0.1/$port" || bench_die "cycle $i: port $port does not answer"
    printf 'GET / HTTP/1.0\r\n\r\n' >&9
    grep -q ok <&9 || bench_die "cycle $i: no page on port $port"
    exec 9>&-
    sample=$([[ $i == 1 || $((i % every)) == 0 || $i == "$cycles" ]] && echo 1 || echo 0)
    # The sampling is not part of the cycle's time.
    ts0=$(now_ms)
    [[ $sample == 1 ]] && up_state="$(proc_fds_rss)"
    ts1=$(now_ms)
    rc down -v >/dev/null 2>&1 || bench_die "cycle $i: down failed"
    t1=$(now_ms)
    ms=$((t1 - t0 - (ts1 - ts0)))
    times+=("$ms")
    echo "$i,$ms" >>"$csv"
    if [[ $sample == 1 ]]; then
        host="$(host_state)"
        samples+=("| $i | ${up_state// / | } | $host |")
        [[ $i == 1 ]] && first_up="$up_state" first_host="$host"
        last_up="$up_state" last_host="$host"
        bench_log "cycle $i: $ms ms; up: procs fds rss_kB = $up_state; after down: $host"
    fi
done

# Two one-off containers at once, PAIRS times.
t0=$(now_ms)
for ((i = 1; i <= pairs; i++)); do
    # `--profile`: rcompose's `run` does not yet enable a profiled service it is given.
    rc --profile job run --rm job sh -c 'test -d /data' >/dev/null 2>&1 &
    a=$!
    rc --profile job run --rm job true >/dev/null 2>&1 &
    b=$!
    wait "$a" || bench_die "run pair $i: first run failed"
    wait "$b" || bench_die "run pair $i: second run failed"
done
t1=$(now_ms)
rc --profile job down -v >/dev/null 2>&1 || true
# The supervisor lingers a moment after the last container is gone (LINGER): wait it out.
for _ in $(seq 50); do [[ -z "$(rcompose_pids)" ]] && break; sleep 0.1; done
after_runs="$(host_state)"
samples+=("| after $pairs run pairs | $(proc_fds_rss | sed 's/ / | /g') | ${after_runs} |")

n=${#times[@]}
tenth=$((n / 10))
((tenth > 0)) || tenth=1
avg() { local s=0 k; for k in "$@"; do s=$((s + k)); done; echo $((s / $#)); }
first_ms=$(avg "${times[@]:0:tenth}")
last_ms=$(avg "${times[@]:n-tenth:tenth}")
sorted=($(printf '%s\n' "${times[@]}" | sort -n))
median=${sorted[$((n / 2))]}
p95=${sorted[$((n * 95 / 100))]}

failures=()
read -r -a fu <<<"$first_up"
read -r -a lu <<<"$last_up"
((lu[1] > fu[1])) && failures+=("open fds of rcompose processes grew: ${fu[1]} -> ${lu[1]}")
((lu[2] * 4 > fu[2] * 5)) && failures+=("RSS of rcompose processes grew over 25%: ${fu[2]} -> ${lu[2]} kB")
read -r -a fh <<<"$first_host"
read -r -a lh <<<"$last_host"
read -r -a ah <<<"$after_runs"
names=(mounts links routes "nft lines" cgroups files)
for k in 0 1 2 3 4 5; do
    ((lh[k] > fh[k])) && failures+=("${names[k]} grew over the cycles: ${fh[k]} -> ${lh[k]}")
    ((ah[k] > fh[k])) && failures+=("${names[k]} grew over the run pairs: ${fh[k]} -> ${ah[k]}")
done
((last_ms * 2 > first_ms * 3)) && failures+=("cycles slowed down: first tenth ${first_ms} ms, last tenth ${last_ms} ms")

{
    echo "# bench/soak.sh $cycles cycles, $pairs run pairs ($(date -u +%Y-%m-%d), $(nproc) cores)"
    echo
    echo "Cycle time: median $median ms, p95 $p95 ms; first tenth $first_ms ms, last tenth $last_ms ms."
    echo "$pairs pairs of \`run --rm\`: $((t1 - t0)) ms in all, $(((t1 - t0) / pairs)) ms a pair."
    echo
    echo "Stack up: rcompose processes, their open fds and RSS (kB). After down: the host's mounts,"
    echo "links, routes, nft ruleset lines, cgroups, and files under RCOMPOSE_ROOT and RCOMPOSE_RUN."
    echo
    echo "| cycle | procs | fds | RSS kB | mounts links routes nft cgroups files |"
    echo "| --- | ---: | ---: | ---: | --- |"
    printf '%s\n' "${samples[@]}"
    echo
    if ((${#failures[@]})); then
        echo "FAILED:"
        printf -- '- %s\n' "${failures[@]}"
    else
        echo "No growth."
    fi
} >"$report"
cat "$report"
((${#failures[@]} == 0))
