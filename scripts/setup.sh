#!/usr/bin/env bash
# Installs everything Strand needs on Debian 12 (apt packages, release build), then
# runs a first workflow on the local default: an interchange plus one block of
# `mpirun strand-launcher` on this machine. Idempotent: safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential pkg-config cmake      # C toolchain for libzmq (built from source by the zmq crate)
  libopenmpi-dev openmpi-bin            # MPI for strand-launcher
  libclang-dev clang                    # bindgen for the mpi crate
  libhwloc-dev libudev-dev              # hwloc 2.x for placement
  # A real single-machine Slurm for tests/it/slurm.rs (22.05 on Debian 12); the tests start and stop
  # the daemons themselves, nothing is started here. slurm-wlm-basic-plugins (a dependency) holds
  # mpi_pmix_v4, which loads libpmix2 for `srun --mpi=pmix` with Open MPI.
  slurmctld slurmd slurm-client munge libpmix2
  parallel                              # GNU parallel, which tests/it/gnu_parallel.rs runs beside `strand map`
  python3 python3-venv python3-dev      # the Python package (python/), in .venv
  python3-mpi4py                        # mpi4py.futures, a baseline of python -m strand.bench (system python3)
  sqlite3                               # to query a run database by hand (docs/monitoring.md)
  fonts-dejavu-core                     # the font of the scaling plots (strand bench strong/weak/plot)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found; install Rust with rustup (https://rustup.rs) and run this again" >&2
  exit 1
fi

cargo build --release --workspace

# The Python package (python/, PyO3 + maturin) in a virtual environment of its own, with
# Strand's binaries linked beside its interpreter (where `strand.Dfk` looks for them).
./scripts/python-package.sh

echo "setup: running examples/hello.toml on the local default"
target/release/strand run examples/hello.toml --run-dir runs/hello --timeout 120
