//! One file per subcommand: its clap arguments (`Args`) and its `exec`, which returns the
//! process's exit code. What they share is here.

pub mod bench;
pub mod interchange;
pub mod manager_mode;
pub mod map;
pub mod run;
pub mod shutdown;
pub mod status;
pub mod submit;

use anyhow::{bail, Result};
use std::path::PathBuf;
use std::time::Duration;

/// A positive number of seconds from an option, or an error that names the option.
pub fn seconds(what: &str, s: f64) -> Result<Duration> {
    if !(s.is_finite() && s > 0.0) {
        bail!("{what} must be a positive number of seconds, got {s}");
    }
    Ok(Duration::from_secs_f64(s))
}

/// Where the tasks go: an existing interchange, the local default, or an executor configuration.
#[derive(clap::Args, Clone)]
pub struct TargetArgs {
    /// Connection file of a running interchange. Without it, a local interchange and block are started.
    #[arg(long, value_name = "FILE")]
    connection: Option<PathBuf>,
    /// Worker ranks of the local block (default: one per core).
    #[arg(long, value_name = "N")]
    workers: Option<u32>,
    /// Tries each local worker holds beyond the one it runs [default: 1 for run, 64 for bench].
    #[arg(long, value_name = "N")]
    prefetch: Option<u32>,
    /// Run directory of the local interchange and block (default: runs/<time>-<pid>).
    #[arg(long, value_name = "DIR")]
    run_dir: Option<PathBuf>,
    /// The strand-launcher binary for the local block (default: next to `strand`).
    #[arg(long, value_name = "PATH")]
    launcher: Option<PathBuf>,
    /// Executor configuration (TOML; see docs/executors.md): start an interchange here and let
    /// the strategy submit blocks through the executor's provider, instead of one local block.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["connection", "workers"])]
    config: Option<PathBuf>,
    /// The executor of --config to use, by label (default: the first in the file).
    #[arg(long, value_name = "LABEL", requires = "config")]
    executor: Option<String>,
}

impl From<&TargetArgs> for strand::executor::Target {
    fn from(a: &TargetArgs) -> strand::executor::Target {
        strand::executor::Target {
            connection: a.connection.clone(),
            workers: a.workers,
            prefetch: a.prefetch,
            run_dir: a.run_dir.clone(),
            launcher: a.launcher.clone(),
            config: a.config.clone(),
            executor: a.executor.clone(),
        }
    }
}

impl TargetArgs {
    /// Whether the tasks go to an interchange started elsewhere (`--connection`).
    pub fn connection_given(&self) -> bool {
        self.connection.is_some()
    }

    /// Set the local block's worker ranks (`strand map -j`).
    pub fn set_workers(&mut self, n: u32) {
        self.workers = Some(n);
    }
}

/// Start what the target arguments name.
pub fn open(t: &TargetArgs, default_prefetch: u32) -> Result<strand::executor::Executor> {
    Ok(strand::executor::Executor::open(&t.into(), default_prefetch)?)
}
