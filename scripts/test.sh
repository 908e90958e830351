#!/usr/bin/env bash
# Runs the whole test suite: unit tests, the integration tests that start a real interchange
# and real launchers under mpirun, and the Python package's tests (pytest). Run
# scripts/setup.sh once first.
set -euo pipefail
cd "$(dirname "$0")/.."
# Build first so the integration tests find both binaries beside them.
cargo build --release --workspace
# Formatting (rustfmt.toml), checked before anything slow.
if cargo fmt --version >/dev/null 2>&1; then
  cargo fmt --all --check
else
  echo "test: cargo fmt is not installed (rustup component add rustfmt): formatting not checked" >&2
fi
# Lints: missing docs on public items and clippy's default set, as errors ([workspace.lints]).
if cargo clippy --version >/dev/null 2>&1; then
  cargo clippy --release --workspace --all-targets -- -D warnings
else
  echo "test: cargo clippy is not installed (rustup component add clippy): lints not checked" >&2
fi
# The criterion benchmarks in test mode first: each runs once, so one that no longer builds
# or panics fails here (`cargo test` alone does not build benches).
cargo test --release --workspace --bench '*'
cargo test --release --workspace "$@"
# The Python package (python/), rebuilt from this tree, against real launchers.
if [ ! -x .venv/bin/python ]; then
  echo "test: .venv is missing: run scripts/setup.sh first (it makes the Python environment)" >&2
  exit 1
fi
CARGO_TARGET_DIR="$PWD/target" cargo fmt --manifest-path python/Cargo.toml --check
CARGO_TARGET_DIR="$PWD/target" cargo clippy --release --manifest-path python/Cargo.toml -- -D warnings
./scripts/python-package.sh
.venv/bin/python -m pytest -q -p no:cacheprovider python/tests
