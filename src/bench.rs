//! `strand bench`: throughput and latency through the whole path (DFK -> interchange -> launcher -> workers).

use crate::dfk::{Call, Dfk, TaskFuture};
use serde::Serialize;
use std::time::{Duration, Instant};

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

/// Round-trip time of one no-op task at a time.
#[derive(Serialize, Debug)]
pub struct Latency {
    /// Always "latency".
    pub bench: &'static str,
    /// Tasks run.
    pub tasks: u64,
    /// Worker ranks.
    pub workers: u32,
    /// Mean, microseconds.
    pub mean_us: f64,
    /// Median, microseconds.
    pub p50_us: f64,
    /// 99th percentile, microseconds.
    pub p99_us: f64,
    /// Tasks that did not succeed (should be 0).
    pub failed: u64,
}

fn noop() -> Call {
    Call::function("noop", Vec::new())
}

/// Run `n` no-op tasks at once and time them.
pub fn throughput(dfk: &Dfk, n: u64, workers: u32) -> Throughput {
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

/// Run `n` no-op tasks one after another and report the round-trip distribution.
pub fn latency(dfk: &Dfk, n: u64, workers: u32) -> Latency {
    for _ in 0..50 {
        let _ = dfk.submit(noop()).wait();
    }
    let mut samples = Vec::with_capacity(n as usize);
    let mut failed = 0;
    for _ in 0..n {
        let t = Instant::now();
        if dfk.submit(noop()).wait().is_err() {
            failed += 1;
        }
        samples.push(t.elapsed());
    }
    samples.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let pct = |p: f64| us(samples[((samples.len() as f64 - 1.0) * p).round() as usize]);
    let mean = samples.iter().map(|d| us(*d)).sum::<f64>() / samples.len().max(1) as f64;
    Latency {
        bench: "latency",
        tasks: n,
        workers,
        mean_us: mean,
        p50_us: if samples.is_empty() { 0.0 } else { pct(0.5) },
        p99_us: if samples.is_empty() { 0.0 } else { pct(0.99) },
        failed,
    }
}

/// Per-link overhead of a dependency chain.
#[derive(Serialize, Debug)]
pub struct Chain {
    /// Always "chain".
    pub bench: &'static str,
    /// Links.
    pub depth: u64,
    /// Worker ranks.
    pub workers: u32,
    /// Seconds for the whole chain.
    pub seconds: f64,
    /// Microseconds per link (dependency resolution plus one round trip).
    pub per_link_us: f64,
    /// Whether the chain ended in success.
    pub ok: bool,
}

/// Run a chain of `depth` no-op tasks, each after the previous one.
pub fn chain(dfk: &Dfk, depth: u64, workers: u32) -> Chain {
    let _ = crate::programs::noop_chain(&dfk.handle(), 50).wait();
    let start = Instant::now();
    let ok = crate::programs::noop_chain(&dfk.handle(), depth).wait().is_ok();
    let seconds = start.elapsed().as_secs_f64();
    Chain { bench: "chain", depth, workers, seconds, per_link_us: seconds * 1e6 / depth as f64, ok }
}
