//! What the DFK tells the run database: one typed record per transition, buffered under the
//! graph's lock (a push onto a vector) and handed to the database's writer thread in batches,
//! outside the lock.

use super::events::State;
use crate::sample::Samples;
use crate::task::{Failure, Outcome, Ran};
use crate::wire::ManagerStatus;
use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch (0 if the clock is before it).
pub fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// How one try ended, as the database keeps it.
#[derive(Clone, Debug, PartialEq)]
pub struct TryEnd {
    /// `done`, or the failure's kind (`ExitCode`, `WorkerLost` ...).
    pub outcome: &'static str,
    /// The exit code of a command that exited non-zero.
    pub exit_code: Option<i32>,
    /// The signal that killed a command.
    pub signal: Option<i32>,
    /// The failure as people read it.
    pub reason: Option<String>,
    /// The manager that was lost, when that is why it failed.
    pub lost_manager: Option<u64>,
    /// The manager that held it, when the failure names one (a lost manager or worker): such a
    /// try never reached a result on its worker, so this is the only record of where it was.
    pub held_by: Option<u64>,
}

impl TryEnd {
    /// Summarize an outcome (the bytes of a success are not kept).
    pub fn of(outcome: &Outcome) -> TryEnd {
        match outcome {
            Outcome::Done(_) => TryEnd {
                outcome: "done",
                exit_code: None,
                signal: None,
                reason: None,
                lost_manager: None,
                held_by: None,
            },
            Outcome::Failed(f) => TryEnd {
                outcome: f.kind(),
                exit_code: match f {
                    Failure::ExitCode { code, .. } => Some(*code),
                    _ => None,
                },
                signal: match f {
                    Failure::Signal { signal, .. } => Some(*signal),
                    _ => None,
                },
                reason: Some(f.to_string()),
                lost_manager: match f {
                    Failure::ManagerLost { manager, .. } => Some(manager.0),
                    _ => None,
                },
                held_by: match f {
                    Failure::ManagerLost { manager, .. } | Failure::WorkerLost { manager, .. } => Some(manager.0),
                    _ => None,
                },
            },
        }
    }
}

/// One thing that happened, for the run database.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    /// A task was added to the graph.
    Task {
        /// Its id within the run.
        task: u64,
        /// Its name, if it has one.
        name: Option<String>,
        /// What it runs ([`crate::task::App::label`]).
        app: String,
        /// When.
        t_us: u64,
    },
    /// A try's result came back. One whose outcome is `done` also ends its task (done, after
    /// `attempt + 1` tries): no [`Record::TaskEnded`] is sent for it.
    TryEnded {
        /// The task.
        task: u64,
        /// Which try.
        attempt: u32,
        /// When it was sent to the interchange.
        launched_us: u64,
        /// When the DFK got it.
        t_us: u64,
        /// How it ended.
        end: TryEnd,
        /// When, how long and where it ran (from the launcher).
        ran: Ran,
    },
    /// A task reached its terminal state.
    TaskEnded {
        /// The task.
        task: u64,
        /// The state.
        state: State,
        /// Tries it took.
        tries: u32,
        /// When.
        t_us: u64,
        /// Why, for the failures.
        reason: Option<String>,
    },
    /// The interchange's managers at one moment (from a status poll).
    Managers {
        /// When.
        t_us: u64,
        /// Every connected manager.
        managers: Vec<ManagerStatus>,
        /// Tries queued at the interchange.
        queued: u64,
    },
    /// What running tries (of this client) and nodes used, as their launchers sampled it.
    Samples(Samples),
}
