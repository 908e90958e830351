"""Drive Strand from Python: the Rust DFK and executor, with concurrent.futures futures.

    import strand

    with strand.Dfk.local(workers=2) as dfk:
        futures = [dfk.submit_command(f"echo {i}") for i in range(100)]
        print(sum(int(f.result()) for f in futures))

Futures are ``concurrent.futures.Future`` objects, so ``as_completed``, ``wait`` and
``asyncio.wrap_future`` work. A future given in ``after=`` orders the tasks.
``submit_python`` and ``@python_app`` run Python functions in a warm interpreter on each
worker slot (see docs/python.md). A ``Dfk`` is also a ``concurrent.futures.Executor``:
``dfk.submit(fn, *args)`` and ``dfk.map(fn, items)`` (one batch) work as they do on a
``ProcessPoolExecutor``.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import gc
import os
import pickle
import shutil
import sys
import threading
import weakref
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

from . import _strand

__all__ = ["Dfk", "RemoteError", "TaskFailed", "bash_app", "python_app"]


class TaskFailed(Exception):
    """A task's last try failed: ``reason`` says why (exit code, signal, walltime, ...)."""

    def __init__(self, reason: str, exit_code: Optional[int], tries: int, stdout: bytes):
        super().__init__(reason)
        self.reason = reason
        #: The command's exit code, when it exited with one.
        self.exit_code = exit_code
        #: How many tries ran.
        self.tries = tries
        #: What the command wrote to standard output before it failed.
        self.stdout = stdout


class RemoteError(TaskFailed):
    """A Python function raised on its worker: ``kind`` is the exception's type name,
    ``remote_traceback`` the traceback printed there."""

    def __init__(self, reason: str, tries: int, kind: str, message: str, remote_traceback: str):
        super().__init__(reason, None, tries, b"")
        self.kind = kind
        self.message = message
        self.remote_traceback = remote_traceback

    def __str__(self) -> str:
        return f"{self.reason}\n--- on the worker ---\n{self.remote_traceback}"


def _bin_dir(bin_dir: Optional[str]) -> str:
    """Where the strand and strand-launcher binaries are: given, next to this interpreter
    (scripts/setup.sh links them into .venv/bin), or on PATH."""
    if bin_dir is not None:
        return str(Path(bin_dir).resolve())
    here = Path(sys.prefix) / "bin"
    if (here / "strand-launcher").is_file():
        return str(here.resolve())
    found = shutil.which("strand-launcher")
    if found:
        return str(Path(found).resolve().parent)
    raise FileNotFoundError(
        f"strand-launcher is neither in {here} nor on PATH: run scripts/setup.sh "
        "(it links the binaries into .venv/bin), or pass bin_dir= the folder that holds them"
    )


_current: list = []


class Dfk(concurrent.futures.Executor):
    """A DFK connected to an executor; a context manager that tears down what it started,
    and a ``concurrent.futures.Executor`` of Python functions."""

    def __init__(self, session: "_strand.Session", python: Optional[str] = None):
        self._session = session
        #: The interpreter Python function tries run in on the workers: ``python=``, else the
        #: executor configuration's ``python``, else this one.
        self.python = python or session.python or sys.executable
        self._futures: dict = {}
        # Each function pickled once, while the driver holds it (its calls share the bytes).
        self._functions: "weakref.WeakKeyDictionary[Callable, _strand.Function]" = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._reader = threading.Thread(target=self._read_ends, name="strand-ends", daemon=True)
        self._reader.start()

    @classmethod
    def local(cls, workers: Optional[int] = None, *, run_dir: Optional[str] = None, memoize: bool = False,
              prefetch: Optional[int] = None, bin_dir: Optional[str] = None, python: Optional[str] = None,
              monitoring: bool = True) -> "Dfk":
        """An interchange and one local block of ``workers`` ranks (default: one per core);
        Python functions run in ``python`` (default: this interpreter). With ``monitoring``
        the run database is written (``strand report RUN_DIR``, ``strand top RUN_DIR``)."""
        return cls(_strand.Session.start(bin_dir=_bin_dir(bin_dir), workers=workers, run_dir=_abs(run_dir),
                                         memoize=memoize, prefetch=prefetch, monitoring=_command(monitoring)),
                   python)

    @classmethod
    def connect(cls, connection: str, *, run_dir: Optional[str] = None, memoize: bool = False,
                bin_dir: Optional[str] = None, python: Optional[str] = None, monitoring: bool = True) -> "Dfk":
        """Attach to a running interchange by its connection file."""
        return cls(_strand.Session.start(bin_dir=_bin_dir(bin_dir), connection=_abs(connection),
                                         run_dir=_abs(run_dir), memoize=memoize, monitoring=_command(monitoring)),
                   python)

    @classmethod
    def from_config(cls, config: str, executor: Optional[str] = None, *, run_dir: Optional[str] = None,
                    memoize: bool = False, bin_dir: Optional[str] = None, python: Optional[str] = None,
                    monitoring: bool = True) -> "Dfk":
        """Start the executor ``executor`` (by label; default the first) of a TOML configuration;
        Python functions run in ``python``, else in the configuration's ``python = ...``."""
        return cls(_strand.Session.start(bin_dir=_bin_dir(bin_dir), config=_abs(config), executor=executor,
                                         run_dir=_abs(run_dir), memoize=memoize, monitoring=_command(monitoring)),
                   python)

    @classmethod
    def serve(cls, block: dict, *, run_dir: Optional[str] = None, memoize: bool = False,
              bin_dir: Optional[str] = None, python: Optional[str] = None, monitoring: bool = True) -> "Dfk":
        """An interchange here with no blocks of its own: another system submits them (Parsl's
        providers, through ``strand.parsl.StrandExecutor(provider=...)``), each running
        ``block_command(block_id)``. ``block`` is one executor table as a configuration file
        writes it (``provider``, ``launch``, ``nodes_per_block``, ``ranks_per_node``,
        ``launcher``, ``address``, ...; docs/executors.md), checked as the file's would be."""
        return cls(_strand.Session.start(bin_dir=_bin_dir(bin_dir), block=dict(block), run_dir=_abs(run_dir),
                                         memoize=memoize, monitoring=_command(monitoring)),
                   python)

    def block_command(self, block_id: str) -> str:
        """The shell command that starts block ``block_id``'s launchers (``serve`` only)."""
        return self._session.block_command(block_id)

    def block_event(self, block_id: str, job_id: str, event: str, detail: Optional[str] = None) -> None:
        """Record a block event (``submitted``, ``ended``, ...) of a block another system
        submitted, in the run directory's ``blocks.jsonl`` (``serve`` only)."""
        self._session.block_event(block_id, job_id, event, detail)

    @property
    def slots_per_block(self) -> int:
        """Task slots one block gives, as its executor table shapes it (``serve`` only)."""
        return self._session.slots_per_block()

    @property
    def outstanding(self) -> int:
        """Tasks submitted that have not ended (queued, running, or waiting on others)."""
        return len(self._futures)

    @property
    def connection_file(self) -> str:
        """The interchange's connection file."""
        return self._session.connection_file

    @property
    def run_dir(self) -> str:
        """The run directory (events, checkpoint, block logs)."""
        return self._session.run_dir

    def submit_command(self, command: str, **options) -> concurrent.futures.Future:
        """Run a shell command; the future's result is its standard output (text)."""
        return self._submit(dict(command=command), decode="text", **options)

    def submit_argv(self, argv: Sequence[str], **options) -> concurrent.futures.Future:
        """Run a program with arguments, no shell; the result is its standard output (text)."""
        return self._submit(dict(argv=[str(a) for a in argv]), decode="text", **options)

    def submit_function(self, name: str, args: bytes | str = b"", **options) -> concurrent.futures.Future:
        """Call a function registered in the launcher; the result is the bytes it returned."""
        data = args.encode() if isinstance(args, str) else bytes(args)
        return self._submit(dict(function=name, args=data), decode="bytes", **options)

    def submit_python(self, fn: Callable, args: Sequence = (), kwargs: Optional[dict] = None,
                      **options) -> concurrent.futures.Future:
        """Call ``fn(*args, **kwargs)`` in a warm interpreter on a worker (pickled with
        cloudpickle); the result is its return value, an exception there raises ``RemoteError``."""
        what = dict(python=self._function(fn), args=_pickle_args(fn, args, kwargs or {}), interpreter=self.python)
        return self._submit(what, decode="pickle", **options)

    def submit_many(self, fn: Callable, arguments: Iterable[Sequence], **options) -> list:
        """Call ``fn(*a)`` for each tuple ``a`` of ``arguments``, as ``submit_python`` does,
        in one batch (one crossing into Rust): the futures, in order. ``options`` are those
        of ``submit_python`` except ``after``, the same for every call."""
        if "after" in options:
            raise TypeError("submit_many takes no after=: submit_python orders one call after others")
        with _gc_paused():
            futures: list = []

            def register(tasks: list) -> None:
                for task in tasks:
                    fut: concurrent.futures.Future = concurrent.futures.Future()
                    fut._strand_decode = "pickle"  # type: ignore[attr-defined]
                    fut._strand_task = task  # type: ignore[attr-defined]
                    self._futures[task.id] = fut
                    futures.append(fut)

            self._submit_batch(fn, arguments, options, register)
            for fut in futures:
                fut.set_running_or_notify_cancel()
        return futures

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> concurrent.futures.Future:
        """``concurrent.futures.Executor.submit``: ``fn(*args, **kwargs)`` on a worker."""
        return self.submit_python(fn, args, kwargs)

    def map(self, fn: Callable, *iterables: Iterable, timeout: Optional[float] = None,
            chunksize: int = 1) -> Iterator:
        """``concurrent.futures.Executor.map``: the results of ``fn`` over the items, in order,
        submitted as one batch (``chunksize`` is accepted and ignored: every call is a task).
        No future is made per call: the results wait in one list until the iterator takes them."""
        batches: list = []

        def register(tasks: list) -> None:
            batch = _Batch([t.id for t in tasks])
            for t in tasks:
                self._futures[t.id] = batch
            batches.append(batch)

        self._submit_batch(fn, zip(*iterables), {}, register)
        return batches[0].results(timeout)

    def _submit_batch(self, fn: Callable, arguments: Iterable[Sequence], options: dict,
                      register: Callable[[list], None]) -> None:
        """Submit ``fn(*a)`` for each ``a`` in one crossing into Rust; ``register(tasks)``
        records them under the lock, so that no end is read before it is known."""
        function = self._function(fn)
        pickled = [_pickle_args(fn, a, {}) for a in arguments]
        with self._lock:
            if self._closed.is_set():
                raise RuntimeError("this Dfk is closed")
            tasks = self._session.submit_python_many(python=function, args=pickled, interpreter=self.python,
                                                     options=_options(**options))
            register(tasks)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """``concurrent.futures.Executor.shutdown``: as ``close`` (tasks not yet ended fail)."""
        self.close()

    def _function(self, fn: Callable) -> "_strand.Function":
        """``fn`` pickled (by reference when importable, else by value), once per function
        object this driver holds; a callable that cannot be weakly referenced each time."""
        try:
            cached = self._functions.get(fn)
        except TypeError:  # not hashable or not weakly referenceable
            cached = None
        if cached is not None:
            return cached
        import cloudpickle

        try:
            path = [p for p in sys.path if isinstance(p, str)]
            pickled = pickle.dumps((path, cloudpickle.dumps(fn), tuple(sys.version_info[:2])))
        except Exception as e:
            raise TypeError(f"cannot pickle {_name(fn)!r}: {e}") from e
        function = _strand.Function(pickled)
        try:
            self._functions[fn] = function
        except TypeError:
            pass
        return function

    def _submit(self, what: dict, *, decode: str, name: Optional[str] = None, retries: int = 0,
                walltime: Optional[float] = None, priority: int = 0, cores: int = 1, gpus: int = 0,
                ranks: int = 1, after: Iterable[concurrent.futures.Future] = (),
                memoize: Optional[bool] = None) -> concurrent.futures.Future:
        tasks = []
        for f in after:
            task = getattr(f, "_strand_task", None)
            if task is None:
                raise TypeError(f"after= takes futures of this Dfk, got {f!r}")
            tasks.append(task)
        fut: concurrent.futures.Future = concurrent.futures.Future()
        fut._strand_decode = decode  # type: ignore[attr-defined]
        with self._lock:
            if self._closed.is_set():
                raise RuntimeError("this Dfk is closed")
            options = _options(name, retries, walltime, priority, cores, gpus, ranks, memoize)
            task = self._session.submit(**what, after=tasks, options=options)
            fut._strand_task = task  # type: ignore[attr-defined]
            self._futures[task.id] = fut
        fut.set_running_or_notify_cancel()
        return fut

    def _read_ends(self) -> None:
        while not self._closed.is_set():
            ends = self._session.wait_ends(0.1)
            if not ends:
                continue
            with self._lock:
                targets = [self._futures.pop(end[0], None) for end in ends]
            batches: dict = {}
            for target, end in zip(targets, ends):
                if isinstance(target, _Batch):
                    batches.setdefault(target, []).append((end[0], _outcome("pickle", end)))
                elif target is not None:
                    ok, value = _outcome(target._strand_decode, end)
                    if ok:
                        target.set_result(value)
                    else:
                        target.set_exception(value)
            for batch, outcomes in batches.items():
                batch.end(outcomes)

    def close(self) -> None:
        """Stop reading results, then the DFK and what the executor started."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._reader.join()
        self._session.close()
        self._fail_outstanding(RuntimeError("the Dfk was closed before this task ended"))

    def _fail_outstanding(self, error: BaseException) -> None:
        """End every task's future that has not ended with ``error``; their results, should
        they still come, are dropped."""
        with self._lock:
            left, self._futures = self._futures, {}
        batches = {}
        for task_id, target in left.items():
            if isinstance(target, _Batch):
                batches.setdefault(target, []).append((task_id, (False, error)))
            else:
                target.set_exception(error)
        for batch, outcomes in batches.items():
            batch.end(outcomes)

    def __enter__(self) -> "Dfk":
        _current.append(self)
        return self

    def __exit__(self, *exc) -> None:
        if _current and _current[-1] is self:
            _current.pop()
        self.close()


def _options(name: Optional[str] = None, retries: int = 0, walltime: Optional[float] = None, priority: int = 0,
             cores: int = 1, gpus: int = 0, ranks: int = 1, memoize: Optional[bool] = None) -> dict:
    """The options every submit takes, by name (a misspelt one is a TypeError here)."""
    return dict(name=name, retries=retries, walltime=walltime, priority=priority, cores=cores, gpus=gpus,
                ranks=ranks, memoize=memoize)


def _command(monitoring: bool) -> Optional[str]:
    """What the run database records as the run's command: this driver's, or None for no
    database."""
    return " ".join(["python", *sys.argv]) if monitoring else None


def _name(fn: Callable) -> str:
    return getattr(fn, "__name__", repr(fn))


def _pickle_args(fn: Callable, args: Sequence, kwargs: dict) -> bytes:
    """One call's arguments: plain pickle, which is fast, else cloudpickle (a lambda, say)."""
    value = (tuple(args), dict(kwargs))
    try:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - PicklingError, AttributeError, TypeError all mean "by value"
        import cloudpickle

        try:
            return cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as e:
            raise TypeError(f"cannot pickle the arguments of {_name(fn)!r}: {e}") from e


def _outcome(decode: str, end: tuple) -> tuple:
    """(True, the result) or (False, the exception) of one task's end, as ``decode`` says its
    bytes are to be read: ``text``, ``pickle`` or ``bytes``."""
    _, ok, data, reason, code, tries, remote = end
    if not ok:
        return False, (RemoteError(reason, tries, *remote) if remote else TaskFailed(reason, code, tries, data))
    if decode == "text":
        return True, data.decode(errors="replace")
    if decode == "pickle":
        try:
            return True, pickle.loads(data)
        except Exception as e:  # a class the driver cannot import, say
            return False, TypeError(f"cannot unpickle the result here: {e}")
    return True, data


class _Batch:
    """The results of one ``Dfk.map``, in submission order, held until its iterator takes them."""

    def __init__(self, ids: Sequence[int]):
        self._index = {task_id: i for i, task_id in enumerate(ids)}
        self._values: list = [None] * len(ids)
        self._ok = bytearray(len(ids))
        self._ended = bytearray(len(ids))
        self._cond = threading.Condition()

    def end(self, outcomes: list) -> None:
        """Tasks of this batch ended: ``(task id, (ok, value or exception))`` each."""
        with self._cond:
            for task_id, (ok, value) in outcomes:
                i = self._index[task_id]
                if not self._ended[i]:
                    self._values[i], self._ok[i], self._ended[i] = value, ok, 1
            self._cond.notify_all()

    def results(self, timeout: Optional[float]) -> Iterator:
        """Each result in turn (raising a call's exception at its place), all within
        ``timeout`` seconds of now."""
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        for i in range(len(self._values)):
            with self._cond:
                while not self._ended[i]:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        raise concurrent.futures.TimeoutError(f"call {i} of the map had not ended")
                    self._cond.wait(left)
                value, ok = self._values[i], self._ok[i]
                self._values[i] = None  # taken: the iterator keeps no result twice
            if not ok:
                raise value
            yield value


@contextlib.contextmanager
def _gc_paused():
    """Python's cycle collector off while a batch makes its futures: each future is a few
    container objects, and collections that walk every future still waiting took nearly half
    of the driver's time in a 100,000-task ``map`` (perf, docs/python.md). Nothing made here
    is garbage; the collector runs again after."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _abs(path: Optional[str]) -> Optional[str]:
    return None if path is None else os.path.abspath(path)


def _dfk(dfk: Optional[Dfk]) -> Dfk:
    if dfk is not None:
        return dfk
    if not _current:
        raise RuntimeError("no Dfk: call the app inside `with strand.Dfk.local(...):`, or give dfk=")
    return _current[-1]


def _app(submit: Callable, finish: Callable, fn: Optional[Callable], dfk: Optional[Dfk], options: dict):
    """The shared body of bash_app and python_app: futures among the arguments are waited for
    and replaced by their results, then ``submit(dfk, fn, args, kwargs)`` runs the task and
    ``finish(inner, out)`` passes its end on."""

    def wrap(f: Callable):
        @functools.wraps(f)
        def call(*args, **kwargs) -> concurrent.futures.Future:
            target = _dfk(dfk)
            out: concurrent.futures.Future = concurrent.futures.Future()
            deps = [a for a in list(args) + list(kwargs.values()) if isinstance(a, concurrent.futures.Future)]
            lock = threading.Lock()
            started = [False]

            def once(_=None):
                with lock:
                    if started[0] or not all(d.done() for d in deps):
                        return
                    started[0] = True
                try:
                    a = [x.result() if isinstance(x, concurrent.futures.Future) else x for x in args]
                    k = {n: (v.result() if isinstance(v, concurrent.futures.Future) else v) for n, v in kwargs.items()}
                    inner = submit(target, f, a, k, options)
                except BaseException as e:  # a failed dependency, a bad command line, unpicklable
                    out.set_exception(e)
                    return
                inner.add_done_callback(lambda i: finish(i, out))

            for d in deps:
                d.add_done_callback(once)
            once()
            return out

        return call

    return wrap(fn) if fn is not None else wrap


def _bash_done(inner: concurrent.futures.Future, out: concurrent.futures.Future) -> None:
    if inner.exception() is not None:
        out.set_exception(inner.exception())
    else:
        out.stdout = inner.result()  # type: ignore[attr-defined]
        out.set_result(0)


def _python_done(inner: concurrent.futures.Future, out: concurrent.futures.Future) -> None:
    if inner.exception() is not None:
        out.set_exception(inner.exception())
    else:
        out.set_result(inner.result())


def bash_app(fn: Optional[Callable] = None, *, dfk: Optional[Dfk] = None, **options):
    """Parsl's bash_app: the function returns a command line, which runs as a task. Futures
    among the arguments are waited for and replaced by their results first. The future's
    result is 0 (the exit code, as Parsl's); ``future.stdout`` is the output."""
    return _app(lambda d, f, a, k, o: d.submit_command(f(*a, **k), **o), _bash_done, fn, dfk, options)


def python_app(fn: Optional[Callable] = None, *, dfk: Optional[Dfk] = None, **options):
    """Parsl's python_app: the function runs on a worker (``Dfk.submit_python``); futures among
    the arguments are waited for and replaced by their results first."""
    return _app(lambda d, f, a, k, o: d.submit_python(f, a, k, **o), _python_done, fn, dfk, options)
