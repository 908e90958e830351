//! Blocks: one batch job of `strand-launcher` ranks, its ids, and its history.
//!
//! A block has two names: the [`BlockId`] Strand gives it (its managers register under it)
//! and the [`JobId`] the scheduler gives its job. They are different things and never
//! convert into each other. The scaler appends a [`BlockEvent`] to `blocks.jsonl` in the run
//! directory at each transition; `strand status RUN_DIR` and the elasticity benchmark read
//! them back through [`read_events`].

use serde::{Deserialize, Serialize};
use std::fmt;
use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// Identifies a block (one batch job) to Strand: its managers register under it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockId(pub String);

impl fmt::Display for BlockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The scheduler's id for a submitted job (Slurm: `12345`; PBS: `1234.server.domain`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct JobId(pub String);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What happened to a block (one line of `blocks.jsonl`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum BlockEventKind {
    /// The provider accepted the job.
    Submitted,
    /// The provider refused the job (the detail says why).
    SubmitFailed,
    /// Its first manager registered.
    Connected,
    /// The strategy holds it: its managers get no new tries.
    Hold,
    /// Its managers were asked to drain and stop.
    Stop,
    /// The provider was asked to cancel its job.
    Cancel,
    /// Its job ended (the detail is the job's end state).
    Ended,
    /// Its job had not ended within the bound after a cancel at the end of the run.
    StillLive,
}

/// Every block event kind, in the order of a block's life.
pub const BLOCK_EVENT_KINDS: [BlockEventKind; 8] = [
    BlockEventKind::Submitted,
    BlockEventKind::SubmitFailed,
    BlockEventKind::Connected,
    BlockEventKind::Hold,
    BlockEventKind::Stop,
    BlockEventKind::Cancel,
    BlockEventKind::Ended,
    BlockEventKind::StillLive,
];

impl BlockEventKind {
    /// The name written in `blocks.jsonl`.
    pub fn name(self) -> &'static str {
        match self {
            BlockEventKind::Submitted => "submitted",
            BlockEventKind::SubmitFailed => "submit-failed",
            BlockEventKind::Connected => "connected",
            BlockEventKind::Hold => "hold",
            BlockEventKind::Stop => "stop",
            BlockEventKind::Cancel => "cancel",
            BlockEventKind::Ended => "ended",
            BlockEventKind::StillLive => "still-live",
        }
    }

    /// The kind named `name` in `blocks.jsonl` (the inverse of [`BlockEventKind::name`]).
    pub fn from_name(name: &str) -> Option<BlockEventKind> {
        BLOCK_EVENT_KINDS.into_iter().find(|k| k.name() == name)
    }

    /// Whether the block's job is over (or never started).
    pub fn is_final(self) -> bool {
        matches!(self, BlockEventKind::Ended | BlockEventKind::SubmitFailed)
    }
}

impl fmt::Display for BlockEventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One line of `blocks.jsonl`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct BlockEvent {
    /// Seconds since the Unix epoch.
    pub t: f64,
    /// The block.
    pub block: BlockId,
    /// Its job (empty when the submission failed).
    #[serde(default)]
    pub job: JobId,
    /// What happened.
    pub event: BlockEventKind,
    /// The job's end state, or an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Seconds since the Unix epoch, as block events record time.
pub fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Appends block events to `blocks.jsonl` (a missing file is not an error: events are then not kept).
pub struct BlockLog {
    file: Option<std::fs::File>,
}

impl BlockLog {
    /// Open (append) the block log at `path`.
    pub fn open(path: &Path) -> BlockLog {
        BlockLog { file: std::fs::OpenOptions::new().create(true).append(true).open(path).ok() }
    }

    /// Append one event, stamped now.
    pub fn record(&mut self, block: &BlockId, job: &JobId, event: BlockEventKind, detail: Option<String>) {
        let Some(f) = &mut self.file else { return };
        let e = BlockEvent { t: unix_now(), block: block.clone(), job: job.clone(), event, detail };
        if let Ok(line) = serde_json::to_string(&e) {
            let _ = writeln!(f, "{line}");
        }
    }
}

/// Every event of a block log in order; torn or foreign lines are skipped.
pub fn read_events(path: &Path) -> std::io::Result<Vec<BlockEvent>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
}

/// One block's history as `blocks.jsonl` tells it (for `strand status RUN_DIR`).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct BlockSummary {
    /// The block id its managers registered under.
    pub block: BlockId,
    /// The scheduler's job id.
    pub job: JobId,
    /// Its last event.
    pub last_event: BlockEventKind,
    /// The last event's detail (the job's end state, an error).
    pub detail: Option<String>,
    /// Seconds from its submission to its end (or to its last event while live).
    pub lifetime_s: f64,
}

/// Read `blocks.jsonl`: one summary per block in submission order.
pub fn summarize_blocks(path: &Path) -> std::io::Result<Vec<BlockSummary>> {
    let mut out: Vec<(f64, BlockSummary)> = vec![];
    for e in read_events(path)? {
        match out.iter_mut().find(|(_, b)| b.block == e.block) {
            Some((start, b)) => {
                b.last_event = e.event;
                b.detail = e.detail;
                b.lifetime_s = e.t - *start;
                if !e.job.0.is_empty() {
                    b.job = e.job;
                }
            }
            None => out.push((
                e.t,
                BlockSummary { block: e.block, job: e.job, last_event: e.event, detail: e.detail, lifetime_s: 0.0 },
            )),
        }
    }
    Ok(out.into_iter().map(|(_, b)| b).collect())
}

/// Block-seconds allocated within `[t0, t_end]`: each block from its submission to its end.
pub fn allocated_block_seconds(events: &[BlockEvent], t0: f64, t_end: f64) -> f64 {
    let mut spans: Vec<(&BlockId, f64, f64)> = vec![];
    for e in events {
        match e.event {
            BlockEventKind::Submitted => spans.push((&e.block, e.t, f64::INFINITY)),
            BlockEventKind::Ended => {
                if let Some(s) = spans.iter_mut().find(|s| *s.0 == e.block) {
                    s.2 = e.t;
                }
            }
            _ => {}
        }
    }
    spans.iter().map(|(_, a, b)| (b.min(t_end) - a.max(t0)).max(0.0)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(lines: &[&str]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("blocks.jsonl");
        std::fs::write(&p, lines.join("\n")).expect("write");
        (dir, p)
    }

    #[test]
    fn every_kind_is_found_by_its_name() {
        for k in BLOCK_EVENT_KINDS {
            assert_eq!(BlockEventKind::from_name(k.name()), Some(k));
        }
        assert_eq!(BlockEventKind::from_name("running"), None);
    }

    #[test]
    fn block_history_is_summarized_per_block() {
        let (_d, p) = write(&[
            r#"{"t":10.0,"block":"a-1","job":"7","event":"submitted"}"#,
            r#"{"t":11.0,"block":"a-2","job":"8","event":"submitted"}"#,
            r#"{"t":12.0,"block":"a-1","job":"7","event":"connected"}"#,
            r#"{"t":30.5,"block":"a-1","job":"7","event":"ended","detail":"completed"}"#,
            "{torn",
        ]);
        let b = summarize_blocks(&p).expect("read");
        assert_eq!(b.len(), 2);
        assert_eq!((b[0].block.0.as_str(), b[0].last_event), ("a-1", BlockEventKind::Ended));
        assert_eq!(b[0].detail.as_deref(), Some("completed"));
        assert!((b[0].lifetime_s - 20.5).abs() < 1e-9);
        assert_eq!((b[1].job.0.as_str(), b[1].last_event), ("8", BlockEventKind::Submitted));
    }

    #[test]
    fn allocation_is_clipped_to_the_workload() {
        let (_d, p) = write(&[
            r#"{"t":0.0,"block":"a","job":"1","event":"submitted"}"#,
            r#"{"t":5.0,"block":"b","job":"2","event":"submitted"}"#,
            r#"{"t":6.0,"block":"b","job":"2","event":"connected"}"#,
            r#"{"t":8.0,"block":"b","job":"2","event":"ended","detail":"cancelled"}"#,
            r#"{"t":9.0,"block":"c","job":"3","event":"submitted"}"#,
            "torn",
        ]);
        let events = read_events(&p).expect("read");
        // a: 2..10 = 8; b: 5..8 = 3; c: 9..10 = 1.
        assert!((allocated_block_seconds(&events, 2.0, 10.0) - 12.0).abs() < 1e-9);
    }

    #[test]
    fn events_round_trip_with_the_names_in_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("blocks.jsonl");
        let mut log = BlockLog::open(&p);
        log.record(&BlockId("b-1".into()), &JobId::default(), BlockEventKind::SubmitFailed, Some("no".into()));
        log.record(&BlockId("b-1".into()), &JobId("9".into()), BlockEventKind::StillLive, None);
        let text = std::fs::read_to_string(&p).expect("read");
        assert!(text.contains(r#""event":"submit-failed""#) && text.contains(r#""event":"still-live""#), "{text}");
        let events = read_events(&p).expect("read");
        assert_eq!(
            events.iter().map(|e| e.event).collect::<Vec<_>>(),
            [BlockEventKind::SubmitFailed, BlockEventKind::StillLive]
        );
    }
}
