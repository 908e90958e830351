"""The mpi4py.futures side of ``python -m strand.bench``, run by it as
``mpirun -n WORKERS+1 PYTHON -m mpi4py.futures _bench_mpi4py.py TASKS LATENCY_CALLS WORKERS``
(rank 0 submits, the others are MPIPoolExecutor's workers); prints its Result as one JSON line.
Run by path, beside _bench_harness, under any interpreter that has mpi4py."""

import dataclasses
import json
import sys

from mpi4py.futures import MPIPoolExecutor

from _bench_harness import measure

if __name__ == "__main__":
    tasks, latency_calls, workers = (int(a) for a in sys.argv[1:4])
    with MPIPoolExecutor() as pool:
        result = measure("mpi4py.futures (MPIPoolExecutor)", pool.submit, tasks, latency_calls, workers)
    print(json.dumps(dataclasses.asdict(result)))
