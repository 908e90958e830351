#!/bin/bash
# One Strand block on this machine (what `strand run` starts by itself on the local default).
#   job-scripts/local.sh runs/demo/connection.json 4      # 4 worker ranks + 1 manager
set -euo pipefail
conn=${1:?usage: local.sh CONNECTION_FILE [WORKERS]}
workers=${2:-$(nproc)}
root=()
[ "$(id -u)" -eq 0 ] && root=(--allow-run-as-root)
exec mpirun "${root[@]}" --oversubscribe --bind-to none -n $((workers + 1)) \
    "${STRAND_LAUNCHER:-strand-launcher}" --connection "$conn" --pool-size $((workers + 1)) --block-id local
