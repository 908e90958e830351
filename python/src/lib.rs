//! `strand._strand`: the Rust DFK and executor behind the `strand` Python package. The Python
//! side (`strand/__init__.py`) wraps these in `concurrent.futures.Future`s; here the GIL is
//! released whenever Rust waits or works.

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;
use strand::block::{BlockEventKind, BlockId, BlockLog, JobId, BLOCK_EVENT_KINDS};
use strand::dfk::{Call, Dfk, DfkConfig, MonitoringConfig, TaskError, TaskFuture};
use strand::executor::config::{Config, ExecutorConfig};
use strand::executor::{Executor, Target};
use strand::run_dir::RunDir;
use strand::run_dir::{BLOCKS_FILE, CHECKPOINT_FILE, EVENTS_FILE};
use strand::task::{App, Failure, PythonCall, PythonFunction, Resources, TaskId};

/// One submitted task, held by its Python future (so it can order later tasks).
#[pyclass(frozen, module = "strand._strand")]
struct Task(TaskFuture);

#[pymethods]
impl Task {
    /// The task's id in its DFK.
    #[getter]
    fn id(&self) -> u64 {
        self.0.id().0
    }
}

/// A Python function pickled once (`Dfk` keeps one per function object): its calls share
/// the bytes, and each worker interpreter unpickles it once.
#[pyclass(frozen, module = "strand._strand")]
struct Function(PythonFunction);

#[pymethods]
impl Function {
    /// `pickled` is `pickle.dumps((sys.path, cloudpickle.dumps(fn), sys.version_info[:2]))`.
    #[new]
    fn new(pickled: Vec<u8>) -> Function {
        Function(PythonFunction::new(pickled))
    }

    /// Its cache key on the workers (16 bytes).
    #[getter]
    fn key<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.0.key)
    }
}

/// The options every kind of submit takes, as `strand._options` makes them (a dict).
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct Options {
    name: Option<String>,
    retries: u32,
    walltime: Option<f64>,
    priority: i32,
    cores: u32,
    gpus: u32,
    ranks: u32,
    memoize: Option<bool>,
}

impl Options {
    /// Apply them to a call, or say which one is wrong.
    fn apply(&self, mut call: Call) -> PyResult<Call> {
        let (cores, gpus, ranks) = (self.cores, self.gpus, self.ranks);
        if cores == 0 || ranks == 0 {
            return Err(PyValueError::new_err(format!("cores={cores}, ranks={ranks}: each must be at least 1")));
        }
        call = call.retries(self.retries).priority(self.priority).resources(Resources { cores, gpus, ranks });
        if let Some(n) = &self.name {
            call = call.named(n.clone());
        }
        if let Some(m) = self.memoize {
            call = call.memoize(m);
        }
        if let Some(w) = self.walltime {
            if !(w.is_finite() && w > 0.0) {
                return Err(PyValueError::new_err(format!("walltime={w}: expected a positive number of seconds")));
            }
            call = call.walltime(Duration::from_secs_f64(w));
        }
        Ok(call)
    }
}

/// What the running DFK and its executor are.
struct Running {
    dfk: Dfk,
    exe: Executor,
}

/// A DFK connected to an executor; see `strand.Dfk` for the Python API.
#[pyclass(frozen, module = "strand._strand")]
struct Session {
    running: Mutex<Option<Running>>,
    ends: crossbeam_channel::Receiver<TaskId>,
    /// Tasks not yet ended, to read their outcome when they do.
    open: Mutex<HashMap<TaskId, TaskFuture>>,
    connection_file: String,
    run_dir: String,
    /// The executor configuration's `python`, if it says one.
    python: Option<String>,
}

/// A Python exception raised on a worker: (type name, message, traceback).
type Remote = (String, String, String);

/// How one task ended, as the Python side turns it into a result or an exception:
/// (id, ok, stdout or return bytes, error message, exit code, tries, remote exception).
type End = (u64, bool, Py<PyBytes>, String, Option<i32>, u32, Option<Remote>);

fn runtime(e: impl std::fmt::Display) -> PyErr {
    PyRuntimeError::new_err(e.to_string())
}

fn python_call(f: &Function, interpreter: Option<String>, args: Vec<u8>) -> PyResult<Call> {
    let Some(interpreter) = interpreter else {
        return Err(PyValueError::new_err("python= needs interpreter= (the workers' Python)"));
    };
    Ok(Call::app(App::Python(PythonCall { interpreter, function: f.0.clone(), args })))
}

impl Session {
    /// Submit calls to the DFK and keep their futures, to read each one's end when it comes.
    fn submit_calls(&self, calls: Vec<Call>) -> PyResult<Vec<Task>> {
        let guard = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let Some(r) = guard.as_ref() else { return Err(runtime("this Dfk is closed")) };
        // Under the open-table lock, so the end of a task is never read before it is known.
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let futures = r.dfk.submit_many(calls);
        open.extend(futures.iter().map(|f| (f.id(), f.clone())));
        Ok(futures.into_iter().map(Task).collect())
    }
}

#[pymethods]
impl Session {
    /// Start (or attach to) an executor and connect a DFK to it; with `monitoring` (the
    /// command that started the run, as the database keeps it) it writes the run database.
    #[staticmethod]
    /// With `block` (an executor table, as `Dfk.serve` takes it) the interchange has no
    /// blocks of its own: another system submits them, each running `block_command`.
    #[pyo3(signature = (*, bin_dir, connection=None, workers=None, prefetch=None, run_dir=None, config=None, executor=None, block=None, memoize=false, monitoring=None))]
    #[allow(clippy::too_many_arguments)]
    fn start(
        py: Python<'_>,
        bin_dir: String,
        connection: Option<String>,
        workers: Option<u32>,
        prefetch: Option<u32>,
        run_dir: Option<String>,
        config: Option<String>,
        executor: Option<String>,
        block: Option<Bound<'_, PyDict>>,
        memoize: bool,
        monitoring: Option<String>,
    ) -> PyResult<Session> {
        let bin_dir = PathBuf::from(bin_dir);
        if !bin_dir.join("strand-launcher").is_file() || !bin_dir.join("strand").is_file() {
            return Err(PyValueError::new_err(format!(
                "bin_dir {}: expected the strand and strand-launcher binaries there (scripts/setup.sh links them into .venv/bin)",
                bin_dir.display()
            )));
        }
        strand::process::use_binaries_in(bin_dir.clone());
        let target = Target {
            connection: connection.map(PathBuf::from),
            workers,
            prefetch,
            run_dir: run_dir.map(PathBuf::from),
            launcher: Some(bin_dir.join("strand-launcher")),
            config: config.map(PathBuf::from),
            executor,
        };
        let served = match block {
            Some(table) => Some(served_block(&table, &bin_dir)?),
            None => None,
        };
        py.detach(|| {
            let exe = match served {
                Some(cfg) => {
                    let run_dir = RunDir::create(target.run_dir.as_deref()).map_err(runtime)?;
                    Executor::serve(run_dir, cfg).map_err(runtime)?
                }
                None => Executor::open(&target, 1).map_err(runtime)?,
            };
            let cfg = DfkConfig {
                checkpoint: memoize.then(|| exe.run_dir().file(CHECKPOINT_FILE)),
                events: Some(exe.run_dir().file(EVENTS_FILE)),
                monitoring: monitoring.map(|command| MonitoringConfig::in_run_dir(exe.run_dir(), command)),
                memoize,
                ..DfkConfig::default()
            };
            let dfk = match Dfk::connect(exe.connection(), cfg) {
                Ok(d) => d,
                Err(e) => {
                    exe.stop();
                    return Err(runtime(e));
                }
            };
            let ends = dfk.ends();
            let connection_file = exe.connection_file().display().to_string();
            let run_dir = exe.run_dir().path().display().to_string();
            let python = exe.config().and_then(|c| c.python.clone());
            Ok(Session {
                running: Mutex::new(Some(Running { dfk, exe })),
                ends,
                open: Mutex::default(),
                connection_file,
                run_dir,
                python,
            })
        })
    }

    /// Submit one task: a shell command, an argv list, a registered function (`args` its
    /// bytes), or a Python function (`args` the pickled arguments, run by `interpreter`).
    #[pyo3(signature = (*, options, command=None, argv=None, function=None, args=Vec::new(), python=None, interpreter=None, after=Vec::new()))]
    #[allow(clippy::too_many_arguments)]
    fn submit(
        &self,
        options: Options,
        command: Option<String>,
        argv: Option<Vec<String>>,
        function: Option<String>,
        args: Vec<u8>,
        python: Option<Py<Function>>,
        interpreter: Option<String>,
        after: Vec<Py<Task>>,
    ) -> PyResult<Task> {
        let call = match (command, argv, function, python) {
            (Some(c), None, None, None) => Call::shell(c),
            (None, Some(a), None, None) if !a.is_empty() => Call::argv(a),
            (None, None, Some(f), None) => Call::function(f, args),
            (None, None, None, Some(f)) => python_call(f.get(), interpreter, args)?,
            _ => {
                return Err(PyValueError::new_err(
                    "give exactly one of command=, argv= (not empty), function= or python=",
                ))
            }
        };
        let mut call = options.apply(call)?;
        for t in &after {
            call = call.after(&t.get().0);
        }
        let mut tasks = self.submit_calls(vec![call])?;
        tasks.pop().ok_or_else(|| runtime("a submit gave no task"))
    }

    /// Submit one Python task per item of `args` (each the pickled arguments of one call),
    /// all of `python`, with the same options: one crossing into Rust and one lock of the
    /// task graph for the whole batch (`Dfk.map`).
    #[pyo3(signature = (*, python, args, interpreter, options))]
    fn submit_python_many(
        &self,
        py: Python<'_>,
        python: Py<Function>,
        args: Vec<Vec<u8>>,
        interpreter: String,
        options: Options,
    ) -> PyResult<Vec<Task>> {
        let f = python.get();
        let calls = args
            .into_iter()
            .map(|a| options.apply(python_call(f, Some(interpreter.clone()), a)?))
            .collect::<PyResult<Vec<Call>>>()?;
        py.detach(|| self.submit_calls(calls))
    }

    /// Tasks that ended: waits up to `timeout` seconds for the first (without the GIL), then
    /// takes every end already there.
    fn wait_ends(&self, py: Python<'_>, timeout: f64) -> PyResult<Vec<End>> {
        let wait = Duration::from_secs_f64(timeout.max(0.0));
        let ids: Vec<TaskId> = py.detach(|| {
            let mut ids = Vec::new();
            if let Ok(first) = self.ends.recv_timeout(wait) {
                ids.push(first);
                ids.extend(self.ends.try_iter());
            }
            ids
        });
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(f) = self.open.lock().unwrap_or_else(|p| p.into_inner()).remove(&id) else { continue };
            let end = match f.peek() {
                Some(Ok(bytes)) => (id.0, true, PyBytes::new(py, &bytes).unbind(), String::new(), Some(0), 1, None),
                Some(Err(e)) => {
                    let (code, tries, stdout, remote) = match &e {
                        TaskError::Failed { failure, tries } => {
                            let code = match failure {
                                Failure::ExitCode { code, .. } => Some(*code),
                                _ => None,
                            };
                            let remote = match failure {
                                Failure::PythonError { kind, message, traceback } => {
                                    Some((kind.clone(), message.clone(), traceback.clone()))
                                }
                                _ => None,
                            };
                            (code, *tries, failure.stdout().to_vec(), remote)
                        }
                        _ => (None, 0, Vec::new(), None),
                    };
                    (id.0, false, PyBytes::new(py, &stdout).unbind(), e.to_string(), code, tries, remote)
                }
                None => continue,
            };
            out.push(end);
        }
        Ok(out)
    }

    /// The shell command that starts block `block_id`'s launchers (a session of `block=`).
    fn block_command(&self, block_id: String) -> PyResult<String> {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let exe = &running.as_ref().ok_or_else(|| runtime("the session is closed"))?.exe;
        exe.block_command(&BlockId(block_id))
            .ok_or_else(|| runtime("block_command needs a session started with block= (Dfk.serve)"))
    }

    /// Append a block event to the run directory's `blocks.jsonl` (for `strand status` and the
    /// run database): `event` is its name there (`submitted`, `cancel`, `ended`, ...).
    #[pyo3(signature = (block_id, job_id, event, detail=None))]
    fn block_event(&self, block_id: String, job_id: String, event: &str, detail: Option<String>) -> PyResult<()> {
        let kind = BlockEventKind::from_name(event).ok_or_else(|| {
            let names: Vec<&str> = BLOCK_EVENT_KINDS.iter().map(|k| k.name()).collect();
            PyValueError::new_err(format!("block event {event:?} is not one of {}", names.join(", ")))
        })?;
        let mut log = BlockLog::open(&PathBuf::from(&self.run_dir).join(BLOCKS_FILE));
        log.record(&BlockId(block_id), &JobId(job_id), kind, detail);
        Ok(())
    }

    /// Task slots one block gives (0 when unknown).
    fn slots_per_block(&self) -> u32 {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running.as_ref().map_or(0, |r| r.exe.slots())
    }

    /// Tasks submitted and not yet ended.
    fn pending(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// The interchange's connection file (another driver can `Dfk.connect` to it).
    #[getter]
    fn connection_file(&self) -> String {
        self.connection_file.clone()
    }

    /// The run directory (events, checkpoint, block logs).
    #[getter]
    fn run_dir(&self) -> String {
        self.run_dir.clone()
    }

    /// The workers' Python as the executor configuration names it (`python = ...`), if it does.
    #[getter]
    fn python(&self) -> Option<String> {
        self.python.clone()
    }

    /// Stop the DFK, then what the executor started (blocks, interchange); idempotent.
    fn close(&self, py: Python<'_>) {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(Running { dfk, exe }) = running {
            py.detach(|| {
                dfk.shutdown();
                exe.stop();
            });
        }
    }
}

/// Where `Dfk.serve`'s executor table is named in errors.
const SERVED_ORIGIN: &str = "Dfk.serve(block=...)";

/// `block` checked as a configuration file's executor table would be, its launcher the one
/// in `bin_dir` unless it names another.
fn served_block(block: &Bound<'_, PyDict>, bin_dir: &std::path::Path) -> PyResult<ExecutorConfig> {
    let mut table = toml::Table::new();
    for (k, v) in block.iter() {
        let key: String =
            k.extract().map_err(|_| PyValueError::new_err(format!("{SERVED_ORIGIN}: key {k} is not a string")))?;
        let value = toml_value(&v, &key)?;
        table.insert(key, value);
    }
    if !table.contains_key("launcher_path") {
        let launcher = bin_dir.join("strand-launcher").display().to_string();
        table.insert("launcher_path".into(), toml::Value::String(launcher));
    }
    let cfg = Config::executor_table(table, SERVED_ORIGIN).map_err(|e| PyValueError::new_err(e.to_string()))?;
    cfg.check_launcher(SERVED_ORIGIN).map_err(runtime)?;
    Ok(cfg)
}

/// A Python value as the TOML value a configuration file would write for it.
fn toml_value(v: &Bound<'_, PyAny>, key: &str) -> PyResult<toml::Value> {
    // bool before int: Python's True is an int too.
    if v.is_instance_of::<PyBool>() {
        return Ok(toml::Value::Boolean(v.extract()?));
    }
    if v.is_instance_of::<PyInt>() {
        return Ok(toml::Value::Integer(v.extract()?));
    }
    if v.is_instance_of::<PyFloat>() {
        return Ok(toml::Value::Float(v.extract()?));
    }
    if v.is_instance_of::<PyString>() {
        return Ok(toml::Value::String(v.extract()?));
    }
    if v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>() {
        let items: Vec<Bound<'_, PyAny>> = v.try_iter()?.collect::<PyResult<_>>()?;
        return items.iter().map(|i| toml_value(i, key)).collect::<PyResult<Vec<_>>>().map(toml::Value::Array);
    }
    if let Ok(d) = v.downcast::<PyDict>() {
        let mut t = toml::Table::new();
        for (k, item) in d.iter() {
            let name: String = k.extract()?;
            let value = toml_value(&item, &format!("{key}.{name}"))?;
            t.insert(name, value);
        }
        return Ok(toml::Value::Table(t));
    }
    Err(PyValueError::new_err(format!(
        "{SERVED_ORIGIN}: {key} = {v}: expected a bool, int, float, str, list or dict, as a configuration file would write"
    )))
}

/// The Rust side of the `strand` package.
#[pymodule]
fn _strand(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Session>()?;
    m.add_class::<Task>()?;
    m.add_class::<Function>()?;
    // The worker interpreter's hello names it (strand._worker), without importlib.metadata.
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
