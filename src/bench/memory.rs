//! `strand bench memory`: bytes per pending task in the DFK while the interchange pushes back
//! (its queue is full and it refuses the rest), with no workers at all.

use super::{at_least_one, noop, BenchError};
use crate::client::Client;
use crate::dfk::{Dfk, DfkConfig, TaskFuture};
use crate::interchange::process::{InterchangeOptions, InterchangeProcess};
use crate::run_dir::RunDir;
use serde::Serialize;
use std::time::{Duration, Instant};

/// What `strand bench memory` measured.
#[derive(Serialize, Debug)]
pub struct Memory {
    /// Always "memory".
    pub bench: &'static str,
    /// Tasks submitted.
    pub tasks: u64,
    /// Seconds to submit them all.
    pub submit_s: f64,
    /// Growth of this process's resident memory, MiB.
    pub dfk_rss_growth_mib: f64,
    /// That growth per task, bytes.
    pub dfk_bytes_per_pending_task: f64,
    /// Tries the interchange holds.
    pub interchange_queued: u64,
    /// Its queue limit.
    pub interchange_max_queue: u64,
    /// Its resident memory, MiB.
    pub interchange_peak_rss_mib: f64,
}

/// Submit `tasks` no-ops to an interchange (started in `run_dir`) whose queue holds `max_queue`.
pub fn run(run_dir: &RunDir, tasks: u64, max_queue: u64) -> Result<Memory, BenchError> {
    at_least_one("--tasks", tasks)?;
    let opts = InterchangeOptions { max_queue: Some(max_queue), ..InterchangeOptions::local() };
    let ix = InterchangeProcess::start(run_dir, &opts)?;
    let dfk = Dfk::connect(&ix.conn, DfkConfig::default())?;
    let before = crate::host::current_rss(std::process::id()).unwrap_or(0);
    let started = Instant::now();
    let futures: Vec<TaskFuture> = (0..tasks).map(|_| dfk.submit(noop())).collect();
    let submit_s = started.elapsed().as_secs_f64();
    // Let the I/O thread push what the interchange will take (it refuses the rest).
    std::thread::sleep(Duration::from_secs(2));
    let after = crate::host::current_rss(std::process::id()).unwrap_or(0);
    let report = Client::connect(&ix.conn)?.status(Duration::from_secs(10))?;
    let (ix_rss, _) = crate::host::proc_usage(ix.pid()).unwrap_or((0, 0.0));
    drop(futures);
    dfk.shutdown();
    ix.stop(Duration::from_secs(10));
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    Ok(Memory {
        bench: "memory",
        tasks,
        submit_s,
        dfk_rss_growth_mib: mib(after.saturating_sub(before)),
        dfk_bytes_per_pending_task: after.saturating_sub(before) as f64 / tasks.max(1) as f64,
        interchange_queued: report.queued,
        interchange_max_queue: max_queue,
        interchange_peak_rss_mib: mib(ix_rss),
    })
}
