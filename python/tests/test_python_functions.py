"""Python functions on workers: a warm interpreter per slot, results and exceptions back,
crashes and walltimes failing only their try."""

import os
import time

import pytest

import strand

LIMIT = 60


@pytest.fixture(scope="module")
def dfk(tmp_path_factory):
    with strand.Dfk.local(workers=2, run_dir=str(tmp_path_factory.mktemp("run"))) as d:
        yield d


def square(x):
    return x * x


def test_functions_and_closures_return_values(dfk):
    futures = [dfk.submit_python(square, (i,)) for i in range(50)]
    assert [f.result(timeout=LIMIT) for f in futures] == [i * i for i in range(50)]
    offset = 7
    lam = dfk.submit_python(lambda a, b=1: {"sum": a + b + offset}, (2,), {"b": 3})
    assert lam.result(timeout=LIMIT) == {"sum": 12}


def test_the_interpreter_stays_warm(dfk):
    pids = {dfk.submit_python(os.getpid).result(timeout=LIMIT) for _ in range(20)}
    assert 1 <= len(pids) <= 2, f"one interpreter per slot, reused: {pids}"
    assert os.getpid() not in pids, "it ran on a worker, not here"


def test_an_exception_comes_back_with_its_remote_traceback(dfk):
    def boom(n):
        raise ValueError(f"bad {n}")

    with pytest.raises(strand.RemoteError) as e:
        dfk.submit_python(boom, (3,)).result(timeout=LIMIT)
    assert e.value.kind == "ValueError" and e.value.message == "bad 3"
    assert "in boom" in e.value.remote_traceback and "Python ValueError: bad 3" in str(e.value)
    # An unpicklable result is the try's error, not a hang.
    with pytest.raises(strand.RemoteError, match="pickle"):
        dfk.submit_python(lambda: (x for x in range(3))).result(timeout=LIMIT)
    # An unpicklable argument is refused here, at submit.
    with pytest.raises(TypeError, match="cannot pickle"):
        dfk.submit_python(square, ((x for x in range(3)),))


def test_a_crash_fails_only_its_try_and_a_fresh_interpreter_follows(dfk):
    with pytest.raises(strand.TaskFailed, match="interpreter .* died .*exited with code 3"):
        dfk.submit_python(os._exit, (3,)).result(timeout=LIMIT)
    assert dfk.submit_python(square, (9,)).result(timeout=LIMIT) == 81


def test_walltime_kills_the_interpreter_with_its_try(dfk):
    t = time.monotonic()
    with pytest.raises(strand.TaskFailed, match="walltime|Timeout|timed out"):
        dfk.submit_python(time.sleep, (30,), walltime=0.5).result(timeout=LIMIT)
    assert time.monotonic() - t < 20
    assert dfk.submit_python(square, (4,)).result(timeout=LIMIT) == 16


def test_python_app_orders_by_futures(dfk):
    @strand.python_app(dfk=dfk)
    def add(a, b):
        return a + b

    total = add(add(1, 2), add(3, 4))
    assert total.result(timeout=LIMIT) == 10


def test_a_missing_module_on_the_worker_is_named(dfk, tmp_path):
    mod = tmp_path / "only_here.py"
    mod.write_text("def f():\n    return 1\n")
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        import only_here  # pickled by reference

        # Gone from disk after the import here: the workers cannot import it.
        mod.unlink()
        with pytest.raises(strand.RemoteError, match="only_here.*unpickling the task in"):
            dfk.submit_python(only_here.f).result(timeout=LIMIT)
    finally:
        sys.path.remove(str(tmp_path))


def test_a_command_the_function_starts_cannot_touch_the_frames(dfk):
    def noisy():
        import subprocess

        # Writes to fd 1 and reads fd 0, as Parsl's bash_app commands do.
        subprocess.run("echo junk; cat", shell=True, check=True)
        print("printed")
        return "clean"

    assert dfk.submit_python(noisy).result(timeout=LIMIT) == "clean"
    assert dfk.submit_python(square, (5,)).result(timeout=LIMIT) == 25
