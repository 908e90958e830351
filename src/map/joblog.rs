//! GNU parallel's job log (`--joblog`): one tab-separated line per finished job, read back
//! by `--resume` and `--resume-failed`.

use crate::dfk::{TaskError, TaskOutcome};
use crate::task::{Failure, Ran};
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The header line, exactly as GNU parallel writes it.
pub const HEADER: &str = "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand";

/// One finished job.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// 1-based position in the input (`{#}`).
    pub seq: u64,
    /// Where it ran; `:` as GNU parallel writes for this machine (see docs/map.md).
    pub host: String,
    /// Start, microseconds since the Unix epoch.
    pub start_us: u64,
    /// Run time in microseconds.
    pub runtime_us: u64,
    /// Bytes sent to the job (0: Strand sends no stdin).
    pub send: u64,
    /// Bytes of its standard output.
    pub receive: u64,
    /// Exit code; -1 when it was killed for its walltime or never exited.
    pub exitval: i32,
    /// The signal that ended it, 0 if none.
    pub signal: i32,
    /// The command line.
    pub command: String,
}

impl Entry {
    /// The entry of a job that ended with `outcome`; `ran` is its last try's timing, and
    /// `submitted` stands in for the start when no worker timed it (a memo hit).
    pub fn of(seq: u64, command: String, outcome: &TaskOutcome, ran: Ran, submitted: std::time::SystemTime) -> Entry {
        let (exitval, signal) = exit_and_signal(outcome);
        let (start_us, runtime_us) = if ran.is_known() {
            (ran.started_us, ran.run_us)
        } else {
            (submitted.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64), 0)
        };
        let receive = match outcome {
            Ok(b) => b.len(),
            Err(TaskError::Failed { failure, .. }) => failure.stdout().len(),
            Err(_) => 0,
        } as u64;
        Entry { seq, host: ":".into(), start_us, runtime_us, send: 0, receive, exitval, signal, command }
    }

    /// Whether GNU parallel counts it as succeeded (`--resume-failed` skips only these).
    pub fn succeeded(&self) -> bool {
        self.exitval == 0 && self.signal == 0
    }

    /// The line, without its newline; newlines in the command are written as spaces so that
    /// the log stays one line per job.
    pub fn line(&self) -> String {
        format!(
            "{}\t{}\t{}\t{:>10}\t{}\t{}\t{}\t{}\t{}",
            self.seq,
            self.host,
            seconds(self.start_us),
            seconds(self.runtime_us),
            self.send,
            self.receive,
            self.exitval,
            self.signal,
            self.command.replace('\n', " ")
        )
    }
}

/// Microseconds as GNU parallel's `%.3f` seconds, rounded to the millisecond.
fn seconds(us: u64) -> String {
    let ms = (us + 500) / 1000;
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// GNU parallel's Exitval and Signal columns for an outcome.
pub fn exit_and_signal(outcome: &TaskOutcome) -> (i32, i32) {
    match outcome {
        Ok(_) => (0, 0),
        Err(TaskError::Failed { failure, .. }) => match failure {
            Failure::ExitCode { code, .. } => (*code, 0),
            Failure::Signal { signal, .. } => (0, *signal),
            // The walltime's kill is SIGKILL (the whole process tree).
            Failure::Timeout { .. } => (-1, SIGKILL),
            Failure::SpawnError { .. } => (127, 0),
            _ => (-1, 0),
        },
        Err(_) => (-1, 0),
    }
}

/// The signal a walltime ends a command with (Linux's number).
const SIGKILL: i32 = 9;

/// A job log that cannot be read or written.
#[derive(Debug, Error)]
pub enum JoblogError {
    /// Opening, reading or writing failed.
    #[error("job log {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line that is not a GNU parallel job log line.
    #[error("job log {path} line {line}: expected {HEADER:?} columns, found {found:?}")]
    Format {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What was there.
        found: String,
    },
}

/// What a job log says about earlier runs: each sequence number's last entry.
#[derive(Debug, Default)]
pub struct Previous {
    /// Seq → whether its last logged run succeeded.
    pub succeeded: HashMap<u64, bool>,
}

impl Previous {
    /// Read `path`; a missing file is an empty log (a first run with `--resume`).
    pub fn read(path: &Path) -> Result<Previous, JoblogError> {
        let io = |source| JoblogError::Io { path: path.to_path_buf(), source };
        let f = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Previous::default()),
            Err(e) => return Err(io(e)),
        };
        let mut prev = Previous::default();
        for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
            let line = line.map_err(io)?;
            if i == 0 && line == HEADER || line.is_empty() {
                continue;
            }
            let cols: Vec<&str> = line.splitn(9, '\t').collect();
            let parsed = (cols.len() == 9)
                .then(|| {
                    Some((cols[0].parse::<u64>().ok()?, cols[6].parse::<i32>().ok()?, cols[7].parse::<i32>().ok()?))
                })
                .flatten();
            let Some((seq, exitval, signal)) = parsed else {
                return Err(JoblogError::Format { path: path.to_path_buf(), line: i + 1, found: line });
            };
            prev.succeeded.insert(seq, exitval == 0 && signal == 0);
        }
        Ok(prev)
    }
}

/// An open job log, appended to as jobs end.
pub struct Joblog {
    path: PathBuf,
    out: std::io::BufWriter<std::fs::File>,
}

impl Joblog {
    /// Start a new log (truncating an old one), or append to it when resuming.
    pub fn open(path: &Path, append: bool) -> Result<Joblog, JoblogError> {
        let io = |source| JoblogError::Io { path: path.to_path_buf(), source };
        let had_lines = append && std::fs::metadata(path).map(|m| m.len() > 0).unwrap_or(false);
        let f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(path)
            .map_err(io)?;
        let mut log = Joblog { path: path.to_path_buf(), out: std::io::BufWriter::new(f) };
        if !had_lines {
            writeln!(log.out, "{HEADER}").map_err(io)?;
        }
        Ok(log)
    }

    /// Append one entry (buffered; see [`Joblog::flush`]).
    pub fn write(&mut self, e: &Entry) -> Result<(), JoblogError> {
        writeln!(self.out, "{}", e.line()).map_err(|source| JoblogError::Io { path: self.path.clone(), source })
    }

    /// Write what is buffered, so that a run killed later can resume from it.
    pub fn flush(&mut self) -> Result<(), JoblogError> {
        self.out.flush().map_err(|source| JoblogError::Io { path: self.path.clone(), source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log");
        let failed: TaskOutcome = Err(TaskError::Failed {
            failure: Failure::ExitCode { code: 3, stderr: String::new(), stdout: vec![] },
            tries: 1,
        });
        let ran = Ran { started_us: 1_796_138_137_619_500, run_us: 5_000, ..Default::default() };
        let at = std::time::SystemTime::now();
        let mut log = Joblog::open(&path, false).expect("opens");
        log.write(&Entry::of(1, "echo a".into(), &Ok(b"a\n".to_vec()), ran, at)).expect("writes");
        log.write(&Entry::of(2, "exit 3".into(), &failed, ran, at)).expect("writes");
        log.flush().expect("flushes");
        let text = std::fs::read_to_string(&path).expect("reads");
        assert_eq!(
            text,
            format!("{HEADER}\n1\t:\t1796138137.620\t     0.005\t0\t2\t0\t0\techo a\n2\t:\t1796138137.620\t     0.005\t0\t0\t3\t0\texit 3\n")
        );
        let prev = Previous::read(&path).expect("reads");
        assert_eq!(prev.succeeded, HashMap::from([(1, true), (2, false)]));
        // Resuming appends without a second header.
        let mut log = Joblog::open(&path, true).expect("opens");
        log.write(&Entry::of(2, "exit 3".into(), &Ok(vec![]), ran, at)).expect("writes");
        log.flush().expect("flushes");
        assert!(Previous::read(&path).expect("reads").succeeded[&2], "the later entry wins");
        assert_eq!(std::fs::read_to_string(&path).expect("reads").matches("Seq").count(), 1);
    }

    #[test]
    fn bad_logs_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log");
        assert!(Previous::read(&path).expect("missing is empty").succeeded.is_empty());
        std::fs::write(&path, format!("{HEADER}\nnot a joblog line\n")).expect("write");
        let e = Previous::read(&path).expect_err("bad");
        assert!(e.to_string().contains("line 2") && e.to_string().contains("not a joblog line"), "{e}");
    }

    #[test]
    fn signals_and_timeouts() {
        let f = |failure| exit_and_signal(&Err(TaskError::Failed { failure, tries: 1 }));
        assert_eq!(f(Failure::Signal { signal: 9, stderr: String::new(), stdout: vec![] }), (0, 9));
        assert_eq!(f(Failure::Timeout { walltime_ms: 10 }), (-1, 9));
        assert_eq!(exit_and_signal(&Err(TaskError::Cancelled)), (-1, 0));
    }
}
