//! Evidence of duplicate execution: each logged task appends its label to `runs.log` as it
//! starts, and the DFK's event log says how often each task was tried, so a task that ran
//! more often than it was tried fails the test even when its result looks right.

use std::collections::HashMap;
use std::path::PathBuf;
use strand::dfk::{Call, DfkConfig, TaskFuture};

/// A directory with the run log and the DFK's event log of one test.
pub struct RunLog {
    dir: tempfile::TempDir,
}

impl RunLog {
    /// A fresh, empty one.
    pub fn new() -> RunLog {
        RunLog { dir: tempfile::tempdir().expect("run log directory") }
    }

    fn runs(&self) -> PathBuf {
        self.dir.path().join("runs.log")
    }

    fn events(&self) -> PathBuf {
        self.dir.path().join("events.jsonl")
    }

    /// `cmd` as a shell task that first appends `label` (no spaces) to the run log.
    pub fn logged(&self, label: &str, cmd: &str) -> Call {
        Call::shell(format!("echo {label} >> {}; {cmd}", self.runs().display()))
    }

    /// `base` with the DFK's events written beside the run log.
    pub fn config(&self, base: DfkConfig) -> DfkConfig {
        DfkConfig { events: Some(self.events()), ..base }
    }

    /// Each `(label, future)` ran at least once if it succeeded, and never more often than
    /// the DFK tried it. Call once every task has ended.
    pub fn assert_each_ran_within_its_tries<'a>(&self, tasks: impl IntoIterator<Item = (String, &'a TaskFuture)>) {
        let text = std::fs::read_to_string(self.runs()).unwrap_or_default();
        let mut runs: HashMap<&str, u32> = HashMap::new();
        for label in text.lines() {
            *runs.entry(label).or_default() += 1;
        }
        let (summaries, _) = strand::monitoring::events::summarize(&self.events()).expect("the DFK's event log");
        let tries: HashMap<u64, u32> = summaries.iter().map(|t| (t.task, t.tries)).collect();
        let mut checked = 0;
        for (label, f) in tasks {
            let n = runs.get(label.as_str()).copied().unwrap_or(0);
            let t = tries.get(&f.id().0).copied().unwrap_or(0);
            if matches!(f.peek(), Some(Ok(_))) {
                assert!(n >= 1, "task {label} succeeded without running");
            }
            assert!(n <= t, "task {label} ran {n} times but was tried {t} times");
            checked += 1;
        }
        assert!(checked > 0, "no task was checked");
    }
}
