//! The resource samples of a run, binned over its time axis: the memory and cores of its
//! running tries, and its nodes' load and memory.
//!
//! A sample holds until the next one of the same try (or node): each value is spread over that
//! span, so a bin's figure is a time average whatever the sampling interval. A try's CPU rate
//! between samples is the difference of their CPU times over the gap; after its last sample it
//! runs to the CPU time its worker counted when it reaped the try.

use super::{bins_touched, spread, LoadError, BINS};
use rusqlite::Connection;
use serde::Serialize;
use std::collections::BTreeMap;

/// What the resource samples show over the run's time axis (each series has [`BINS`] points).
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Sampled {
    /// Samples of running tries read.
    pub try_samples: u64,
    /// Tries sampled at least once.
    pub tries: u64,
    /// Nodes sampled.
    pub nodes: u64,
    /// Resident memory of the running tries, summed, KiB.
    pub try_rss_kib: Vec<f64>,
    /// Cores the running tries kept busy (their CPU time per second).
    pub try_cores: Vec<f64>,
    /// The nodes' one-minute load: mean over the nodes sampled in each bin, and the largest.
    pub load: Vec<(f64, f64)>,
    /// The nodes' CPUs, averaged like `load` (the load at which a node is full).
    pub cpus: Vec<f64>,
    /// The share of each node's memory in use (total less available): mean and largest.
    pub mem_used: Vec<(f64, f64)>,
}

impl Sampled {
    /// No samples yet: every series at zero.
    fn empty() -> Sampled {
        Sampled {
            try_samples: 0,
            tries: 0,
            nodes: 0,
            try_rss_kib: vec![0.0; BINS],
            try_cores: vec![0.0; BINS],
            load: vec![(0.0, 0.0); BINS],
            cpus: vec![0.0; BINS],
            mem_used: vec![(0.0, 0.0); BINS],
        }
    }
}

/// One try's samples in time order, with when it ran and the CPU time counted at its end.
struct TryTrace {
    points: Vec<(i64, i64, i64)>,
    started: Option<i64>,
    ended: Option<i64>,
    final_cpu: Option<i64>,
}

/// Read run `run`'s samples into series over `[t0, t0 + width * BINS)`; `None` when the file
/// has no sample tables (written before schema 2) or the run has no samples.
pub(super) fn load(c: &Connection, run: i64, t0: i64, width: f64) -> Result<Option<Sampled>, LoadError> {
    let tables: i64 = c.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('try_samples', 'node_samples')",
        [],
        |r| r.get(0),
    )?;
    if tables < 2 {
        return Ok(None);
    }
    let mut s = Sampled::empty();
    let mut traces: BTreeMap<(i64, i64), TryTrace> = BTreeMap::new();
    let mut st = c.prepare(
        "SELECT s.task, s.attempt, s.t_us, s.cpu_us, s.rss_kib, r.started_us, r.started_us + r.run_us, r.cpu_us \
         FROM try_samples s LEFT JOIN tries r ON r.run = s.run AND r.task = s.task AND r.attempt = s.attempt \
         WHERE s.run = ?1",
    )?;
    let mut rows = st.query([run])?;
    while let Some(r) = rows.next()? {
        s.try_samples += 1;
        let t = traces.entry((r.get(0)?, r.get(1)?)).or_insert(TryTrace {
            points: Vec::new(),
            started: r.get(5)?,
            ended: r.get(6)?,
            final_cpu: r.get(7)?,
        });
        t.points.push((r.get(2)?, r.get(3)?, r.get(4)?));
    }
    s.tries = traces.len() as u64;
    let gap = typical_gap(traces.values().map(|t| t.points.iter().map(|p| p.0).collect()));
    for t in traces.values_mut() {
        t.points.sort_unstable();
        try_series(&mut s, t, t0, width, gap);
    }

    let mut nodes: BTreeMap<String, Vec<(i64, f64, f64, f64)>> = BTreeMap::new();
    let mut st =
        c.prepare("SELECT host, t_us, load1, cpus, mem_total_kib, mem_available_kib FROM node_samples WHERE run = ?1")?;
    let mut rows = st.query([run])?;
    while let Some(r) = rows.next()? {
        let (total, available): (i64, i64) = (r.get(4)?, r.get(5)?);
        let used = if total > 0 { (total - available).max(0) as f64 / total as f64 } else { 0.0 };
        nodes.entry(r.get(0)?).or_default().push((r.get(1)?, r.get(2)?, r.get::<_, i64>(3)? as f64, used));
    }
    s.nodes = nodes.len() as u64;
    let gap = typical_gap(nodes.values().map(|v| v.iter().map(|p| p.0).collect()));
    let mut covered = vec![0.0; BINS];
    let (mut load, mut mem) = (vec![0.0; BINS], vec![0.0; BINS]);
    for points in nodes.values_mut() {
        points.sort_unstable_by_key(|p| p.0);
        for (i, &(t, load1, cpus, used)) in points.iter().enumerate() {
            let until = points.get(i + 1).map_or(t + gap, |n| n.0);
            spread(&mut covered, t0, width, t, until, 1.0);
            spread(&mut load, t0, width, t, until, load1);
            spread(&mut s.cpus, t0, width, t, until, cpus);
            spread(&mut mem, t0, width, t, until, used);
            for b in bins_of(t0, width, t, until) {
                s.load[b].1 = s.load[b].1.max(load1);
                s.mem_used[b].1 = s.mem_used[b].1.max(used);
            }
        }
    }
    for b in 0..BINS {
        if covered[b] > 0.0 {
            s.load[b].0 = load[b] / covered[b];
            s.mem_used[b].0 = mem[b] / covered[b];
            s.cpus[b] /= covered[b];
        }
    }
    Ok((s.try_samples > 0 || s.nodes > 0).then_some(s))
}

/// One try's memory and CPU rate, spread over the spans between its samples.
fn try_series(s: &mut Sampled, t: &TryTrace, t0: i64, width: f64, gap: i64) {
    let Some(&(first_t, _, first_rss)) = t.points.first() else { return };
    // Before its first sample, the try is taken to have held what that sample found, from
    // its start (CPU is counted from zero there).
    let start = t.started.filter(|&a| a < first_t).unwrap_or(first_t);
    spread(&mut s.try_rss_kib, t0, width, start, first_t, first_rss as f64);
    let mut prev = (start, 0i64);
    for (i, &(at, cpu, rss)) in t.points.iter().enumerate() {
        rate(&mut s.try_cores, t0, width, prev, (at, cpu));
        let until = match t.points.get(i + 1) {
            Some(next) => next.0,
            None => t.ended.filter(|&e| e > at).unwrap_or(at + gap),
        };
        spread(&mut s.try_rss_kib, t0, width, at, until, rss as f64);
        prev = (at, cpu);
    }
    if let (Some(end), Some(cpu)) = (t.ended, t.final_cpu) {
        rate(&mut s.try_cores, t0, width, prev, (end, cpu));
    }
}

/// Spread the CPU rate between two (time, CPU time) points over their span.
fn rate(bins: &mut [f64], t0: i64, width: f64, (ta, ca): (i64, i64), (tb, cb): (i64, i64)) {
    if tb > ta && cb >= ca {
        spread(bins, t0, width, ta, tb, (cb - ca) as f64 / (tb - ta) as f64);
    }
}

/// The bins of the report's axis a span touches.
fn bins_of(t0: i64, width: f64, a: i64, b: i64) -> std::ops::Range<usize> {
    bins_touched(BINS, t0, width, a, b)
}

/// The median gap between consecutive samples of one source: how long the last sample of a
/// source is taken to hold (the sampling interval, which the file does not record).
fn typical_gap(sources: impl Iterator<Item = Vec<i64>>) -> i64 {
    let mut gaps: Vec<i64> = Vec::new();
    for mut times in sources {
        times.sort_unstable();
        gaps.extend(times.windows(2).map(|w| w[1] - w[0]).filter(|&g| g > 0));
    }
    gaps.sort_unstable();
    // One sample each: the launcher's default interval.
    gaps.get(gaps.len() / 2).copied().unwrap_or(10_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_try_holds_each_sample_until_the_next_and_burns_cpu_between() {
        // Bins 1 s wide. Started at 0, sampled at 2 s (1 s CPU, 100 KiB) and 4 s (3 s CPU,
        // 300 KiB), ended at 6 s with 5 s CPU counted.
        let trace = TryTrace {
            points: vec![(2_000_000, 1_000_000, 100), (4_000_000, 3_000_000, 300)],
            started: Some(0),
            ended: Some(6_000_000),
            final_cpu: Some(5_000_000),
        };
        let mut s = Sampled::empty();
        try_series(&mut s, &trace, 0, 1_000_000.0, 2_000_000);
        assert_eq!(&s.try_rss_kib[..7], &[100.0, 100.0, 100.0, 100.0, 300.0, 300.0, 0.0]);
        assert_eq!(&s.try_cores[..7], &[0.5, 0.5, 1.0, 1.0, 1.0, 1.0, 0.0]);
    }

    #[test]
    fn the_last_sample_of_an_unfinished_try_holds_for_a_typical_gap() {
        let gap = typical_gap([vec![0, 2_000_000, 4_000_000], vec![7], vec![]].into_iter());
        assert_eq!(gap, 2_000_000);
        let trace = TryTrace { points: vec![(1_000_000, 0, 50)], started: None, ended: None, final_cpu: None };
        let mut s = Sampled::empty();
        try_series(&mut s, &trace, 0, 1_000_000.0, gap);
        assert_eq!(&s.try_rss_kib[..4], &[0.0, 50.0, 50.0, 0.0]);
        assert_eq!(typical_gap(std::iter::empty()), 10_000_000);
        assert_eq!(bins_of(0, 1.0, 3, 5), 3..5);
        assert_eq!(bins_of(0, 2.0, 3, 5), 1..3);
        assert_eq!(bins_of(0, 1.0, 3, 1_000), 3..BINS);
    }
}
