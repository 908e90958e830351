"""strand.parsl.StrandExecutor with a Parsl provider: Parsl's own strategy scales Strand's
blocks (out when tasks wait, in when they are idle), each block Strand's launch command."""

import sqlite3
import time
from pathlib import Path

import parsl
import pytest
from parsl.app.app import bash_app, python_app
from parsl.config import Config
from parsl.jobs.states import JobState
from parsl.launchers import SrunLauncher
from parsl.providers import LocalProvider

from strand.parsl import StrandExecutor

LIMIT = 120


@python_app
def square(x):
    return x * x


@bash_app
def hello(path):
    return f"echo hello > {path}"


def wait_for(what, predicate, timeout=LIMIT):
    """Poll ``predicate`` (it reads state other processes change) until true, or fail."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.1)


def test_parsls_strategy_scales_strand_blocks_out_and_in(tmp_path):
    # No block at first: only Parsl's strategy, seeing outstanding tasks, starts one.
    provider = LocalProvider(init_blocks=0, min_blocks=0, max_blocks=1)
    executor = StrandExecutor(label="scaled", provider=provider, ranks_per_node=3)
    dfk = parsl.load(Config(executors=[executor], run_dir=str(tmp_path), strategy="simple", strategy_period=0.2,
                            max_idletime=1.0))
    try:
        assert [f.result(timeout=LIMIT) for f in [square(i) for i in range(20)]] == [i * i for i in range(20)]
        out = tmp_path / "hello.txt"
        assert hello(str(out)).result(timeout=LIMIT) == 0
        assert out.read_text() == "hello\n"
        assert executor.outstanding() == 0
        # A block of 3 ranks is one pool of a manager and 2 workers: 2 slots on its node.
        assert executor.workers_per_node == 2
        # The block's manager registered under Strand's block id for Parsl's block 0.
        db = Path(executor.run_dir) / "scaled" / "monitoring.db"
        wait_for("the manager in the run database", lambda: db.exists() and _blocks(db) == ["scaled-0"])
        # Idle past max_idletime: Parsl scales the block in, and its job ends.
        wait_for("Parsl's scale-in", lambda: executor.status_facade.get("0") is not None
                 and executor.status_facade["0"].state == JobState.SCALED_IN)
        job = executor.blocks_to_job_id["0"]
        wait_for("the block's job to end", lambda: provider.status([job])[0].terminal)
    finally:
        dfk.cleanup()
        parsl.clear()
    # Parsl's block, as Strand's run database tells it (strand status, strand report): submitted,
    # connected when its manager registered, ended when Parsl scaled it in.
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
        rows = c.execute("SELECT block, job, submitted_us, connected_us, ended_us, state, detail FROM blocks").fetchall()
    assert len(rows) == 1, rows
    block, job_id, submitted, connected, ended, state, detail = rows[0]
    assert (block, job_id, state) == ("scaled-0", str(job), "ended"), rows
    assert submitted <= connected <= ended and detail.startswith("SCALED_IN"), rows


def _blocks(db: Path) -> list:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
        return sorted({row[0] for row in c.execute("SELECT block FROM managers")})


def test_a_provider_blocks_shape_is_checked_before_anything_starts(tmp_path):
    with pytest.raises(ValueError, match="not both"):
        StrandExecutor(provider=LocalProvider(), workers=2)
    with pytest.raises(ValueError, match="ranks_per_node shape the blocks of provider="):
        StrandExecutor(ranks_per_node=2)
    with pytest.raises(ValueError, match="SrunLauncher.*SimpleLauncher"):
        StrandExecutor(provider=LocalProvider(launcher=SrunLauncher()))
    # Strand's own checks of an executor table, naming the key.
    executor = StrandExecutor(provider=LocalProvider(), launcher={"prefech": 2})
    executor.run_dir = str(tmp_path)
    with pytest.raises(ValueError, match="prefech"):
        executor.start()
    executor = StrandExecutor(provider=LocalProvider(), launch="qsub")
    executor.run_dir = str(tmp_path)
    with pytest.raises(ValueError, match='launch = "qsub" is not one of'):
        executor.start()


def test_blocks_that_all_fail_fail_the_waiting_tasks(tmp_path):
    # Every block exits at once: Parsl's block error handler gives up, and the tasks that were
    # waiting for a block fail with Parsl's BadStateException instead of waiting forever; later
    # ones with the handler's own error, as HTEX's do.
    from parsl.executors.errors import BadStateException
    from parsl.jobs.errors import TooManyJobFailuresError

    provider = LocalProvider(init_blocks=1, min_blocks=0, max_blocks=1, worker_init="exit 3")
    executor = StrandExecutor(label="failing", provider=provider, ranks_per_node=2)
    dfk = parsl.load(Config(executors=[executor], run_dir=str(tmp_path), strategy_period=0.2))
    try:
        waiting = square(3)
        with pytest.raises(BadStateException):
            waiting.result(timeout=LIMIT)
        assert executor.bad_state_is_set and executor.outstanding() == 0
        with pytest.raises(TooManyJobFailuresError, match="EXIT CODE: 3"):
            square(4).result(timeout=LIMIT)
    finally:
        dfk.cleanup()
        parsl.clear()
    db = Path(executor.run_dir) / "failing" / "monitoring.db"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
        rows = c.execute("SELECT block, state, detail FROM blocks").fetchall()
    assert rows == [("failing-0", "ended", "FAILED (exit code 3)")], rows
