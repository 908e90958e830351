//! Providers: how blocks are submitted to, watched on and cancelled from a batch system.
//!
//! A *block* is one batch job that runs `strand-launcher` on its nodes (see
//! [`crate::executor::local_block`] for the local equivalent, `mpirun ... strand-launcher`). A
//! [`Provider`] submits a block from a ready-made batch script ([`BlockRequest::script`];
//! templates live elsewhere), reports the state of many blocks with one scheduler call, and
//! cancels blocks.
//!
//! Every scheduler command goes through [`run_command`]: a bounded wait, the child (and its
//! process group) killed past the timeout, stderr kept for the error.
//!
//! Implementations: [`local::LocalProvider`] (the script run by `bash` on this machine),
//! [`slurm::SlurmProvider`] (`sbatch`, `sacct`/`squeue`, `scancel`) and [`pbs::PbsProvider`]
//! (PBS Pro / OpenPBS: `qsub`, `qstat -f -F json -x`, `qdel`). Their output parsers are pure
//! functions, tested against the fixtures in `tests/fixtures/provider/`. Those fixtures were
//! written from the schedulers' documentation (the man pages of sbatch, sacct and squeue; the
//! PBS Professional reference and admin guides), not captured from a live scheduler: no
//! scheduler runs where this module was written.

pub mod local;
pub mod pbs;
pub mod slurm;

pub use crate::block::JobId;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use thiserror::Error;

/// The state of a job, mapped from the scheduler's own vocabulary.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
pub enum JobState {
    /// Queued (or requeued, or being configured): not running yet, will run.
    Pending,
    /// Running (or completing / staging out).
    Running,
    /// Finished with exit status 0.
    Completed,
    /// Finished with a non-zero status, or killed by a node failure or a resource limit.
    Failed,
    /// Cancelled by a user or an administrator (or preempted).
    Cancelled,
    /// Killed for running past its walltime.
    Timeout,
    /// Held or suspended: will not progress until someone releases it.
    Held,
    /// The scheduler did not report this id (unknown, purged, or not yet visible).
    Missing,
    /// A state this module does not know, verbatim.
    Unknown(String),
}

impl JobState {
    /// Whether the job is over (it will never run again by itself).
    pub fn is_terminal(&self) -> bool {
        matches!(self, JobState::Completed | JobState::Failed | JobState::Cancelled | JobState::Timeout)
    }

    /// Whether the job holds (or may soon hold) nodes: pending, running or held.
    pub fn is_active(&self) -> bool {
        matches!(self, JobState::Pending | JobState::Running | JobState::Held)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobState::Pending => f.write_str("pending"),
            JobState::Running => f.write_str("running"),
            JobState::Completed => f.write_str("completed"),
            JobState::Failed => f.write_str("failed"),
            JobState::Cancelled => f.write_str("cancelled"),
            JobState::Timeout => f.write_str("timeout"),
            JobState::Held => f.write_str("held"),
            JobState::Missing => f.write_str("missing"),
            JobState::Unknown(s) => write!(f, "unknown ({s})"),
        }
    }
}

/// What to submit: one block, as a complete batch script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockRequest {
    /// Block name: used for the script's file name (`run_dir/<name>.sbatch`); unsafe characters become `_`.
    pub name: String,
    /// The full batch script text, directives included (the provider does not override them).
    pub script: String,
    /// Nodes the script asks for (bookkeeping; the script's directives are what the scheduler sees).
    pub nodes: u32,
    /// Walltime the script asks for, in seconds (bookkeeping, as `nodes`).
    pub walltime_s: u64,
    /// Where the script is written and the submit command runs (so scheduler output files land there).
    pub run_dir: PathBuf,
}

/// Why a provider operation failed; every variant names the command.
#[derive(Error, Debug)]
pub enum ProviderError {
    /// The command ran and exited unsuccessfully.
    #[error("{command} {}: {}", describe_code(.code), describe_stderr(.stderr))]
    Command {
        /// The command line.
        command: String,
        /// Its exit code; `None` when a signal killed it.
        code: Option<i32>,
        /// Its standard error, verbatim.
        stderr: String,
    },
    /// The command did not finish in time and was killed.
    #[error("{command} did not finish within {secs} s and was killed")]
    Timeout {
        /// The command line.
        command: String,
        /// The limit, in seconds (rounded up).
        secs: u64,
    },
    /// The command succeeded but its output made no sense.
    #[error("cannot parse the output of {command}: {message}; output: {:?}", truncate(.output))]
    Parse {
        /// The command line.
        command: String,
        /// The output we could not parse.
        output: String,
        /// What was wrong with it.
        message: String,
    },
    /// The command could not be started, or a file could not be written.
    #[error("{command}: {source}")]
    Io {
        /// The command line (or what we were doing, e.g. `write /path/x.sbatch`).
        command: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

fn describe_code(code: &Option<i32>) -> String {
    match code {
        Some(c) => format!("exited with {c}"),
        None => "was killed by a signal".to_string(),
    }
}

fn describe_stderr(stderr: &str) -> String {
    let s = stderr.trim();
    if s.is_empty() {
        "(no stderr)".to_string()
    } else {
        truncate(s).to_string()
    }
}

fn truncate(s: &str) -> &str {
    const MAX: usize = 2000;
    if s.len() <= MAX {
        return s;
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A batch system that runs blocks.
pub trait Provider: Send {
    /// Short name for logs and configuration (`"slurm"`, `"pbs"`).
    fn name(&self) -> &'static str;
    /// Submits one block; returns the scheduler's id for it.
    fn submit(&mut self, req: &BlockRequest) -> Result<JobId, ProviderError>;
    /// States of all `jobs`, with one scheduler call; ids the scheduler does not report are [`JobState::Missing`].
    fn status(&mut self, jobs: &[JobId]) -> Result<HashMap<JobId, JobState>, ProviderError>;
    /// Cancels all `jobs` with one scheduler call.
    fn cancel(&mut self, jobs: &[JobId]) -> Result<(), ProviderError>;
}

/// Everything a finished command left: exit code, stdout and stderr.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandOutput {
    /// The command line, for error messages.
    pub command: String,
    /// Exit code; `None` when a signal killed it.
    pub code: Option<i32>,
    /// Standard output (lossy UTF-8).
    pub stdout: String,
    /// Standard error (lossy UTF-8).
    pub stderr: String,
}

impl CommandOutput {
    /// Whether the command exited with 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Stdout if the command succeeded, else [`ProviderError::Command`].
    pub fn into_stdout(self) -> Result<String, ProviderError> {
        if self.success() {
            Ok(self.stdout)
        } else {
            Err(ProviderError::Command { command: self.command, code: self.code, stderr: self.stderr })
        }
    }
}

/// A command line for messages: the argv joined by spaces, arguments with spaces quoted.
pub fn display_command(argv: &[String]) -> String {
    argv.iter()
        .map(|a| if a.is_empty() || a.contains(char::is_whitespace) { format!("{a:?}") } else { a.clone() })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `argv` (no shell), feeds it `stdin`, waits at most `timeout`; returns its stdout if it exits with 0.
pub fn run_command(argv: &[String], stdin: Option<&str>, timeout: Duration) -> Result<String, ProviderError> {
    run_command_full(argv, stdin, timeout, None)?.into_stdout()
}

/// As [`run_command`], in directory `cwd`, returning the whole [`CommandOutput`] whatever the exit code.
///
/// Errors only when the command cannot start ([`ProviderError::Io`]) or outlives `timeout`
/// ([`ProviderError::Timeout`]; the child's whole process group is then killed with SIGKILL).
pub fn run_command_full(
    argv: &[String],
    stdin: Option<&str>,
    timeout: Duration,
    cwd: Option<&Path>,
) -> Result<CommandOutput, ProviderError> {
    use std::os::unix::process::CommandExt;
    let command = display_command(argv);
    let Some(program) = argv.first() else {
        return Err(ProviderError::Io {
            command: "(empty command)".to_string(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty argv"),
        });
    };
    let mut cmd = Command::new(program);
    cmd.args(&argv[1..])
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Own process group, so a timeout kills the command and anything it started.
        .process_group(0);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    // ETXTBSY: a script written a moment ago may still be open for writing in a child that another
    // thread forked (it closes at that child's exec); try again shortly.
    let mut tries = 0;
    let mut child = loop {
        match cmd.spawn() {
            Ok(child) => break child,
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 20 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(5 * tries));
            }
            Err(source) => return Err(ProviderError::Io { command: format!("cannot run {command}"), source }),
        }
    };
    let pid = child.id() as libc::pid_t;

    // Readers (and the stdin writer) on threads, so a chatty child never blocks on a full pipe.
    let (tx, rx) = mpsc::channel::<(bool, Vec<u8>)>();
    let mut readers = 0;
    let mut read_all = |mut pipe: Box<dyn Read + Send>, is_stdout: bool| {
        let tx = tx.clone();
        readers += 1;
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            let _ = tx.send((is_stdout, buf));
        });
    };
    if let Some(out) = child.stdout.take() {
        read_all(Box::new(out), true);
    }
    if let Some(err) = child.stderr.take() {
        read_all(Box::new(err), false);
    }
    drop(tx);
    if let (Some(mut sin), Some(text)) = (child.stdin.take(), stdin) {
        let text = text.to_string();
        // A child that exits without reading gives EPIPE here; that is its business, not an error.
        std::thread::spawn(move || {
            let _ = sin.write_all(text.as_bytes());
        });
    }

    // Wait with a deadline: poll with a growing sleep (1 ms .. 20 ms), no busy loop.
    let deadline = Instant::now() + timeout;
    let mut nap = Duration::from_millis(1);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(source) => {
                kill_group(pid);
                let _ = child.wait();
                return Err(ProviderError::Io { command: format!("wait for {command}"), source });
            }
        }
        let now = Instant::now();
        if now >= deadline {
            kill_group(pid);
            let _ = child.kill();
            let _ = child.wait();
            let secs = timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0);
            return Err(ProviderError::Timeout { command, secs });
        }
        std::thread::sleep(nap.min(deadline - now));
        nap = (nap * 2).min(Duration::from_millis(20));
    };

    // The child is gone; its pipes close unless something it started still holds them.
    // Give such stragglers a moment, then kill the group and stop waiting.
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let grace = Instant::now() + Duration::from_millis(500);
    let mut killed = false;
    while readers > 0 {
        let wait = grace.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
        match rx.recv_timeout(if killed { Duration::from_millis(200) } else { wait }) {
            Ok((true, buf)) => {
                stdout = buf;
                readers -= 1;
            }
            Ok((false, buf)) => {
                stderr = buf;
                readers -= 1;
            }
            Err(mpsc::RecvTimeoutError::Timeout) if !killed => {
                kill_group(pid);
                killed = true;
            }
            Err(_) => break,
        }
    }
    Ok(CommandOutput {
        command,
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    })
}

/// SIGKILL to the process group led by `pid` (the command was started as its leader).
fn kill_group(pid: libc::pid_t) {
    if pid > 0 {
        // SAFETY: kill has no memory-safety preconditions; a negative pid names a process group.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

/// A block name made safe for a file name: anything but `[A-Za-z0-9._-]` becomes `_`; empty becomes `block`.
pub fn safe_file_stem(name: &str) -> String {
    let s: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' }).collect();
    let s = s.trim_start_matches('.').to_string();
    if s.is_empty() {
        "block".to_string()
    } else {
        s
    }
}

/// Writes `req.script` to `req.run_dir/<safe name>.<ext>` (creating the directory); returns the path.
pub fn write_script(req: &BlockRequest, ext: &str) -> Result<PathBuf, ProviderError> {
    std::fs::create_dir_all(&req.run_dir)
        .map_err(|source| ProviderError::Io { command: format!("create {}", req.run_dir.display()), source })?;
    // Absolute: the script runs in another directory (the provider's or the scheduler's).
    let path = std::path::absolute(req.run_dir.join(format!("{}.{ext}", safe_file_stem(&req.name))))
        .map_err(|source| ProviderError::Io { command: format!("resolve {}", req.run_dir.display()), source })?;
    std::fs::write(&path, &req.script)
        .map_err(|source| ProviderError::Io { command: format!("write {}", path.display()), source })?;
    Ok(path)
}

/// The last non-empty line of `s`, trimmed (schedulers may print notices before the id).
pub(crate) fn last_line(s: &str) -> Option<&str> {
    s.lines().map(str::trim).rfind(|l| !l.is_empty())
}

/// Every id in `jobs` mapped to `Missing`, then overwritten by `found` for those it holds.
pub(crate) fn fill_missing(jobs: &[JobId], mut found: HashMap<JobId, JobState>) -> HashMap<JobId, JobState> {
    let mut out = HashMap::with_capacity(jobs.len());
    for j in jobs {
        let state = found.remove(j).unwrap_or(JobState::Missing);
        out.insert(j.clone(), state);
    }
    out
}

#[cfg(test)]
pub(crate) mod test_util {
    use std::path::{Path, PathBuf};

    /// Job ids from strings.
    pub fn ids(v: &[&str]) -> Vec<super::JobId> {
        v.iter().map(|s| super::JobId(s.to_string())).collect()
    }

    /// Path of a fixture in `tests/fixtures/provider/`.
    pub fn fixture_path(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/provider").join(name)
    }

    /// Text of a fixture in `tests/fixtures/provider/`.
    pub fn fixture(name: &str) -> String {
        let p = fixture_path(name);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    /// Writes an executable shell script `name` into `dir`; returns its path as a string.
    pub fn fake_command(dir: &Path, name: &str, body: &str) -> String {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p.to_string_lossy().into_owned()
    }

    /// A fake command that appends its arguments to `dir/<name>.args` and prints fixture `fixture`.
    pub fn fake_printing(dir: &Path, name: &str, fixture: &str, exit: i32) -> String {
        let args = dir.join(format!("{name}.args"));
        let body =
            format!("echo \"$@\" >> '{}'\ncat '{}'\nexit {exit}", args.display(), fixture_path(fixture).display());
        fake_command(dir, name, &body)
    }

    /// What the fake command `name` in `dir` was called with, one line per call.
    pub fn recorded_args(dir: &Path, name: &str) -> Vec<String> {
        std::fs::read_to_string(dir.join(format!("{name}.args")))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sv(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn run_command_returns_stdout() {
        let out = run_command(&sv(&["sh", "-c", "echo hello; echo noise >&2"]), None, Duration::from_secs(10)).unwrap();
        assert_eq!(out, "hello\n");
    }

    #[test]
    fn run_command_feeds_stdin() {
        let out = run_command(&sv(&["cat"]), Some("line one\nline two\n"), Duration::from_secs(10)).unwrap();
        assert_eq!(out, "line one\nline two\n");
    }

    #[test]
    fn run_command_large_output_does_not_deadlock() {
        // 1 MiB on each pipe: far beyond a pipe buffer.
        let script = "head -c 1048576 /dev/zero; head -c 1048576 /dev/zero >&2";
        let out = run_command_full(&sv(&["sh", "-c", script]), None, Duration::from_secs(20), None).unwrap();
        assert!(out.success());
        assert_eq!(out.stdout.len(), 1 << 20);
        assert_eq!(out.stderr.len(), 1 << 20);
    }

    #[test]
    fn failing_command_reports_code_and_stderr() {
        let argv = sv(&["sh", "-c", "echo 'sbatch: error: Batch job submission failed: Invalid account' >&2; exit 1"]);
        let err = run_command(&argv, None, Duration::from_secs(10)).unwrap_err();
        match &err {
            ProviderError::Command { command, code, stderr } => {
                assert!(command.starts_with("sh -c"), "{command}");
                assert_eq!(*code, Some(1));
                assert!(stderr.contains("Invalid account"), "{stderr}");
            }
            other => panic!("expected Command, got {other:?}"),
        }
        let msg = err.to_string();
        assert!(msg.contains("exited with 1") && msg.contains("Invalid account"), "{msg}");
    }

    #[test]
    fn killed_command_has_no_code() {
        let err = run_command(&sv(&["sh", "-c", "kill -9 $$"]), None, Duration::from_secs(10)).unwrap_err();
        match &err {
            ProviderError::Command { code: None, .. } => {}
            other => panic!("expected Command without code, got {other:?}"),
        }
        assert!(err.to_string().contains("killed by a signal"), "{err}");
    }

    #[test]
    fn timeout_kills_promptly() {
        let start = Instant::now();
        let err = run_command(&sv(&["sleep", "5"]), None, Duration::from_millis(200)).unwrap_err();
        let took = start.elapsed();
        assert!(matches!(err, ProviderError::Timeout { ref command, secs: 1 } if command == "sleep 5"), "{err:?}");
        assert!(took < Duration::from_secs(2), "took {took:?}");
        assert!(err.to_string().contains("sleep 5"), "{err}");
    }

    #[test]
    fn timeout_kills_grandchildren_too() {
        // The shell's child `sleep` holds stdout; killing only the shell would leave us waiting 5 s.
        let start = Instant::now();
        let err = run_command(&sv(&["sh", "-c", "sleep 5; echo done"]), None, Duration::from_millis(200)).unwrap_err();
        assert!(matches!(err, ProviderError::Timeout { .. }), "{err:?}");
        assert!(start.elapsed() < Duration::from_secs(2), "took {:?}", start.elapsed());
    }

    #[test]
    fn background_straggler_does_not_hang() {
        // The command exits but leaves a child holding its stdout open.
        let start = Instant::now();
        let out = run_command_full(&sv(&["sh", "-c", "sleep 5 & echo started"]), None, Duration::from_secs(10), None)
            .unwrap();
        assert!(out.success());
        assert_eq!(out.stdout, "started\n");
        assert!(start.elapsed() < Duration::from_secs(3), "took {:?}", start.elapsed());
    }

    #[test]
    fn missing_binary_is_named() {
        let err = run_command(&sv(&["strand-no-such-sbatch", "--parsable"]), None, Duration::from_secs(5)).unwrap_err();
        assert!(matches!(err, ProviderError::Io { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("strand-no-such-sbatch"), "{msg}");
    }

    #[test]
    fn empty_argv_is_an_error() {
        assert!(matches!(run_command(&[], None, Duration::from_secs(1)), Err(ProviderError::Io { .. })));
    }

    #[test]
    fn cwd_is_honoured() {
        let dir = tempfile::tempdir().unwrap();
        let out = run_command_full(&sv(&["pwd"]), None, Duration::from_secs(5), Some(dir.path())).unwrap();
        let got = std::fs::canonicalize(out.stdout.trim()).unwrap();
        assert_eq!(got, std::fs::canonicalize(dir.path()).unwrap());
    }

    #[test]
    fn safe_names_and_scripts() {
        assert_eq!(safe_file_stem("block-0"), "block-0");
        assert_eq!(safe_file_stem("../etc/passwd"), "_etc_passwd");
        assert_eq!(safe_file_stem("a b/c"), "a_b_c");
        assert_eq!(safe_file_stem(""), "block");
        assert_eq!(safe_file_stem("..."), "block");
        let dir = tempfile::tempdir().unwrap();
        let req = BlockRequest {
            name: "b/1".into(),
            script: "#!/bin/sh\necho hi\n".into(),
            nodes: 1,
            walltime_s: 60,
            run_dir: dir.path().join("sub"),
        };
        let p = write_script(&req, "sbatch").unwrap();
        assert_eq!(p, dir.path().join("sub/b_1.sbatch"));
        assert_eq!(std::fs::read_to_string(p).unwrap(), req.script);
    }

    #[test]
    fn states_and_ids() {
        assert!(JobState::Completed.is_terminal() && JobState::Timeout.is_terminal());
        assert!(!JobState::Missing.is_terminal() && !JobState::Pending.is_terminal());
        assert!(JobState::Held.is_active() && !JobState::Failed.is_active());
        assert_eq!(JobState::Unknown("Z".into()).to_string(), "unknown (Z)");
        let jobs = [JobId("1".into()), JobId("2".into())];
        let m = fill_missing(&jobs, HashMap::from([(JobId("2".into()), JobState::Running)]));
        assert_eq!(m[&jobs[0]], JobState::Missing);
        assert_eq!(m[&jobs[1]], JobState::Running);
        assert_eq!(last_line("warning\n12345\n\n"), Some("12345"));
        assert_eq!(last_line("  \n"), None);
    }
}
