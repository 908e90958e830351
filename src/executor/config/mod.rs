//! Executor configuration: a TOML file of one or more `[[executor]]` tables, each naming a
//! provider (where blocks run), a launch command (how a block starts `strand-launcher`), the
//! shape of a block, the strategy's numbers and the scheduler's options. Code stays free of
//! site details; `examples/configs/` has one file per kind of machine and `docs/executors.md`
//! is the reference for every key.
//!
//! Parsing never panics: every problem is a [`ConfigError`] that names the file, the executor
//! (by label, or by position when it has none), the key and what it accepts.

use super::launch::{step_layout, LaunchKind, LAUNCH_NAMES};
use super::scaler::ScalerConfig;
use super::strategy::StrategyParams;
use crate::launcher_options::LauncherOptions;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;

mod check;

pub use check::{format_walltime, parse_walltime};

/// Where blocks run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProviderKind {
    /// On this machine: the block script run by `bash`.
    Local,
    /// Slurm: `sbatch`, `sacct`/`squeue`, `scancel`.
    Slurm,
    /// PBS Pro / OpenPBS: `qsub`, `qstat`, `qdel`.
    Pbs,
}

/// The accepted provider names, in the order errors list them.
pub const PROVIDER_NAMES: [&str; 3] = ["local", "slurm", "pbs"];

impl ProviderKind {
    /// The provider named `s` in a configuration file.
    pub fn parse(s: &str) -> Option<ProviderKind> {
        Some(match s {
            "local" => ProviderKind::Local,
            "slurm" => ProviderKind::Slurm,
            "pbs" => ProviderKind::Pbs,
            _ => return None,
        })
    }

    /// Its name in a configuration file.
    pub fn name(self) -> &'static str {
        match self {
            ProviderKind::Local => "local",
            ProviderKind::Slurm => "slurm",
            ProviderKind::Pbs => "pbs",
        }
    }

    /// The launch command used when the executor names none.
    pub fn default_launch(self) -> LaunchKind {
        match self {
            ProviderKind::Local => LaunchKind::Mpirun,
            ProviderKind::Slurm => LaunchKind::Srun,
            ProviderKind::Pbs => LaunchKind::Mpiexec,
        }
    }
}

/// Batch-system options of an executor (`[executor.scheduler]`).
#[derive(Clone, Debug, PartialEq)]
pub struct SchedulerOptions {
    /// Slurm partition.
    pub partition: Option<String>,
    /// Account (project) charged: Slurm `--account`, PBS `-A`.
    pub account: Option<String>,
    /// Slurm quality of service.
    pub qos: Option<String>,
    /// Slurm node features (`--constraint`, e.g. `gpu` on Perlmutter).
    pub constraint: Option<String>,
    /// GPUs per node: asked of the scheduler and passed to the launcher (`--gpus-per-node`).
    pub gpus_per_node: Option<u32>,
    /// Whole nodes only: Slurm `--exclusive`, PBS `place=...:excl`.
    pub exclusive: bool,
    /// The `srun --mpi=` plugin (pmix by default; cray_shasta on Cray EX).
    pub mpi: String,
    /// PBS queue (`-q`).
    pub queue: Option<String>,
    /// More resources for each PBS select chunk (e.g. `system=polaris` or `ncpus=64`).
    pub select: Option<String>,
    /// Raw directives, one per line: `#SBATCH <extra>` or `#PBS <extra>`.
    pub extra: Vec<String>,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        SchedulerOptions {
            partition: None,
            account: None,
            qos: None,
            constraint: None,
            gpus_per_node: None,
            exclusive: false,
            mpi: "pmix".into(),
            queue: None,
            select: None,
            extra: vec![],
        }
    }
}

/// One executor, checked and with every default filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct ExecutorConfig {
    /// Unique name; block ids are `LABEL-N`.
    pub label: String,
    /// Where blocks run.
    pub provider: ProviderKind,
    /// How a block starts the launcher.
    pub launch: LaunchKind,
    /// Nodes per block.
    pub nodes_per_block: u32,
    /// Launcher ranks per node.
    pub ranks_per_node: u32,
    /// Ranks per pool (`--pool-size`); `None`: one pool per node.
    pub pool_size: Option<u32>,
    /// Independent MPI job steps per block (fault domains).
    pub steps_per_block: u32,
    /// The strategy's numbers: `init_blocks`, `min_blocks`, `max_blocks`, `parallelism`,
    /// `max_idletime`, `strategy_period` and `block_connect_timeout`.
    pub strategy: StrategyParams,
    /// Walltime of a block in seconds; 0 = none (local provider only).
    pub walltime_s: u64,
    /// Managers start draining this many seconds before the walltime ends.
    pub drain_margin_s: u64,
    /// Shell lines run at the top of the block script (module loads, environments).
    pub worker_init: String,
    /// The `strand-launcher` binary as the compute nodes see it.
    pub launcher_path: String,
    /// The Python that Python function tries run in on the workers (default: the driver's).
    pub python: Option<String>,
    /// More options for every launcher (`[executor.launcher]`); its pool size, walltime and
    /// drain margin come from the keys above, set when the block script is written.
    pub launcher: LauncherOptions,
    /// More options for the launch command (srun, mpiexec, ...), after Strand's own.
    pub launch_args: Vec<String>,
    /// The address the interchange binds and the blocks connect to.
    pub address: String,
    /// Batch-system options.
    pub scheduler: SchedulerOptions,
}

/// A configuration file: its executors, in file order.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file name, as errors print it.
    pub origin: String,
    /// The executors.
    pub executors: Vec<ExecutorConfig>,
}

/// Why a configuration could not be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or has a top-level key other than `executor`.
    #[error("{origin}: {message}")]
    File {
        /// The file name.
        origin: String,
        /// What is wrong (with a line and column when the parser gives one).
        message: String,
    },
    /// One executor's key has a bad value, or is unknown.
    #[error("{origin}: executor {executor}: {message}")]
    Key {
        /// The file name.
        origin: String,
        /// `"label"`, or `#N` (1-based) when it has no usable label.
        executor: String,
        /// The key (`provider`, `scheduler.qos`, ...).
        key: String,
        /// What is wrong: the key, its value and what is accepted.
        message: String,
    },
    /// `--executor LABEL` names no executor of the file.
    #[error("{origin}: no executor labelled {label:?}; the file has {}", .labels.join(", "))]
    NoSuchExecutor {
        /// The file name.
        origin: String,
        /// The label asked for.
        label: String,
        /// The labels it has.
        labels: Vec<String>,
    },
}

impl ConfigError {
    /// The key an error is about, if it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Key { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// Most job steps per block: beyond Slurm's own limits long before, and it bounds the script.
pub const MAX_STEPS: u32 = 10_000;

/// Keys of an `[[executor]]` table, as the unknown-key error lists them.
pub const EXECUTOR_KEYS: [&str; 23] = [
    "label",
    "provider",
    "launch",
    "nodes_per_block",
    "ranks_per_node",
    "pool_size",
    "steps_per_block",
    "init_blocks",
    "min_blocks",
    "max_blocks",
    "parallelism",
    "walltime",
    "max_idletime",
    "drain_margin",
    "strategy_period",
    "block_connect_timeout",
    "worker_init",
    "launcher_path",
    "python",
    "launcher",
    "launch_args",
    "address",
    "scheduler",
];

/// Keys of an `[executor.scheduler]` table.
pub const SCHEDULER_KEYS: [&str; 10] =
    ["partition", "account", "qos", "constraint", "gpus_per_node", "exclusive", "mpi", "queue", "select", "extra"];

/// Keys of an `[executor.launcher]` table (the launcher's flags, `_` for `-`). Its pool size,
/// walltime and drain margin are the executor's own keys, and its connection and block id are
/// Strand's to set.
pub const LAUNCHER_KEYS: [&str; 10] = [
    "gpus_per_node",
    "bind",
    "task_launch",
    "slots_per_worker",
    "prefetch",
    "local_slots",
    "worker_heartbeat",
    "worker_threshold",
    "connect_timeout",
    "resource_interval",
];

impl ExecutorConfig {
    /// Blocks are `srun` job steps of the Slurm allocation `strand` itself runs in
    /// (`provider = "local"` with `launch = "srun"`): started here, running on the
    /// allocation's nodes.
    pub fn blocks_are_job_steps(&self) -> bool {
        self.provider == ProviderKind::Local && self.launch == LaunchKind::Srun
    }

    /// Every rank of a block runs on this machine (the local provider, but not job steps).
    pub fn blocks_on_this_machine(&self) -> bool {
        self.provider == ProviderKind::Local && !self.blocks_are_job_steps()
    }

    /// Task slots a block brings, estimated from its shape until its managers say so.
    ///
    /// Each pool has one manager; its other ranks are workers with `--slots-per-worker`
    /// slots each; a pool of one rank runs `--local-slots` tasks itself.
    pub fn slots_per_block(&self) -> u32 {
        let ranks = self.nodes_per_block.saturating_mul(self.ranks_per_node);
        // One pool per node and step, unless pool_size says otherwise.
        let pools = match self.pool_size {
            Some(p) => ranks.div_ceil(p.max(1)),
            None => self.nodes_per_block.max(self.steps_per_block),
        }
        .clamp(1, ranks.max(1));
        let workers = ranks.saturating_sub(pools);
        let slots = if workers == 0 {
            pools.saturating_mul(self.launcher.local_slots())
        } else {
            workers.saturating_mul(self.launcher.slots_per_worker())
        };
        slots.max(1)
    }

    /// What [`super::scaler::Scaler::start`] needs: blocks from [`super::script::block_script`]
    /// for the interchange of `run_dir` (its connection file, an absolute path that the
    /// compute nodes can read), with their files there too.
    pub fn scaler_config(&self, run_dir: &crate::run_dir::RunDir) -> ScalerConfig {
        let cfg = self.clone();
        let conn_file = run_dir.connection_file();
        ScalerConfig {
            label: self.label.clone(),
            slots_per_block: self.slots_per_block(),
            params: self.strategy.clone(),
            nodes_per_block: self.nodes_per_block,
            walltime_s: self.walltime_s,
            run_dir: run_dir.clone(),
            script: Box::new(move |id| super::script::block_script(&cfg, &conn_file, id)),
        }
    }

    /// The provider that runs this executor's blocks.
    pub fn provider(&self) -> Box<dyn crate::provider::Provider> {
        match self.provider {
            ProviderKind::Local => Box::new(crate::provider::local::LocalProvider::new()),
            ProviderKind::Slurm => Box::new(crate::provider::slurm::SlurmProvider::new()),
            ProviderKind::Pbs => Box::new(crate::provider::pbs::PbsProvider::new()),
        }
    }
}

#[cfg(test)]
mod tests;
