#!/usr/bin/env bash
# `rcompose config` against `docker compose config`, side by side on the same files.
# Usage: bench/config.sh [RUNS]      (results: bench/results/config.md)
#
# Needs: hyperfine (Debian package), the reference docker compose (scripts/install-reference-compose),
# a release build of rcompose (built here).
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-30}"

command -v hyperfine >/dev/null || apt-get install -y -qq hyperfine >/dev/null
scripts/install-reference-compose >/dev/null
docker_compose=/usr/local/lib/docker/cli-plugins/docker-compose
cargo build --release --quiet
rcompose="$PWD/target/release/rcompose"

conformance="$(cd .. && pwd)/shared/conformance"
# A small file, a typical one, and a large one with extends and many short-syntax forms.
cases=(
    "web-redis|compose-examples/web-redis|compose.yaml"
    "extends|$conformance/compose-go/loader-testdata|compose-test-extends.yaml"
    "bridge|$conformance/docker-compose-e2e/fixtures/bridge|compose.yaml"
)
mkdir -p bench/results
out=bench/results/config.md
{
    echo "# config: rcompose vs docker compose ($(date -u +%Y-%m-%d), $(nproc) cores)"
    echo
    echo "| file | docker compose (ms) | rcompose (ms) | ratio |"
    echo "|---|---|---|---|"
} >"$out"
for c in "${cases[@]}"; do
    IFS='|' read -r name dir file <<<"$c"
    [ -f "$dir/$file" ] || { echo "skipping $name: $dir/$file not found" >&2; continue; }
    json=$(mktemp)
    (cd "$dir" && hyperfine -N --warmup 3 --runs "$runs" --style none --export-json "$json" \
        -n docker "$docker_compose -f $file config --format json" \
        -n rcompose "$rcompose -f $file config --format json" >/dev/null)
    python3 - "$json" "$name" >>"$out" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
d, o = r["docker"]["median"] * 1000, r["rcompose"]["median"] * 1000
print(f"| {sys.argv[2]} | {d:.1f} | {o:.2f} | {d / o:.0f}x |")
PY
    rm -f "$json"
done
cat "$out"
