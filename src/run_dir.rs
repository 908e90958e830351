//! The run directory: one folder per run with its connection file, logs, checkpoint and event logs.
//!
//! Its path is made absolute once, when it is created, because block scripts, `mpirun` and
//! the interchange all run in other directories (on a cluster, on other nodes): nothing
//! downstream may depend on the current directory.

use std::path::{Path, PathBuf};
use thiserror::Error;

/// The interchange's connection file (endpoints and the run's key; 0600).
pub const CONNECTION_FILE: &str = "connection.json";
/// Completed tasks' results, appended as they end (JSON lines).
pub const CHECKPOINT_FILE: &str = "checkpoint.jsonl";
/// Every task's state transitions (JSON lines).
pub const EVENTS_FILE: &str = "events.jsonl";
/// Every block's transitions (JSON lines, [`crate::block::BlockEvent`]).
pub const BLOCKS_FILE: &str = "blocks.jsonl";
/// The run database (SQLite): tasks, tries, managers, blocks.
pub const MONITORING_DB: &str = "monitoring.db";
/// The standard error of an interchange started for the run.
pub const INTERCHANGE_LOG: &str = "interchange.log";
/// The standard error of the local default's block.
pub const LOCAL_BLOCK_LOG: &str = "block-local-0.log";
/// The standard output of the local default's block.
pub const LOCAL_BLOCK_OUT: &str = "block-local-0.out";
/// Where fresh run directories go, relative to the directory the user started in.
pub const RUNS_FOLDER: &str = "runs";

/// Why a run directory could not be made.
#[derive(Debug, Error)]
#[error("run directory {path}: {source}")]
pub struct RunDirError {
    /// The path as given.
    pub path: PathBuf,
    /// The OS error.
    pub source: std::io::Error,
}

/// A run directory that exists, by its absolute path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    /// Create `path` (or, for `None`, a fresh `runs/<unix time>-<pid>` under the current
    /// directory) and remember it as an absolute path.
    pub fn create(path: Option<&Path>) -> Result<RunDir, RunDirError> {
        let given = path.map(Path::to_path_buf).unwrap_or_else(fresh_name);
        let err = |source| RunDirError { path: given.clone(), source };
        std::fs::create_dir_all(&given).map_err(err)?;
        let path = std::fs::canonicalize(&given).map_err(err)?;
        Ok(RunDir { path })
    }

    /// A directory below this one (created), e.g. one per configuration of a benchmark.
    pub fn child(&self, name: &str) -> Result<RunDir, RunDirError> {
        RunDir::create(Some(&self.path.join(name)))
    }

    /// The absolute path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A file of the run by name (one of the constants of this module).
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The connection file of the run's interchange.
    pub fn connection_file(&self) -> PathBuf {
        self.file(CONNECTION_FILE)
    }
}

fn fresh_name() -> PathBuf {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    PathBuf::from(RUNS_FOLDER).join(format!("{t}-{}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relative_run_directory_is_made_absolute_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rel = Path::new("target").join(format!("run-dir-test-{}", std::process::id()));
        let r = RunDir::create(Some(&rel)).expect("create");
        assert!(r.path().is_absolute(), "{}", r.path().display());
        assert!(r.path().is_dir());
        assert_eq!(r.file(EVENTS_FILE), r.path().join("events.jsonl"));
        let c = r.child("static").expect("child");
        assert!(c.path().starts_with(r.path()) && c.path().is_dir());
        std::fs::remove_dir_all(r.path()).expect("clean up");
        let abs = RunDir::create(Some(&dir.path().join("x"))).expect("create");
        assert!(abs.path().ends_with("x"));
    }

    #[test]
    fn a_run_directory_that_cannot_be_made_names_its_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("plain-file");
        std::fs::write(&file, "").expect("write");
        let e = RunDir::create(Some(&file.join("below"))).expect_err("below a file");
        assert!(e.to_string().contains("plain-file/below"), "{e}");
    }
}
