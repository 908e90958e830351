//! The manager: rank 0 of a pool, the only rank that talks ZeroMQ to the interchange.
//!
//! It registers, receives batches of tries, keeps each worker fed up to its
//! prefetch depth from a local backlog (so a short task never waits for a
//! round trip to the interchange), and returns results in batches.
//!
//! Split as the interchange is: [`state`] is the manager as plain data driven by events (a
//! message from the interchange, a message from worker rank r, a tick with the current
//! time), whose every effect goes through the [`ManagerComm`] trait of [`comm`], so it is
//! tested without ZeroMQ, MPI or processes; `run` owns the DEALER socket, the pool
//! communicator and the local executor, implements the trait and does the waiting.

pub mod comm;
mod run;
pub mod state;
#[cfg(test)]
mod tests;

pub use comm::ManagerComm;
pub use run::run_manager;
pub use state::{ManagerState, PoolInfo};

use std::time::{Duration, Instant};
use strand::task::ManagerId;
use thiserror::Error;

/// How a manager runs its pool.
#[derive(Clone, Debug)]
pub struct ManagerConfig {
    /// This manager's id (random per process).
    pub id: ManagerId,
    /// Block id to register under.
    pub block: String,
    /// Task slots each worker rank runs at once.
    pub slots_per_worker: u32,
    /// Tries each worker holds beyond its slots.
    pub prefetch: u32,
    /// Task slots of the manager itself (used when the pool has no workers).
    pub local_slots: u32,
    /// Give up when the interchange has not answered registration within this.
    pub connect_timeout: Duration,
    /// When to announce draining (the block's walltime minus a margin), so no try
    /// is killed by the scheduler's deadline.
    pub drain_at: Option<Instant>,
    /// A worker silent this long is lost: its tries fail with `WorkerLost`.
    pub worker_threshold: Duration,
    /// GPU ids each node of the pool offers to tries that ask for GPUs.
    pub gpu_ids: Vec<String>,
    /// How a wide try's MPI program is started on its ranks (`STRAND_MPI_PREFIX`).
    pub mpi: crate::task_mpi::MpiLaunch,
    /// The registry's MPI functions: a function try naming one runs on every rank it asks for.
    pub mpi_functions: std::collections::BTreeSet<String>,
    /// How often the pool's resource samples go to the interchange (`None`: not sampled).
    pub resource_interval: Option<Duration>,
}

/// Why a manager could not run.
#[derive(Debug, Error)]
pub enum ManagerError {
    /// ZeroMQ failed.
    #[error("{what}: {source}")]
    Zmq {
        /// What was being done.
        what: &'static str,
        /// The error.
        source: zmq::Error,
    },
}

/// Why a manager stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManagerExit {
    /// The interchange said stop.
    Stopped,
    /// SIGTERM or SIGINT.
    Signalled,
    /// Nothing heard from the interchange within the threshold.
    InterchangeGone,
}
