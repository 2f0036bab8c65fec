#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 180), one after another.
#
#   bash fuzz/run.sh [SECONDS] [TARGET...]
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`). cargo-fuzz uses nightly-only
# compiler flags; on a stable toolchain RUSTC_BOOTSTRAP=1 allows them. A finding is written
# under fuzz/artifacts/TARGET/ and the script stops with its exit status; reproduce it with
# `cargo fuzz run TARGET fuzz/artifacts/TARGET/crash-…`, then add it to
# tests/reproducers/verifiers.rs as a named test.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-180}"
shift || true
export RUSTC_BOOTSTRAP=1
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi
# Safe Rust: no AddressSanitizer; debug assertions on, so an overflow is a finding.
flags=(--sanitizer none --debug-assertions)
# The same dependency versions as the crate itself.
[ -f fuzz/Cargo.lock ] || cp Cargo.lock fuzz/Cargo.lock
cargo fuzz build "${flags[@]}"
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t"
    echo "== $t: ${seconds} s"
    cargo fuzz run "${flags[@]}" "$t" "fuzz/corpus/$t" -- \
        -max_total_time="$seconds" -max_len=512 -timeout=10 -print_final_stats=1
done
