#!/usr/bin/env bash
# Every side-by-side benchmark against docker compose, one after the other (never in parallel:
# they would time each other), then the plot of up -d time against the number of services.
# Usage: bench/all.sh [RUNS]      (root; RUNS is passed to each script, else each's default)
# Results: bench/results/*.md, bench/results/updown.png.
#
# The pull and run benchmarks (bench/pull.sh, bench/run.sh) compare docker pull / docker run,
# not compose: run them on their own. About 15-25 minutes with the default counts on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $EUID -eq 0 ]] || { echo "bench/all.sh needs root (containers, dockerd)" >&2; exit 1; }
args=("$@")

for b in config updown wait footprint port; do
    echo "== bench/$b.sh ${args[*]}" >&2
    "bench/$b.sh" "${args[@]}"
done

echo "== plot" >&2
# bench/plot is a crate of its own (not part of rcompose's build); fonts-dejavu-core for its font.
. bench/lib.sh
bench_apt_install fonts-dejavu-core
cargo run --quiet --manifest-path bench/plot/Cargo.toml -- bench/results/updown.csv bench/results/updown.png
