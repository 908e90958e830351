//! Benchmarks through the whole path (DFK -> interchange -> launcher -> workers and back),
//! one file each; every one prints one JSON line (its report) from `strand bench NAME`.
//!
//! They run on any [`crate::executor::Executor`]: the local default, an executor
//! configuration (warm blocks of a cluster), or a running interchange. `sim` and `memory`
//! measure the interchange and the DFK alone; `elasticity` runs the strategy on local blocks.

pub mod chain;
pub mod commands;
pub mod elasticity;
pub mod gnu_parallel;
pub mod json_lines;
pub mod latency;
pub mod load;
pub mod memory;
pub mod mixed;
pub mod monitoring;
pub mod programs;
pub mod scaling;
pub mod sim;
pub mod simulator;
pub mod throughput;

use crate::dfk::Call;

/// The task every no-op benchmark runs: the launcher's built-in `noop` function.
pub(crate) fn noop() -> Call {
    Call::function("noop", Vec::new())
}

/// Why a benchmark could not run (a task that fails is counted in its report, not here).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// An option is out of range; the message names it and what it accepts.
    #[error("{0}")]
    Invalid(String),
    /// The executor (interchange, blocks) could not start or gave up.
    #[error(transparent)]
    Executor(#[from] crate::executor::ExecutorError),
    /// An interchange process could not start.
    #[error("starting the interchange: {0}")]
    Interchange(#[from] crate::interchange::process::ProcessError),
    /// The DFK could not connect.
    #[error("connecting the DFK: {0}")]
    Dfk(#[from] crate::dfk::DfkError),
    /// The interchange did not answer.
    #[error(transparent)]
    Client(#[from] crate::client::ClientError),
    /// A run directory could not be made.
    #[error(transparent)]
    RunDir(#[from] crate::run_dir::RunDirError),
    /// Something did not happen in time (managers did not register, tasks did not finish).
    #[error("{0}")]
    Stalled(String),
}

/// Refuse an option that must be at least 1.
pub fn at_least_one(name: &str, v: u64) -> Result<(), BenchError> {
    if v == 0 {
        return Err(BenchError::Invalid(format!("{name} must be at least 1")));
    }
    Ok(())
}
