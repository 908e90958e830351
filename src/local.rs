//! The local default: an interchange and one block (`mpirun ... strand-launcher`) on this machine.
//!
//! Used by `strand run` and `strand bench` when no `--connection` is given, and by
//! the integration tests. Every child is killed when the [`LocalRun`] is dropped.

use crate::client::Client;
use crate::connection::{ConnectionInfo, CONNECTION_FILE};
use crate::wire::ClientMsg;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use thiserror::Error;

/// What to start.
#[derive(Clone, Debug)]
pub struct LocalOptions {
    /// Run directory (connection file, logs).
    pub run_dir: PathBuf,
    /// Worker ranks; the block has one more rank for the manager.
    pub workers: u32,
    /// Ranks per pool; default: all ranks in one pool.
    pub pool_size: Option<u32>,
    /// Tries each worker holds beyond the one it runs.
    pub prefetch: u32,
    /// The `strand-launcher` binary.
    pub launcher: PathBuf,
    /// Extra arguments for the interchange (e.g. heartbeat settings).
    pub interchange_args: Vec<String>,
    /// Send the children's stderr to `run_dir/*.log` instead of inheriting it.
    pub log_to_files: bool,
    /// Address the interchange binds and advertises: loopback for blocks on this machine, the
    /// host's name (or an interface's address) when blocks run on compute nodes.
    pub address: String,
}

impl LocalOptions {
    /// Defaults for a laptop: one worker per core, launcher next to this executable.
    pub fn new(run_dir: PathBuf) -> LocalOptions {
        let cores = std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1);
        LocalOptions {
            run_dir,
            workers: cores,
            pool_size: None,
            prefetch: 1,
            launcher: sibling_binary("strand-launcher"),
            // Local and cheap: notice a dead manager (or interchange) within seconds.
            interchange_args: ["--heartbeat-period", "1", "--heartbeat-threshold", "10"].map(String::from).to_vec(),
            log_to_files: true,
            address: "127.0.0.1".into(),
        }
    }
}

/// Why the local default could not start.
#[derive(Debug, Error)]
pub enum LocalError {
    /// A process could not be started.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// What we tried to run.
        program: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file or directory problem.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The interchange did not come up.
    #[error("the interchange did not write {path} within {secs} s; see {log}")]
    NoConnectionFile {
        /// The file we waited for.
        path: PathBuf,
        /// How long.
        secs: u64,
        /// Its log.
        log: String,
    },
    /// The interchange exited early.
    #[error("the interchange exited with {status} before it was ready; see {log}")]
    InterchangeDied {
        /// Its exit status.
        status: std::process::ExitStatus,
        /// Its log.
        log: String,
    },
    /// The launcher binary is missing.
    #[error(
        "strand-launcher not found at {0} (build it with `cargo build --release --workspace`, or pass --launcher PATH)"
    )]
    NoLauncher(PathBuf),
    /// `mpirun` is missing.
    #[error("mpirun not found in PATH (install Open MPI: apt-get install openmpi-bin libopenmpi-dev)")]
    NoMpirun,
}

/// Children of a local run die with the process that started them (SIGTERM on its death,
/// even by SIGKILL), so a killed `strand run` leaves no interchange or block behind.
pub fn die_with_parent(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches only the child being started.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        })
    }
}

/// A binary that sits next to the running executable (cargo puts all of a workspace's binaries together).
pub fn sibling_binary(name: &str) -> PathBuf {
    let here = std::env::current_exe().ok();
    let dir = here.as_deref().and_then(Path::parent).map(Path::to_path_buf).unwrap_or_default();
    // Test executables live in target/<profile>/deps; the binaries one level up.
    let candidates = [dir.join(name), dir.parent().map(|p| p.join(name)).unwrap_or_default()];
    candidates.iter().find(|p| p.is_file()).cloned().unwrap_or_else(|| dir.join(name))
}

/// Whether this process runs as root (Open MPI then needs `--allow-run-as-root`).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

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

/// The `mpirun` argument list (after `mpirun`) that starts `ranks` copies of `program` on this machine.
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

fn which(program: &str) -> bool {
    std::env::var_os("PATH").map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file())).unwrap_or(false)
}

fn log_stdio(run_dir: &Path, name: &str, to_file: bool) -> Result<Stdio, LocalError> {
    if !to_file {
        return Ok(Stdio::inherit());
    }
    let path = run_dir.join(name);
    std::fs::File::create(&path).map(Stdio::from).map_err(|source| LocalError::Io { path, source })
}

/// A running local interchange process (killed on drop).
pub struct LocalInterchange {
    /// Where it listens.
    pub conn: ConnectionInfo,
    child: Child,
}

impl LocalInterchange {
    /// Start `strand interchange` on loopback in the run directory and wait for its connection file.
    pub fn start(opts: &LocalOptions) -> Result<LocalInterchange, LocalError> {
        let run_dir = &opts.run_dir;
        std::fs::create_dir_all(run_dir).map_err(|source| LocalError::Io { path: run_dir.clone(), source })?;
        let conn_path = run_dir.join(CONNECTION_FILE);
        let _ = std::fs::remove_file(&conn_path);
        let strand = std::env::current_exe().ok().filter(|p| p.file_name().is_some_and(|n| n == "strand"));
        let strand = strand.unwrap_or_else(|| sibling_binary("strand"));
        let ilog = run_dir.join("interchange.log");
        let mut child = die_with_parent(&mut Command::new(&strand))
            .arg("interchange")
            .arg("--run-dir")
            .arg(run_dir)
            .arg("--address")
            .arg(&opts.address)
            .args(&opts.interchange_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_stdio(run_dir, "interchange.log", opts.log_to_files)?)
            .spawn()
            .map_err(|source| LocalError::Spawn { program: strand.display().to_string(), source })?;
        match wait_for_connection(&conn_path, &mut child, Duration::from_secs(30), &ilog) {
            Ok(conn) => Ok(LocalInterchange { conn, child }),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(e)
            }
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Ask it to stop (it stops every manager first) and wait; kill it past `timeout`.
    pub fn stop(mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        if let Ok(mut c) = Client::connect(&self.conn) {
            let _ = c.send(&ClientMsg::Shutdown);
        }
        wait_child(&mut self.child, Instant::now() + timeout)
    }
}

impl Drop for LocalInterchange {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A running interchange and local block.
pub struct LocalRun {
    /// Where the interchange listens.
    pub conn: ConnectionInfo,
    interchange: Option<LocalInterchange>,
    launcher: Child,
}

impl LocalRun {
    /// Start the interchange, wait for its connection file, then start the block under mpirun.
    pub fn start(opts: &LocalOptions) -> Result<LocalRun, LocalError> {
        if !opts.launcher.is_file() {
            return Err(LocalError::NoLauncher(opts.launcher.clone()));
        }
        if !which("mpirun") {
            return Err(LocalError::NoMpirun);
        }
        let interchange = LocalInterchange::start(opts)?;
        let run_dir = &opts.run_dir;
        let ranks = opts.workers + 1;
        let launcher = die_with_parent(&mut Command::new("mpirun"))
            .args(mpirun_args(ranks))
            .arg(&opts.launcher)
            .arg("--connection")
            .arg(run_dir.join(CONNECTION_FILE))
            .arg("--pool-size")
            .arg(opts.pool_size.unwrap_or(ranks).to_string())
            .arg("--prefetch")
            .arg(opts.prefetch.to_string())
            .args(["--block-id", "local-0"])
            .stdin(Stdio::null())
            .stdout(log_stdio(run_dir, "block-local-0.out", opts.log_to_files)?)
            .stderr(log_stdio(run_dir, "block-local-0.log", opts.log_to_files)?)
            .spawn()
            .map_err(|source| LocalError::Spawn { program: "mpirun".into(), source })?;
        Ok(LocalRun { conn: interchange.conn.clone(), interchange: Some(interchange), launcher })
    }

    /// Process id of the interchange (for memory and CPU figures).
    pub fn interchange_pid(&self) -> Option<u32> {
        self.interchange.as_ref().map(LocalInterchange::pid)
    }

    /// Wait until `n` managers have registered, or `timeout` passes; returns how many did.
    pub fn wait_for_managers(&self, n: usize, timeout: Duration) -> usize {
        let Ok(mut client) = Client::connect(&self.conn) else { return 0 };
        let deadline = Instant::now() + timeout;
        let mut seen = 0;
        while Instant::now() < deadline {
            if let Ok(s) = client.status(Duration::from_secs(5)) {
                seen = s.managers.len();
                if seen >= n {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        seen
    }

    /// Stop the interchange (it stops the block), then wait for both; kill what lingers.
    pub fn stop(mut self, timeout: Duration) -> (Option<std::process::ExitStatus>, Option<std::process::ExitStatus>) {
        let deadline = Instant::now() + timeout;
        let i = self.interchange.take().and_then(|ix| ix.stop(timeout));
        let l = wait_child(&mut self.launcher, deadline);
        (i, l)
    }
}

impl Drop for LocalRun {
    fn drop(&mut self) {
        if matches!(self.launcher.try_wait(), Ok(None)) {
            let _ = self.launcher.kill();
            let _ = self.launcher.wait();
        }
    }
}

/// Wait for a child until `deadline`; kill it past that. `None` if it had to be killed.
pub fn wait_child(c: &mut Child, deadline: Instant) -> Option<std::process::ExitStatus> {
    loop {
        match c.try_wait() {
            Ok(Some(s)) => return Some(s),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = c.kill();
                let _ = c.wait();
                return None;
            }
        }
    }
}

fn wait_for_connection(
    path: &Path,
    child: &mut Child,
    timeout: Duration,
    log: &Path,
) -> Result<ConnectionInfo, LocalError> {
    let deadline = Instant::now() + timeout;
    let log = log.display().to_string();
    loop {
        if let Ok(c) = ConnectionInfo::load(path) {
            return Ok(c);
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(LocalError::InterchangeDied { status, log });
        }
        if Instant::now() >= deadline {
            return Err(LocalError::NoConnectionFile { path: path.to_path_buf(), secs: timeout.as_secs(), log });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
