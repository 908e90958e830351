//! `strand status`: a run directory's tasks and blocks, or a live interchange's queue and managers.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;
use strand::block::summarize_blocks;
use strand::client::Client;
use strand::connection::ConnectionInfo;
use strand::monitoring::events::{summarize, State};
use strand::run_dir::{BLOCKS_FILE, EVENTS_FILE};

/// `strand status` arguments.
#[derive(clap::Args)]
#[command(after_help = "To change a manager: strand hold|release|drain MANAGER --connection FILE; \
to stop everything: strand shutdown --connection FILE.")]
pub struct Args {
    /// A run directory of `strand run` / `strand map`: summarize its tasks from events.jsonl.
    #[arg(value_name = "RUN_DIR", required_unless_present = "connection", conflicts_with = "connection")]
    run_dir: Option<PathBuf>,
    /// Connection file of a running interchange: its queue and managers.
    #[arg(long, value_name = "FILE")]
    connection: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Print the status; exit 0.
pub fn exec(a: Args) -> Result<i32> {
    match (a.connection, a.run_dir) {
        (Some(c), _) => interchange_status(&c, a.json),
        (None, Some(d)) => run_status(&d, a.json),
        (None, None) => bail!("give a RUN_DIR or --connection FILE (see --help)"),
    }
}

/// What the event log says about each task, and the block log about each block.
fn run_status(run_dir: &Path, json: bool) -> Result<i32> {
    let path = run_dir.join(EVENTS_FILE);
    let (tasks, torn) = summarize(&path).with_context(|| {
        format!("reading {} (is {} a run directory of strand run or strand map?)", path.display(), run_dir.display())
    })?;
    if json {
        println!("{}", serde_json::to_string(&tasks)?);
        return Ok(0);
    }
    let count = |st: &[State]| tasks.iter().filter(|t| st.contains(&t.state)).count();
    println!(
        "{}: {} tasks: {} done ({} from an earlier run), {} failed, {} dependency failed, {} cancelled, {} running or waiting",
        run_dir.display(),
        tasks.len(),
        count(&[State::Done, State::MemoHit]),
        count(&[State::MemoHit]),
        count(&[State::Failed]),
        count(&[State::DepFailed]),
        count(&[State::Cancelled]),
        count(&[State::Submitted, State::Launched, State::Retrying]),
    );
    for t in tasks.iter().filter(|t| matches!(t.state, State::Failed | State::DepFailed)).take(20) {
        let name = t.name.clone().unwrap_or_else(|| format!("task-{}", t.task));
        println!("  {name}: {:?} after {} tries: {}", t.state, t.tries, t.detail.as_deref().unwrap_or(""));
    }
    if torn > 0 {
        println!("({torn} torn line(s) in {} ignored)", path.display());
    }
    if let Ok(blocks) = summarize_blocks(&run_dir.join(BLOCKS_FILE)) {
        let live = blocks.iter().filter(|b| !b.last_event.is_final()).count();
        println!("{} block{}: {live} live", blocks.len(), if blocks.len() == 1 { "" } else { "s" });
        for b in &blocks {
            let detail = b.detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default();
            let event = b.last_event.name();
            println!("  {:<16} job {:<14} {event}{detail} after {:.1} s", b.block.0, b.job.0, b.lifetime_s);
        }
    }
    Ok(0)
}

/// The interchange's queue, managers and dropped frames.
fn interchange_status(connection: &Path, json: bool) -> Result<i32> {
    let conn = ConnectionInfo::load(connection)?;
    let mut c = Client::connect(&conn)?;
    let s = c.status(Duration::from_secs(10))?;
    if json {
        println!("{}", serde_json::to_string(&s)?);
        return Ok(0);
    }
    println!("queued {}  in flight {}  managers {}", s.queued, s.in_flight, s.managers.len());
    if !s.managers.is_empty() {
        println!(
            "{:<26} {:<20} {:<12} {:>6} {:>9} {:>9}",
            "MANAGER", "HOST", "BLOCK", "SLOTS", "IN FLIGHT", "IDLE (s)"
        );
        for m in &s.managers {
            println!(
                "{:<26} {:<20} {:<12} {:>6} {:>9} {:>9.1}",
                m.id.to_string(),
                m.host,
                m.block.0,
                m.slots,
                m.in_flight,
                m.idle_ms as f64 / 1000.0
            );
        }
    }
    if s.dropped.total() > 0 {
        println!("dropped: {:?}", s.dropped);
    }
    Ok(0)
}
