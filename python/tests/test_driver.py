"""The strand package against a real interchange and a real local block under mpirun.

Every wait is bounded (result(timeout=...)); each Dfk is a context manager, so what it
started is torn down even when an assertion fails.
"""

import asyncio
import concurrent.futures
import os
import time

import pytest

import strand

LIMIT = 60  # seconds any one result may take


@pytest.fixture(scope="module")
def dfk(tmp_path_factory):
    with strand.Dfk.local(workers=2, run_dir=str(tmp_path_factory.mktemp("run"))) as d:
        yield d


def test_commands_argv_and_functions_return_their_output(dfk):
    futures = [dfk.submit_command(f"echo {i}") for i in range(200)]
    assert sum(int(f.result(timeout=LIMIT)) for f in futures) == sum(range(200))
    assert dfk.submit_argv(["printf", "%s|", "a b", "it's"]).result(timeout=LIMIT) == "a b|it's|"
    assert dfk.submit_function("echo", "hi").result(timeout=LIMIT) == b"hi"
    # An MPI function on both workers, with a communicator of the two (docs/mpi-tasks.md).
    assert dfk.submit_function("mpi_sum", "5", ranks=2).result(timeout=LIMIT) == b"11"


def test_a_failure_raises_with_its_reason_exit_code_and_output(dfk):
    f = dfk.submit_command("echo partial; echo oops >&2; exit 3", retries=1)
    with pytest.raises(strand.TaskFailed) as e:
        f.result(timeout=LIMIT)
    assert e.value.exit_code == 3 and e.value.tries == 2, e.value
    assert "oops" in e.value.reason and e.value.stdout == b"partial\n"
    with pytest.raises(strand.TaskFailed, match="walltime|timed out|Timeout"):
        dfk.submit_command("sleep 5", walltime=0.2).result(timeout=LIMIT)


def test_futures_work_with_as_completed_wait_and_asyncio(dfk):
    futures = [dfk.submit_command(f"sleep 0.{i}; echo {i}") for i in range(4)]
    seen = [int(f.result()) for f in concurrent.futures.as_completed(futures, timeout=LIMIT)]
    assert sorted(seen) == [0, 1, 2, 3]
    done, not_done = concurrent.futures.wait([dfk.submit_command("true")], timeout=LIMIT)
    assert len(done) == 1 and not not_done

    async def both():
        a = asyncio.wrap_future(dfk.submit_command("echo a"))
        b = asyncio.wrap_future(dfk.submit_command("echo b"))
        return await asyncio.wait_for(asyncio.gather(a, b), LIMIT)

    assert asyncio.run(both()) == ["a\n", "b\n"]


def test_after_orders_tasks(dfk, tmp_path):
    log = tmp_path / "order"
    first = dfk.submit_command(f"sleep 0.5; echo first >> {log}")
    second = dfk.submit_command(f"echo second >> {log}", after=[first])
    second.result(timeout=LIMIT)
    assert log.read_text().split() == ["first", "second"]
    with pytest.raises(TypeError, match="futures of this Dfk"):
        dfk.submit_command("true", after=[concurrent.futures.Future()])


def test_bash_app_waits_for_future_arguments(dfk, tmp_path):
    @strand.bash_app(dfk=dfk)
    def count(path, n):
        return f"seq {n} > {path}; wc -l < {path}"

    @strand.bash_app(dfk=dfk)
    def fails():
        return "exit 4"

    n = dfk.submit_command("printf 5")  # a future as an argument: its result ("5") is passed
    f = count(tmp_path / "nums", n)
    assert f.result(timeout=LIMIT) == 0, "a bash_app's result is its exit code, as Parsl's"
    assert f.stdout.strip() == "5" and (tmp_path / "nums").read_text().split() == ["1", "2", "3", "4", "5"]
    with pytest.raises(strand.TaskFailed) as e:
        fails().result(timeout=LIMIT)
    assert e.value.exit_code == 4
    with pytest.raises(strand.TaskFailed):
        count(tmp_path / "x", fails()).result(timeout=LIMIT)  # a failed dependency fails it


def test_bad_input_is_refused_with_a_reason(dfk):
    with pytest.raises(ValueError, match="walltime"):
        dfk.submit_command("true", walltime=-1)
    with pytest.raises(ValueError, match="at least 1"):
        dfk.submit_command("true", cores=0)
    with pytest.raises(ValueError, match="exactly one"):
        dfk.submit_argv([])
    with pytest.raises(ValueError, match="strand-launcher binaries"):
        strand.Dfk.local(bin_dir="/nonexistent")


def test_connect_attaches_to_a_running_interchange(dfk, tmp_path):
    with strand.Dfk.connect(dfk.connection_file, run_dir=str(tmp_path / "second")) as other:
        assert other.submit_command("echo attached").result(timeout=LIMIT) == "attached\n"


def test_close_tears_down_and_memoization_reuses_a_result(tmp_path):
    run = tmp_path / "memo"
    marker = tmp_path / "ran"
    cmd = f"echo x >> {marker}; echo once"
    for _ in range(2):
        with strand.Dfk.local(workers=1, run_dir=str(run), memoize=True) as d:
            assert d.submit_command(cmd).result(timeout=LIMIT) == "once\n"
            started = d.run_dir
    assert marker.read_text().count("x") == 1, "the second run took the result from the checkpoint"
    with pytest.raises(RuntimeError, match="closed"):
        d.submit_command("true")
    assert os.path.isdir(started)


def test_no_op_throughput_is_reported(dfk, capsys):
    """Not a speed target (those live in benchmarks): every no-op answers, and the rate is shown."""
    n = 5000
    t = time.perf_counter()
    futures = [dfk.submit_function("noop") for _ in range(n)]
    concurrent.futures.wait(futures, timeout=LIMIT)
    assert all(f.done() and f.exception() is None for f in futures)
    with capsys.disabled():
        print(f"\n{n} no-op functions from Python: {n / (time.perf_counter() - t):.0f}/s")


def square(x):
    return x * x


def test_the_run_database_holds_the_python_run_and_strand_report_reads_it(tmp_path):
    import sqlite3
    import subprocess
    import sys
    from pathlib import Path

    run = tmp_path / "run"
    with strand.Dfk.local(workers=2, run_dir=str(run)) as d:
        assert list(d.map(square, range(20), timeout=LIMIT)) == [i * i for i in range(20)]
        assert d.submit_command("echo hi").result(timeout=LIMIT) == "hi\n"
    db = sqlite3.connect(run / "monitoring.db")
    apps = dict(db.execute("SELECT app, count(*) FROM tasks GROUP BY app").fetchall())
    assert apps == {"python": 20, "echo": 1}, apps
    assert db.execute("SELECT count(*) FROM tries WHERE ended_us >= started_us").fetchone()[0] == 21
    assert db.execute("SELECT command FROM runs").fetchone()[0].startswith("python ")
    db.close()
    out = subprocess.run([str(Path(sys.prefix) / "bin" / "strand"), "report", str(run), "--out",
                          str(tmp_path / "report.html")], capture_output=True, text=True, timeout=LIMIT)
    assert out.returncode == 0 and (tmp_path / "report.html").stat().st_size > 1000, out.stderr
    off = tmp_path / "off"
    with strand.Dfk.local(workers=1, run_dir=str(off), monitoring=False) as d:
        assert d.submit(square, 3).result(timeout=LIMIT) == 9
    assert not (off / "monitoring.db").exists()
