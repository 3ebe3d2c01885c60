#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for a bounded time and fails if any of them crashes
# (a panic, an abort, a leak, an out-of-memory, or an input that takes over 10 s).
#
#   fuzz/run.sh                     every target, 30 s each
#   FUZZ_SECONDS=300 fuzz/run.sh    longer
#   fuzz/run.sh request_framer      the targets named
#   FUZZ_SANITIZER=none fuzz/run.sh without AddressSanitizer (what CI does)
#
# The time is FUZZ_SECONDS, not SECONDS: bash's SECONDS is the shell's own clock.
# AddressSanitizer (the default) also catches memory errors in unsafe code and dependencies
# (httparse); the code fuzzed here is safe Rust, where a bug shows as a panic, an overflow or
# an out-of-memory, which a build without it catches too. Without it the build takes about a
# quarter less time (631 s against 862 s on one loaded core) and each input runs faster.
# It installs the nightly toolchain and cargo-fuzz if they are missing. Each target starts from
# its committed seeds in fuzz/corpus/TARGET and writes what it discovers to a scratch folder,
# so the committed corpus stays small; a crashing input is left in fuzz/artifacts/TARGET/, and
# `cargo +nightly fuzz run TARGET fuzz/artifacts/TARGET/crash-...` replays it.
set -euo pipefail
cd "$(dirname "$0")"

seconds="${FUZZ_SECONDS:-30}"
sanitizer="${FUZZ_SANITIZER:-address}"

if ! rustup toolchain list | grep -q '^nightly'; then
    rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version > /dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

# Debug assertions on: an arithmetic overflow is a crash too.
cargo +nightly fuzz build --sanitizer "$sanitizer" --debug-assertions

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
failed=()
for target in "${targets[@]}"; do
    echo "== fuzz $target for ${seconds} s"
    mkdir -p "$scratch/$target" "corpus/$target"
    # -rss_limit_mb and -malloc_limit_mb (the latter with a sanitizer only): a parser that
    # allocates what its input asks for is a crash, not a slow run. -timeout: one input over
    # 10 s is a hang.
    if cargo +nightly fuzz run --sanitizer "$sanitizer" --debug-assertions "$target" "$scratch/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=1024 -malloc_limit_mb=512 -timeout=10 -print_final_stats=1 \
        > "$scratch/$target.log" 2>&1; then
        grep -E '^(stat::number_of_executed_units|stat::new_units_added)' "$scratch/$target.log" || true
    else
        tail -n 60 "$scratch/$target.log"
        failed+=("$target")
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: crashed: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz: ${#targets[@]} targets, ${seconds} s each, no crash"
