"""`python -m strand.bench` as the README and docs show it, shrunk (fewer tasks and calls;
the other flags as written): every system it names runs and gives its figures."""

import json
import math
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ALL = ["strand Dfk.map (one batch)", "strand Dfk.submit (one call each)", "Parsl + StrandExecutor",
       "Parsl HighThroughputExecutor", "mpi4py.futures (MPIPoolExecutor)"]


def bench(args, cwd):
    # Its temporary directories under cwd/tmp, to see them go.
    (cwd / "tmp").mkdir(exist_ok=True)
    env = dict(os.environ, TMPDIR=str(cwd / "tmp"))
    return subprocess.run([sys.executable, "-m", "strand.bench", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600, env=env)


def doc_commands():
    """The arguments of each `python -m strand.bench` line of the README and docs/python.md."""
    found = []
    for doc in ["README.md", "docs/python.md"]:
        for line in (REPO / doc).read_text().splitlines():
            m = re.match(r"\s*(?:\| `)?\.venv/bin/python -m strand\.bench\b([^`#|]*)", line)
            if m:
                found.append(shlex.split(m.group(1)))
    return found


def shrunk(args):
    out, it = [], iter(args)
    for a in it:
        if a in ("--tasks", "--latency-calls"):
            next(it)
        elif a == "--json":
            next(it)
        else:
            out.append(a)
    return out + ["--tasks", "300", "--latency-calls", "20", "--json", "results.json"]


def test_the_docs_bench_commands_run_every_system_they_name(tmp_path):
    commands = doc_commands()
    assert len(commands) >= 4 and [] in commands, commands  # the README's, and the docs' three
    for args in {tuple(a) for a in commands}:
        out = bench(shrunk(list(args)), tmp_path)
        assert out.returncode == 0, (args, out.stderr)
        results = json.loads((tmp_path / "results.json").read_text())
        systems = [r["system"] for r in results]
        if "--systems" not in args:
            assert systems == ALL, systems
        if "--closure-mib" in args:
            mib = args[args.index("--closure-mib") + 1]
            assert f"Python functions closing over {mib} MiB" in out.stdout, out.stdout
        for r in results:
            assert r["note"] == "", r  # none skipped: set-up installs Parsl and mpi4py
            assert r["tasks"] == 300 and r["tasks_per_s"] > 0 and math.isfinite(r["p50_us"]), r
            assert r["p50_us"] <= r["p99_us"] and r["worker_peak_mb"] > 1, r
            assert r["system"] in out.stdout, out.stdout
        # (Parsl's multiprocessing may leave its own pymp-* there.)
        assert not list((tmp_path / "tmp").glob("strand-bench-python-*")), "its temporary run directory is removed"


def test_a_bad_option_names_itself_and_what_was_expected(tmp_path):
    out = bench(["--systems", "map,bogus"], tmp_path)
    assert out.returncode == 2 and "'map,bogus': expected a comma-separated list of map, submit" in out.stderr
    out = bench(["--tasks", "0"], tmp_path)
    assert out.returncode == 2 and "'0': expected a whole number of at least 1" in out.stderr
    out = bench(["--closure-mib", "61"], tmp_path)
    assert out.returncode == 2 and "'61': expected a whole number of MiB from 0 to 60" in out.stderr
