//! `strand bench throughput`: no-op tasks per second, all submitted at once.

use super::noop;
use crate::dfk::{Dfk, TaskFuture};
use serde::Serialize;
use std::time::Instant;

/// No-op tasks per second with every task submitted up front.
#[derive(Serialize, Debug)]
pub struct Throughput {
    /// Always "throughput".
    pub bench: &'static str,
    /// Tasks run.
    pub tasks: u64,
    /// Worker ranks.
    pub workers: u32,
    /// Seconds from first submit to last result.
    pub seconds: f64,
    /// Tasks per second.
    pub tasks_per_s: f64,
    /// Tasks that did not succeed (should be 0).
    pub failed: u64,
}

/// Run `n` no-op tasks at once and time them.
pub fn run(dfk: &Dfk, n: u64, workers: u32) -> Throughput {
    // Warm up: the first tasks pay for connection set-up and page faults.
    for f in (0..100).map(|_| dfk.submit(noop())).collect::<Vec<_>>() {
        let _ = f.wait();
    }
    let start = Instant::now();
    let futures: Vec<TaskFuture> = (0..n).map(|_| dfk.submit(noop())).collect();
    dfk.wait_all(None);
    let seconds = start.elapsed().as_secs_f64();
    let failed = futures.iter().filter(|f| !matches!(f.peek(), Some(Ok(_)))).count() as u64;
    Throughput { bench: "throughput", tasks: n, workers, seconds, tasks_per_s: n as f64 / seconds, failed }
}
