//! One file per subcommand: its clap arguments (`Args`) and its `exec`, which returns the
//! process's exit code. What they share is here.

pub mod bench;
pub mod interchange;
pub mod manager_mode;
pub mod map;
pub mod report;
pub mod run;
pub mod scaling;
pub mod shutdown;
pub mod status;
pub mod submit;
pub mod top;

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

/// Whether a run keeps its run database.
#[derive(clap::Args, Clone)]
pub struct MonitoringArgs {
    /// Do not write the run database (RUN_DIR/monitoring.db: every task, try, manager and
    /// block, read by `strand report`). It is on by default; it costs 5-8 µs of CPU per task
    /// (a third to half the rate of no-op tasks on 2 cores, docs/monitoring.md).
    #[arg(long)]
    no_monitoring: bool,
}

impl MonitoringArgs {
    /// The run database's configuration for a run on `exe`, unless `--no-monitoring`.
    pub fn config(&self, exe: &strand::executor::Executor) -> Option<strand::dfk::MonitoringConfig> {
        let command: Vec<String> = std::env::args().map(|a| strand::text::shell_quote(&a)).collect();
        (!self.no_monitoring).then(|| strand::dfk::MonitoringConfig::in_run_dir(exe.run_dir(), command.join(" ")))
    }
}

/// Say on stderr what the DFK dropped from the interchange, if anything (a frame that failed
/// its checks, or a replay): the interchange's own drops are in `strand status`, these are not.
pub fn say_dropped(dfk: &strand::dfk::Dfk) {
    let dropped = dfk.dropped();
    if dropped.total() > 0 {
        eprintln!("strand: warning: {} frame(s) from the interchange were dropped: {dropped}", dropped.total());
    }
}

/// After the executor stopped: bring the database's blocks up to date (their last events are
/// written as the executor stops) and say on stderr if the database could not be written
/// (`error`, from `Dfk::shutdown`); the run itself went on either way.
pub fn finish_monitoring(cfg: Option<&strand::dfk::MonitoringConfig>, error: Option<String>) {
    let mirrored = match cfg {
        Some(strand::dfk::MonitoringConfig { db, blocks: Some(blocks), .. }) if error.is_none() => {
            strand::monitoring::db::mirror_blocks(db, blocks).err().map(|e| e.to_string())
        }
        _ => None,
    };
    if let Some(e) = error.or(mirrored) {
        eprintln!("strand: warning: the run database is incomplete: {e}");
    }
}
