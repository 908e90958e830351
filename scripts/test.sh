#!/usr/bin/env bash
# Runs the whole test suite: unit tests and the integration tests that start a real
# interchange and real launchers under mpirun. Run scripts/setup.sh once first.
set -euo pipefail
cd "$(dirname "$0")/.."
# Build first so the integration tests find both binaries beside them.
cargo build --release --workspace
# setup.sh installs Slurm: its tests must run, not skip.
export STRAND_REQUIRE_SLURM=1
# The criterion benchmarks in test mode first: each runs once, so one that no longer builds
# or panics fails here (`cargo test` alone does not build benches).
cargo test --release --workspace --bench '*'
cargo test --release --workspace "$@"
