//! Where a command's tasks go, as the user chose it: a running interchange, the local
//! default, or an executor configuration. [`super::Executor::open`] starts what it names.

use super::config::{Config, ConfigError};
use super::local_block::LocalBlockOptions;
use super::{Executor, ExecutorError};
use crate::run_dir::RunDir;
use std::path::PathBuf;

/// The choice `strand run`, `map` and `bench` share (their `--connection`, `--workers`,
/// `--prefetch`, `--run-dir`, `--launcher`, `--config` and `--executor`).
#[derive(Clone, Debug, Default)]
pub struct Target {
    /// Connection file of a running interchange.
    pub connection: Option<PathBuf>,
    /// Worker ranks of the local block (default: one per core).
    pub workers: Option<u32>,
    /// Tries each worker holds beyond the one it runs (default: the caller's).
    pub prefetch: Option<u32>,
    /// Run directory (default: a fresh `runs/<time>-<pid>`).
    pub run_dir: Option<PathBuf>,
    /// The `strand-launcher` binary (default: next to `strand`).
    pub launcher: Option<PathBuf>,
    /// Executor configuration file (TOML).
    pub config: Option<PathBuf>,
    /// The executor of `config` to use, by label (default: the first).
    pub executor: Option<String>,
}

impl Executor {
    /// Start what `t` names. `default_prefetch` is deep for benchmarks of no-op tasks and
    /// shallow for real work; `--prefetch`, then an executor's own `launcher.prefetch`, win.
    pub fn open(t: &Target, default_prefetch: u32) -> Result<Executor, ExecutorError> {
        if let Some(path) = &t.config {
            // Parse before starting anything: a bad file must not leave processes behind.
            let file = Config::from_file(path)?;
            let mut exe = file.executor(t.executor.as_deref())?.clone();
            if let Some(l) = &t.launcher {
                exe.launcher_path = l.display().to_string();
            }
            let bench_default = (default_prefetch != 1).then_some(default_prefetch);
            exe.launcher.prefetch = t.prefetch.or(exe.launcher.prefetch).or(bench_default);
            exe.check_launcher(&file.origin)?;
            let run_dir = RunDir::create(t.run_dir.as_deref())?;
            let label = exe.label.clone();
            let executor = Executor::from_config(run_dir, exe)?;
            eprintln!(
                "strand: executor {label} ({} blocks of {} node(s), {}): blocks are listed by `strand status {}`",
                executor.config().map_or("", |c| c.provider.name()),
                executor.config().map_or(0, |c| c.nodes_per_block),
                executor.config().map_or("", |c| c.launch.name()),
                executor.run_dir().path().display()
            );
            return Ok(executor);
        }
        let run_dir = RunDir::create(t.run_dir.as_deref())?;
        if let Some(path) = &t.connection {
            return Executor::connect(run_dir, path, t.workers.unwrap_or(0));
        }
        let mut block = LocalBlockOptions::default();
        if let Some(w) = t.workers {
            if w == 0 {
                return Err(ExecutorError::Invalid("--workers must be at least 1".into()));
            }
            block.workers = w;
        }
        block.prefetch = t.prefetch.unwrap_or(default_prefetch);
        if let Some(l) = &t.launcher {
            block.launcher = l.clone();
        }
        Executor::local(run_dir, &block)
    }
}

impl From<ConfigError> for ExecutorError {
    fn from(e: ConfigError) -> ExecutorError {
        ExecutorError::Config(Box::new(e))
    }
}
