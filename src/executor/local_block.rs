//! The local default's block: `mpirun ... strand-launcher` on this machine, one pool.
//!
//! Used by [`super::Executor::local`] when no executor configuration is given. The block is
//! killed when the [`LocalBlock`] is dropped, and dies with this process.

use crate::launcher_options::{LauncherOptions, TaskLaunch};
use crate::process::{die_with_parent, is_root, kill_child, log_stdio, on_path, sibling_binary, wait_child};
use crate::run_dir::{RunDir, LOCAL_BLOCK_LOG, LOCAL_BLOCK_OUT};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Instant;
use thiserror::Error;

/// The block id of the local default's one block.
pub const LOCAL_BLOCK_ID: &str = "local-0";

/// `mpirun` options for ranks on this machine only: more ranks than cores allowed, no binding,
/// shared memory and loopback only (no probing of network interfaces), and no single-copy
/// mechanism (CMA needs ptrace rights that containers often deny; copy-in/out works everywhere).
pub const LOCAL_MPIRUN_OPTIONS: [&str; 9] = [
    "--oversubscribe",
    "--bind-to",
    "none",
    "--mca",
    "btl",
    "self,vader",
    "--mca",
    "btl_vader_single_copy_mechanism",
    "none",
];

/// The `mpirun` argument list (after `mpirun`) that starts `ranks` copies of a program on this machine.
pub fn mpirun_args(ranks: u32) -> Vec<String> {
    let mut a = vec![];
    if is_root() {
        a.push("--allow-run-as-root".to_string());
    }
    a.extend(LOCAL_MPIRUN_OPTIONS.map(String::from));
    a.push("-n".to_string());
    a.push(ranks.to_string());
    a
}

/// The shape of the local block.
#[derive(Clone, Debug)]
pub struct LocalBlockOptions {
    /// Worker ranks; the block has one more rank for the manager.
    pub workers: u32,
    /// Ranks per pool; default: all ranks in one pool.
    pub pool_size: Option<u32>,
    /// Tries each worker holds beyond the one it runs.
    pub prefetch: u32,
    /// The `strand-launcher` binary.
    pub launcher: PathBuf,
    /// Send the block's output to `RUN_DIR/block-local-0.{out,log}` instead of inheriting it.
    pub log_to_files: bool,
}

impl Default for LocalBlockOptions {
    /// A laptop: one worker per core, the launcher next to this executable.
    fn default() -> LocalBlockOptions {
        let cores = std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1);
        LocalBlockOptions {
            workers: cores,
            pool_size: None,
            prefetch: 1,
            launcher: sibling_binary("strand-launcher"),
            log_to_files: true,
        }
    }
}

/// Why the local block could not start.
#[derive(Debug, Error)]
pub enum LocalBlockError {
    /// The launcher binary is missing.
    #[error(
        "strand-launcher not found at {0} (build it with `cargo build --release --workspace`, or pass --launcher PATH)"
    )]
    NoLauncher(PathBuf),
    /// `mpirun` is missing.
    #[error("mpirun not found in PATH (install Open MPI: apt-get install openmpi-bin libopenmpi-dev)")]
    NoMpirun,
    /// A log file could not be made.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// `mpirun` could not be started.
    #[error("cannot start mpirun: {0}")]
    Spawn(std::io::Error),
}

/// A running local block (killed on drop).
pub struct LocalBlock {
    child: Child,
}

impl LocalBlock {
    /// Check that the launcher and `mpirun` exist (before anything else is started).
    pub fn check(opts: &LocalBlockOptions) -> Result<(), LocalBlockError> {
        if !opts.launcher.is_file() {
            return Err(LocalBlockError::NoLauncher(opts.launcher.clone()));
        }
        if !on_path("mpirun") {
            return Err(LocalBlockError::NoMpirun);
        }
        Ok(())
    }

    /// Start the block under mpirun, reaching the interchange through the run's connection file
    /// (call [`LocalBlock::check`] first, before starting the interchange it will reach).
    pub fn start(run_dir: &RunDir, opts: &LocalBlockOptions) -> Result<LocalBlock, LocalBlockError> {
        let ranks = opts.workers + 1;
        let io = |name: &str| {
            log_stdio(run_dir.path(), name, opts.log_to_files)
                .map_err(|source| LocalBlockError::Io { path: run_dir.file(name), source })
        };
        let launcher = LauncherOptions {
            pool_size: Some(opts.pool_size.unwrap_or(ranks)),
            prefetch: Some(opts.prefetch),
            task_launch: Some(TaskLaunch::Mpirun),
            ..LauncherOptions::default()
        };
        let child = die_with_parent(&mut Command::new("mpirun"))
            .args(mpirun_args(ranks))
            .arg(&opts.launcher)
            .arg("--connection")
            .arg(run_dir.connection_file())
            .args(["--block-id", LOCAL_BLOCK_ID])
            .args(launcher.to_args())
            .stdin(Stdio::null())
            .stdout(io(LOCAL_BLOCK_OUT)?)
            .stderr(io(LOCAL_BLOCK_LOG)?)
            .spawn()
            .map_err(LocalBlockError::Spawn)?;
        Ok(LocalBlock { child })
    }

    /// Wait for the block to end (the interchange stops it) until `deadline`; kill it past that.
    pub fn wait(mut self, deadline: Instant) -> Option<std::process::ExitStatus> {
        wait_child(&mut self.child, deadline)
    }
}

impl Drop for LocalBlock {
    fn drop(&mut self) {
        kill_child(&mut self.child);
    }
}
