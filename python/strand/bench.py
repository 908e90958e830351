"""Python no-op functions through Strand and its baselines, side by side in one run:

    python -m strand.bench                       # 20,000 tasks, 2 workers, every system
    python -m strand.bench --tasks 1000 --systems map,htex --json out.json
    python -m strand.bench --closure-mib 4 --systems map,submit,htex   # a 4 MiB function

Each system gets the same workers, the same no-op function and the same measurement
(``strand._bench_harness``): ``--tasks`` calls submitted at once, then ``--latency-calls``
calls one at a time. The systems: Strand's own API (``Dfk.map`` as one batch, and
``Dfk.submit`` one call at a time), Parsl with ``strand.parsl.StrandExecutor``, Parsl's
HighThroughputExecutor, and mpi4py.futures' MPIPoolExecutor under mpirun. Strand and HTEX
both get ``--prefetch`` tries queued per worker. With ``--closure-mib N`` the function closes
over N MiB of bytes (pickled by value), to show what carrying a large function costs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Dict, List, Optional

from . import Dfk
from ._bench_harness import Result, measure, noop, peak_rss_mb

HERE = Path(__file__).resolve().parent


@dataclasses.dataclass
class Setup:
    """What every system is given."""

    tasks: int
    latency_calls: int
    workers: int
    prefetch: int
    run_dir: Path
    #: MiB the task function closes over (0: the plain no-op).
    closure_mib: int = 0
    #: The task function: the no-op, or one closing over ``closure_mib`` MiB.
    task: Callable = noop


def _strand(batch: bool) -> Callable[[Setup], Result]:
    def run(s: Setup) -> Result:
        name = "strand Dfk.map (one batch)" if batch else "strand Dfk.submit (one call each)"
        with Dfk.local(s.workers, prefetch=s.prefetch, run_dir=str(s.run_dir / ("map" if batch else "submit"))) as d:
            return measure(name, d.submit, s.tasks, s.latency_calls, s.workers, batch=d.map if batch else None,
                           task=s.task)

    return run


def _parsl(name: str, executor: Callable[[Setup], object]) -> Callable[[Setup], Result]:
    def run(s: Setup) -> Result:
        try:
            import parsl
            from parsl.config import Config
        except ImportError:
            return _skipped(name, "parsl is not installed here (pip install parsl)")
        ex = executor(s)
        dfk = parsl.load(Config(executors=[ex], run_dir=str(s.run_dir / ex.label), strategy="none"))
        try:
            apps = {fn: parsl.python_app(fn, executors=[ex.label]) for fn in (s.task, peak_rss_mb)}
            return measure(name, lambda fn, x: apps[fn](x), s.tasks, s.latency_calls, s.workers, task=s.task)
        finally:
            dfk.cleanup()
            parsl.clear()

    return run


def _strand_executor(s: Setup):
    from .parsl import StrandExecutor

    return StrandExecutor(workers=s.workers, prefetch=s.prefetch)


def _htex(s: Setup):
    from parsl.executors import HighThroughputExecutor
    from parsl.executors.high_throughput import executor as htex
    from parsl.providers import LocalProvider

    # Its interchange and worker pool scripts are beside this interpreter, which need not be
    # on PATH: named by their full paths.
    bin_dir = Path(sys.prefix) / "bin"
    first, *rest = htex.DEFAULT_INTERCHANGE_LAUNCH_CMD
    worker_script, _, worker_args = htex.DEFAULT_LAUNCH_CMD.partition(" ")
    return HighThroughputExecutor(label="htex", address="127.0.0.1", max_workers_per_node=s.workers,
                                  prefetch_capacity=s.prefetch, provider=LocalProvider(init_blocks=1, max_blocks=1),
                                  interchange_launch_cmd=[str(bin_dir / first), *rest],
                                  launch_cmd=f"{bin_dir / worker_script} {worker_args}")


def _mpi4py(s: Setup) -> Result:
    name = "mpi4py.futures (MPIPoolExecutor)"
    if s.task is not noop:
        return _skipped(name, "--closure-mib: its side calls the no-op by reference, from a script of its own")
    python = next((p for p in (sys.executable, "/usr/bin/python3") if _imports(p, "mpi4py")), None)
    mpirun = shutil.which("mpirun")
    if python is None or mpirun is None:
        why = "mpirun is not on PATH" if mpirun is None else f"neither {sys.executable} nor /usr/bin/python3 imports mpi4py (apt install python3-mpi4py)"
        return _skipped(name, why)
    root = ["--allow-run-as-root"] if os.geteuid() == 0 else []
    cmd = [mpirun, *root, "--oversubscribe", "-n", str(s.workers + 1), python, "-m", "mpi4py.futures",
           str(HERE / "_bench_mpi4py.py"), str(s.tasks), str(s.latency_calls), str(s.workers)]
    # The workers unpickle the no-op by reference, from _bench_harness beside the script.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=_limit(s))
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(cmd)} exited with {out.returncode}: {out.stderr[-2000:]}")
    return Result(**json.loads(lines[-1]))


SYSTEMS: Dict[str, Callable[[Setup], Result]] = {
    "map": _strand(batch=True),
    "submit": _strand(batch=False),
    "parsl-strand": _parsl("Parsl + StrandExecutor", _strand_executor),
    "htex": _parsl("Parsl HighThroughputExecutor", _htex),
    "mpi4py": _mpi4py,
}


def _closure(mib: int) -> Callable:
    """A function that returns its argument and closes over ``mib`` MiB of random bytes, so
    its pickle (by value: it is not importable) carries them."""
    blob = os.urandom(mib << 20)

    def closure(x):
        return x if blob else None

    return closure


def _imports(python: str, module: str) -> bool:
    try:
        return subprocess.run([python, "-c", f"import {module}"], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _limit(s: Setup) -> float:
    """A bound on one system's run: generous for 500 tasks/s, plus start-up."""
    return 120 + (s.tasks + s.latency_calls) / 500


def _skipped(name: str, why: str) -> Result:
    nan = float("nan")
    return Result(system=name, tasks=0, seconds=nan, tasks_per_s=nan, p50_us=nan, p99_us=nan, worker_peak_mb=nan,
                  note=f"skipped: {why}")


def table(results: List[Result], s: Setup) -> str:
    """The results as the text table the docs show."""
    what = "no-op functions" if s.task is noop else f"functions closing over {s.closure_mib} MiB"
    lines = [f"Python {what}, {s.workers} workers (prefetch {s.prefetch}): {s.tasks} submitted at once, "
             f"then {s.latency_calls} one at a time (submit to result)",
             f"{'system':<36}{'tasks/s':>10}{'p50 us':>10}{'p99 us':>10}{'worker peak MB':>16}"]
    for r in results:
        if r.note:
            lines.append(f"{r.system:<36}  {r.note}")
        else:
            lines.append(f"{r.system:<36}{r.tasks_per_s:>10,.0f}{r.p50_us:>10,.0f}{r.p99_us:>10,.0f}{r.worker_peak_mb:>16.1f}")
    return "\n".join(lines)


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number of at least 1")
    return n


def _closure_mib(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = -1
    if not 0 <= n <= 60:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number of MiB from 0 to 60")
    return n


def _systems(text: str) -> List[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in SYSTEMS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a comma-separated list of {', '.join(SYSTEMS)}")
    return names


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m strand.bench", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", type=_positive, default=20000, help="no-op calls submitted at once (default 20000)")
    p.add_argument("--latency-calls", type=_positive, default=200, help="calls one at a time for p50/p99 (default 200)")
    p.add_argument("--workers", type=_positive, default=2, help="worker processes each system gets (default 2)")
    p.add_argument("--prefetch", type=_positive, default=64, help="tries queued per worker, Strand and HTEX (default 64)")
    p.add_argument("--systems", type=_systems, default=list(SYSTEMS), help=f"which, comma-separated (default all: {','.join(SYSTEMS)})")
    p.add_argument("--closure-mib", type=_closure_mib, default=0, metavar="MIB",
                   help="the task function closes over this many MiB, 0 to 60: under the 64 MiB frame "
                        "(default 0: a plain no-op)")
    p.add_argument("--run-dir", help="where the systems' run directories go (default: a temporary one, removed after)")
    p.add_argument("--json", help="also write the results to this file, as a JSON list")
    a = p.parse_args(argv)
    temp = None if a.run_dir else tempfile.TemporaryDirectory(prefix="strand-bench-python-")
    run_dir = Path(a.run_dir).resolve() if a.run_dir else Path(temp.name)
    s = Setup(a.tasks, a.latency_calls, a.workers, a.prefetch, run_dir, a.closure_mib,
              task=_closure(a.closure_mib) if a.closure_mib else noop)
    try:
        results = []
        for name in a.systems:
            print(f"bench: {name} ...", file=sys.stderr, flush=True)
            results.append(SYSTEMS[name](s))
    finally:
        if temp is not None:
            temp.cleanup()
    print(table(results, s))
    if a.json:
        Path(a.json).resolve().write_text(json.dumps([dataclasses.asdict(r) for r in results], indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
