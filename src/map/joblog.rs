//! GNU parallel's job log (`--joblog`): one tab-separated line per finished job, read back
//! by `--resume` and `--resume-failed`.

use crate::dfk::hosts::ManagerHosts;
use crate::dfk::{TaskError, TaskOutcome};
use crate::task::{Failure, ManagerId, Ran};
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use thiserror::Error;

/// The header line, exactly as GNU parallel writes it.
pub const HEADER: &str = "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand";

/// One finished job.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// 1-based position in the input (`{#}`).
    pub seq: u64,
    /// Where it ran: the host of the manager whose pool ran it, or `:` (GNU parallel's name
    /// for this machine) when that is this machine or no worker ran it.
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

/// How long a joblog line waits for the host of its manager (learned from the interchange
/// within moments of the manager's first result) before it is written with `:`.
pub const HOST_WAIT: Duration = Duration::from_secs(2);

/// The joblog's Host column for a job whose manager runs on `host` (`None`: not known, or no
/// manager ran it), seen from the machine named `here`.
pub fn host_column(host: Option<&str>, here: &str) -> String {
    match host {
        Some(h) if h != here && !h.is_empty() => h.to_string(),
        _ => ":".into(),
    }
}

/// Joblog entries on their way to the log, each once the host of its manager is known.
pub struct Placing {
    hosts: ManagerHosts,
    here: String,
    /// Entries whose host was known (or not needed) when they came.
    placed: Vec<Entry>,
    /// Entries waiting for a host, oldest first.
    waiting: Vec<(Instant, Entry, ManagerId)>,
    /// The hosts' generation when `waiting` was last looked through.
    seen: u64,
}

impl Placing {
    /// Hosts as the DFK learns them (`Dfk::manager_hosts`), seen from the machine `here`.
    pub fn new(hosts: ManagerHosts, here: String) -> Placing {
        Placing { hosts, here, placed: Vec::new(), waiting: Vec::new(), seen: 0 }
    }

    /// `entry` of a job that `manager` ran (0: none did) is on its way.
    pub fn add(&mut self, mut entry: Entry, manager: ManagerId, now: Instant) {
        let host = if manager.0 == 0 { None } else { self.hosts.get(manager) };
        if manager.0 == 0 || host.is_some() {
            entry.host = host_column(host.as_deref(), &self.here);
            self.placed.push(entry);
        } else {
            self.waiting.push((now, entry, manager));
        }
    }

    /// The entries whose host is known now, or that have waited [`HOST_WAIT`] by `now`, with
    /// their Host filled in. The waiting ones are looked through only when a host was learned
    /// or the oldest has waited long enough, not on every call.
    pub fn ready(&mut self, now: Instant) -> Vec<Entry> {
        let mut out = std::mem::take(&mut self.placed);
        let generation = self.hosts.generation();
        let oldest_due =
            self.waiting.first().is_some_and(|(since, ..)| now.saturating_duration_since(*since) >= HOST_WAIT);
        if self.waiting.is_empty() || (generation == self.seen && !oldest_due) {
            return out;
        }
        self.seen = generation;
        let mut left = Vec::with_capacity(self.waiting.len());
        for (since, mut entry, manager) in self.waiting.drain(..) {
            let host = self.hosts.get(manager);
            if host.is_some() || now.saturating_duration_since(since) >= HOST_WAIT {
                entry.host = host_column(host.as_deref(), &self.here);
                out.push(entry);
            } else {
                left.push((since, entry, manager));
            }
        }
        self.waiting = left;
        out
    }

    /// Whether no entry waits.
    pub fn is_empty(&self) -> bool {
        self.placed.is_empty() && self.waiting.is_empty()
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

    #[test]
    fn a_line_waits_for_its_managers_host_then_names_it_or_says_here() {
        let hosts = ManagerHosts::default();
        let mut p = Placing::new(hosts.clone(), "login1".into());
        let t0 = Instant::now();
        let entry = |seq| Entry {
            seq,
            host: ":".into(),
            start_us: 0,
            runtime_us: 0,
            send: 0,
            receive: 0,
            exitval: 0,
            signal: 0,
            command: "true".into(),
        };
        p.add(entry(1), ManagerId(7), t0);
        p.add(entry(2), ManagerId(0), t0); // a memo hit: no manager
        p.add(entry(3), ManagerId(8), t0);
        p.add(entry(4), ManagerId(9), t0);
        let first = p.ready(t0);
        assert_eq!(first.iter().map(|e| (e.seq, e.host.as_str())).collect::<Vec<_>>(), [(2, ":")]);
        let status = |id: u64, host: &str| crate::wire::ManagerStatus {
            id: ManagerId(id),
            host: host.into(),
            block: crate::block::BlockId("b-0".into()),
            slots: 1,
            in_flight: 0,
            mode: crate::wire::ManagerMode::Active,
            idle_ms: 0,
        };
        hosts.learn(&[status(7, "nid00042"), status(8, "login1")]);
        let mut next: Vec<_> = p.ready(t0).into_iter().map(|e| (e.seq, e.host)).collect();
        next.sort();
        // 8 runs here: `:` as GNU parallel writes for this machine.
        assert_eq!(next, [(1, "nid00042".to_string()), (3, ":".to_string())]);
        assert!(!p.is_empty(), "9 is not known yet");
        let last = p.ready(t0 + HOST_WAIT);
        assert_eq!(last.iter().map(|e| (e.seq, e.host.as_str())).collect::<Vec<_>>(), [(4, ":")]);
        assert!(p.is_empty());
    }
}
