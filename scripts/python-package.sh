#!/usr/bin/env bash
# Builds the Python package from this tree into .venv (made here if missing), with the
# release binaries linked into .venv/bin. Run by setup.sh and, so that the tests see the
# current code, by test.sh. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
# Build tools and test tools; pip leaves installed ones alone.
# pytest below 8, as Parsl's own tests (run against strand.parsl) need.
.venv/bin/pip install -q "maturin>=1.5,<2" "pytest>=7.4,<8" "cloudpickle>=2" "parsl>=2025.1"
# The shared target directory reuses the workspace's build of the strand crate.
PATH="$root/.venv/bin:$PATH" CARGO_TARGET_DIR="$root/target" \
  .venv/bin/pip install -q --no-build-isolation --no-deps --force-reinstall ./python
for b in strand strand-launcher; do
  ln -sf "$root/target/release/$b" ".venv/bin/$b"
done
