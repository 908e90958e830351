"""A Parsl executor on Strand: an existing Parsl script changes its ``Config`` and nothing else.

    import parsl
    from parsl.config import Config
    from strand.parsl import StrandExecutor

    parsl.load(Config(executors=[StrandExecutor(workers=2)]))

Apps run as Python function tries in warm interpreters on Strand's workers (bash_apps too:
Parsl turns them into a Python function that runs the command). A ``parsl_resource_specification``
of ``cores``, ``ranks`` (or ``num_ranks``) and ``gpus`` becomes the try's resources.
"""

from __future__ import annotations

import weakref
from concurrent.futures import Future
from typing import Any, Callable, Dict, Optional

from parsl.app.errors import wrap_error
from parsl.executors.base import ParslExecutor
from parsl.executors.errors import InvalidResourceSpecification

from . import Dfk

#: Resource keys this executor understands, and Strand's names for them.
_RESOURCES = {"cores": "cores", "ranks": "ranks", "num_ranks": "ranks", "gpus": "gpus"}


class StrandExecutor(ParslExecutor):
    """Runs Parsl apps on a Strand executor: a local block (``workers``), a running
    interchange (``connection``) or an executor configuration (``config``, ``executor``)."""

    def __init__(self, label: str = "strand", *, workers: Optional[int] = None, connection: Optional[str] = None,
                 config: Optional[str] = None, executor: Optional[str] = None, prefetch: Optional[int] = None,
                 python: Optional[str] = None, bin_dir: Optional[str] = None, monitoring: bool = True):
        super().__init__()
        self.label = label
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

        run_dir = os.path.join(self.run_dir, self.label)
        if self.connection:
            self._dfk = Dfk.connect(self.connection, run_dir=run_dir, python=self.python, bin_dir=self.bin_dir,
                                    monitoring=self.monitoring)
        elif self.config:
            self._dfk = Dfk.from_config(self.config, self.executor, run_dir=run_dir, python=self.python,
                                        bin_dir=self.bin_dir, monitoring=self.monitoring)
        else:
            self._dfk = Dfk.local(self.workers, run_dir=run_dir, prefetch=self.prefetch, python=self.python,
                                  bin_dir=self.bin_dir, monitoring=self.monitoring)

    def submit(self, func: Callable, resource_specification: Dict[str, Any], *args: Any, **kwargs: Any) -> Future:
        """One app invocation as one Strand task. An exception is returned as Parsl's
        RemoteExceptionWrapper, which Parsl's DFK re-raises as the app's own exception."""
        if self._dfk is None:
            raise RuntimeError(f"executor {self.label!r} was not started")
        spec = dict(resource_specification or {})
        unknown = sorted(set(spec) - set(_RESOURCES))
        if unknown:
            raise InvalidResourceSpecification(
                set(unknown), f"StrandExecutor takes parsl_resource_specification keys {sorted(_RESOURCES)}"
            )
        resources = {_RESOURCES[k]: int(v) for k, v in spec.items()}
        return self._dfk.submit_python(self._wrap(func), args, kwargs, **resources)

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
        """Stop the DFK and what it started."""
        if self._dfk is not None:
            self._dfk.close()
            self._dfk = None
