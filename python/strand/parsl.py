"""A Parsl executor on Strand: an existing Parsl script changes its ``Config`` and nothing else.

    import parsl
    from parsl.config import Config
    from strand.parsl import StrandExecutor

    parsl.load(Config(executors=[StrandExecutor(workers=2)]))

Apps run as Python function tries in warm interpreters on Strand's workers (bash_apps too:
Parsl turns them into a Python function that runs the command). A ``parsl_resource_specification``
of ``cores``, ``ranks`` (or ``num_ranks``) and ``gpus`` becomes the try's resources.

With ``provider=`` (any Parsl provider: ``LocalProvider``, ``SlurmProvider``, ``PBSProProvider``,
...), Parsl's own strategy scales the blocks: each block runs Strand's launch command
(``launch``, ``ranks_per_node``, ``launcher`` options as in a Strand executor table), which
starts the block's MPI ranks itself.
"""

from __future__ import annotations

import weakref
from concurrent.futures import Future
from typing import Any, Callable, Dict, Optional

from parsl.app.errors import wrap_error
from parsl.executors.errors import BadStateException, InvalidResourceSpecification
from parsl.executors.status_handling import BlockProviderExecutor
from parsl.jobs.states import TERMINAL_STATES, JobState

from . import Dfk

#: Resource keys this executor understands, and Strand's names for them.
_RESOURCES = {"cores": "cores", "ranks": "ranks", "num_ranks": "ranks", "gpus": "gpus"}

#: Parsl's job states as Strand's block events; a block is connected when its first manager
#: registers, which the run database reads from the managers table.
_BLOCK_EVENTS = {
    JobState.PENDING: "submitted",
    JobState.FAILED: "ended",
    JobState.COMPLETED: "ended",
    JobState.CANCELLED: "ended",
    JobState.MISSING: "ended",
    JobState.TIMEOUT: "ended",
    JobState.SCALED_IN: "ended",
}

#: Parsl launchers that start a block's command once, as Strand's launch command expects
#: (it starts the block's ranks itself). Others start one per node or per slot.
_ONCE_LAUNCHERS = ("SimpleLauncher", "SingleNodeLauncher")


class StrandExecutor(BlockProviderExecutor):
    """Runs Parsl apps on a Strand executor: a local block (``workers``), a running
    interchange (``connection``), an executor configuration (``config``, ``executor``), or
    blocks that Parsl's strategy scales through ``provider`` (``launch``, ``ranks_per_node``,
    ``launcher``, ``address``: the keys of a Strand executor table, docs/executors.md)."""

    def __init__(self, label: str = "strand", *, provider=None, launch: Optional[str] = None,
                 ranks_per_node: Optional[int] = None, launcher: Optional[Dict[str, Any]] = None,
                 address: Optional[str] = None, workers: Optional[int] = None, connection: Optional[str] = None,
                 config: Optional[str] = None, executor: Optional[str] = None, prefetch: Optional[int] = None,
                 python: Optional[str] = None, bin_dir: Optional[str] = None, monitoring: bool = True):
        super().__init__(provider=provider, block_error_handler=True)
        own = {"workers": workers, "connection": connection, "config": config}
        given = sorted(k for k, v in own.items() if v is not None)
        if provider is not None and given:
            raise ValueError(f"StrandExecutor takes provider= (Parsl scales the blocks) or {', '.join(given)} "
                             "(Strand's own blocks), not both")
        shaping = {"launch": launch, "ranks_per_node": ranks_per_node, "launcher": launcher, "address": address}
        stray = sorted(k for k, v in shaping.items() if v is not None)
        if provider is None and stray:
            raise ValueError(f"StrandExecutor: {', '.join(stray)} shape the blocks of provider=, which is not given")
        if provider is not None:
            kind = type(getattr(provider, "launcher", None)).__name__
            if (launch or "") != "simple" and kind not in _ONCE_LAUNCHERS:
                raise ValueError(
                    f"StrandExecutor: the provider's launcher is a {kind}, which starts a block's command more than "
                    "once; Strand's launch command starts the block's ranks itself: give the provider "
                    "launcher=SimpleLauncher()"
                )
        self.label = label
        self.launch = launch
        self.ranks_per_node = ranks_per_node
        self.launcher = dict(launcher or {})
        self.address = address
        self.workers = workers
        self.connection = connection
        self.config = config
        self.executor = executor
        self.prefetch = prefetch
        self.python = python
        self.bin_dir = bin_dir
        #: Whether Strand writes its run database (under Parsl's run directory).
        self.monitoring = monitoring
        self._dfk: Optional[Dfk] = None
        # Each app's wrapped function made once, so that Strand pickles it once.
        self._wrapped: "weakref.WeakKeyDictionary[Callable, Callable]" = weakref.WeakKeyDictionary()

    def start(self) -> None:
        """Start (or attach to) the Strand executor, its run directory under Parsl's."""
        import os

        super().start()
        run_dir = os.path.join(self.run_dir, self.label)
        if self.provider is not None:
            self._dfk = Dfk.serve(self._block_table(), run_dir=run_dir, python=self.python, bin_dir=self.bin_dir,
                                  monitoring=self.monitoring)
        elif self.connection:
            self._dfk = Dfk.connect(self.connection, run_dir=run_dir, python=self.python, bin_dir=self.bin_dir,
                                    monitoring=self.monitoring)
        elif self.config:
            self._dfk = Dfk.from_config(self.config, self.executor, run_dir=run_dir, python=self.python,
                                        bin_dir=self.bin_dir, monitoring=self.monitoring)
        else:
            self._dfk = Dfk.local(self.workers, run_dir=run_dir, prefetch=self.prefetch, python=self.python,
                                  bin_dir=self.bin_dir, monitoring=self.monitoring)

    def _block_table(self) -> Dict[str, Any]:
        """The Strand executor table of the provider's blocks: where they run (Strand's
        provider kind only shapes the launch command and the defaults), and their shape."""
        kind = type(self.provider).__name__
        table: Dict[str, Any] = {
            "label": self.label,
            "provider": {"LocalProvider": "local", "PBSProProvider": "pbs", "TorqueProvider": "pbs"}.get(kind, "slurm"),
            "nodes_per_block": self._nodes_per_block(),
        }
        walltime = getattr(self.provider, "walltime", None)
        if walltime and kind != "LocalProvider":
            table["walltime"] = str(walltime)
        for key in ("launch", "ranks_per_node", "address"):
            if getattr(self, key) is not None:
                table[key] = getattr(self, key)
        launcher = dict(self.launcher)
        if self.prefetch is not None:
            launcher.setdefault("prefetch", self.prefetch)
        if launcher:
            table["launcher"] = launcher
        if self.python:
            table["python"] = self.python
        return table

    def _get_launch_command(self, block_id: str) -> str:
        """Strand's launch command for Parsl's block ``block_id`` (Strand's block ``LABEL-ID``)."""
        return self._started().block_command(f"{self.label}-{block_id}")

    @property
    def workers_per_node(self) -> float:
        """Task slots per node, for Parsl's strategy."""
        if self._dfk is None or self.provider is None:
            return 1
        return self._dfk.slots_per_block / self._nodes_per_block()

    def _nodes_per_block(self) -> int:
        """The provider's nodes per block (1 when it does not say)."""
        return max(1, int(getattr(self.provider, "nodes_per_block", 1) or 1))

    def outstanding(self) -> int:
        """Tasks given to this executor that have not ended, for Parsl's strategy."""
        return 0 if self._dfk is None else self._dfk.outstanding

    def submit(self, func: Callable, resource_specification: Dict[str, Any], *args: Any, **kwargs: Any) -> Future:
        """One app invocation as one Strand task. An exception is returned as Parsl's
        RemoteExceptionWrapper, which Parsl's DFK re-raises as the app's own exception."""
        if self.bad_state_is_set:
            raise self.executor_exception
        dfk = self._started()
        spec = dict(resource_specification or {})
        unknown = sorted(set(spec) - set(_RESOURCES))
        if unknown:
            raise InvalidResourceSpecification(
                set(unknown), f"StrandExecutor takes parsl_resource_specification keys {sorted(_RESOURCES)}"
            )
        resources = {_RESOURCES[k]: int(v) for k, v in spec.items()}
        return dfk.submit_python(self._wrap(func), args, kwargs, **resources)

    def send_monitoring_info(self, status: Dict[str, Any]) -> None:
        """Parsl's block state changes, also as Strand's block events (``strand status RUN_DIR``,
        the run database's blocks, the report's blocks over time)."""
        super().send_monitoring_info(status)
        if self._dfk is None:
            return
        for block_id, s in status.items():
            event = _BLOCK_EVENTS.get(s.state)
            if event is not None:
                said = [f"exit code {s.exit_code}"] if s.exit_code is not None else []
                said += [s.message] if s.message else []
                detail = s.state.name + (f" ({'; '.join(said)})" if said else "")
                job = str(self.blocks_to_job_id.get(block_id, ""))
                self._dfk.block_event(f"{self.label}-{block_id}", job, event,
                                      None if event == "submitted" else detail)

    def set_bad_state_and_fail_all(self, exception: Exception) -> None:
        """Parsl's error handler found the blocks failing: fail every task not ended yet."""
        super().set_bad_state_and_fail_all(exception)
        if self._dfk is not None:
            self._dfk._fail_outstanding(BadStateException(self, exception))

    def _started(self) -> Dfk:
        if self._dfk is None:
            raise RuntimeError(f"executor {self.label!r} was not started")
        return self._dfk

    def _wrap(self, func: Callable) -> Callable:
        """Parsl's wrap_error of ``func``, the same object for each call of one app."""
        try:
            wrapped = self._wrapped.get(func)
            if wrapped is None:
                wrapped = self._wrapped[func] = wrap_error(func)
            return wrapped
        except TypeError:  # a callable that cannot be weakly referenced
            return wrap_error(func)

    def shutdown(self) -> None:
        """Cancel the blocks Parsl's scaling has not (it does not when the executor is in a bad
        state), then stop the DFK and what it started."""
        if self.provider is not None:
            active = [job for block, job in self.blocks_to_job_id.items()
                      if block in self._status and self._status[block].state not in TERMINAL_STATES]
            if active:
                self.provider.cancel(active)
        if self._dfk is not None:
            self._dfk.close()
            self._dfk = None
