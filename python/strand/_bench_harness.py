"""What ``python -m strand.bench`` measures, the same way for every system it compares:
stdlib only, as the mpi4py.futures side imports it under an interpreter without Strand.

Throughput: ``tasks`` no-op calls submitted at once (or as one batch), until every result is
in. Latency: ``latency_calls`` calls one at a time, each submit to result. Peak memory: the
largest peak RSS a worker reports from inside a call.
"""

from __future__ import annotations

import dataclasses
import resource
import time
from typing import Callable, List, Optional


def noop(x):
    """The task: returns its argument."""
    return x


def peak_rss_mb(_=None) -> float:
    """The peak resident memory of the process this runs in, in MB (Linux gives KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclasses.dataclass
class Result:
    """One system's figures (``note`` says why a system did not run, if it did not)."""

    system: str
    tasks: int
    seconds: float
    tasks_per_s: float
    p50_us: float
    p99_us: float
    worker_peak_mb: float
    note: str = ""


def measure(system: str, submit: Callable, tasks: int, latency_calls: int, workers: int,
            batch: Optional[Callable] = None, task: Callable = noop) -> Result:
    """Measure one system through ``submit(fn, arg) -> future`` (and ``batch(fn, args) ->
    results`` for the throughput part, if it has one: ``Executor.map``), calling ``task``: a
    function that returns its argument (by default ``noop``)."""
    for f in [submit(task, i) for i in range(4 * workers)]:  # warm: every worker started
        f.result()
    start = time.perf_counter()
    if batch:
        results = list(batch(task, range(tasks)))
    else:
        results = [f.result() for f in [submit(task, i) for i in range(tasks)]]
    seconds = time.perf_counter() - start
    if results != list(range(tasks)):
        raise AssertionError(f"{system}: the results are not the arguments")
    latencies: List[float] = []
    for i in range(latency_calls):
        t = time.perf_counter()
        submit(task, i).result()
        latencies.append(time.perf_counter() - t)
    latencies.sort()
    peak = max(submit(peak_rss_mb, None).result() for _ in range(4 * workers))
    return Result(system=system, tasks=tasks, seconds=seconds, tasks_per_s=tasks / seconds,
                  p50_us=_quantile(latencies, 0.5) * 1e6, p99_us=_quantile(latencies, 0.99) * 1e6,
                  worker_peak_mb=peak)


def _quantile(sorted_values: List[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]
