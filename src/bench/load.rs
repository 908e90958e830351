//! `strand bench load`: a long stream of no-op tasks with a bounded window in flight, and the
//! resident memory of the driver and the interchange sampled as it goes.

use super::noop;
use crate::dfk::{Dfk, TaskFuture};
use serde::Serialize;
use std::time::Instant;

/// Memory of the driver and the interchange at one point of a load run.
#[derive(Serialize, Debug, Clone, Copy)]
pub struct RssSample {
    /// Tasks ended when sampled.
    pub tasks_done: u64,
    /// Seconds since the load started.
    pub seconds: f64,
    /// Resident memory of this process (the DFK), MiB.
    pub driver_rss_mib: f64,
    /// Resident memory of the interchange, MiB (0 when it could not be read).
    pub interchange_rss_mib: f64,
}

/// A long stream of no-op tasks with a bounded number in flight, and memory sampled as it goes.
#[derive(Serialize, Debug)]
pub struct Load {
    /// Always "load".
    pub bench: &'static str,
    /// Tasks run.
    pub tasks: u64,
    /// Most tasks submitted and not yet ended at any time.
    pub window: u64,
    /// Worker ranks.
    pub workers: u32,
    /// Seconds from first submit to last result.
    pub seconds: f64,
    /// Tasks per second.
    pub tasks_per_s: f64,
    /// Tasks that did not succeed (should be 0).
    pub failed: u64,
    /// Memory every `sample_every` tasks, from the first to the last.
    pub samples: Vec<RssSample>,
    /// Driver growth from the first sample at or past `window` tasks to the last, MiB.
    pub driver_growth_after_window_mib: f64,
    /// Interchange growth over the same span, MiB.
    pub interchange_growth_after_window_mib: f64,
}

/// Run `n` no-op tasks, keeping at most `window` in flight (a driver streams its tasks, as
/// `strand map` does, instead of holding a future for each of a million), and sample the
/// resident memory of this process and of `interchange_pid` every `sample_every` tasks.
pub fn run(dfk: &Dfk, n: u64, window: u64, sample_every: u64, workers: u32, interchange_pid: Option<u32>) -> Load {
    let window = window.max(1);
    let sample_every = sample_every.max(1);
    let mib = |b: Option<u64>| b.unwrap_or(0) as f64 / (1 << 20) as f64;
    let start = Instant::now();
    let sample = |done: u64| RssSample {
        tasks_done: done,
        seconds: start.elapsed().as_secs_f64(),
        driver_rss_mib: mib(crate::host::current_rss(std::process::id())),
        interchange_rss_mib: mib(interchange_pid.and_then(crate::host::current_rss)),
    };
    let mut samples = vec![sample(0)];
    let mut inflight: std::collections::VecDeque<TaskFuture> = std::collections::VecDeque::new();
    let (mut submitted, mut done, mut failed) = (0u64, 0u64, 0u64);
    while done < n {
        while submitted < n && (inflight.len() as u64) < window {
            inflight.push_back(dfk.submit(noop()));
            submitted += 1;
        }
        let Some(f) = inflight.pop_front() else { break };
        if f.wait().is_err() {
            failed += 1;
        }
        done += 1;
        if done % sample_every == 0 || done == n {
            samples.push(sample(done));
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let after = samples.iter().find(|s| s.tasks_done >= window).copied();
    let last = samples.last().copied();
    let (dg, ig) = match (after, last) {
        (Some(a), Some(l)) => (l.driver_rss_mib - a.driver_rss_mib, l.interchange_rss_mib - a.interchange_rss_mib),
        _ => (0.0, 0.0),
    };
    Load {
        bench: "load",
        tasks: n,
        window,
        workers,
        seconds,
        tasks_per_s: n as f64 / seconds,
        failed,
        samples,
        driver_growth_after_window_mib: dg,
        interchange_growth_after_window_mib: ig,
    }
}
