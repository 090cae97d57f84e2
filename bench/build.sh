#!/usr/bin/env bash
# Image builds side by side: `DOCKER_BUILDKIT=1 docker build` (Debian's docker.io, BuildKit),
# `buildah bud --layers` (Debian's buildah) and `rcompose image build` / `rcompose build`, on the
# same files in one run. A 10-step two-stage Dockerfile on a generated 5,000-file context:
#   (a) cold: --no-cache
#   (b) nothing changed
#   (c) one 1 KB file changed that a middle COPY reads
#   (d) four services with the same build (--no-cache): four builds at once for docker and
#       buildah, `rcompose build` of a compose file with four such services
# Usage: bench/build.sh [RUNS]      (default 3; root: dockerd, buildah, containers)
# Results: bench/results/build.md and build.csv, and build.png, their plot (bench/plot; a note
# instead when it cannot be drawn). BENCH_BUILD_TOOLS overrides the tools
# (default "docker buildah rcompose"; rcompose is left out, with a note, while it cannot build).
#
# Each round runs every tool, in a rotating order, so a drift in the machine's load is shared.
# The base image (busybox from the test bed) is loaded into each tool before anything is
# timed; no build pulls. Docker's engine is private and runs in a network namespace of this
# script (its RUN steps need its bridge, which it makes there), with no firewall rules; buildah
# and rcompose run on the host with their state on the same private ext4 file system.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-3}"
read -r -a tools <<<"${BENCH_BUILD_TOOLS:-docker buildah rcompose}"
. bench/lib.sh
[[ $EUID -eq 0 ]] || bench_die "bench/build.sh needs root (dockerd, buildah, containers)"

bench_testbed
tests/testbed/testbed.sh tars >/dev/null
tars="$RCOMPOSE_TESTBED_DIR/tars"

has_tool() {
    local t
    for t in "${tools[@]}"; do [[ $t == "$1" ]] && return 0; done
    return 1
}

notes=()
if has_tool rcompose; then
    bench_rcompose_build
    if ! "$RCOMPOSE" image build --help >/dev/null 2>&1; then
        notes+=("rcompose: no \`image build\` in this build ($(git rev-parse --short HEAD)); not measured.")
        tools=("${tools[@]/rcompose/}")
        read -r -a tools <<<"${tools[*]}"
    fi
fi
has_tool buildah && bench_apt_install buildah

work=$(mktemp -d /var/tmp/rcb-build.XXXXXX)
run_dir=$(mktemp -d /run/rcb-build.XXXXXX)
netns="rcb-build-$$"
cleanup() {
    bench_docker_clean
    bench_docker_stop
    ip netns del "$netns" 2>/dev/null || true
    if [[ -d $work/fs/buildah ]]; then
        buildah_cmd rm --all >/dev/null 2>&1 || true
        buildah_cmd rmi --all --force >/dev/null 2>&1 || true
        findmnt -rn -o TARGET | { grep -F "$work/fs/" || true; } | sort -r | while read -r m; do
            umount -l "$m" || true
        done
    fi
    bench_scratch_down "$work/fs"
    rm -rf "$work" "$run_dir"
}
trap cleanup EXIT
bench_scratch_up "$work/fs" 8192
export RCOMPOSE_ROOT="$work/fs/rcompose" RCOMPOSE_RUN="$run_dir/rcompose"

# bench_docker_up's engine in a network namespace with its own bridge (BuildKit's RUN steps
# need one; bench_docker_up's --bridge=none fails them: "network bridge not found").
docker_up_netns() {
    bench_apt_install docker.io containerd
    BENCH_DOCKER_DIR="$work/fs/docker"
    local d="$BENCH_DOCKER_DIR"
    mkdir -p "$d/containerd" "$d/data" "$d/exec"
    bench_containerd_config "$d"
    ip netns add "$netns"
    ip netns exec "$netns" ip link set lo up
    local ns=(nsenter "--net=/run/netns/$netns" --)
    "${ns[@]}" containerd --config "$d/containerd.toml" >"$d/containerd.log" 2>&1 &
    echo $! >"$d/containerd.pid"
    "${ns[@]}" dockerd --data-root "$d/data" --exec-root "$d/exec" --pidfile "$d/dockerd.pid" \
        -H "unix://$d/docker.sock" --containerd "$d/containerd.sock" --log-level warn \
        --cgroup-parent "/rcb-build-$$" --iptables=false --ip6tables=false --ip-masq=false \
        >"$d/dockerd.log" 2>&1 &
    echo $! >"$d/dockerd.launch.pid"
    DOCKER_HOST="unix://$d/docker.sock"
    DOCKER=/usr/bin/docker
    export DOCKER_HOST DOCKER BENCH_DOCKER_DIR
    local deadline=$((SECONDS + 60))
    until "$DOCKER" info >/dev/null 2>&1; do
        kill -0 "$(cat "$d/dockerd.launch.pid")" 2>/dev/null || bench_die "dockerd exited (logs in $d)"
        ((SECONDS < deadline)) || bench_die "dockerd did not answer within 60 s (logs in $d)"
        sleep 0.1
    done
}

buildah_cmd() {
    buildah --root "$work/fs/buildah" --runroot "$run_dir/buildah" --storage-driver overlay "$@"
}

# The context: 5,000 files of 1 KB (deps/ 1,000, src/ 3,900, config/ 100) and the Dockerfile.
ctx="$work/fs/ctx"
python3 - "$ctx" <<'PY'
import os, random, sys
root = sys.argv[1]
rnd = random.Random(42)
def put(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("".join(rnd.choice("abcdefghijklmnopqrstuvwxyz0123456789\n") for _ in range(1024)))
for i in range(1000):
    put(f"{root}/deps/lib{i // 100:02d}/d{i:04d}.txt")
for i in range(3900):
    put(f"{root}/src/pkg{i // 100:02d}/f{i:04d}.txt")
for i in range(100):
    put(f"{root}/config/c{i:03d}.conf")
PY
cat >"$ctx/Dockerfile" <<'EOF'
FROM busybox AS build
WORKDIR /src
COPY deps/ ./deps/
RUN find deps -type f | wc -l > /deps.count
COPY src/ ./src/
RUN cat src/pkg05/f0523.txt | md5sum > /build.sum && tar -cf /app.tar src

FROM busybox
ENV APP_HOME=/app
WORKDIR /app
COPY --from=build /app.tar /build.sum ./
COPY config/ ./config/
CMD ["sh"]
EOF
changed="$ctx/src/pkg05/f0523.txt"
change_file() {
    python3 -c 'import sys; open(sys.argv[1], "w").write(((sys.argv[2] + "\n") * 1024)[:1024])' \
        "$changed" "$1"
}
mkdir -p "$work/fs/compose"
{
    echo "services:"
    for i in 1 2 3 4; do
        printf '  s%d:\n    image: bench-d%d\n    build: ../ctx\n    command: ["true"]\n' "$i" "$i"
    done
} >"$work/fs/compose/compose.yaml"

if has_tool docker; then
    docker_up_netns
    "$DOCKER" load -q -i "$tars/busybox-latest.docker.tar" >/dev/null
fi
if has_tool buildah; then
    buildah_cmd pull -q "docker-archive:$tars/busybox-latest.docker.tar" >/dev/null
fi
if has_tool rcompose; then
    "$RCOMPOSE" image load -i "$tars/busybox-latest.docker.tar" >/dev/null
fi

# One build of TOOL: "build ARGS..." (tag bench-x).
build() {
    local tool=$1
    shift
    case $tool in
    docker) DOCKER_BUILDKIT=1 "$DOCKER" build -q -t bench-x "$@" "$ctx" ;;
    buildah) buildah_cmd bud --layers -q -t bench-x "$@" "$ctx" ;;
    rcompose) "$RCOMPOSE" image build -t bench-x "$@" "$ctx" ;;
    esac
}
# Each timed command starts with the page cache written back (untimed): buildah's four builds
# at once left seconds of writeback that slowed whichever tool came next.
build_ms() {
    sync
    bench_time_ms build "$@"
}

# (d): four builds of the same context at once, or one `rcompose build` of four services.
four() {
    local tool=$1 i pids=()
    case $tool in
    rcompose)
        (cd "$work/fs/compose" && "$RCOMPOSE" build -q --no-cache)
        return
        ;;
    esac
    for i in 1 2 3 4; do
        case $tool in
        docker) DOCKER_BUILDKIT=1 "$DOCKER" build -q --no-cache -t "bench-d$i" "$ctx" >/dev/null & ;;
        buildah) buildah_cmd bud --layers -q --no-cache -t "bench-d$i" "$ctx" >/dev/null & ;;
        esac
        pids+=($!)
    done
    local rc=0
    for i in "${pids[@]}"; do wait "$i" || rc=1; done
    return $rc
}

# Warm-up: one untimed build each (first-use costs: the builder's own set-up).
for tool in "${tools[@]}"; do
    build "$tool" >/dev/null
done

declare -A res
load0=$(bench_loadavg)
for ((i = 1; i <= runs; i++)); do
    order=("${tools[@]:i%${#tools[@]}}" "${tools[@]:0:i%${#tools[@]}}")
    for tool in "${order[@]}"; do
        a=$(build_ms "$tool" --no-cache) || a=failed
        build "$tool" >/dev/null
        b=$(build_ms "$tool") || b=failed
        res[$tool, a]+=" $a"
        res[$tool, b]+=" $b"
        bench_log "run $i/$runs, $tool: (a) cold $a ms, (b) unchanged $b ms"
    done
    change_file "run $i $RANDOM"
    for tool in "${order[@]}"; do
        c=$(build_ms "$tool") || c=failed
        res[$tool, c]+=" $c"
        bench_log "run $i/$runs, $tool: (c) one file changed $c ms"
    done
    for tool in "${order[@]}"; do
        sync
        d=$(bench_time_ms four "$tool") || d=failed
        res[$tool, d]+=" $d"
        bench_log "run $i/$runs, $tool: (d) four at once $d ms"
    done
done
load1=$(bench_loadavg)

med_of() {
    local v=() x
    for x in ${res[$1, $2]}; do [[ $x == failed ]] || v+=("$x"); done
    ((${#v[@]})) && median "${v[@]}" || echo "n/a"
}
declare -A med
for tool in "${tools[@]}"; do
    for s in a b c d; do med[$tool, $s]=$(med_of "$tool" "$s"); done
done
rt() { [[ $1 == n/a || $2 == n/a ]] && echo "n/a" || echo "$(ratio "$1" "$2")x"; }
s_ms() { [[ $1 == n/a ]] && echo "n/a" || awk -v ms="$1" 'BEGIN { printf "%.0f", ms }'; }

mkdir -p bench/results
{
    echo "scenario,tool,median_ms"
    for s in a b c d; do
        for tool in "${tools[@]}"; do echo "$s,$tool,${med[$tool, $s]}"; done
    done
} >bench/results/build.csv
declare -A names=([a]="(a) cold, --no-cache" [b]="(b) nothing changed" [c]="(c) one 1 KB file changed" [d]="(d) four services, same build")
out=bench/results/build.md
{
    echo "# image builds: docker build (BuildKit), buildah bud --layers, rcompose ($(date -u +%Y-%m-%d))"
    echo
    echo "Machine: $(bench_machine). dockerd $("$DOCKER" version --format '{{.Server.Version}}' 2>/dev/null || echo n/a)," \
        "buildah $(buildah --version 2>/dev/null | awk '{ print $3 }' || echo n/a), rcompose $(git rev-parse --short HEAD)."
    echo "Load average before / after: $load0 / $load1 (other work shares the 2 cores)."
    echo
    echo "A 10-step two-stage Dockerfile (busybox) on a 5,000-file context of 1 KB files; $runs runs" \
        "per tool, rotating the order. Median wall time of the command, ms."
    echo
    header="| scenario |"
    sep="|---|"
    for tool in "${tools[@]}"; do header+=" $tool |"; sep+="---|"; done
    if has_tool rcompose; then
        for tool in "${tools[@]}"; do
            [[ $tool == rcompose ]] || { header+=" $tool / rcompose |"; sep+="---|"; }
        done
    fi
    echo "$header"
    echo "$sep"
    for s in a b c d; do
        line="| ${names[$s]} |"
        for tool in "${tools[@]}"; do line+=" $(s_ms "${med[$tool, $s]}") |"; done
        if has_tool rcompose; then
            for tool in "${tools[@]}"; do
                [[ $tool == rcompose ]] || line+=" $(rt "${med[$tool, $s]}" "${med[rcompose, $s]}") |"
            done
        fi
        echo "$line"
    done
    echo
    echo "(d) against (a), the cost of four services over one build:" \
        "$(for tool in "${tools[@]}"; do printf '%s %s; ' "$tool" "$(rt "${med[$tool, d]}" "${med[$tool, a]}")"; done | sed 's/; $//')."
    echo
    for n in "${notes[@]}"; do echo "$n"; echo; done
    echo "All runs (ms):"
    echo
    for tool in "${tools[@]}"; do
        echo "- $tool: (a)${res[$tool, a]}; (b)${res[$tool, b]}; (c)${res[$tool, c]}; (d)${res[$tool, d]}"
    done
    echo
    echo "Command: \`sudo bench/build.sh $runs\`"
} >"$out"
cat "$out"

# The plot, as bench/all.sh draws updown's: bench/plot is a crate of its own (not part of
# rcompose's build), fonts-dejavu-core for its font. The results above stand without it.
bench_log "plot: bench/results/build.png"
if ! (bench_apt_install fonts-dejavu-core &&
    cargo run --quiet --manifest-path bench/plot/Cargo.toml -- bench/results/build.csv bench/results/build.png); then
    bench_log "note: bench/results/build.png not drawn (bench/plot failed above); the results are in $out and bench/results/build.csv"
fi
