//! `strand bench chain`: the per-link overhead of a chain of no-op tasks, each after the previous one.

use super::programs::noop_chain;
use crate::dfk::Dfk;
use serde::Serialize;
use std::time::Instant;

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
pub fn run(dfk: &Dfk, depth: u64, workers: u32) -> Chain {
    let _ = noop_chain(&dfk.handle(), 50).wait();
    let start = Instant::now();
    let ok = noop_chain(&dfk.handle(), depth).wait().is_ok();
    let seconds = start.elapsed().as_secs_f64();
    Chain { bench: "chain", depth, workers, seconds, per_link_us: seconds * 1e6 / depth as f64, ok }
}
