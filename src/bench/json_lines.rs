//! `strand bench json-lines`: no-op tasks through `strand map --json` (what a driver in any
//! language does: JSON lines in, JSON lines out) beside the same tasks submitted from Rust,
//! against the same warm blocks in one run; then through `strand map --json --no-monitoring`,
//! so that the run database's share shows.

use super::{throughput, BenchError};
use crate::dfk::Dfk;
use crate::process::strand_binary;
use serde::Serialize;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// Tasks per second through JSON lines and from Rust, side by side.
#[derive(Serialize, Debug)]
pub struct JsonLines {
    /// Always "json-lines".
    pub bench: &'static str,
    /// Tasks run each way.
    pub tasks: u64,
    /// Worker ranks.
    pub workers: u32,
    /// No-op tasks per second submitted from Rust (`strand bench throughput`).
    pub rust_tasks_per_s: f64,
    /// No-op tasks per second through `strand map --json --connection`, from its start to its
    /// exit with every result read.
    pub json_tasks_per_s: f64,
    /// `json_tasks_per_s / rust_tasks_per_s`.
    pub ratio: f64,
    /// The same through `strand map --json --no-monitoring` (no run database), after it.
    pub json_no_monitoring_tasks_per_s: f64,
    /// Tasks that did not succeed either way, or results missing from the JSON output.
    pub failed: u64,
}

/// Run `n` no-op tasks from `dfk`, then `n` through `strand map --json` on `connection`.
pub fn run(dfk: &Dfk, connection: &Path, n: u64, workers: u32) -> Result<JsonLines, BenchError> {
    let rust = throughput::run(dfk, n, workers);
    let (json_seconds, json_failed) = through_map(connection, n, true)?;
    let json_tasks_per_s = n as f64 / json_seconds;
    let (quiet_seconds, quiet_failed) = through_map(connection, n, false)?;
    Ok(JsonLines {
        bench: "json-lines",
        tasks: n,
        workers,
        rust_tasks_per_s: rust.tasks_per_s,
        json_tasks_per_s,
        ratio: json_tasks_per_s / rust.tasks_per_s,
        json_no_monitoring_tasks_per_s: n as f64 / quiet_seconds,
        failed: rust.failed + json_failed + quiet_failed,
    })
}

/// Seconds for `strand map --json` (with its run database if `monitoring`) to answer `n`
/// no-op tasks, and how many did not succeed.
fn through_map(connection: &Path, n: u64, monitoring: bool) -> Result<(f64, u64), BenchError> {
    let failed_to = |what: &str, e: std::io::Error| BenchError::Stalled(format!("strand map --json: {what}: {e}"));
    // Names unique to this run: `strand map` memoizes by name and content, and an earlier
    // run's checkpoint in the same run directory must not answer these.
    let prefix = format!("bench-{}-{}", std::process::id(), crate::wire::random_id().unwrap_or(0));
    let start = Instant::now();
    let mut child = Command::new(strand_binary())
        .args(["map", "--json"])
        .args((!monitoring).then_some("--no-monitoring"))
        .arg("--connection")
        .arg(connection)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| failed_to("start", e))?;
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(BenchError::Stalled("strand map --json: no pipes".into()));
    };
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        let mut w = BufWriter::new(stdin);
        for i in 0..n {
            writeln!(w, r#"{{"name":"{prefix}-{i}","function":"noop"}}"#)?;
        }
        w.flush()
    });
    let mut ok = 0u64;
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| failed_to("read", e))?;
        if line.contains(r#""ok":true"#) {
            ok += 1;
        }
    }
    let status = child.wait().map_err(|e| failed_to("wait", e))?;
    let seconds = start.elapsed().as_secs_f64();
    match writer.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(failed_to("write", e)),
        Err(_) => return Err(BenchError::Stalled("strand map --json: the writer thread panicked".into())),
    }
    if !status.success() && ok == n {
        return Err(BenchError::Stalled(format!("strand map --json exited with {status}")));
    }
    Ok((seconds, n - ok.min(n)))
}
