#!/usr/bin/env bash
# `rcompose image pull` against `docker pull` of the Debian-based image, from the same local
# registry (the test bed on 127.0.0.1, a docker.io mirror for both tools).
# Usage: bench/pull.sh [RUNS]      (results: bench/results/pull.md; root: apt-get, dockerd)
#
# Runs alternate (docker, rcompose, docker, ...) after one untimed round, each from an empty
# image store: a fresh dockerd data root (warmed up with a 1 MB pull) and a fresh RCOMPOSE_ROOT.
# Nothing is deleted before the end: see the ext4 note in bench/lib.sh. `sync` before each timed
# run, so one run's writeback is not charged to the next.
# BENCH_PULL_IMAGE overrides the image (a Docker Hub name the test bed serves; default redis:7).
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-5}"
image="${BENCH_PULL_IMAGE:-redis:7}"
. bench/lib.sh
[[ $EUID -eq 0 ]] || bench_die "bench/pull.sh needs root (apt-get, dockerd)"

bench_testbed
bench_rcompose_build
# Every store lives on a private ext4 filesystem (bench/lib.sh: bench_scratch_up), ~140 MB a
# store, two a round.
work=$(mktemp -d /var/tmp/rcb-pull.XXXXXX)
cleanup() {
    bench_docker_stop
    bench_scratch_down "$work"
}
trap cleanup EXIT
bench_scratch_up "$work" $((2048 + 320 * (runs + 1)))

# Layer sizes straight from the registry: compressed from the manifest, uncompressed by
# streaming each blob through a decompressor and counting bytes (exact, independent of both
# tools). Prints: layers compressed-bytes uncompressed-bytes.
read -r n_layers gz_bytes tar_bytes < <(python3 - "$RCOMPOSE_TESTBED_REGISTRY" "$image" <<'PY'
import json, sys, urllib.request, zlib
registry, image = sys.argv[1], sys.argv[2]
name, _, tag = image.partition(":")
repo = name if "/" in name else "library/" + name
base = f"http://{registry}/v2/{repo}"
accept = ",".join([
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
])
def get(url):
    return urllib.request.urlopen(urllib.request.Request(url, headers={"Accept": accept}))
m = json.load(get(f"{base}/manifests/{tag or 'latest'}"))
if "manifests" in m:  # an index: the linux/amd64 entry, as both tools choose on this host
    d = next(x for x in m["manifests"]
             if x.get("platform", {}).get("os") == "linux"
             and x.get("platform", {}).get("architecture") == "amd64")
    m = json.load(get(f"{base}/manifests/{d['digest']}"))
gz = tar = 0
for layer in m["layers"]:
    gz += layer["size"]
    if "zstd" in layer["mediaType"]:
        sys.exit("zstd layers: count their size another way")
    dec = zlib.decompressobj(wbits=47) if layer["mediaType"].endswith("gzip") else None
    with get(f"{base}/blobs/{layer['digest']}") as r:
        while chunk := r.read(1 << 20):
            tar += len(dec.decompress(chunk)) if dec else len(chunk)
print(len(m["layers"]), gz, tar)
PY
)

# One round: pulls with both tools into fresh stores; records times when $2 is "timed".
round() {
    local i="$1" timed="$2" c0 t_docker t_rc
    BENCH_DOCKER_DIR="$work/d$i"
    bench_docker_up
    "$DOCKER" pull -q busybox:latest >/dev/null
    local dockerd_pid disk0
    dockerd_pid=$(cat "$BENCH_DOCKER_DIR/dockerd.launch.pid")
    docker_desc="dockerd $("$DOCKER" version --format '{{.Server.Version}}'), storage driver $("$DOCKER" info --format '{{.Driver}}')"
    disk0=$(du -sb "$BENCH_DOCKER_DIR/data" | cut -f1)
    sync
    c0=$(($(bench_cpu_ms "$dockerd_pid") + $(bench_cpu_ms $$)))
    t_docker=$(bench_time_ms "$DOCKER" pull -q "$image")
    if [[ $timed == timed ]]; then
        docker_ms+=("$t_docker")
        docker_cpu+=($(($(bench_cpu_ms "$dockerd_pid") + $(bench_cpu_ms $$) - c0)))
    fi
    "$DOCKER" image inspect "$image" >/dev/null
    docker_disk=$(($(du -sb "$BENCH_DOCKER_DIR/data" | cut -f1) - disk0))
    bench_docker_stop

    sync
    c0=$(bench_cpu_ms $$)
    t_rc=$(bench_time_ms env RCOMPOSE_ROOT="$work/r$i" "$RCOMPOSE" image pull -q "$image")
    if [[ $timed == timed ]]; then
        rc_ms+=("$t_rc")
        rc_cpu+=($(($(bench_cpu_ms $$) - c0)))
    fi
    RCOMPOSE_ROOT="$work/r$i" "$RCOMPOSE" image inspect "$image" >/dev/null
    rc_disk=$(du -sb "$work/r$i" | cut -f1)
    bench_log "round $i/$runs ($timed): docker $t_docker ms, rcompose $t_rc ms"
}
docker_ms=() docker_cpu=() rc_ms=() rc_cpu=()
round 0 warmup
for ((i = 1; i <= runs; i++)); do
    round "$i" timed
done

d_med=$(median "${docker_ms[@]}")
r_med=$(median "${rc_ms[@]}")
mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1e6 }'; }
rate() { awk -v b="$1" -v ms="$2" 'BEGIN { printf "%.0f", b / 1e6 / (ms / 1000) }'; }
secs() { printf '%s ' "$@" | awk '{ for (i = 1; i <= NF; i++) printf "%s%.2f", (i > 1 ? ", " : ""), $i / 1000 }'; }

mkdir -p bench/results
out=bench/results/pull.md
{
    echo "# pull: rcompose vs docker ($(date -u +%Y-%m-%d))"
    echo
    echo "Machine: $(bench_machine). rcompose $(git rev-parse --short HEAD) (release build);" \
        "$docker_desc, containerd $(containerd --version | awk '{ print $3 }')."
    echo
    echo "Image \`$image\` from the test bed registry on $RCOMPOSE_TESTBED_REGISTRY, a docker.io mirror" \
        "for both tools: $n_layers layers, $(mb "$gz_bytes") MB compressed, $(mb "$tar_bytes") MB" \
        "uncompressed (MB = 10^6 bytes). $runs runs each, alternating, each from an empty image store."
    echo
    echo "| | docker pull | rcompose image pull |"
    echo "|---|---|---|"
    echo "| median wall time (s) | $(secs "$d_med") | $(secs "$r_med") |"
    echo "| runs (s) | $(secs "${docker_ms[@]}") | $(secs "${rc_ms[@]}") |"
    echo "| median CPU time (s) | $(secs "$(median "${docker_cpu[@]}")") | $(secs "$(median "${rc_cpu[@]}")") |"
    echo "| on disk after the pull (MB) | $(mb "$docker_disk") | $(mb "$rc_disk") |"
    echo
    echo "**Ratio** (docker median / rcompose median): **$(ratio "$d_med" "$r_med")x**."
    echo
    echo "**rcompose unpack throughput**: $(rate "$tar_bytes" "$r_med") MB/s of uncompressed layer data" \
        "($(rate "$gz_bytes" "$r_med") MB/s compressed); docker: $(rate "$tar_bytes" "$d_med") MB/s."
    echo
    echo "How it is measured:"
    echo "- Wall time of the client command. rcompose streams download → hash → decompress → unpack,"
    echo "  so the whole pull is one pass: throughput = uncompressed layer bytes / median wall time,"
    echo "  a lower bound on unpacking alone. Uncompressed bytes: each layer blob fetched from the"
    echo "  registry and decompressed in Python, bytes counted (the sizes of the tars the diff_ids hash)."
    echo "- CPU time: user + system of the client; for docker plus dockerd's (from /proc, before and"
    echo "  after each run; containerd plays no part in a pull). A few ms of the harness's own"
    echo "  processes are included on both sides."
    echo "- On disk: growth of docker's data root during the pull; rcompose's whole RCOMPOSE_ROOT (du -sb)."
    echo "- Fresh stores every run on a private ext4 filesystem (loop device, direct I/O, made by the"
    echo "  harness), nothing deleted until the end: on ext4, creating files where many were deleted"
    echo "  in the last minute is several times slower (see bench/lib.sh), which made runs after a"
    echo '  `docker rmi` / `rm -rf` of the previous store, or while others churn files on /, 2-10x slower.'
    echo '- docker: a fresh dockerd per run, warmed up with `docker pull busybox` (1 MB) first.'
    echo '- One untimed round of both before the timed ones (like hyperfine --warmup 1).'
    echo
    echo "Command: \`sudo bench/pull.sh $runs\`"
} >"$out"
cat "$out"
