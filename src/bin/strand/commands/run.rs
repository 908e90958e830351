//! `strand run`: run a TOML workflow file on an executor and print each task's end.

use super::{finish_monitoring, open, seconds, MonitoringArgs, TargetArgs};
use anyhow::Result;
use std::path::PathBuf;
use std::time::Duration;
use strand::dfk::memo::CheckpointMode;
use strand::dfk::{Dfk, DfkConfig, MonitoringConfig, TaskFuture};
use strand::executor::Executor;
use strand::monitoring::progress::Progress;
use strand::run_dir::{CHECKPOINT_FILE, EVENTS_FILE};
use strand::workflow::Workflow;

/// `strand run` arguments.
#[derive(clap::Args)]
pub struct Args {
    /// The workflow file (TOML; see examples/hello.toml).
    workflow: PathBuf,
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    monitoring: MonitoringArgs,
    /// Give up (exit 3) if the workflow has not finished after this many seconds.
    #[arg(long, value_name = "SECONDS")]
    timeout: Option<f64>,
    /// When completed tasks reach RUN_DIR/checkpoint.jsonl: task-exit, at-exit, or periodic:SECONDS.
    #[arg(long, default_value = "task-exit", value_name = "MODE")]
    checkpoint: CheckpointMode,
}

/// Exit 0 if every task succeeded, 1 if any failed, 3 on `--timeout`.
pub fn exec(a: Args) -> Result<i32> {
    // Parse before starting anything: a bad file must not leave processes behind.
    let wf = Workflow::from_file(&a.workflow)?;
    let timeout = a.timeout.map(|s| seconds("--timeout", s)).transpose()?;
    let exe = open(&a.target, 1)?;
    let monitoring = a.monitoring.config(&exe);
    let mut db_error = None;
    let result = run_workflow(&wf, &exe, timeout, a.checkpoint, monitoring.clone(), &mut db_error);
    exe.stop();
    finish_monitoring(monitoring.as_ref(), db_error);
    result
}

fn run_workflow(
    wf: &Workflow,
    exe: &Executor,
    timeout: Option<Duration>,
    checkpoint_mode: CheckpointMode,
    monitoring: Option<MonitoringConfig>,
    db_error: &mut Option<String>,
) -> Result<i32> {
    let checkpoint = exe.run_dir().file(CHECKPOINT_FILE);
    let dfk = Dfk::connect(
        exe.connection(),
        DfkConfig {
            checkpoint: Some(checkpoint.clone()),
            events: Some(exe.run_dir().file(EVENTS_FILE)),
            monitoring,
            memoize: true,
            checkpoint_mode,
            ..DfkConfig::default()
        },
    )?;
    let (loaded, torn) = dfk.checkpoint_loaded();
    if loaded > 0 || torn > 0 {
        eprintln!(
            "strand: resuming from {}: {loaded} completed tasks on record{}",
            checkpoint.display(),
            if torn > 0 { format!(", {torn} torn record(s) ignored") } else { String::new() }
        );
    }
    let futures = wf.submit(&dfk);
    let progress = Progress::start(dfk.monitor(), Some(wf.tasks.len() as u64));
    let waited = exe.wait_all(&dfk, timeout);
    drop(progress);
    let left = match waited {
        Ok(left) => left,
        Err(e) => {
            *db_error = dfk.shutdown();
            return Err(e.into());
        }
    };
    let (mut done, mut failed) = (0, 0);
    for (t, f) in wf.tasks.iter().zip(&futures) {
        match TaskFuture::peek(f) {
            Some(Ok(out)) => {
                done += 1;
                let text = String::from_utf8_lossy(&out);
                println!("{}: done{}{}", t.name, if text.trim().is_empty() { "" } else { ": " }, text.trim_end());
            }
            Some(Err(e)) => {
                failed += 1;
                println!("{}: {e}", t.name);
            }
            None => println!("{}: not finished", t.name),
        }
    }
    let hits = dfk.counts().memo_hits;
    println!(
        "{} tasks: {done} done ({hits} skipped: completed in an earlier run), {failed} failed, {left} not finished",
        wf.tasks.len()
    );
    for e in dfk.checkpoint_errors().iter().take(3) {
        eprintln!("strand: warning: could not write the checkpoint: {e}");
    }
    super::say_dropped(&dfk);
    *db_error = dfk.shutdown();
    Ok(if left > 0 {
        3
    } else if failed > 0 {
        1
    } else {
        0
    })
}
