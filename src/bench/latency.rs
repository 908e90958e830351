//! `strand bench latency`: the round trip of one no-op task at a time.

use super::noop;
use crate::dfk::Dfk;
use serde::Serialize;
use std::time::{Duration, Instant};

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
    /// Every round trip, microseconds, in the order run (`--out` writes them).
    #[serde(skip)]
    pub samples_us: Vec<f64>,
}

/// Run `n` no-op tasks one after another and report the round-trip distribution.
pub fn run(dfk: &Dfk, n: u64, workers: u32) -> Latency {
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
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let samples_us = samples.iter().map(|d| us(*d)).collect();
    samples.sort();
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
        samples_us,
    }
}
