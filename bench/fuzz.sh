#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for SECONDS each (default 600) and reports, per target, the
# executions, executions per second, coverage (libFuzzer's cov/ft counters), corpus size, peak
# memory and crashes. Exits non-zero if any target crashed, hung (an input over 10 s) or went
# over its memory limit (2 GiB); the input that did it is left in fuzz/artifacts/<target>/.
# Usage: bench/fuzz.sh [SECONDS]
#   FUZZ_TARGETS="dns unpack"   only these targets (default: all, `cargo fuzz list`)
#   FUZZ_SANITIZER=address      build with AddressSanitizer (default none: safe Rust needs none,
#                               and the fuzzer runs about twice as fast without it)
#   FUZZ_JOBS=N                 run N targets at once (default 1; the machine has 2 cores)
#   FUZZ_NO_BUILD=1             run the targets as last built
# Results: bench/results/fuzz.md. Each target's new corpus entries go to fuzz/corpus-run/
# (not committed); the seeds in fuzz/corpus/ are read but never written.
#
# The toolchain trick: libFuzzer needs rustc's `-Zsanitizer`/sancov flags, which only nightly
# accepts; RUSTC_BOOTSTRAP=1 lets the stable compiler take them. cargo-fuzz comes from crates.io.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-600}"
sanitizer="${FUZZ_SANITIZER:-none}"
jobs="${FUZZ_JOBS:-1}"
log() { printf 'fuzz: %s\n' "$*" >&2; }

if ! cargo fuzz --version >/dev/null 2>&1; then
    log "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
if [[ -z ${FUZZ_NO_BUILD:-} ]]; then
    log "building the fuzz targets (sanitizer: $sanitizer)"
    nice -n 10 cargo fuzz build -s "$sanitizer" --codegen-units 8 >&2
fi

if [[ -n ${FUZZ_TARGETS:-} ]]; then
    read -r -a targets <<<"$FUZZ_TARGETS"
else
    mapfile -t targets < <(cargo fuzz list)
fi
bin_dir="fuzz/target/$(rustc -vV | sed -n 's/^host: //p')/release"
out_dir="$(mktemp -d /tmp/rcompose-fuzz.XXXXXX)"
trap 'rm -rf "$out_dir"' EXIT

run_target() {
    local t="$1" dict=()
    mkdir -p "fuzz/corpus-run/$t" "fuzz/artifacts/$t" "fuzz/corpus/$t"
    [[ -f fuzz/dict/$t.dict ]] && dict=(-dict="fuzz/dict/$t.dict")
    local rc=0
    # The run's own corpus first: libFuzzer adds new inputs to the first directory only.
    nice -n 10 "$bin_dir/$t" "fuzz/corpus-run/$t" "fuzz/corpus/$t" "${dict[@]}" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" \
        >"$out_dir/$t.log" 2>&1 || rc=$?
    echo "$rc" >"$out_dir/$t.rc"
}

log "running ${#targets[@]} targets for ${seconds}s each, $jobs at a time"
running=0
for t in "${targets[@]}"; do
    run_target "$t" &
    running=$((running + 1))
    if ((running >= jobs)); then
        wait -n || true
        running=$((running - 1))
    fi
done
wait || true

mkdir -p bench/results
report=bench/results/fuzz.md
failed=0
{
    echo "# bench/fuzz.sh: ${seconds}s per target, sanitizer $sanitizer ($(date -u +%Y-%m-%d))"
    echo
    echo "| target | runs | execs/s | cov | ft | corpus | peak RSS MB | result |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    for t in "${targets[@]}"; do
        l="$out_dir/$t.log"
        rc=$(cat "$out_dir/$t.rc")
        stat() { sed -n "s/^stat::$1: *//p" "$l" | tail -1; }
        # The last status line: "#N  DONE  cov: C ft: F corp: K/..."
        status=$(grep -E '^#[0-9]+' "$l" | tail -1 || true)
        cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$status")
        ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$status")
        corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$status")
        result=ok
        if [[ $rc != 0 ]]; then
            failed=1
            result="FAILED (exit $rc): $(grep -m1 -E 'ERROR: libFuzzer|panicked at|ParseDictionaryFile|Test unit written' "$l" | tr '|' '/' || true)"
        fi
        echo "| $t | $(stat number_of_executed_units) | $(stat average_exec_per_sec) | ${cov:-?} | ${ft:-?} | ${corp:-?} | $(stat peak_rss_mb) | $result |"
    done
} >"$report"
cat "$report"
for t in "${targets[@]}"; do
    if [[ $(cat "$out_dir/$t.rc") != 0 ]]; then
        log "$t failed; its log:"
        tail -40 "$out_dir/$t.log" >&2
    fi
done
exit "$failed"
