#!/usr/bin/env bash
# Bounded randomized run of the descriptor loader's fuzz test.
#
#   scripts/fuzz-loader.sh [SECONDS] [SEED]
#
# Runs the property test `malformed_input_never_panics` (part of every
# `cargo test`) for SECONDS (default 300) with fresh random inputs from SEED
# (default: from the clock), in release mode. Every input that makes the
# loader panic is written to target/fuzz-crashes/ and the run fails; copy it
# into src/descriptor/compose/fuzz_regressions/ (name it *.yaml) so every
# later test run replays it, then fix the loader.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-300}"
seed="${2:-$(date +%s%N)}"
case "$seconds" in ''|*[!0-9]*) echo "usage: $0 [SECONDS] [SEED]" >&2; exit 2 ;; esac
case "$seed" in ''|*[!0-9]*) echo "usage: $0 [SECONDS] [SEED] (SEED is a number)" >&2; exit 2 ;; esac
# The generator takes a u64 seed.
seed="$((seed % 9223372036854775807))"

echo "fuzzing the loader for ${seconds}s with seed ${seed} (rerun with: $0 ${seconds} ${seed})"
DOCKMASTER_FUZZ_SECONDS="$seconds" DOCKMASTER_FUZZ_SEED="$seed" \
    cargo test --release --lib descriptor::compose::fuzz_tests::malformed_input_never_panics -- --nocapture
