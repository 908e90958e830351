//! The task event log: every state transition of every task, timestamped, in the run directory.
//!
//! `events.jsonl` holds one JSON object a line: `{"t_us":..,"task":..,"name":..,"state":..,
//! "try":..,"detail":..}`. It is buffered (flushed by the DFK's I/O thread after each round,
//! not per task: per-task logging was Parsl's largest submit-side cost) and append-only, so a
//! monitoring database can import it later without a format change. `strand status RUN_DIR`
//! reads it.

use super::record::now_us;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

/// One state a task passes through.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Added to the graph.
    Submitted,
    /// A try was sent to the interchange.
    Launched,
    /// A try failed and another will be made.
    Retrying,
    /// Succeeded.
    Done,
    /// Answered from an earlier run's checkpoint or the memo table.
    MemoHit,
    /// Failed after its last try.
    Failed,
    /// A dependency failed.
    DepFailed,
    /// Cancelled (or a task it depends on was).
    Cancelled,
}

/// One line of the log.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Event {
    /// Microseconds since the Unix epoch.
    pub t_us: u64,
    /// Task id within the run.
    pub task: u64,
    /// Task name, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The new state.
    pub state: State,
    /// Which try (for launched, retrying, failed).
    #[serde(rename = "try", default)]
    pub attempt: u32,
    /// The reason, for failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Appends events to the log.
#[derive(Debug)]
pub struct EventLog {
    out: BufWriter<File>,
}

impl EventLog {
    /// Open (append) the log at `path`.
    pub fn open(path: &Path) -> std::io::Result<EventLog> {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = OpenOptions::new().create(true).read(true).append(true).open(path)?;
        // A crash may have left a torn last line: end it, so the next event starts clean.
        if f.metadata()?.len() > 0 {
            let mut last = [0u8; 1];
            f.seek(SeekFrom::End(-1))?;
            f.read_exact(&mut last)?;
            if last[0] != b'\n' {
                f.write_all(b"\n")?;
            }
        }
        Ok(EventLog { out: BufWriter::with_capacity(1 << 16, f) })
    }

    /// Record one transition (buffered).
    pub fn record(&mut self, task: u64, name: Option<&str>, state: State, attempt: u32, detail: Option<String>) {
        let e = Event { t_us: now_us(), task, name: name.map(String::from), state, attempt, detail };
        if let Ok(mut line) = serde_json::to_vec(&e) {
            line.push(b'\n');
            let _ = self.out.write_all(&line);
        }
    }

    /// Push buffered events to the file.
    pub fn flush(&mut self) {
        let _ = self.out.flush();
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        self.flush();
    }
}

/// What the log says about one task.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct TaskSummary {
    /// Task id.
    pub task: u64,
    /// Name, if any.
    pub name: Option<String>,
    /// Last state.
    pub state: State,
    /// Tries launched.
    pub tries: u32,
    /// Seconds from submission to the last state.
    pub seconds: f64,
    /// Reason of the last failure.
    pub detail: Option<String>,
}

/// Read a log; lines that do not parse (a torn last line) are counted, not fatal.
/// Task ids restart with each run of the DFK, so a run is told apart by its `Submitted` of task 0.
pub fn summarize(path: &Path) -> std::io::Result<(Vec<TaskSummary>, usize)> {
    let mut tasks: BTreeMap<(usize, u64), (TaskSummary, u64)> = BTreeMap::new();
    let mut bad = 0;
    let mut run = 0usize;
    for line in BufReader::new(File::open(path)?).split(b'\n') {
        let line = line?;
        if line.is_empty() {
            continue;
        }
        let Ok(e) = serde_json::from_slice::<Event>(&line) else {
            bad += 1;
            continue;
        };
        if e.task == 0 && e.state == State::Submitted && tasks.keys().any(|(r, _)| *r == run) {
            run += 1;
        }
        let entry = tasks.entry((run, e.task)).or_insert_with(|| {
            (
                TaskSummary {
                    task: e.task,
                    name: e.name.clone(),
                    state: e.state,
                    tries: 0,
                    seconds: 0.0,
                    detail: None,
                },
                e.t_us,
            )
        });
        let (s, start) = entry;
        s.state = e.state;
        if e.state == State::Launched {
            s.tries += 1;
        }
        if e.detail.is_some() {
            s.detail = e.detail;
        }
        s.seconds = e.t_us.saturating_sub(*start) as f64 / 1e6;
    }
    // The latest run's view of each task name wins, so a resumed run reads as one.
    let mut latest: BTreeMap<String, TaskSummary> = BTreeMap::new();
    let mut unnamed = Vec::new();
    for ((r, id), (s, _)) in tasks {
        match &s.name {
            Some(n) => {
                latest.insert(n.clone(), s);
            }
            None => unnamed.push((r, id, s)),
        }
    }
    let mut out: Vec<TaskSummary> = latest.into_values().collect();
    out.extend(unnamed.into_iter().map(|(_, _, s)| s));
    Ok((out, bad))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run_dir::EVENTS_FILE;

    #[test]
    fn log_and_summary() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join(EVENTS_FILE);
        {
            let mut log = EventLog::open(&p).expect("open");
            log.record(0, Some("a"), State::Submitted, 0, None);
            log.record(0, Some("a"), State::Launched, 0, None);
            log.record(0, Some("a"), State::Retrying, 0, Some("exit code 1".into()));
            log.record(0, Some("a"), State::Launched, 1, None);
            log.record(0, Some("a"), State::Done, 1, None);
            log.record(1, Some("b"), State::Submitted, 0, None);
            log.record(1, Some("b"), State::DepFailed, 0, Some("dependency failed".into()));
        }
        std::fs::OpenOptions::new().append(true).open(&p).and_then(|mut f| f.write_all(b"{\"t_us\":1,")).expect("torn");
        let (s, bad) = summarize(&p).expect("summary");
        assert_eq!(bad, 1);
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].state, s[0].tries), (State::Done, 2));
        assert_eq!(s[1].state, State::DepFailed);
        // A second run of the same workflow (ids restart): the latest state per name wins.
        {
            let mut log = EventLog::open(&p).expect("open");
            log.record(0, Some("a"), State::Submitted, 0, None);
            log.record(0, Some("a"), State::MemoHit, 0, None);
        }
        let (s, _) = summarize(&p).expect("summary");
        assert_eq!(s.iter().find(|t| t.name.as_deref() == Some("a")).map(|t| t.state), Some(State::MemoHit));
    }
}
