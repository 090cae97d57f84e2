# Shared helpers for the benchmarks in bench/. Source it from a script that has `set -euo pipefail`
# and has cd'ed to the repository root:
#
#   . bench/lib.sh
#   bench_testbed            # image test bed served, its env exported
#   bench_rcompose_build     # release build; sets RCOMPOSE
#   bench_docker_up          # private dockerd; sets DOCKER_HOST, DOCKER
#   trap bench_docker_down EXIT
#
# ext4 (this machine's /) is slow to create files in a block group where many files were
# deleted within the last minute (the inode allocator skips recently deleted inodes one by one,
# reading inode tables): a benchmark that creates many files must not delete the previous run's
# files just before a timed run. Give each run fresh directories and delete them at the end.
#
# The dockerd started here is private: its own containerd, data root, exec root, socket and pid
# files under one temporary directory, no bridge and no iptables rules, the test bed's registry
# as docker.io mirror. It never talks to, or stops, any other dockerd or containerd.

BENCH_TESTBED_PORT="${RCOMPOSE_TESTBED_PORT:-5043}"

bench_log() { printf 'bench: %s\n' "$*" >&2; }
bench_die() {
    printf 'bench: error: %s\n' "$*" >&2
    exit 1
}

# Installs Debian packages that are missing (root). Services they ship are not started: when the
# machine has no policy-rc.d, one that denies starts is put in place for the install only.
bench_apt_install() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    [[ $EUID -eq 0 ]] || bench_die "installing ${missing[*]} needs root"
    bench_log "apt-get install ${missing[*]}"
    local policy=/usr/sbin/policy-rc.d own_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 0755 "$policy" && own_policy=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        -o DPkg::Lock::Timeout=600 "${missing[@]}" >/dev/null || {
        ((own_policy)) && rm -f "$policy"
        bench_die "apt-get install ${missing[*]} failed"
    }
    ((own_policy)) && rm -f "$policy"
    return 0
}

# Test bed registry on 127.0.0.1 (install, build and serve are no-ops when up to date), and its
# env (CONTAINERS_REGISTRIES_CONF, RCOMPOSE_TESTBED_*) exported to the caller.
bench_testbed() {
    tests/testbed/testbed.sh all >/dev/null
    eval "$(tests/testbed/testbed.sh env)"
}

# Release build of rcompose; RCOMPOSE is its absolute path.
bench_rcompose_build() {
    cargo build --release --quiet
    RCOMPOSE="$PWD/target/release/rcompose"
    export RCOMPOSE
}

# A private containerd's configuration in DIR (its own root, state and sockets): with no
# --containerd, dockerd would adopt a system containerd and share its state.
bench_containerd_config() {
    local d=$1
    cat >"$d/containerd.toml" <<EOF
version = 2
root = "$d/containerd/root"
state = "$d/containerd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$d/containerd.sock"
[ttrpc]
  address = "$d/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$d/containerd/opt"
EOF
}

# Starts a private dockerd (and its containerd) and exports DOCKER_HOST and DOCKER (the Debian
# docker CLI, matching the daemon's version). BENCH_DOCKER_DIR: where its state goes (default: a
# new directory under /var/tmp; socket paths must stay short). BENCH_DOCKER_STORAGE_DRIVER
# overrides dockerd's choice of storage driver.
bench_docker_up() {
    bench_apt_install docker.io containerd
    BENCH_DOCKER_DIR="${BENCH_DOCKER_DIR:-$(mktemp -d /var/tmp/rcb-docker.XXXXXX)}"
    local d="$BENCH_DOCKER_DIR"
    mkdir -p "$d/containerd" "$d/data" "$d/exec"
    # Our own containerd: with no --containerd, dockerd would adopt a system containerd on
    # /run/containerd/containerd.sock if one runs, and share its state with another dockerd.
    bench_containerd_config "$d"
    cat >"$d/daemon.json" <<EOF
{
  "registry-mirrors": ["http://127.0.0.1:$BENCH_TESTBED_PORT"],
  "insecure-registries": ["127.0.0.1:$BENCH_TESTBED_PORT"],
  "log-level": "warn"
}
EOF
    containerd --config "$d/containerd.toml" >"$d/containerd.log" 2>&1 &
    echo $! >"$d/containerd.pid"
    local driver=()
    [[ -n ${BENCH_DOCKER_STORAGE_DRIVER:-} ]] && driver=(--storage-driver "$BENCH_DOCKER_STORAGE_DRIVER")
    dockerd --data-root "$d/data" --exec-root "$d/exec" --pidfile "$d/dockerd.pid" \
        -H "unix://$d/docker.sock" --config-file "$d/daemon.json" --containerd "$d/containerd.sock" \
        --bridge=none --iptables=false --ip6tables=false --ip-masq=false "${driver[@]}" \
        >"$d/dockerd.log" 2>&1 &
    echo $! >"$d/dockerd.launch.pid"
    DOCKER_HOST="unix://$d/docker.sock"
    DOCKER=/usr/bin/docker
    export DOCKER_HOST DOCKER BENCH_DOCKER_DIR
    local deadline=$((SECONDS + 60))
    until "$DOCKER" info >/dev/null 2>&1; do
        if ! kill -0 "$(cat "$d/dockerd.launch.pid")" 2>/dev/null; then
            tail -n 20 "$d/containerd.log" "$d/dockerd.log" >&2
            bench_die "dockerd exited during start-up (logs in $d)"
        fi
        ((SECONDS < deadline)) || bench_die "dockerd did not answer within 60 s (logs in $d)"
        sleep 0.1
    done
    bench_log "dockerd up: $DOCKER_HOST, storage driver $("$DOCKER" info --format '{{.Driver}}')"
}

# Stops a process by pid: TERM, up to 30 s, then KILL.
bench_stop_pid() {
    local pid="$1" i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 300; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}

# Stops the dockerd and containerd started by bench_docker_up; their state stays on disk.
bench_docker_stop() {
    local d="${BENCH_DOCKER_DIR:-}"
    [[ -n $d && -d $d ]] || return 0
    local f
    for f in dockerd.launch.pid containerd.pid; do
        [[ -f $d/$f ]] && bench_stop_pid "$(cat "$d/$f")"
    done
    # Anything dockerd left mounted (overlay layers, shm, netns) must go before state is removed.
    local m
    findmnt -rn -o TARGET | { grep -F "$d/" || true; } | sort -r | while read -r m; do
        umount -l "$m" || true
    done
    return 0
}

# bench_docker_stop, then removes all their state.
bench_docker_down() {
    local d="${BENCH_DOCKER_DIR:-}"
    [[ -n $d && -d $d ]] || return 0
    bench_docker_stop
    rm -rf "$d"
    unset BENCH_DOCKER_DIR DOCKER_HOST
}

# A private ext4 filesystem (sparse image file on a loop device, mounted at DIR) for stores
# that a benchmark fills: other processes' file churn on / cannot slow its inode allocation
# (see the ext4 note above), and removing it deletes nothing file by file.
# Usage: bench_scratch_up DIR SIZE_MB; bench_scratch_down DIR.
bench_scratch_up() {
    local dir="$1" size="$2" dev
    mkdir -p "$dir"
    truncate -s "${size}M" "$dir.img"
    # Inode tables initialised now, not by a kernel thread writing during the measurements.
    mkfs.ext4 -q -E lazy_itable_init=0,lazy_journal_init=0 "$dir.img"
    dev=$(losetup --find --show --direct-io=on "$dir.img")
    echo "$dev" >"$dir.dev"
    mount "$dev" "$dir"
}
bench_scratch_down() {
    local dir="$1"
    if [[ ! -f $dir.dev ]]; then
        rm -f "$dir.img"
        rmdir "$dir" 2>/dev/null || true
        return 0
    fi
    umount "$dir" 2>/dev/null || umount -l "$dir" || true
    losetup -d "$(cat "$dir.dev")" || true
    rm -f "$dir.img" "$dir.dev"
    rmdir "$dir" 2>/dev/null || true
}

# Wall time of a command in milliseconds; fails when the command fails, showing the end of its
# output (kept in a file, not on a terminal, during the run).
bench_time_ms() {
    local t0 t1 output
    output=$(mktemp)
    t0="$EPOCHREALTIME"
    "$@" >"$output" 2>&1 || {
        bench_log "failed: $*"
        tail -n 20 "$output" >&2
        rm -f "$output"
        return 1
    }
    t1="$EPOCHREALTIME"
    rm -f "$output"
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f\n", (b - a) * 1000 }'
}

# CPU time (user + system, ms) a running process and its waited-for children have used so far.
bench_cpu_ms() {
    awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.0f\n", ($12 + $13 + $14 + $15) * 1000 / hz }' \
        "/proc/$1/stat"
}

# Median of the numbers given as arguments (the mean of the middle two for an even count).
median() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) exit 1
        if (NR % 2) printf "%.1f\n", v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# How many times faster B is than A ("2.3" when A took 2.3x as long as B).
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) exit 1; printf "%.2f\n", a / b }'
}

# hyperfine in the style of bench/config.sh: `bench_hyperfine JSON RUNS [hyperfine args...]`
# writes hyperfine's JSON; `bench_hyperfine_median_ms JSON NAME` reads one command's median.
bench_hyperfine() {
    command -v hyperfine >/dev/null || bench_apt_install hyperfine
    local json="$1" runs="$2"
    shift 2
    hyperfine -N --runs "$runs" --style none --export-json "$json" "$@" >/dev/null
}
bench_hyperfine_median_ms() {
    python3 - "$1" "$2" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
print(f'{r[sys.argv[2]]["median"] * 1000:.1f}')
PY
}

# One line describing the machine, for result headers.
bench_machine() {
    printf '%s, %s cores, %s MB RAM, kernel %s' \
        "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')" "$(nproc)" \
        "$(awk '/MemTotal/ { printf "%d", $2 / 1024 }' /proc/meminfo)" "$(uname -r)"
}

# The reference docker compose (scripts/install-reference-compose when missing); DC is its path.
# It is run as a standalone binary: it talks to the dockerd in DOCKER_HOST.
bench_compose_ref() {
    DC=/usr/local/lib/docker/cli-plugins/docker-compose
    [[ -x $DC ]] || scripts/install-reference-compose >/dev/null
    export DC
}

# Writes a compose file of N trivial busybox services (s1..sN) to FILE. Each waits in `sleep`
# but exits on SIGTERM, as a real service does: without the trap, PID 1 ignores SIGTERM and
# every `down` would measure the 10 s grace period instead of the tool. NETWORK_MODE (optional,
# e.g. none) is set on every service.
bench_trivial_compose() {
    local file="$1" n="$2" mode="${3:-}" i
    {
        echo "services:"
        for ((i = 1; i <= n; i++)); do
            echo "  s$i:"
            echo "    image: busybox"
            echo "    command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; sleep 3600 & wait\"]"
            if [[ -n $mode ]]; then echo "    network_mode: $mode"; fi
        done
    } >"$file"
}

# Load averages (1, 5, 15 min) now, for result headers: other work shares the machine.
bench_loadavg() {
    cut -d' ' -f1-3 /proc/loadavg
}

# Versions line for result headers (needs DOCKER and DC).
bench_versions() {
    printf 'rcompose %s (release build); docker compose %s; dockerd %s, containerd %s' \
        "$(git rev-parse --short HEAD)" "$("$DC" version --short)" \
        "$("$DOCKER" version --format '{{.Server.Version}}')" "$(containerd --version | awk '{ print $3 }')"
}

# Removes every container and network of the private dockerd (bench_docker_up) before it is
# stopped, and the host bridges (br-<id>) of networks it failed to remove: dockerd leaves them on
# the host when it stops. With many containers its network removal can fail with "has active
# endpoints" for a moment, hence the second prune.
bench_docker_clean() {
    [[ -n ${DOCKER_HOST:-} ]] || return 0
    local ids id
    ids=$("$DOCKER" network ls -q --no-trunc --filter driver=bridge 2>/dev/null) || ids=""
    "$DOCKER" ps -aq | xargs -r "$DOCKER" rm -f >/dev/null 2>&1 || true
    "$DOCKER" network prune -f >/dev/null 2>&1 || { sleep 1 && "$DOCKER" network prune -f >/dev/null 2>&1; } || true
    for id in $ids; do
        if ip link show "br-${id:0:12}" >/dev/null 2>&1; then
            ip link del "br-${id:0:12}" || bench_log "cannot delete bridge br-${id:0:12}"
        fi
    done
}

# The side-by-side set-up of updown.sh, wait.sh, footprint.sh and port.sh: a work directory
# named after NAME holding a scratch ext4 file system of SIZE_MB, a private dockerd and
# rcompose's state on it, and a trap that takes every project of ours and the engines down.
# Sets `work` and `run_dir`.
bench_side_by_side() {
    local name=$1 size_mb=$2
    work=$(mktemp -d "/var/tmp/rcb-$name.XXXXXX")
    run_dir=$(mktemp -d "/run/rcb-$name.XXXXXX")
    trap bench_side_by_side_cleanup EXIT
    bench_scratch_up "$work/fs" "$size_mb"
    BENCH_DOCKER_DIR="$work/fs/docker"
    bench_docker_up
    export RCOMPOSE_ROOT="$work/fs/rcompose" RCOMPOSE_RUN="$run_dir"
}

bench_side_by_side_cleanup() {
    # A failed run may leave a project up: down everything of ours before stopping the engines.
    local p
    if [[ -n ${RCOMPOSE:-} && -d ${RCOMPOSE_ROOT:-/nonexistent} ]]; then
        for p in $("$RCOMPOSE" ls -a -q 2>/dev/null); do
            "$RCOMPOSE" -p "$p" down -t 1 >/dev/null 2>&1 || bench_log "rcompose down of $p failed"
        done
    fi
    bench_docker_clean
    bench_docker_stop
    bench_scratch_down "$work/fs"
    rm -rf "$work" "$run_dir"
}
