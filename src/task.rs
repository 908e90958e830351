//! Tasks, tries and their outcomes: the vocabulary every hop shares.
//!
//! A *task* is what a client asks for; a *try* is one attempt at running it.
//! The interchange, managers and workers only ever see tries; the DFK maps
//! tries back to tasks and decides retries.

use crate::block::BlockId;
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

/// Identifies a client (a DFK or `strand submit`) for the lifetime of an interchange.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(pub u64);

/// Identifies a task within one client.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(pub u64);

/// Identifies one try of a task: unique across every client of an interchange.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TryId {
    /// The client that submitted the task.
    pub client: ClientId,
    /// The task within that client.
    pub task: TaskId,
    /// Which attempt this is, starting at 0.
    pub attempt: u32,
}

/// Identifies a manager (rank 0 of a pool) as registered with the interchange.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ManagerId(pub u64);

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "client-{:016x}", self.0)
    }
}
impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "task-{}", self.0)
    }
}
impl fmt::Display for TryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/try-{}", self.task, self.attempt)
    }
}
impl fmt::Display for ManagerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "manager-{:016x}", self.0)
    }
}

/// How a command is given: an argv vector (no shell) or a string for `/bin/sh -c`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Program {
    /// Executed directly; `argv[0]` is looked up in `PATH`.
    Argv(Vec<String>),
    /// Run by `/bin/sh -c`.
    Shell(String),
}

/// A command task: a child process in its own process group.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CommandSpec {
    /// What to run.
    pub program: Program,
    /// Extra environment variables, applied on top of the worker's environment.
    pub env: Vec<(String, String)>,
    /// Working directory; the worker's own when `None`.
    pub cwd: Option<String>,
    /// File to write stdout to; captured (bounded) into the result when `None`.
    pub stdout: Option<String>,
    /// File to write stderr to; its tail is captured into a failure when `None`.
    pub stderr: Option<String>,
}

/// A function task: a Rust function registered by name in the launcher.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct FunctionCall {
    /// Name in the launcher's registry (`noop`, `sleep`, `echo`, or the user's own).
    pub name: String,
    /// Opaque argument bytes handed to the function.
    #[serde(with = "serde_bytes")]
    pub args: Vec<u8>,
}

/// A Python function as the driver pickled it, once: every call of it shares these bytes
/// (one copy in the DFK), and a worker interpreter unpickles it once and keeps it by `key`. On
/// the wire its bytes travel once per frame ([`crate::wire::functions`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PythonFunction {
    /// The first 16 bytes of the BLAKE3 hash of `pickled`: the worker interpreter's cache key.
    pub key: [u8; 16],
    /// `pickle.dumps((driver's sys.path, cloudpickle.dumps(function), its (major, minor) version))`.
    pub pickled: std::sync::Arc<Vec<u8>>,
}

/// A [`PythonFunction`] as it is written: its key, its bytes unless the frame or its link
/// already carried them (one byte string, in one copy, not one call per byte), and whether the
/// link's receiver keeps them for later frames.
#[derive(Serialize, Deserialize)]
#[serde(rename = "PythonFunction")]
struct FunctionOnWire<'a> {
    key: [u8; 16],
    #[serde(borrow, with = "serde_bytes")]
    pickled: Option<std::borrow::Cow<'a, [u8]>>,
    keep: bool,
}

impl Serialize for PythonFunction {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use crate::wire::functions::{write, Write};
        let (pickled, keep) = match write(&self.key, &self.pickled) {
            Write::Whole { keep } => (Some(std::borrow::Cow::Borrowed(self.pickled.as_slice())), keep),
            Write::ByKey => (None, false),
        };
        FunctionOnWire { key: self.key, pickled, keep }.serialize(s)
    }
}

impl<'de> Deserialize<'de> for PythonFunction {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = FunctionOnWire::deserialize(d)?;
        let pickled = match w.pickled {
            Some(bytes) => crate::wire::functions::read_whole(&w.key, bytes.into_owned(), w.keep),
            None => crate::wire::functions::read_by_key(&w.key).ok_or_else(|| {
                serde::de::Error::custom("a Python function named by key before any try of the frame carried it")
            })?,
        };
        Ok(PythonFunction { key: w.key, pickled })
    }
}

impl PythonFunction {
    /// The function of these pickled bytes, its key computed here.
    pub fn new(pickled: Vec<u8>) -> PythonFunction {
        let mut key = [0u8; 16];
        key.copy_from_slice(&blake3::hash(&pickled).as_bytes()[..16]);
        PythonFunction { key, pickled: std::sync::Arc::new(pickled) }
    }
}

/// A Python function task: a function and one call's arguments as the driver pickled them,
/// run in a warm `interpreter` on the worker (`python -m strand._worker`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PythonCall {
    /// The workers' Python (a path; by default the driver's own interpreter).
    pub interpreter: String,
    /// The function.
    pub function: PythonFunction,
    /// `pickle.dumps((args, kwargs))` (cloudpickle where plain pickle cannot).
    #[serde(with = "serde_bytes")]
    pub args: Vec<u8>,
}

impl Try {
    /// Whether this try calls a Python function whose key is in `keys` (those a receiver
    /// found it does not hold).
    pub fn calls_any(&self, keys: &[crate::wire::functions::FunctionKey]) -> bool {
        matches!(&self.spec.app, App::Python(call) if keys.contains(&call.function.key))
    }
}

/// What a task runs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum App {
    /// A shell command or argv.
    Command(CommandSpec),
    /// A registered function.
    Function(FunctionCall),
    /// A Python function, pickled.
    Python(PythonCall),
}

impl App {
    /// A short name for grouping tasks by what they run (the run database and reports): a
    /// function's name, a command's program (its file name), or `python`.
    pub fn label(&self) -> String {
        match self {
            App::Function(f) => f.name.clone(),
            App::Python(_) => "python".into(),
            App::Command(c) => {
                let first = match &c.program {
                    Program::Argv(v) => v.first().map(String::as_str).unwrap_or(""),
                    Program::Shell(s) => s.split_whitespace().next().unwrap_or(""),
                };
                let name = first.rsplit('/').next().unwrap_or(first);
                if name.is_empty() {
                    "command".into()
                } else {
                    name.to_string()
                }
            }
        }
    }
}

/// Everything a worker needs to run one try.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TaskSpec {
    /// What to run.
    pub app: App,
    /// Walltime in milliseconds; the try is killed (with its process tree) past it.
    pub walltime_ms: Option<u64>,
    /// Lower runs first; FIFO among equals.
    pub priority: i32,
    /// Files the task must have written when it succeeds (relative to its cwd); a missing
    /// one fails the try with `MissingOutputs`. Checked on the worker, which sees the files.
    #[serde(default)]
    pub outputs: Vec<String>,
    /// What the try needs from its pool (worker ranks, GPUs); one worker rank by default.
    #[serde(default)]
    pub resources: Resources,
}

/// What one try needs from its pool. A try needing more than one worker rank or any GPU
/// is *wide*: its manager reserves that many idle worker ranks (and GPUs of the first
/// one's node), runs it on the first, and lends it the others until it ends.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Resources {
    /// CPU cores per rank; each core is one worker rank's slot. Exported as `OMP_NUM_THREADS`.
    pub cores: u32,
    /// GPUs on the node of the try's first rank, exported as `CUDA_VISIBLE_DEVICES` and kin.
    pub gpus: u32,
    /// MPI ranks of an MPI app; their hosts are exported as `STRAND_HOSTS`.
    pub ranks: u32,
}

impl Default for Resources {
    fn default() -> Resources {
        Resources { cores: 1, gpus: 0, ranks: 1 }
    }
}

impl Resources {
    /// Worker ranks the try occupies: `ranks * cores` (at least one).
    pub fn worker_ranks(&self) -> u32 {
        self.ranks.max(1).saturating_mul(self.cores.max(1))
    }

    /// Whether the try fits one worker slot like any plain task (no reservation needed).
    pub fn is_single(&self) -> bool {
        self.worker_ranks() == 1 && self.gpus == 0
    }
}

/// Resources as a user writes them (`resources = { cores = 4 }` in TOML, `"resources": {..}` in JSON):
/// keys left out come from defaults, key by key.
#[derive(Deserialize, Default, Clone, Copy, Debug)]
#[serde(deny_unknown_fields)]
pub struct ResourceRequest {
    #[serde(default, deserialize_with = "at_least_one")]
    /// Cores per rank.
    pub cores: Option<u32>,
    /// GPUs.
    pub gpus: Option<u32>,
    #[serde(default, deserialize_with = "at_least_one")]
    /// MPI ranks.
    pub ranks: Option<u32>,
}

impl ResourceRequest {
    /// Each key not given here taken from `d`.
    pub fn or(self, d: Option<ResourceRequest>) -> ResourceRequest {
        let d = d.unwrap_or_default();
        ResourceRequest { cores: self.cores.or(d.cores), gpus: self.gpus.or(d.gpus), ranks: self.ranks.or(d.ranks) }
    }
}

impl From<ResourceRequest> for Resources {
    fn from(r: ResourceRequest) -> Self {
        let d = Resources::default();
        Resources {
            cores: r.cores.unwrap_or(d.cores),
            gpus: r.gpus.unwrap_or(d.gpus),
            ranks: r.ranks.unwrap_or(d.ranks),
        }
    }
}

/// A count that must be 1 or more (0 cores or 0 ranks would never run).
fn at_least_one<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    match u32::deserialize(d)? {
        0 => Err(serde::de::Error::custom("must be at least 1, got 0")),
        n => Ok(Some(n)),
    }
}

impl fmt::Display for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} rank(s) x {} core(s), {} GPU(s)", self.ranks.max(1), self.cores.max(1), self.gpus)
    }
}

/// One try on the wire: its id and what to run.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Try {
    /// Which try this is.
    pub id: TryId,
    /// What to run.
    pub spec: TaskSpec,
}

/// Why a try failed. Every variant names enough to act on without logs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The command exited with a non-zero code; `stderr` holds its tail.
    ExitCode {
        /// The exit code.
        code: i32,
        /// The tail of its standard error.
        stderr: String,
        /// What it wrote to standard output (GNU parallel prints a failed job's output too).
        #[serde(with = "serde_bytes")]
        stdout: Vec<u8>,
    },
    /// The command was killed by a signal it did not expect.
    Signal {
        /// The signal number.
        signal: i32,
        /// The tail of its standard error.
        stderr: String,
        /// What it wrote to standard output before it was killed.
        #[serde(with = "serde_bytes")]
        stdout: Vec<u8>,
    },
    /// The try ran past its walltime and was killed with its process tree.
    Timeout {
        /// The walltime it had.
        walltime_ms: u64,
    },
    /// The command could not be started (not found, not executable, bad cwd ...).
    SpawnError {
        /// The OS's reason.
        message: String,
    },
    /// The function panicked; the message is the panic payload.
    Panic {
        /// The panic payload.
        message: String,
    },
    /// The function returned an error.
    FunctionError {
        /// The function's error.
        message: String,
    },
    /// A Python function raised an exception on its worker (or its result would not pickle).
    PythonError {
        /// The exception's type name.
        kind: String,
        /// Its message.
        message: String,
        /// The traceback printed on the worker.
        traceback: String,
    },
    /// The worker's Python interpreter died during the try (a crash, `os._exit`, out of
    /// memory); the next try starts a fresh one.
    InterpreterDied {
        /// Its path.
        interpreter: String,
        /// How it ended.
        how: String,
    },
    /// No function of this name is registered in the launcher.
    UnknownFunction {
        /// The name asked for.
        name: String,
    },
    /// The manager holding the try was declared lost.
    ManagerLost {
        /// The manager.
        manager: ManagerId,
        /// Its host.
        host: String,
        /// Its block.
        block: BlockId,
    },
    /// The worker rank running the try died or stopped answering.
    WorkerLost {
        /// Its manager.
        manager: ManagerId,
        /// The worker's rank in its pool.
        rank: i32,
        /// The worker's host.
        host: String,
    },
    /// The launcher stopped (interchange stop, SIGTERM) before the try finished.
    Shutdown,
    /// The client heard nothing from the interchange for this long while the try was out.
    InterchangeLost {
        /// How long it was silent.
        silent_ms: u64,
    },
    /// The task succeeded but did not write these declared outputs.
    MissingOutputs {
        /// The outputs not found.
        paths: Vec<String>,
    },
    /// The try asks for more than its pool can ever give (worker ranks or GPUs).
    Unsatisfiable {
        /// What it asked for.
        needed: Resources,
        /// Why no pool rank set can give it.
        message: String,
    },
    /// The try, or its result, encodes larger than one frame may be; retrying cannot help.
    TooLarge {
        /// What was too large ("the try", "the result").
        what: String,
        /// Its encoded size in bytes.
        bytes: u64,
        /// The run's frame limit in bytes.
        limit: u64,
    },
    /// The try named its Python function by key where the function was not held and could
    /// not be put back: a Strand bug (the two ends of a link disagreed), not the function's.
    FunctionNotHeld {
        /// The function's key, in hex.
        key: String,
        /// Where it was missing ("the interchange", "worker rank 3").
        at: String,
    },
}

impl Failure {
    /// The variant's name, for grouping failures by reason (the run database, reports).
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::ExitCode { .. } => "ExitCode",
            Failure::Signal { .. } => "Signal",
            Failure::Timeout { .. } => "Timeout",
            Failure::SpawnError { .. } => "SpawnError",
            Failure::Panic { .. } => "Panic",
            Failure::FunctionError { .. } => "FunctionError",
            Failure::PythonError { .. } => "PythonError",
            Failure::InterpreterDied { .. } => "InterpreterDied",
            Failure::UnknownFunction { .. } => "UnknownFunction",
            Failure::ManagerLost { .. } => "ManagerLost",
            Failure::WorkerLost { .. } => "WorkerLost",
            Failure::Shutdown => "Shutdown",
            Failure::InterchangeLost { .. } => "InterchangeLost",
            Failure::MissingOutputs { .. } => "MissingOutputs",
            Failure::Unsatisfiable { .. } => "Unsatisfiable",
            Failure::TooLarge { .. } => "TooLarge",
            Failure::FunctionNotHeld { .. } => "FunctionNotHeld",
        }
    }

    /// Whether another try would fail the same way, so retries are not spent on it.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Failure::TooLarge { .. })
    }

    /// What the command wrote to standard output, for the failures that keep it.
    pub fn stdout(&self) -> &[u8] {
        match self {
            Failure::ExitCode { stdout, .. } | Failure::Signal { stdout, .. } => stdout,
            _ => &[],
        }
    }

    /// The tail of the command's standard error, for the failures that keep one.
    pub fn stderr(&self) -> Option<&str> {
        match self {
            Failure::ExitCode { stderr, .. } | Failure::Signal { stderr, .. } => Some(stderr),
            _ => None,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::ExitCode { code, stderr, .. } => {
                write!(f, "exit code {code}")?;
                write_tail(f, stderr)
            }
            Failure::Signal { signal, stderr, .. } => {
                write!(f, "killed by signal {signal}")?;
                write_tail(f, stderr)
            }
            Failure::Timeout { walltime_ms } => {
                write!(f, "walltime of {:.3} s exceeded", *walltime_ms as f64 / 1000.0)
            }
            Failure::SpawnError { message } => write!(f, "could not start: {message}"),
            Failure::Panic { message } => write!(f, "panicked: {message}"),
            Failure::FunctionError { message } => write!(f, "function error: {message}"),
            Failure::PythonError { kind, message, .. } => write!(f, "Python {kind}: {message}"),
            Failure::InterpreterDied { interpreter, how } => {
                write!(
                    f,
                    "the Python interpreter {interpreter} died during the try ({how}); the next try starts a fresh one"
                )
            }
            Failure::UnknownFunction { name } => {
                write!(f, "no function named {name:?} is registered in the launcher")
            }
            Failure::ManagerLost { manager, host, block } => {
                write!(f, "ManagerLost: {manager} on host {host} in block {block}")
            }
            Failure::WorkerLost { manager, rank, host } => {
                write!(f, "WorkerLost: rank {rank} of {manager} on host {host}")
            }
            Failure::Shutdown => f.write_str("launcher shut down before the try finished"),
            Failure::MissingOutputs { paths } => {
                write!(f, "MissingOutputs: exited 0 but did not write {}", paths.join(", "))
            }
            Failure::Unsatisfiable { needed, message } => write!(f, "Unsatisfiable: needs {needed}, but {message}"),
            Failure::TooLarge { what, bytes, limit } => write!(
                f,
                "TooLarge: {what} encodes to {bytes} bytes, over the run's frame limit of {limit} bytes; \
                 raise it with `strand interchange --max-frame-mib` (or `max_frame_mib` in the executor config)"
            ),
            Failure::InterchangeLost { silent_ms } => {
                write!(f, "InterchangeLost: nothing heard from the interchange for {:.1} s", *silent_ms as f64 / 1000.0)
            }
            Failure::FunctionNotHeld { key, at } => write!(
                f,
                "FunctionNotHeld: the try named its Python function {key} by key, but {at} did not hold it \
                 (a Strand bug, not your function's: please report it)"
            ),
        }
    }
}

fn write_tail(f: &mut fmt::Formatter<'_>, stderr: &str) -> fmt::Result {
    let tail = stderr.trim_end();
    if tail.is_empty() {
        Ok(())
    } else {
        write!(f, "; stderr: {tail}")
    }
}

/// How a try ended.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Success: captured stdout of a command, or the bytes a function returned.
    Done(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Failure, with the reason.
    Failed(Failure),
}

/// The result of one try, as it travels back to its client.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TryResult {
    /// Which try this answers.
    pub id: TryId,
    /// How it ended.
    pub outcome: Outcome,
    /// When and how long it ran on its worker; zero where no worker ran it.
    pub ran: Ran,
}

impl TryResult {
    /// A result that no worker timed (decided by a manager, the interchange or the DFK).
    pub fn new(id: TryId, outcome: Outcome) -> TryResult {
        TryResult { id, outcome, ran: Ran::default() }
    }
}

/// When a try started on its worker and how long it ran, as the worker measured it, and where:
/// cheap fields on every result, so the run database needs no extra messages.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ran {
    /// Start, in microseconds since the Unix epoch; 0: not run on a worker.
    pub started_us: u64,
    /// Run time in microseconds.
    pub run_us: u64,
    /// The manager whose pool ran it (stamped by the manager; 0: none).
    pub manager: ManagerId,
    /// The rank in that pool that ran it (0: the manager's own slots).
    pub rank: u32,
    /// The task slot of that rank (numbered from 1, as `{%}` and `$STRAND_SLOT`; 0: not said).
    pub slot: u32,
    /// What a command used (zero for functions, which run inside the worker).
    pub usage: Usage,
}

/// What a command try used, as the kernel counted it when the worker reaped the command
/// (`wait4`): the command and every descendant it waited for.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// User plus system CPU time, in microseconds.
    pub cpu_us: u64,
    /// The largest resident set of any one of those processes, in KiB (0: not measured).
    pub max_rss_kib: u64,
}

impl Ran {
    /// Time a run that started at `started` (system clock) and `begun` (monotonic).
    pub fn since(started: std::time::SystemTime, begun: std::time::Instant) -> Ran {
        let started_us = started.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
        Ran { started_us, run_us: begun.elapsed().as_micros() as u64, ..Ran::default() }
    }

    /// Whether a worker timed it.
    pub fn is_known(&self) -> bool {
        self.started_us != 0
    }
}
