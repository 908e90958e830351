//! Futures of tasks: resolved once by the DFK, waited on by anyone.

use super::memo::MemoKey;
use crate::task::{Failure, Ran, TaskId};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use thiserror::Error;

/// Why a task did not produce a result.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum TaskError {
    /// Its last try failed.
    #[error("failed after {tries} tries: {failure}")]
    Failed {
        /// Why the last try failed.
        failure: Failure,
        /// How many tries ran.
        tries: u32,
    },
    /// A task it depends on failed.
    #[error("dependency failed: {root} {reason}")]
    DependencyFailed {
        /// The task whose failure this is.
        root: TaskId,
        /// Its reason.
        reason: String,
    },
    /// Cancelled before it ran.
    #[error("cancelled")]
    Cancelled,
}

/// The terminal state of a task: its result bytes, or why there are none.
pub type TaskOutcome = Result<Vec<u8>, TaskError>;

struct Cell {
    id: TaskId,
    /// The memo key, once the task was ready (dependents build their keys from it).
    key: std::sync::OnceLock<MemoKey>,
    value: Mutex<Option<TaskOutcome>>,
    ready: Condvar,
    /// When the latest try ran on its worker (`Ran` in atomics: written once per try).
    started_us: AtomicU64,
    run_us: AtomicU64,
    /// The manager whose pool ran the latest try (0: none), for where it ran.
    manager: AtomicU64,
}

/// A handle on a task's eventual outcome; cheap to clone, pass as an input or dependency.
#[derive(Clone)]
pub struct TaskFuture(Arc<Cell>);

impl std::fmt::Debug for TaskFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TaskFuture({})", self.0.id)
    }
}

impl TaskFuture {
    pub(crate) fn new(id: TaskId) -> TaskFuture {
        TaskFuture(Arc::new(Cell {
            id,
            key: std::sync::OnceLock::new(),
            value: Mutex::new(None),
            ready: Condvar::new(),
            started_us: AtomicU64::new(0),
            run_us: AtomicU64::new(0),
            manager: AtomicU64::new(0),
        }))
    }

    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.0.id
    }

    /// The task's memo key, if it was memoized.
    pub fn key(&self) -> Option<MemoKey> {
        self.0.key.get().copied()
    }

    pub(crate) fn set_key(&self, k: MemoKey) {
        let _ = self.0.key.set(k);
    }

    /// The outcome if the task has ended.
    pub fn peek(&self) -> Option<TaskOutcome> {
        self.0.value.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether the task has ended.
    pub fn is_done(&self) -> bool {
        self.0.value.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    /// Block until the task ends and return its outcome.
    pub fn wait(&self) -> TaskOutcome {
        let mut v = self.0.value.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(o) = v.as_ref() {
                return o.clone();
            }
            v = self.0.ready.wait(v).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Block up to `timeout`; `None` if the task has not ended by then.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<TaskOutcome> {
        let v = self.0.value.lock().unwrap_or_else(|p| p.into_inner());
        let (v, _) = self.0.ready.wait_timeout_while(v, timeout, |v| v.is_none()).unwrap_or_else(|p| p.into_inner());
        v.clone()
    }

    /// When and how long the latest try ran on its worker, and which manager's pool ran it;
    /// unknown (zero) for a memo or checkpoint hit and for a try that failed without reaching
    /// a worker.
    pub fn ran(&self) -> Ran {
        Ran {
            started_us: self.0.started_us.load(Ordering::Acquire),
            run_us: self.0.run_us.load(Ordering::Acquire),
            manager: crate::task::ManagerId(self.0.manager.load(Ordering::Acquire)),
            ..Ran::default()
        }
    }

    pub(crate) fn note_ran(&self, ran: Ran) {
        self.0.run_us.store(ran.run_us, Ordering::Release);
        self.0.started_us.store(ran.started_us, Ordering::Release);
        self.0.manager.store(ran.manager.0, Ordering::Release);
    }

    /// Resolve once; later calls are ignored (one terminal state per task).
    pub(crate) fn resolve(&self, outcome: TaskOutcome) {
        let mut v = self.0.value.lock().unwrap_or_else(|p| p.into_inner());
        if v.is_none() {
            *v = Some(outcome);
            self.0.ready.notify_all();
        }
    }
}
