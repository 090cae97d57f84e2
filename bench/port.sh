#!/usr/bin/env bash
# Published ports and network set-up: rcompose against docker compose.
# Usage: bench/port.sh [RUNS]      (default 5; root: containers, dockerd)
# Results: bench/results/port.md. BENCH_PORT_PORT: the host port used (default 18674);
# BENCH_PORT_NET_N: containers in the network set-up measure (default 20).
#
# 1. Throughput from the host through a port published on 127.0.0.1: busybox httpd (the test
#    bed's nginx:alpine image) serves a 256 MiB file from the container's /tmp; curl on the
#    host downloads it RUNS times (MB/s), and ab fetches a 3-byte file 5000 times over 8
#    connections (requests/s: connection set-up cost through the port). docker publishes
#    127.0.0.1 through docker-proxy (a userland copy, as always for loopback); rcompose through
#    nftables DNAT. The project is brought up twice per tool, alternating. The same again from
#    a client in a network namespace of its own (a veth pair to the host, as another machine
#    on the LAN), to the host's address of that veth: docker DNATs there when its iptables
#    rules are on, else docker-proxy copies; rcompose DNATs, keeping the client's address.
# 2. Network set-up per container (issue 5: at most 10 ms): `up -d` of N trivial services on
#    the default network against the same N with `network_mode: none`, RUNS runs each,
#    alternating; (median with - median without) / N. The supervisor exposes no timings of its
#    own, so this difference is the measure: it includes the bridge, the veths, addresses,
#    DNS entries, hosts/resolv.conf, and waiting for the host-wide network lock.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-5}"
port="${BENCH_PORT_PORT:-18674}"
net_n="${BENCH_PORT_NET_N:-20}"
. bench/lib.sh
[[ $EUID -eq 0 ]] || bench_die "bench/port.sh needs root (containers, dockerd)"
bench_apt_install apache2-utils curl

bench_testbed
bench_rcompose_build
bench_compose_ref
bench_side_by_side port 4096
# The remote client: a namespace with a veth pair to the host (198.18.77.0/30).
client_ns="rcb-port-$$"
ip netns add "$client_ns"
ip link add rcbp0 type veth peer name rcbp1
ip link set rcbp1 netns "$client_ns"
ip addr add 198.18.77.1/30 dev rcbp0
ip link set rcbp0 up
ip netns exec "$client_ns" ip addr add 198.18.77.2/30 dev rcbp1
ip netns exec "$client_ns" ip link set rcbp1 up
ip netns exec "$client_ns" ip link set lo up
ip netns exec "$client_ns" ip route add default via 198.18.77.1
port_cleanup() {
    ip link del rcbp0 2>/dev/null || true
    ip netns del "$client_ns" 2>/dev/null || true
    bench_side_by_side_cleanup
}
trap port_cleanup EXIT
remote=(ip netns exec "$client_ns")
"$DOCKER" pull -q busybox >/dev/null
"$DOCKER" pull -q nginx:alpine >/dev/null
repo=$PWD

mkdir -p "$work/srv" "$work/net" "$work/none"
# The file is written before httpd starts, so once /small answers, /big is complete.
cat >"$work/srv/compose.yaml" <<EOF
services:
  srv:
    image: nginx:alpine
    command:
      - sh
      - -c
      - >-
        trap 'exit 0' TERM;
        dd if=/dev/zero of=/tmp/big bs=1M count=256 2>/dev/null;
        echo ok >/tmp/small;
        httpd -f -p 80 -h /tmp & wait
    ports:
      - "$port:80"
EOF
bench_trivial_compose "$work/net/compose.yaml" "$net_n"
bench_trivial_compose "$work/none/compose.yaml" "$net_n" none
(cd "$work/srv" && "$RCOMPOSE" pull -q >/dev/null)
(cd "$work/net" && "$RCOMPOSE" pull -q >/dev/null)

tool_cmd() { if [[ $1 == docker ]]; then echo "$DC"; else echo "$RCOMPOSE"; fi; }

# Part 1: one round of one tool: up, wait for httpd, downloads and ab, down.
# Appends to the tool's lists of MB/s and requests/s.
declare -A mbps rps
# Downloads and ab through URL, from the host, or from the client namespace with "remote";
# appended to the lists under KEY.
measure() {
    local key="$1" url="$2" where="${3:-}" i bps r
    local run=()
    [[ $where == remote ]] && run=("${remote[@]}")
    for ((i = 0; i < runs; i++)); do
        bps=$("${run[@]}" curl -fs --max-time 120 -o /dev/null -w '%{speed_download}' "$url/big") ||
            bench_die "$key: download of $url/big failed"
        mbps[$key]+="$(awk -v b="$bps" 'BEGIN { printf "%.0f", b / 1e6 }') "
    done
    r=$("${run[@]}" ab -q -n 5000 -c 8 "$url/small" 2>/dev/null | awk '/^Requests per second/ { printf "%.0f", $4 }')
    [[ -n $r ]] || bench_die "$key: ab through $url failed"
    rps[$key]+="$r "
}
throughput_round() {
    local tool="$1" project="$2" cmd i url="http://127.0.0.1:$port"
    cmd=$(tool_cmd "$tool")
    cd "$work/srv"
    "$cmd" -p "$project" up -d >/dev/null 2>&1 || bench_die "$tool: up failed ($project)"
    for ((i = 0; i < 300; i++)); do
        curl -fs --max-time 1 "$url/small" >/dev/null 2>&1 && break
        sleep 0.1
    done
    curl -fs --max-time 2 "$url/small" >/dev/null || bench_die "$tool: $url/small does not answer"
    "${remote[@]}" curl -fs --max-time 5 "http://198.18.77.1:$port/small" >/dev/null ||
        bench_die "$tool: the port does not answer the remote client"
    measure "$tool" "$url"
    measure "$tool remote" "http://198.18.77.1:$port" remote
    "$cmd" -p "$project" down >/dev/null 2>&1 || bench_die "$tool: down failed ($project)"
    cd "$repo"
    bench_log "throughput, $tool: MB/s ${mbps[$tool]}; requests/s ${rps[$tool]}; remote MB/s ${mbps[$tool remote]}; requests/s ${rps[$tool remote]}"
}

# Part 2: one up -d + down of the N services with or without network; prints UP_MS.
netsetup_run() {
    local tool="$1" variant="$2" project="$3" cmd up
    cmd=$(tool_cmd "$tool")
    cd "$work/$variant"
    up=$(bench_time_ms "$cmd" -p "$project" up -d)
    "$cmd" -p "$project" down >/dev/null 2>&1 || bench_die "$tool: down failed ($project)"
    cd "$repo"
    echo "$up"
}

load0=$(bench_loadavg)
throughput_round docker pt1d
throughput_round rcompose pt1r
throughput_round rcompose pt2r
throughput_round docker pt2d

netsetup_run docker net nswarmd >/dev/null
netsetup_run rcompose net nswarmr >/dev/null
declare -A ups
for ((i = 1; i <= runs; i++)); do
    order=(docker rcompose)
    ((i % 2)) || order=(rcompose docker)
    for tool in "${order[@]}"; do
        for variant in net none; do
            t=$(netsetup_run "$tool" "$variant" "ns${i}${tool:0:1}${variant:0:2}")
            ups[$tool, $variant]+="$t "
            bench_log "network set-up, run $i/$runs, $tool, $variant: up -d $t ms"
        done
    done
done
load1=$(bench_loadavg)

# A space-separated list as "a, b, c".
lst() {
    local a
    read -r -a a <<<"$1"
    printf '%s, ' "${a[@]}" | sed 's/, $//'
}
med() {
    # shellcheck disable=SC2086 # a space-separated list
    median $1
}
per_container() {
    local with without
    with=$(med "${ups[$1, net]}")
    without=$(med "${ups[$1, none]}")
    awk -v a="$with" -v b="$without" -v n="$net_n" 'BEGIN { printf "%.1f", (a - b) / n }'
}
d_mb=$(med "${mbps[docker]}") r_mb=$(med "${mbps[rcompose]}")
d_rps=$(med "${rps[docker]}") r_rps=$(med "${rps[rcompose]}")
dr_mb=$(med "${mbps[docker remote]}") rr_mb=$(med "${mbps[rcompose remote]}")
dr_rps=$(med "${rps[docker remote]}") rr_rps=$(med "${rps[rcompose remote]}")
out=bench/results/port.md
{
    echo "# published ports and network set-up: rcompose vs docker compose ($(date -u +%Y-%m-%d))"
    echo
    echo "Machine: $(bench_machine). $(bench_versions)."
    echo "Load average before / after: $load0 / $load1 (other work shares the 2 cores)."
    echo
    echo "## Throughput through 127.0.0.1:$port and from a remote client"
    echo
    echo "busybox httpd in the test bed's nginx:alpine, port 80 published on $port (every address);" \
        "curl downloads a 256 MiB file ($runs times per round), ab fetches a 3-byte" \
        "file 5000 times over 8 concurrent connections (once per round); 2 rounds per tool," \
        "alternating; from the host to 127.0.0.1, and from a client in its own network namespace" \
        "(a veth pair to the host) to the host's address on it. Medians. docker: docker-proxy" \
        "(userland) for 127.0.0.1; rcompose: nftables DNAT for both."
    echo
    echo "| | docker compose | rcompose | ratio |"
    echo "|---|---|---|---|"
    echo "| download (MB/s) | $d_mb | $r_mb | $(ratio "$r_mb" "$d_mb")x |"
    echo "| small requests (requests/s) | $d_rps | $r_rps | $(ratio "$r_rps" "$d_rps")x |"
    echo "| remote client: download (MB/s) | $dr_mb | $rr_mb | $(ratio "$rr_mb" "$dr_mb")x |"
    echo "| remote client: small requests (requests/s) | $dr_rps | $rr_rps | $(ratio "$rr_rps" "$dr_rps")x |"
    echo
    echo "Ratio: rcompose / docker (above 1: rcompose is faster). All: docker MB/s $(lst "${mbps[docker]}");" \
        "requests/s $(lst "${rps[docker]}"); rcompose MB/s $(lst "${mbps[rcompose]}"); requests/s" \
        "$(lst "${rps[rcompose]}"). Remote: docker MB/s $(lst "${mbps[docker remote]}"); requests/s" \
        "$(lst "${rps[docker remote]}"); rcompose MB/s $(lst "${mbps[rcompose remote]}"); requests/s" \
        "$(lst "${rps[rcompose remote]}")."
    echo
    echo "## Network set-up per container"
    echo
    echo "\`up -d\` of $net_n trivial busybox services on the default network, and the same with" \
        "\`network_mode: none\`; $runs runs each, alternating; per container = (median with -" \
        "median without) / $net_n."
    echo
    echo "| | docker compose | rcompose |"
    echo "|---|---|---|"
    echo "| up -d, default network (ms) | $(med "${ups[docker, net]}") | $(med "${ups[rcompose, net]}") |"
    echo "| up -d, network_mode: none (ms) | $(med "${ups[docker, none]}") | $(med "${ups[rcompose, none]}") |"
    echo "| network set-up per container (ms) | $(per_container docker) | $(per_container rcompose) |"
    echo
    echo "All runs (ms): docker with $(lst "${ups[docker, net]}"); without $(lst "${ups[docker, none]}");" \
        "rcompose with $(lst "${ups[rcompose, net]}"); without $(lst "${ups[rcompose, none]}")."
    echo
    echo "Command: \`sudo bench/port.sh $runs\`"
} >"$out"
cat "$out"
