//! An interchange started as a child process (`strand interchange`) in a run directory.
//!
//! The submit host runs the interchange in its own process so that a crash of the driver
//! never takes the broker down with it (and the reverse); it is killed on drop.

use crate::client::Client;
use crate::connection::ConnectionInfo;
use crate::process::{die_with_parent, kill_child, log_stdio, strand_binary, wait_child};
use crate::run_dir::{RunDir, INTERCHANGE_LOG};
use crate::wire::ClientMsg;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use thiserror::Error;

/// How to start the interchange; `None` fields keep `strand interchange`'s own defaults.
#[derive(Clone, Debug)]
pub struct InterchangeOptions {
    /// Address to bind and advertise: loopback for blocks on this machine, the host's name
    /// (or an interface's address) when blocks run on compute nodes.
    pub address: String,
    /// Between manager heartbeats.
    pub heartbeat_period: Option<Duration>,
    /// Silence after which a manager is lost.
    pub heartbeat_threshold: Option<Duration>,
    /// Most tries queued.
    pub max_queue: Option<u64>,
    /// Managers expected (the open-file limit is raised for them).
    pub max_managers: Option<u64>,
    /// Largest message in MiB (`--max-frame-mib`).
    pub max_frame_mib: Option<u64>,
    /// Send its stderr to `RUN_DIR/interchange.log` instead of inheriting it.
    pub log_to_file: bool,
}

impl InterchangeOptions {
    /// For blocks on this machine: loopback, and a dead manager noticed within seconds.
    pub fn local() -> InterchangeOptions {
        InterchangeOptions {
            address: "127.0.0.1".into(),
            heartbeat_period: Some(Duration::from_secs(1)),
            heartbeat_threshold: Some(Duration::from_secs(10)),
            max_queue: None,
            max_managers: None,
            max_frame_mib: None,
            log_to_file: true,
        }
    }

    /// For blocks on compute nodes reaching `address`: the interchange's own heartbeat defaults.
    pub fn remote(address: String) -> InterchangeOptions {
        InterchangeOptions { address, heartbeat_period: None, heartbeat_threshold: None, ..InterchangeOptions::local() }
    }

    /// The `strand interchange` arguments after the run directory.
    fn args(&self) -> Vec<String> {
        let mut a = vec!["--address".to_string(), self.address.clone()];
        let secs = |d: Duration| d.as_secs_f64().to_string();
        if let Some(d) = self.heartbeat_period {
            a.extend(["--heartbeat-period".into(), secs(d)]);
        }
        if let Some(d) = self.heartbeat_threshold {
            a.extend(["--heartbeat-threshold".into(), secs(d)]);
        }
        if let Some(n) = self.max_queue {
            a.extend(["--max-queue".into(), n.to_string()]);
        }
        if let Some(n) = self.max_managers {
            a.extend(["--max-managers".into(), n.to_string()]);
        }
        if let Some(n) = self.max_frame_mib {
            a.extend(["--max-frame-mib".into(), n.to_string()]);
        }
        a
    }
}

/// Why an interchange process could not start.
#[derive(Debug, Error)]
pub enum ProcessError {
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
    Died {
        /// Its exit status.
        status: std::process::ExitStatus,
        /// Its log.
        log: String,
    },
}

/// A running interchange process (killed on drop).
pub struct InterchangeProcess {
    /// Where it listens.
    pub conn: ConnectionInfo,
    child: Child,
}

impl InterchangeProcess {
    /// Start `strand interchange` in the run directory and wait for its connection file.
    pub fn start(run_dir: &RunDir, opts: &InterchangeOptions) -> Result<InterchangeProcess, ProcessError> {
        let conn_path = run_dir.connection_file();
        let _ = std::fs::remove_file(&conn_path);
        let strand = strand_binary();
        let log = run_dir.file(INTERCHANGE_LOG);
        let stderr = log_stdio(run_dir.path(), INTERCHANGE_LOG, opts.log_to_file)
            .map_err(|source| ProcessError::Io { path: log.clone(), source })?;
        let mut child = die_with_parent(&mut Command::new(&strand))
            .arg("interchange")
            .arg("--run-dir")
            .arg(run_dir.path())
            .args(opts.args())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|source| ProcessError::Spawn { program: strand.display().to_string(), source })?;
        match wait_for_connection(&conn_path, &mut child, Duration::from_secs(30), &log) {
            Ok(conn) => Ok(InterchangeProcess { conn, child }),
            Err(e) => {
                kill_child(&mut child);
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

impl Drop for InterchangeProcess {
    fn drop(&mut self) {
        kill_child(&mut self.child);
    }
}

fn wait_for_connection(
    path: &Path,
    child: &mut Child,
    timeout: Duration,
    log: &Path,
) -> Result<ConnectionInfo, ProcessError> {
    let deadline = Instant::now() + timeout;
    let log = log.display().to_string();
    loop {
        if let Ok(c) = ConnectionInfo::load(path) {
            return Ok(c);
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(ProcessError::Died { status, log });
        }
        if Instant::now() >= deadline {
            return Err(ProcessError::NoConnectionFile { path: path.to_path_buf(), secs: timeout.as_secs(), log });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
