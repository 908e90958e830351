//! `strand report`: one self-contained HTML page of what a run did, from its run database.

use anyhow::{Context, Result};
use std::path::PathBuf;
use std::time::Instant;
use strand::monitoring::report::{database_of, html, png, Report};

/// `strand report` arguments.
#[derive(clap::Args)]
#[command(after_help = "The run database is written by `strand run` and `strand map` (unless \
--no-monitoring). The page has no script and no external reference: copy it anywhere and open it. \
Runs in one run directory are numbered 1, 2, ... in the order they started.")]
pub struct Args {
    /// A run directory (or its monitoring.db file).
    #[arg(value_name = "RUN_DIR")]
    run_dir: PathBuf,
    /// Where to write the page [default: RUN_DIR/report.html].
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Which run of the directory [default: the latest].
    #[arg(long, value_name = "N")]
    run: Option<i64>,
    /// Also print the report's numbers as one JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// Also write each chart of the page as DIR/NAME.png (1,800 pixels wide; running,
    /// utilization, blocks, durations, workers, queued: those the run has).
    #[arg(long, value_name = "DIR")]
    png: Option<PathBuf>,
}

/// Write the page; exit 0 (2 when there is no database or it cannot be read).
pub fn exec(a: Args) -> Result<i32> {
    let begun = Instant::now();
    let dir = std::path::absolute(&a.run_dir).with_context(|| format!("resolving {}", a.run_dir.display()))?;
    let report = Report::load(&dir, a.run)?;
    let out = match a.out {
        Some(p) => std::path::absolute(&p).with_context(|| format!("resolving {}", p.display()))?,
        None => database_of(&dir).with_file_name("report.html"),
    };
    let page = html::page(&report);
    std::fs::write(&out, &page.html).with_context(|| format!("writing {}", out.display()))?;
    if let Some(dir) = &a.png {
        let dir = std::path::absolute(dir).with_context(|| format!("resolving {}", dir.display()))?;
        let files = png::write_figures(&page.figures, &dir)?;
        eprintln!("strand: wrote {} chart(s) as PNG into {}", files.len(), dir.display());
    }
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    }
    let s = &report.summary;
    eprintln!(
        "strand: wrote {} (run {}: {} tasks, {} tries, {:.1} s) in {:.2} s",
        out.display(),
        report.run.run,
        s.tasks,
        s.tries,
        s.makespan_s,
        begun.elapsed().as_secs_f64()
    );
    Ok(0)
}
