//! Executors: an interchange and the blocks of `strand-launcher` that serve it.
//!
//! [`Executor`] is what `strand run`, `strand map`, `strand bench`, the elasticity
//! experiment and the tests start: the local default (an interchange and one `mpirun` block
//! on this machine), an executor configuration (an interchange here and the scaler growing
//! and shrinking blocks through a provider), or an interchange that is already running.
//!
//! `strategy` decides how many blocks to hold (plain data, tested without a scheduler);
//! `scaler` runs it against a provider; `config` reads executors from TOML; `launch` builds the
//! command that starts the launcher over a block's nodes; `script` writes a block's batch
//! script; `local_block` is the local default's block.

pub mod config;
pub mod launch;
pub mod local_block;
pub mod scaler;
pub mod script;
pub mod strategy;
pub mod target;

pub use target::Target;

use crate::block::BlockId;
use crate::client::{Client, ClientError};
use crate::connection::{ConnectionError, ConnectionInfo};
use crate::dfk::Dfk;
use crate::interchange::process::{InterchangeOptions, InterchangeProcess, ProcessError};
use crate::provider::Provider;
use crate::run_dir::{RunDir, LOCAL_BLOCK_LOG};
use crate::wire::StatusReport;
use config::{ExecutorConfig, ProviderKind};
use local_block::{LocalBlock, LocalBlockError, LocalBlockOptions};
use scaler::{Scaler, ScalerConfig};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use thiserror::Error;

/// Why an executor could not start, or gave up.
#[derive(Debug, Error)]
pub enum ExecutorError {
    /// The interchange process did not start.
    #[error("starting the interchange: {0}")]
    Interchange(#[from] ProcessError),
    /// The local block did not start.
    #[error("starting the local block: {0}")]
    LocalBlock(#[from] LocalBlockError),
    /// A connection file could not be read.
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    /// The interchange did not answer.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The launcher named by an executor configuration does not exist.
    #[error(
        "{origin}: executor {label:?}: launcher_path = {path:?} is not a file (build it with `cargo build --release \
         --workspace`, or pass --launcher PATH)"
    )]
    NoLauncher {
        /// The configuration file.
        origin: String,
        /// The executor's label.
        label: String,
        /// The path it names.
        path: String,
    },
    /// An executor whose blocks are job steps of strand's own allocation, outside of one.
    #[error(
        "{origin}: executor {label:?}: provider = \"local\" with launch = \"srun\" runs each block as a job step of \
         the Slurm allocation strand runs in, but this process is in none (SLURM_JOB_ID is not set): run strand \
         inside sbatch or salloc (job-scripts/slurm-allocation.sbatch), or use provider = \"slurm\""
    )]
    NoAllocation {
        /// The configuration file.
        origin: String,
        /// The executor's label.
        label: String,
    },
    /// The local block started but its manager never registered.
    #[error("the local block did not register within {secs} s; see {log}")]
    NotRegistered {
        /// How long we waited.
        secs: u64,
        /// The block's log.
        log: String,
    },
    /// An executor configuration file is wrong (the message names the file, executor and key).
    #[error(transparent)]
    Config(Box<config::ConfigError>),
    /// A run directory could not be made.
    #[error(transparent)]
    RunDir(#[from] crate::run_dir::RunDirError),
    /// An option is out of range; the message names it.
    #[error("{0}")]
    Invalid(String),
    /// A benchmark needs warm blocks and they did not come.
    #[error("{0}")]
    NotWarm(String),
    /// The scaler gave up: every block failed and none ever connected.
    #[error("{why}; the block scripts and their output are in {run_dir}")]
    Failed {
        /// The scaler's reason.
        why: String,
        /// Where to look.
        run_dir: String,
    },
}

impl ExecutorConfig {
    /// Refuse a local executor whose `launcher_path` is not a file, or whose blocks are job
    /// steps while this process is in no Slurm allocation, naming `origin` (its configuration
    /// file), before anything is started or created.
    pub fn check_launcher(&self, origin: &str) -> Result<(), ExecutorError> {
        if self.provider == ProviderKind::Local && !Path::new(&self.launcher_path).is_file() {
            return Err(ExecutorError::NoLauncher {
                origin: origin.into(),
                label: self.label.clone(),
                path: self.launcher_path.clone(),
            });
        }
        // Slurm's own variable: outside an allocation, srun would queue a new job per block.
        if self.blocks_are_job_steps() && std::env::var_os("SLURM_JOB_ID").is_none_or(|v| v.is_empty()) {
            return Err(ExecutorError::NoAllocation { origin: origin.into(), label: self.label.clone() });
        }
        Ok(())
    }
}

/// How to start the interchange of `config`'s blocks.
fn interchange_options(config: &ExecutorConfig) -> InterchangeOptions {
    if config.blocks_on_this_machine() {
        InterchangeOptions { address: config.address.clone(), ..InterchangeOptions::local() }
    } else {
        // Blocks on compute nodes: the interchange's own heartbeat defaults, not the local ones.
        InterchangeOptions::remote(config.address.clone())
    }
}

/// An interchange and the blocks that serve it, torn down by [`Executor::stop`] (or on drop).
pub struct Executor {
    run_dir: RunDir,
    conn: ConnectionInfo,
    /// The interchange, when this executor started it.
    interchange: Option<InterchangeProcess>,
    /// The local default's block.
    block: Option<LocalBlock>,
    /// The scaler submitting blocks through a provider.
    scaler: Option<Scaler>,
    /// The executor configuration, when started from one.
    config: Option<ExecutorConfig>,
    /// Task slots, as far as they are known before the managers say so (0: unknown).
    slots: u32,
    /// The connection file given to [`Executor::connect`] (others use the run directory's).
    connection_file: Option<PathBuf>,
}

impl Executor {
    /// The local default: an interchange on loopback and one block of `block.workers` worker
    /// ranks under `mpirun`, waited for until its manager has registered.
    pub fn local(run_dir: RunDir, block: &LocalBlockOptions) -> Result<Executor, ExecutorError> {
        // Check first: a missing launcher must not leave an interchange behind.
        LocalBlock::check(block)?;
        let ix = InterchangeProcess::start(&run_dir, &InterchangeOptions::local())?;
        let started = LocalBlock::start(&run_dir, block)?;
        let exe = Executor {
            conn: ix.conn.clone(),
            run_dir,
            interchange: Some(ix),
            block: Some(started),
            scaler: None,
            config: None,
            slots: block.workers,
            connection_file: None,
        };
        let wait = Duration::from_secs(60);
        if exe.wait_for_managers(1, wait)? == 0 {
            return Err(ExecutorError::NotRegistered {
                secs: wait.as_secs(),
                log: exe.run_dir.file(LOCAL_BLOCK_LOG).display().to_string(),
            });
        }
        Ok(exe)
    }

    /// An interchange here with no block of its own; the scaler submits `config`'s blocks
    /// to it through its provider as the strategy asks.
    /// Check the configuration with [`ExecutorConfig::check_launcher`] first: blocks of a
    /// launcher that is not there fail, and the scaler then gives up (see [`Executor::failure`]).
    pub fn from_config(run_dir: RunDir, config: ExecutorConfig) -> Result<Executor, ExecutorError> {
        let scaler_cfg = config.scaler_config(&run_dir);
        let mut exe = Executor::scaled(run_dir, &interchange_options(&config), config.provider(), scaler_cfg)?;
        exe.config = Some(config);
        Ok(exe)
    }

    /// An interchange here with no blocks and no scaler: another system submits and scales
    /// `config`'s blocks (Parsl's strategy through its providers), each running
    /// [`Executor::block_command`].
    pub fn serve(run_dir: RunDir, config: ExecutorConfig) -> Result<Executor, ExecutorError> {
        if config.blocks_are_job_steps() {
            return Err(ExecutorError::Invalid(format!(
                "executor {:?}: provider = \"local\" with launch = \"srun\" runs blocks as job steps of the \
                 allocation strand runs in, which only Strand's own scaler does; use launch = \"mpirun\" or a \
                 batch provider",
                config.label
            )));
        }
        if config.steps_per_block > 1 {
            return Err(ExecutorError::Invalid(format!(
                "executor {:?}: steps_per_block = {} needs Strand's own block script, which runs the steps and \
                 waits for them; a block another system submits runs one launch command",
                config.label, config.steps_per_block
            )));
        }
        let ix = InterchangeProcess::start(&run_dir, &interchange_options(&config))?;
        Ok(Executor {
            conn: ix.conn.clone(),
            run_dir,
            interchange: Some(ix),
            block: None,
            scaler: None,
            slots: config.slots_per_block(),
            config: Some(config),
            connection_file: None,
        })
    }

    /// The command block `block_id` runs, for an executor started by [`Executor::serve`] or
    /// from a configuration (`None` for the local default and a connected one).
    pub fn block_command(&self, block_id: &BlockId) -> Option<String> {
        let cfg = self.config.as_ref()?;
        Some(script::block_command(cfg, &self.connection_file(), block_id))
    }

    /// An interchange here and a scaler with its own provider and block script (the
    /// elasticity experiment and the tests; [`Executor::from_config`] builds these from TOML).
    pub fn scaled(
        run_dir: RunDir,
        ix: &InterchangeOptions,
        provider: Box<dyn Provider>,
        cfg: ScalerConfig,
    ) -> Result<Executor, ExecutorError> {
        let ix = InterchangeProcess::start(&run_dir, ix)?;
        let slots = cfg.slots_per_block;
        let scaler = Scaler::start(&ix.conn, provider, cfg);
        Ok(Executor {
            conn: ix.conn.clone(),
            run_dir,
            interchange: Some(ix),
            block: None,
            scaler: Some(scaler),
            config: None,
            slots,
            connection_file: None,
        })
    }

    /// A scaler for an interchange someone else runs (e.g. a test's own); nothing else is started.
    pub fn attach_scaled(
        run_dir: RunDir,
        conn: &ConnectionInfo,
        provider: Box<dyn Provider>,
        cfg: ScalerConfig,
    ) -> Executor {
        let slots = cfg.slots_per_block;
        let scaler = Scaler::start(conn, provider, cfg);
        Executor {
            conn: conn.clone(),
            run_dir,
            interchange: None,
            block: None,
            scaler: Some(scaler),
            config: None,
            slots,
            connection_file: None,
        }
    }

    /// A running interchange, by its connection file; this executor starts and stops nothing.
    pub fn connect(run_dir: RunDir, connection_file: &Path, slots: u32) -> Result<Executor, ExecutorError> {
        let conn = ConnectionInfo::load(connection_file)?;
        let connection_file = Some(connection_file.to_path_buf());
        Ok(Executor {
            run_dir,
            conn,
            interchange: None,
            block: None,
            scaler: None,
            config: None,
            slots,
            connection_file,
        })
    }

    /// The connection file clients use: the one given to `connect`, else the run directory's.
    pub fn connection_file(&self) -> PathBuf {
        self.connection_file.clone().unwrap_or_else(|| self.run_dir.connection_file())
    }

    /// Where the interchange listens.
    pub fn connection(&self) -> &ConnectionInfo {
        &self.conn
    }

    /// The run directory (absolute).
    pub fn run_dir(&self) -> &RunDir {
        &self.run_dir
    }

    /// Task slots known before the managers register (per block with a configuration; 0: unknown).
    pub fn slots(&self) -> u32 {
        self.slots
    }

    /// The executor configuration it was started from.
    pub fn config(&self) -> Option<&ExecutorConfig> {
        self.config.as_ref()
    }

    /// The scaler, when blocks come from a provider.
    pub fn scaler(&self) -> Option<&Scaler> {
        self.scaler.as_ref()
    }

    /// The interchange's process id, when this executor started it (for memory and CPU figures).
    pub fn interchange_pid(&self) -> Option<u32> {
        self.interchange.as_ref().map(InterchangeProcess::pid)
    }

    /// Wait until `n` managers have registered, or `timeout` passes; returns how many did.
    /// Ends early with the scaler's reason if it gave up (no block will ever connect).
    pub fn wait_for_managers(&self, n: usize, timeout: Duration) -> Result<usize, ExecutorError> {
        let (last, _) = self.poll_status(timeout, |s| s.managers.len() >= n)?;
        Ok(last.map_or(0, |s| s.managers.len()))
    }

    /// Wait until the registered managers offer at least `slots` task slots in all (a block
    /// of several pools registers them one by one); returns the managers registered then,
    /// `NotWarm` past `timeout`.
    pub fn wait_for_slots(&self, slots: u32, timeout: Duration) -> Result<usize, ExecutorError> {
        let offered = |s: &StatusReport| s.managers.iter().map(|m| m.slots).sum::<u32>();
        match self.poll_status(timeout, |s| offered(s) >= slots)? {
            (Some(s), true) => Ok(s.managers.len()),
            (last, _) => Err(ExecutorError::NotWarm(format!(
                "{} of {slots} task slots registered within {timeout:?}; see {}",
                last.as_ref().map_or(0, offered),
                self.run_dir.path().display()
            ))),
        }
    }

    /// Ask the interchange for its status until `done` says yes or `timeout` passes (failing
    /// early if the scaler gave up); the last status seen and whether `done` said yes.
    fn poll_status(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&StatusReport) -> bool,
    ) -> Result<(Option<StatusReport>, bool), ExecutorError> {
        let mut client = Client::connect(&self.conn)?;
        let deadline = Instant::now() + timeout;
        let mut last = None;
        while Instant::now() < deadline {
            if let Ok(s) = client.status(Duration::from_secs(5)) {
                let yes = done(&s);
                last = Some(s);
                if yes {
                    return Ok((last, true));
                }
            }
            if let Some(e) = self.failure() {
                return Err(e);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok((last, false))
    }

    /// Why the run cannot go on: the scaler gave up (every block failed, none ever connected).
    pub fn failure(&self) -> Option<ExecutorError> {
        let why = self.scaler.as_ref().and_then(|s| s.state().error)?;
        Some(ExecutorError::Failed { why, run_dir: self.run_dir.path().display().to_string() })
    }

    /// Benchmarks measure warm blocks: with a configuration, wait until each of its
    /// `init_blocks` has a registered manager (bounded by its `block_connect_timeout`).
    pub fn wait_warm(&self) -> Result<(), ExecutorError> {
        let Some(exe) = &self.config else { return Ok(()) };
        if exe.strategy.init_blocks == 0 {
            return Err(ExecutorError::NotWarm(format!(
                "executor {:?} has init_blocks = 0: a benchmark measures warm blocks, so set init_blocks to the \
                 number of blocks to measure",
                exe.label
            )));
        }
        let blocks = |s: &StatusReport| s.managers.iter().map(|m| &m.block.0).collect::<HashSet<_>>().len();
        let timeout = exe.strategy.block_connect_timeout + exe.strategy.period * 2;
        match self.poll_status(timeout, |s| blocks(s) >= exe.strategy.init_blocks as usize)? {
            (_, true) => Ok(()),
            (last, false) => Err(ExecutorError::NotWarm(format!(
                "{} of executor {:?}'s {} initial blocks connected within {:?}; see {}",
                last.as_ref().map_or(0, blocks),
                exe.label,
                exe.strategy.init_blocks,
                exe.strategy.block_connect_timeout,
                self.run_dir.path().display()
            ))),
        }
    }

    /// Wait for every task of `dfk` (or until `timeout`), in slices, so that an executor whose
    /// every block failed ends the wait with its reason instead of waiting for blocks that will
    /// never come. Returns the tasks not finished.
    pub fn wait_all(&self, dfk: &Dfk, timeout: Option<Duration>) -> Result<usize, ExecutorError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let slice = Duration::from_millis(500);
            let wait = deadline.map_or(slice, |d| d.saturating_duration_since(Instant::now()).min(slice));
            let left = dfk.wait_all(Some(wait));
            if left == 0 || deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(left);
            }
            if let Some(e) = self.failure() {
                return Err(e);
            }
        }
    }

    /// Tear down what this executor started: cancel its blocks (the scaler waits, bounded, for
    /// their jobs to end), then stop the interchange (it stops every manager first).
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        let timeout = Duration::from_secs(20);
        if let Some(s) = self.scaler.take() {
            s.stop();
        }
        let deadline = Instant::now() + timeout;
        if let Some(ix) = self.interchange.take() {
            ix.stop(timeout);
        }
        if let Some(b) = self.block.take() {
            b.wait(deadline);
        }
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        self.shut_down();
    }
}
