#!/usr/bin/env bash
# The failure matrix: runs every cell of tests/it/failure_matrix.rs (each kills one thing in the
# middle of 2,000 tasks under real mpirun), then prints the rows they wrote as one table.
# Rows go to $STRAND_MATRIX_DIR (default target/failure-matrix/); extra arguments go to the
# test binary (e.g. a cell's name to run only that one; without one, every test whose name
# holds failure_matrix:: runs).
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${STRAND_MATRIX_DIR:-$PWD/target/failure-matrix}"
export STRAND_MATRIX_DIR="$dir"
rm -rf "$dir"
cargo build --release --workspace
# A failing cell still writes its row (before its assertions), so the table is printed anyway.
status=0
# The matrix's cells only, unless the arguments name some (flags alone name none).
cells=(failure_matrix:: "$@")
for a in "$@"; do [[ $a == -* ]] || cells=("$@"); done
cargo test --release --test it -- "${cells[@]}" || status=$?
# The printer fails too (after writing the table) if a cell has no row or lost a task.
cargo test --release --test it -- --ignored --exact failure_matrix::matrix_table >/dev/null || status=$?
cat "$dir/matrix.md"
exit "$status"
