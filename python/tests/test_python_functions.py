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


COUNTED = '''
LOADS = {}


def make(tag):
    """Runs where the function is unpickled: counts it, per tag, in this interpreter."""
    LOADS[tag] = LOADS.get(tag, 0) + 1
    return lambda *_: LOADS[tag]


class Counted:
    """A function whose every unpickling the interpreter counts."""

    def __init__(self, tag):
        self.tag = tag

    def __reduce__(self):
        return (make, (self.tag,))
'''


@pytest.fixture
def counted(tmp_path):
    import sys

    (tmp_path / "counted_fn.py").write_text(COUNTED)
    sys.path.insert(0, str(tmp_path))  # sent with the function: the workers import it too
    try:
        import counted_fn

        yield counted_fn
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("counted_fn", None)


def test_a_function_is_unpickled_once_per_interpreter(dfk, counted):
    f = counted.Counted("once")
    loads = [x.result(timeout=LIMIT) for x in [dfk.submit_python(f) for _ in range(40)]]
    # Unpickled with every try, the counts would climb to 40 between the two interpreters.
    assert set(loads) == {1}, loads


def test_an_interpreter_holding_many_functions_forgets_them_and_goes_on(counted, tmp_path):
    # One worker, so that every function lands in the same interpreter. It holds 1,024
    # functions (launcher/src/exec/python.rs); the 1,025th makes it forget them all.
    with strand.Dfk.local(workers=1, run_dir=str(tmp_path / "run")) as d:
        first = counted.Counted(0)
        assert d.submit_python(first).result(timeout=LIMIT) == 1
        others = [counted.Counted(t) for t in range(1, 1100)]
        assert {x.result(timeout=LIMIT) for x in [d.submit_python(f) for f in others]} == {1}
        # Forgotten, so sent and unpickled again.
        assert d.submit_python(first).result(timeout=LIMIT) == 2


def test_a_dfk_is_a_concurrent_futures_executor(dfk):
    import concurrent.futures

    assert isinstance(dfk, concurrent.futures.Executor)
    assert dfk.submit(pow, 2, 10).result(timeout=LIMIT) == 1024
    assert list(dfk.map(pow, [2, 3, 4], [3, 2, 1], timeout=LIMIT)) == [8, 9, 4]
    futures = dfk.submit_many(square, [(i,) for i in range(300)], retries=1)
    assert [f.result(timeout=LIMIT) for f in futures] == [i * i for i in range(300)]
    with pytest.raises(TypeError, match="after="):
        dfk.submit_many(square, [(1,)], after=futures[:1])
    with pytest.raises(ValueError, match="cores=0"):
        dfk.submit_many(square, [(1,)], cores=0)


def test_the_configurations_python_runs_the_functions(tmp_path):
    import sys

    used = tmp_path / "used"
    wrapper = tmp_path / "python-from-config"
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> {used}\nexec {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    config = tmp_path / "local.toml"
    config.write_text(f'[[executor]]\nlabel = "here"\nprovider = "local"\nranks_per_node = 2\n'
                      f'strategy_period = 1\npython = "{wrapper}"\n')
    with strand.Dfk.from_config(str(config), run_dir=str(tmp_path / "run")) as d:
        assert d.python == str(wrapper)
        assert d.submit(square, 9).result(timeout=LIMIT) == 81
    assert "strand._worker" in used.read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text('[[executor]]\nlabel = "here"\nprovider = "local"\npython = "venv/bin/python"\n')
    with pytest.raises(RuntimeError, match="python.*absolute path"):
        strand.Dfk.from_config(str(bad), run_dir=str(tmp_path / "run2"))


def test_a_python_try_is_sampled_with_its_interpreter(tmp_path):
    import sqlite3

    config = tmp_path / "sampled.toml"
    config.write_text('[[executor]]\nlabel = "here"\nprovider = "local"\nranks_per_node = 2\n'
                      '[executor.launcher]\nresource_interval = 0.1\n')
    run = tmp_path / "run"

    def hold(mib, seconds):
        import time

        held = b"x" * (mib << 20)
        time.sleep(seconds)
        return len(held)

    with strand.Dfk.from_config(str(config), run_dir=str(run)) as d:
        assert d.submit(hold, 48, 1.0).result(timeout=LIMIT) == 48 << 20
    db = sqlite3.connect(str(run / "monitoring.db"))
    n, rss = db.execute("SELECT count(*), max(rss_kib) FROM try_samples").fetchone()
    assert n >= 3 and rss >= 48 * 1024, f"{n} samples, {rss} KiB at most"


def fake_python(tmp_path, name, body):
    """An "interpreter" that runs ``body`` with the real one, whatever it is asked to run."""
    import sys

    script = tmp_path / f"{name}.py"
    script.write_text(body)
    wrapper = tmp_path / name
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} {script}\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def test_a_worker_interpreter_without_strand_or_of_another_strand_is_refused_by_name(tmp_path):
    gone = fake_python(tmp_path, "no-strand", "import sys\nsys.exit(3)\n")
    older = fake_python(tmp_path, "old-strand", (
        "import struct, sys\n"
        "hello = b'strand-worker\\0' + struct.pack('<I', 1) + b'3.8.10\\x000.0.9'\n"
        "sys.stdout.buffer.write(struct.pack('<I', len(hello)) + hello)\n"
        "sys.stdout.flush()\n"
        "sys.stdin.read()\n"
    ))
    with strand.Dfk.local(workers=1, run_dir=str(tmp_path / "run"), python=gone) as d:
        with pytest.raises(strand.TaskFailed, match=r"exited with code 3 before strand._worker said hello: is strand installed"):
            d.submit(square, 2).result(timeout=LIMIT)
        d.python = older
        with pytest.raises(strand.TaskFailed, match=r"strand 0.0.9, Python 3.8.10\) speaks protocol 1, this launcher 2"):
            d.submit(square, 2).result(timeout=LIMIT)
        import sys

        d.python = sys.executable  # and the real one still works, in the same slot
        assert d.submit(square, 5).result(timeout=LIMIT) == 25


def test_a_function_pickled_by_another_python_version_is_refused_by_name(dfk):
    import pickle
    import sys

    import cloudpickle

    old = strand._strand.Function(pickle.dumps((sys.path, cloudpickle.dumps(square), (3, 6))))
    fut = dfk._submit(dict(python=old, args=pickle.dumps(((2,), {})), interpreter=dfk.python), decode="pickle")
    with pytest.raises(strand.RemoteError, match=r"pickled by Python 3.6 on the driver.*same Python version"):
        fut.result(timeout=LIMIT)
