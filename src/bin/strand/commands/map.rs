//! `strand map`: a command template over many arguments (GNU parallel style), whole commands
//! one a line, or tasks as JSON lines; results are printed as tasks end.

use super::{open, seconds, TargetArgs};
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest a result waits in the output buffer while ends keep coming.
const FLUSH_EVERY: Duration = Duration::from_millis(5);
use strand::dfk::{Call, Dfk, DfkConfig, TaskFuture};
use strand::monitoring::progress::Progress;
use strand::run_dir::{CHECKPOINT_FILE, EVENTS_FILE};

/// `strand map` arguments.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
strand map 'gzip -9 {}' ::: a.txt b.txt c.txt\n  \
strand map 'convert {} {.}.png' --from images.txt     (one argument a line)\n  \
strand map --from commands.txt                         (one command a line)\n  \
python tasks.py | strand map --json                    (JSON lines in and out)\n\n\
Placeholders: {} argument, {.} without extension, {/} base name, {//} directory, {#} task number.\n\
JSON lines: {\"name\": \"t1\", \"command\": \"...\"} or \"argv\": [...] or \"function\": \"echo\", \"args\": \"...\";\n\
optional walltime (s), retries, priority, env, cwd. Output: {\"name\", \"ok\", \"stdout\" | \"error\"} per task as it ends.")]
pub struct Args {
    /// Read arguments (with a TEMPLATE) or whole commands (without) one a line, or JSON lines with --json; `-` is stdin.
    #[arg(long, value_name = "FILE")]
    from: Option<PathBuf>,
    /// Tasks are JSON lines (from --from, default stdin); results are printed as JSON lines.
    #[arg(long)]
    json: bool,
    /// Walltime of each task in seconds.
    #[arg(long, value_name = "SECONDS")]
    walltime: Option<f64>,
    /// Extra tries after a failure.
    #[arg(long, default_value_t = 0)]
    retries: u32,
    /// Most tasks submitted and not yet ended: reading input waits beyond it, so memory stays
    /// flat on a stream of any length. Raise it when there are more worker slots than this.
    #[arg(long, default_value_t = 100_000, value_name = "TASKS", value_parser = clap::value_parser!(u64).range(1..))]
    window: u64,
    #[command(flatten)]
    target: TargetArgs,
    /// The command template, then `:::` and the arguments (options go before the template).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "TEMPLATE [::: ARG...]")]
    words: Vec<String>,
}

/// Where `strand map` reads its tasks from.
enum MapSource {
    /// A template and its arguments.
    Template(String, Box<dyn Iterator<Item = String>>),
    /// One shell command a line.
    Commands(Box<dyn Iterator<Item = String>>),
    /// One JSON task a line.
    Json(Box<dyn Iterator<Item = String>>),
}

fn lines_of(path: &std::path::Path) -> Result<Box<dyn Iterator<Item = String>>> {
    use std::io::BufRead;
    let reader: Box<dyn BufRead> = if path == std::path::Path::new("-") {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?,
        ))
    };
    Ok(Box::new(reader.lines().map_while(|l| l.ok())))
}

fn map_source(a: &Args) -> Result<MapSource> {
    let split = a.words.iter().position(|w| w == ":::");
    let (template, args): (Vec<String>, Option<Vec<String>>) = match split {
        Some(i) => (a.words[..i].to_vec(), Some(a.words[i + 1..].to_vec())),
        None => (a.words.clone(), None),
    };
    let template = template.join(" ");
    if a.json {
        if !template.is_empty() || args.is_some() {
            bail!("--json reads whole tasks; give no TEMPLATE or ::: arguments with it");
        }
        return Ok(MapSource::Json(lines_of(a.from.as_deref().unwrap_or(std::path::Path::new("-")))?));
    }
    match (template.is_empty(), args, &a.from) {
        (false, Some(args), None) => Ok(MapSource::Template(template, Box::new(args.into_iter()))),
        (false, None, Some(f)) => Ok(MapSource::Template(template, lines_of(f)?)),
        (true, None, Some(f)) => Ok(MapSource::Commands(lines_of(f)?)),
        (_, Some(_), Some(_)) => bail!("give the arguments either after ::: or with --from, not both"),
        _ => {
            bail!("nothing to run: give TEMPLATE ::: ARG..., TEMPLATE --from FILE, --from FILE, or --json (see --help)")
        }
    }
}

/// Exit 0 if every task succeeded, 1 if any failed (or a JSON line was bad).
pub fn exec(a: Args) -> Result<i32> {
    use std::collections::HashMap;
    use std::io::Write;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    let walltime = a.walltime.map(|w| seconds("--walltime", w)).transpose()?;
    let source = map_source(&a)?;
    let json = a.json;
    let window = usize::try_from(a.window).unwrap_or(usize::MAX);
    let exe = open(&a.target, 1)?;
    let checkpoint = exe.run_dir().file(CHECKPOINT_FILE);
    let events = Some(exe.run_dir().file(EVENTS_FILE));
    let dfk = Dfk::connect(
        exe.connection(),
        DfkConfig { checkpoint: Some(checkpoint), events, memoize: true, ..DfkConfig::default() },
    )?;
    let ends = dfk.ends();
    let table: Arc<Mutex<HashMap<strand::task::TaskId, (String, TaskFuture)>>> = Arc::default();
    let submitted = Arc::new(AtomicUsize::new(0));
    let input_done = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicUsize::new(0));
    let progress = Progress::start(dfk.monitor(), None);
    // Results are printed as tasks end, while input is still being read: a driver may
    // wait for one result before it writes the next task.
    let printer = {
        let (table, submitted, input_done, failed) =
            (Arc::clone(&table), Arc::clone(&submitted), Arc::clone(&input_done), Arc::clone(&failed));
        std::thread::spawn(move || {
            let mut printed = 0usize;
            // One write per burst of ends, not per line: flushed when no end is waiting or
            // every few milliseconds, so results still stream to a driver as tasks end.
            let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout());
            let mut last_flush = Instant::now();
            loop {
                if input_done.load(Ordering::Acquire) && printed == submitted.load(Ordering::Acquire) {
                    break;
                }
                let id = match ends.try_recv() {
                    Ok(id) => id,
                    Err(_) => {
                        let _ = out.flush();
                        last_flush = Instant::now();
                        let Ok(id) = ends.recv_timeout(Duration::from_millis(100)) else { continue };
                        id
                    }
                };
                if last_flush.elapsed() >= FLUSH_EVERY {
                    let _ = out.flush();
                    last_flush = Instant::now();
                }
                let Some((name, f)) = table.lock().unwrap_or_else(|p| p.into_inner()).remove(&id) else { continue };
                printed += 1;
                let outcome = f.peek();
                if !matches!(outcome, Some(Ok(_))) {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                let _ = match (json, outcome) {
                    (true, Some(Ok(b))) => writeln!(
                        out,
                        "{}",
                        serde_json::json!({"name": name, "ok": true, "stdout": String::from_utf8_lossy(&b)})
                    ),
                    (true, Some(Err(e))) => {
                        writeln!(out, "{}", serde_json::json!({"name": name, "ok": false, "error": e.to_string()}))
                    }
                    (false, Some(Ok(b))) => out.write_all(&b),
                    (false, Some(Err(e))) => {
                        eprintln!("strand: task {name}: {e}");
                        Ok(())
                    }
                    (_, None) => Ok(()),
                };
            }
            let _ = out.flush();
        })
    };
    let submit_one = |name: String, call: Call| {
        let mut call = call.retries(a.retries);
        if walltime.is_some() && call.walltime_ms.is_none() {
            call.walltime_ms = walltime.map(|w| w.as_millis() as u64);
        }
        dfk.wait_pending_at_most(window - 1, None);
        // Insert under the lock so the printer never sees the end of a task it does not know.
        let mut t = table.lock().unwrap_or_else(|p| p.into_inner());
        let f = dfk.submit(call.named(&name));
        t.insert(f.id(), (name, f));
        submitted.fetch_add(1, Ordering::Release);
    };
    let mut bad_lines = 0;
    match source {
        MapSource::Template(template, args) => {
            for (i, arg) in args.enumerate() {
                submit_one(arg.clone(), Call::shell(strand::map::fill_template(&template, &arg, i + 1)));
            }
        }
        MapSource::Commands(lines) => {
            for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                submit_one((i + 1).to_string(), Call::shell(line));
            }
        }
        MapSource::Json(lines) => {
            for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                match strand::map::parse_json_line(&line, i + 1) {
                    Ok((name, call)) => submit_one(name, call),
                    Err(e) => {
                        bad_lines += 1;
                        println!("{}", serde_json::json!({"line": i + 1, "ok": false, "error": e}));
                    }
                }
            }
        }
    }
    input_done.store(true, Ordering::Release);
    if let Err(e) = exe.wait_all(&dfk, None) {
        drop(progress);
        dfk.shutdown();
        exe.stop();
        return Err(e.into());
    }
    let _ = printer.join();
    drop(progress);
    let n_failed = failed.load(Ordering::Relaxed) + bad_lines;
    dfk.shutdown();
    exe.stop();
    if n_failed > 0 {
        eprintln!("strand: {n_failed} of {} tasks failed", submitted.load(Ordering::Relaxed) + bad_lines);
    }
    Ok(if n_failed > 0 { 1 } else { 0 })
}
