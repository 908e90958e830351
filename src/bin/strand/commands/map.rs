//! `strand map`: GNU parallel's command lines over a Strand executor, whole commands one a
//! line, or tasks as JSON lines; results are printed as tasks end (or in input order, `-k`).
//! Where it differs from GNU parallel on purpose: docs/map.md.
//!
//! Over 600 lines because GNU parallel's option forms (`--halt`, `-j`, `--retries`,
//! `--timeout`) are parsed here beside their unit tests; they belong in `src/map/` as soon
//! as a second command takes them.

use super::{finish_monitoring, open, MonitoringArgs, TargetArgs};
use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use strand::dfk::{Call, Dfk, DfkConfig, TaskError, TaskFuture, TaskOutcome};
use strand::map::input::{self, Origin, Shape, Source};
use strand::map::joblog::{self, Entry, Joblog, Placing, Previous};
use strand::map::template::{Job, Template};
use strand::monitoring::progress::Progress;
use strand::run_dir::{CHECKPOINT_FILE, EVENTS_FILE};
use strand::task::TaskId;

/// Longest a result waits in the output buffer while ends keep coming.
const FLUSH_EVERY: Duration = Duration::from_millis(5);

/// GNU parallel's exit status for this many failed jobs: the count, 101 above 100.
const MOST_FAILED_STATUS: usize = 101;

/// `strand map` arguments.
#[derive(clap::Args)]
#[command(after_help = "Examples (the same command lines as GNU parallel's):\n  \
strand map 'gzip -9 {}' ::: a.txt b.txt c.txt\n  \
strand map 'echo {1}-{2}' ::: a b ::: 1 2               (every combination: a-1 a-2 b-1 b-2)\n  \
strand map -k --joblog jobs.log 'convert {} {.}.png' :::: images.txt\n  \
strand map --joblog jobs.log --resume-failed 'convert {} {.}.png' :::: images.txt\n  \
find . -name '*.dat' | strand map -j 8 'gzip -9 -c {} > {/.}.gz'\n  \
strand map -a commands.txt                                 (one command a line)\n  \
python tasks.py | strand map --json                        (JSON lines in and out)\n\n\
Input sources: ::: values, :::: files (one value a line), -a FILE, stdin when none is given;\n\
every combination of them (the last varies fastest); :::+ and ::::+ link a source to the one before.\n\
Replacement strings: {} input, {.} without extension, {/} base name, {//} directory, {/.} base name\n\
without extension, {#} job number, {%} job slot, {n} {n.} {n/} {n//} {n/.} the n-th input (-n from\n\
the end). Values are quoted for the shell; with no replacement string the inputs are appended.\n\
JSON lines: {\"name\": \"t1\", \"command\": \"...\"} or \"argv\": [...] or \"function\": \"echo\", \"args\": \"...\";\n\
optional walltime (s), retries, priority, env, cwd. Output: {\"name\", \"ok\", \"stdout\" | \"error\"} per task.\n\n\
Exit status: 0 if every job succeeded, else the number of failed jobs (101: more than 100), or\n\
with --halt the exit code of the job that halted the run; 2 for bad options or input.\n\
Differences from GNU parallel, and why: docs/map.md.")]
pub struct Args {
    /// Read input values from FILE, one a line (`-` is stdin); repeat for more sources. Without a
    /// TEMPLATE each line is a whole command; with --json each line is a task.
    #[arg(short = 'a', long = "arg-file", visible_alias = "from", value_name = "FILE")]
    arg_files: Vec<PathBuf>,
    /// Tasks are JSON lines (from -a, default stdin); results are printed as JSON lines.
    #[arg(long, conflicts_with_all = ["group", "colsep", "tag", "dry_run", "joblog", "results"])]
    json: bool,
    /// N values of the input per job ({1} .. {N}); the last job may get fewer.
    #[arg(short = 'N', value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    group: Option<u64>,
    /// Split each input value into columns ({1}, {2}, ...) at this text (not a regex, see docs/map.md).
    #[arg(long, value_name = "TEXT")]
    colsep: Option<String>,
    /// Print output in the order of the input, not as jobs end.
    #[arg(short = 'k', long = "keep-order")]
    keep_order: bool,
    /// Prefix each output line with the job's inputs and a tab.
    #[arg(long)]
    tag: bool,
    /// Print the command lines and run nothing (no interchange or block is started).
    #[arg(long)]
    dry_run: bool,
    /// Log each finished job to FILE in GNU parallel's format (Seq Host Starttime JobRuntime
    /// Send Receive Exitval Signal Command).
    #[arg(long, value_name = "FILE")]
    joblog: Option<PathBuf>,
    /// Skip the jobs the --joblog lists (finished in an earlier run), and append to it.
    #[arg(long, requires = "joblog", conflicts_with = "resume_failed")]
    resume: bool,
    /// Skip the jobs the --joblog lists as succeeded; run the failed ones again and the rest.
    #[arg(long, requires = "joblog")]
    resume_failed: bool,
    /// Write each job's stdout, stderr and seq under DIR/1/<input 1>/2/<input 2>/... instead of printing them.
    #[arg(long, value_name = "DIR")]
    results: Option<PathBuf>,
    /// When to stop early: `now,fail=N` (cancel the rest, kill running jobs of a local block),
    /// `soon,fail=N` (start nothing more, let the jobs pools hold end), `fail=N%`, `success=N`, `done=N`; `never`.
    #[arg(long, value_name = "WHEN", value_parser = parse_halt, default_value = "never")]
    halt: Halt,
    /// Tries per job in all, as GNU parallel counts them (1: no retry).
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = parse_tries)]
    retries: u32,
    /// Kill a try that runs longer than this ("90s", "10m", "1h30m" or seconds).
    #[arg(long, visible_alias = "walltime", value_name = "DURATION", value_parser = parse_timeout)]
    timeout: Option<u64>,
    /// Job slots: worker ranks of the local block (N, N% of the cores, +N or -N cores, 0 all cores).
    /// With --connection or --config the blocks' ranks are the slots, set in their configuration.
    #[arg(short = 'j', long = "jobs", value_name = "N", conflicts_with_all = ["config", "workers"])]
    jobs: Option<String>,
    /// Show progress on stderr (done, failed, running, waiting, rate), even when stdout is not a terminal.
    #[arg(long, visible_alias = "eta")]
    bar: bool,
    /// Most tasks submitted and not yet ended: reading input waits beyond it, so memory stays
    /// flat on a stream of any length. Raise it when there are more worker slots than this.
    #[arg(long, default_value_t = 100_000, value_name = "TASKS", value_parser = clap::value_parser!(u64).range(1..))]
    window: u64,
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    monitoring: MonitoringArgs,
    /// The command template, then input sources: `:::` values, `::::` files (options go before the template).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "TEMPLATE [::: ARG...]")]
    words: Vec<String>,
}

/// `--halt`: when to stop early, and how.
#[derive(Clone, Debug, PartialEq)]
pub struct Halt {
    /// Cancel running jobs too (`now`), or only send no more (`soon`).
    now: bool,
    /// Which ends count.
    count: HaltCount,
    /// How many: a number of jobs, or a percentage of the ended ones.
    limit: HaltLimit,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum HaltCount {
    Fail,
    Success,
    Done,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum HaltLimit {
    /// `never`.
    Never,
    Jobs(usize),
    Percent(f64),
}

impl Halt {
    /// Whether the ends so far trigger it.
    fn due(&self, failed: usize, succeeded: usize) -> bool {
        let counted = match self.count {
            HaltCount::Fail => failed,
            HaltCount::Success => succeeded,
            HaltCount::Done => failed + succeeded,
        };
        match self.limit {
            HaltLimit::Never => false,
            HaltLimit::Jobs(n) => counted >= n,
            // As GNU parallel, a percentage needs a few ends to mean anything.
            HaltLimit::Percent(p) => {
                let ended = failed + succeeded;
                ended >= 3 && counted as f64 * 100.0 >= p * ended as f64
            }
        }
    }
}

fn parse_halt(s: &str) -> Result<Halt, String> {
    let bad =
        || format!("--halt {s:?}: expected never, now,fail=N, soon,fail=N, fail=N%, success=N or done=N (or 0, 1, 2)");
    let (when, rule) = match s {
        "never" | "0" => return Ok(Halt { now: false, count: HaltCount::Fail, limit: HaltLimit::Never }),
        "1" => ("soon", "fail=1"),
        "2" => ("now", "fail=1"),
        _ => s.split_once(',').unwrap_or(("soon", s)),
    };
    let now = match when {
        "now" => true,
        "soon" => false,
        _ => return Err(bad()),
    };
    let (what, n) = rule.split_once('=').ok_or_else(bad)?;
    let count = match what {
        "fail" => HaltCount::Fail,
        "success" => HaltCount::Success,
        "done" => HaltCount::Done,
        _ => return Err(bad()),
    };
    let limit = match n.strip_suffix('%') {
        Some(p) => HaltLimit::Percent(p.parse().ok().filter(|p: &f64| *p > 0.0 && *p <= 100.0).ok_or_else(bad)?),
        None => HaltLimit::Jobs(n.parse().ok().filter(|n| *n > 0).ok_or_else(bad)?),
    };
    Ok(Halt { now, count, limit })
}

fn parse_tries(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(0) => Err("--retries 0 means \"retry forever\" in GNU parallel; Strand needs a bound: give the \
                      number of tries in all (1: no retry)"
            .into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("--retries {s:?}: expected the number of tries in all, e.g. 3")),
    }
}

fn parse_timeout(s: &str) -> Result<u64, String> {
    if s.ends_with('%') {
        return Err(format!(
            "--timeout {s}: a percentage of the median run time is not supported (the jobs run on \
             other nodes); give a duration such as 90s or 10m"
        ));
    }
    strand::workflow::parse_duration(s).map_err(|e| format!("--timeout: {e}"))
}

/// `-j`: worker ranks of the local block, from GNU parallel's forms relative to the cores.
fn slots(spec: &str, cores: u32) -> Result<u32> {
    let bad = || format!("-j {spec:?}: expected N, N%, +N, -N or 0");
    let n: i64 = if let Some(p) = spec.strip_suffix('%') {
        let p: f64 = p.parse().map_err(|_| anyhow::anyhow!(bad()))?;
        (cores as f64 * p / 100.0).floor() as i64
    } else if let Some(d) = spec.strip_prefix('+') {
        cores as i64 + d.parse::<i64>().map_err(|_| anyhow::anyhow!(bad()))?
    } else if spec.starts_with('-') {
        cores as i64 + spec.parse::<i64>().map_err(|_| anyhow::anyhow!(bad()))?
    } else {
        match spec.parse::<i64>().map_err(|_| anyhow::anyhow!(bad()))? {
            0 => cores as i64,
            n => n,
        }
    };
    Ok(u32::try_from(n.max(1)).unwrap_or(u32::MAX))
}

/// What one submitted job needs when it ends.
struct Pending {
    seq: u64,
    name: String,
    command: String,
    inputs: Vec<String>,
    submitted: SystemTime,
    future: TaskFuture,
}

/// Where `strand map` reads its jobs from.
enum Input {
    /// A template (or none: the inputs are commands) over combined input sources.
    Template(Template, input::Jobs),
    /// One JSON task a line.
    Json(input::Jobs),
}

fn input_of(a: &Args) -> Result<Input> {
    let (template, mut sources) = input::split_words(&a.words)?;
    // -a files come first, as in GNU parallel.
    let files = a.arg_files.iter().map(|f| Source { origin: Origin::File(f.clone()), linked: false });
    sources.splice(0..0, files);
    if a.json {
        if !template.is_empty() || sources.iter().any(|s| matches!(s.origin, Origin::Args(_))) {
            bail!("--json reads whole tasks; give no TEMPLATE or ::: values with it");
        }
        if sources.len() > 1 {
            bail!("--json reads one file of JSON lines (-a FILE or stdin), not {}", sources.len());
        }
        return Ok(Input::Json(input::jobs(&sources, Shape::default())?));
    }
    let shape = Shape { group: a.group.map(|n| n as usize), colsep: a.colsep.clone() };
    let template = Template::parse(&template.join(" "))?;
    Ok(Input::Template(template, input::jobs(&sources, shape)?))
}

/// One job's output written where --results puts it: DIR/1/<input 1>/2/<input 2>/....
fn write_results(dir: &Path, p: &Pending, outcome: &TaskOutcome) -> std::io::Result<()> {
    let mut d = dir.to_path_buf();
    for (i, v) in p.inputs.iter().enumerate() {
        // `/` cannot be in a file name: written `\_` as GNU parallel does (and `\` as `\\`).
        d.push((i + 1).to_string());
        d.push(v.replace('\\', "\\\\").replace('/', "\\_"));
    }
    std::fs::create_dir_all(&d)?;
    let (stdout, stderr): (&[u8], &str) = match outcome {
        Ok(b) => (b, ""),
        Err(TaskError::Failed { failure, .. }) => (failure.stdout(), failure.stderr().unwrap_or("")),
        Err(_) => (b"", ""),
    };
    std::fs::write(d.join("stdout"), stdout)?;
    std::fs::write(d.join("stderr"), stderr)?;
    std::fs::write(d.join("seq"), p.seq.to_string())
}

/// How the printer shows each end.
struct Printing {
    json: bool,
    tag: bool,
    keep_order: bool,
    results: Option<PathBuf>,
    joblog: Option<Joblog>,
    /// Joblog lines waiting for their manager's host.
    placing: Placing,
    halt: Halt,
}

/// What the printer found, for the exit status.
#[derive(Default)]
struct Tally {
    failed: usize,
    succeeded: usize,
    /// The exit status of the job that met --halt, if one did.
    halted_with: Option<i32>,
    /// The first write error of --results or --joblog.
    write_error: Option<String>,
}

/// Exit 0 if every job succeeded; else GNU parallel's status (see `--help`).
pub fn exec(a: Args) -> Result<i32> {
    let input = input_of(&a)?;
    let previous = match (&a.joblog, a.resume || a.resume_failed) {
        (Some(path), true) => Some(Previous::read(path)?),
        _ => None,
    };
    let skip = |seq: u64| match &previous {
        Some(prev) => match prev.succeeded.get(&seq) {
            Some(&ok) => a.resume || ok,
            None => false,
        },
        None => false,
    };
    if a.dry_run {
        return dry_run(input, &skip);
    }
    let mut target = a.target.clone();
    if let Some(j) = &a.jobs {
        if target.connection_given() {
            bail!("-j {j}: with --connection the slots are the blocks' worker ranks; set them where the blocks start");
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
        target.set_workers(slots(j, cores)?);
    }
    let joblog = match &a.joblog {
        Some(path) => Some(Joblog::open(path, a.resume || a.resume_failed)?),
        None => None,
    };
    let window = usize::try_from(a.window).unwrap_or(usize::MAX);
    let exe = open(&target, 1)?;
    let checkpoint = exe.run_dir().file(CHECKPOINT_FILE);
    let events = Some(exe.run_dir().file(EVENTS_FILE));
    let monitoring = a.monitoring.config(&exe);
    let dfk = Dfk::connect(
        exe.connection(),
        DfkConfig {
            checkpoint: Some(checkpoint),
            events,
            monitoring: monitoring.clone(),
            memoize: true,
            memo_indexes_new: false,
            ..DfkConfig::default()
        },
    )?;
    let table: Arc<Mutex<HashMap<TaskId, Pending>>> = Arc::default();
    let submitted = Arc::new(AtomicUsize::new(0));
    let input_done = Arc::new(AtomicBool::new(false));
    let halted = Arc::new(AtomicBool::new(false));
    // Skipped sequence numbers reach the printer too, so that -k does not wait for them.
    let (skipped_tx, skipped_rx) = crossbeam_channel::unbounded::<u64>();
    let progress = Progress::start_when(dfk.monitor(), None, a.bar);
    let printing = Printing {
        json: a.json,
        tag: a.tag,
        keep_order: a.keep_order,
        results: a.results.clone(),
        joblog,
        placing: Placing::new(dfk.manager_hosts(), strand::host::hostname()),
        halt: a.halt.clone(),
    };
    let printer = {
        let ends = dfk.ends();
        let (table, submitted, input_done, halted) =
            (Arc::clone(&table), Arc::clone(&submitted), Arc::clone(&input_done), Arc::clone(&halted));
        std::thread::spawn(move || print_ends(printing, &ends, &skipped_rx, &table, &submitted, &input_done, &halted))
    };
    let mut bad_lines = 0usize;
    let mut skipped = 0usize;
    let mut input_error = None;
    let (template, jobs) = match input {
        Input::Template(t, jobs) => (Some(t), jobs),
        Input::Json(jobs) => (None, jobs),
    };
    for (i, job) in jobs.enumerate() {
        if halted.load(Ordering::Acquire) {
            break;
        }
        let seq = i as u64 + 1;
        let inputs = match job {
            Ok(inputs) => inputs,
            Err(e) => {
                input_error = Some(e);
                break;
            }
        };
        if skip(seq) {
            skipped += 1;
            let _ = skipped_tx.send(seq);
            continue;
        }
        let (name, command, call) = match &template {
            Some(t) => {
                let command = t.fill(Job { inputs: &inputs, seq });
                let name = if t.is_empty() { seq.to_string() } else { inputs.join(" ") };
                let call = match strand::map::template::as_argv(&command) {
                    Some(argv) => Call::argv(argv),
                    None => Call::shell(command.clone()),
                };
                (name, command, call)
            }
            None => {
                let line = inputs.concat();
                if line.trim().is_empty() {
                    let _ = skipped_tx.send(seq);
                    continue;
                }
                match strand::map::json::parse_json_line(&line, i + 1) {
                    Ok((name, call)) => (name, line, call),
                    Err(e) => {
                        bad_lines += 1;
                        println!("{}", serde_json::json!({"line": i + 1, "ok": false, "error": e}));
                        let _ = skipped_tx.send(seq);
                        continue;
                    }
                }
            }
        };
        // A JSON line's own "retries" wins over --retries.
        let mut call = if template.is_none() && call.retries > 0 { call } else { call.retries(a.retries - 1) };
        if call.walltime_ms.is_none() {
            call.walltime_ms = a.timeout;
        }
        dfk.wait_pending_at_most(window - 1, None);
        // Insert under the lock so the printer never sees the end of a task it does not know.
        let mut t = table.lock().unwrap_or_else(|p| p.into_inner());
        let future = dfk.submit(call.named(&name));
        t.insert(future.id(), Pending { seq, name, command, inputs, submitted: SystemTime::now(), future });
        submitted.fetch_add(1, Ordering::Release);
    }
    drop(skipped_tx);
    input_done.store(true, Ordering::Release);
    let halting = |dfk: &Dfk| {
        // `now`: what is still queued or running is cancelled; a local block's running
        // commands end with it when the executor stops below.
        let futures: Vec<TaskFuture> =
            table.lock().unwrap_or_else(|p| p.into_inner()).values().map(|p| p.future.clone()).collect();
        for f in &futures {
            dfk.cancel(f);
        }
    };
    // Input is done, so nothing is submitted after the one cancel of `now`, or the one
    // withdrawal of `soon` (jobs a pool holds finish; the rest never start).
    let mut halt_pending = true;
    let waited = loop {
        if halt_pending && halted.load(Ordering::Acquire) {
            if a.halt.now {
                halting(&dfk);
            } else {
                dfk.withdraw();
            }
            halt_pending = false;
        }
        match exe.wait_all(&dfk, Some(Duration::from_millis(100))) {
            Ok(0) => break Ok(()),
            Ok(_) => {}
            Err(e) => break Err(e),
        }
    };
    if let Err(e) = waited {
        drop(progress);
        let db_error = dfk.shutdown();
        exe.stop();
        finish_monitoring(monitoring.as_ref(), db_error);
        return Err(e.into());
    }
    let tally = printer.join().unwrap_or_default();
    drop(progress);
    super::say_dropped(&dfk);
    let db_error = dfk.shutdown();
    exe.stop();
    finish_monitoring(monitoring.as_ref(), db_error);
    if let Some(e) = input_error {
        return Err(e).context("reading the input (the jobs before it ran)");
    }
    if let Some(e) = tally.write_error {
        bail!("{e}");
    }
    if skipped > 0 {
        let log = a.joblog.as_deref().map(|p| p.display().to_string()).unwrap_or_default();
        eprintln!("strand: skipped {skipped} job(s) that {log} lists as finished");
    }
    let failed = tally.failed + bad_lines;
    if failed > 0 {
        eprintln!("strand: {failed} of {} job(s) failed", tally.failed + tally.succeeded + bad_lines);
    }
    Ok(match tally.halted_with {
        Some(code) => code,
        None => failed.min(MOST_FAILED_STATUS) as i32,
    })
}

/// `--dry-run`: the command lines, one a line, in input order.
fn dry_run(input: Input, skip: &dyn Fn(u64) -> bool) -> Result<i32> {
    let Input::Template(template, jobs) = input else { bail!("--dry-run prints command lines; --json has none") };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (i, job) in jobs.enumerate() {
        let inputs = job?;
        let seq = i as u64 + 1;
        if !skip(seq) {
            writeln!(out, "{}", template.fill(Job { inputs: &inputs, seq }))?;
        }
    }
    out.flush()?;
    Ok(0)
}

/// The printer thread: each end printed (or written to --results), logged, counted, and
/// checked against --halt, until input is done and every submitted job has ended.
fn print_ends(
    mut p: Printing,
    ends: &crossbeam_channel::Receiver<TaskId>,
    skipped: &crossbeam_channel::Receiver<u64>,
    table: &Mutex<HashMap<TaskId, Pending>>,
    submitted: &AtomicUsize,
    input_done: &AtomicBool,
    halted: &AtomicBool,
) -> Tally {
    let mut tally = Tally::default();
    let mut ended = 0usize;
    // One write per burst of ends, not per line: flushed when no end is waiting or every few
    // milliseconds, so results still stream to a driver as tasks end.
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout());
    let mut last_flush = Instant::now();
    // -k: outputs waiting for an earlier job; `None` for a skipped one.
    let mut held: BTreeMap<u64, Option<Vec<u8>>> = BTreeMap::new();
    let mut next_seq = 1u64;
    loop {
        while let Ok(seq) = skipped.try_recv() {
            held.insert(seq, None);
        }
        if input_done.load(Ordering::Acquire) && ended == submitted.load(Ordering::Acquire) {
            break;
        }
        let id = match ends.try_recv() {
            Ok(id) => id,
            Err(_) => {
                let _ = out.flush();
                if let Some(j) = p.joblog.as_mut() {
                    for e in p.placing.ready(Instant::now()) {
                        note_error(&mut tally, j.write(&e));
                    }
                    note_error(&mut tally, j.flush());
                }
                last_flush = Instant::now();
                let Ok(id) = ends.recv_timeout(Duration::from_millis(100)) else { continue };
                id
            }
        };
        if last_flush.elapsed() >= FLUSH_EVERY {
            let _ = out.flush();
            last_flush = Instant::now();
        }
        let Some(job) = table.lock().unwrap_or_else(|e| e.into_inner()).remove(&id) else { continue };
        ended += 1;
        let outcome = job.future.peek().unwrap_or(Err(TaskError::Cancelled));
        let cancelled = matches!(outcome, Err(TaskError::Cancelled));
        match &outcome {
            Ok(_) => tally.succeeded += 1,
            // A job cancelled by --halt never ran: not a failure, not logged, so that
            // --resume runs it.
            Err(TaskError::Cancelled) => {}
            Err(_) => tally.failed += 1,
        }
        if let Some(j) = p.joblog.as_mut() {
            if !cancelled {
                let ran = job.future.ran();
                let entry = Entry::of(job.seq, job.command.clone(), &outcome, ran, job.submitted);
                p.placing.add(entry, ran.manager, Instant::now());
            }
            for e in p.placing.ready(Instant::now()) {
                note_error(&mut tally, j.write(&e));
            }
        }
        if tally.halted_with.is_none() && p.halt.due(tally.failed, tally.succeeded) {
            let (exitval, _) = joblog::exit_and_signal(&outcome);
            tally.halted_with = Some(if outcome.is_ok() {
                0
            } else if exitval > 0 {
                exitval
            } else {
                1
            });
            eprintln!("strand: halting (--halt): job {} {}: {}", job.seq, job.name, job.command);
            halted.store(true, Ordering::Release);
        }
        let text = (!cancelled).then(|| render(&p, &job, &outcome, &mut tally));
        if p.keep_order {
            held.insert(job.seq, text);
            while let Some(entry) = held.first_entry().filter(|e| *e.key() <= next_seq) {
                next_seq = *entry.key() + 1;
                if let Some(t) = entry.remove() {
                    let _ = out.write_all(&t);
                }
            }
        } else if let Some(t) = text {
            let _ = out.write_all(&t);
        }
    }
    // What -k still holds waits for jobs that never ended (a halt): print it in order.
    for text in held.into_values().flatten() {
        let _ = out.write_all(&text);
    }
    let _ = out.flush();
    if let Some(j) = p.joblog.as_mut() {
        // The last lines may still wait for a host: bounded by HOST_WAIT.
        let by = Instant::now() + joblog::HOST_WAIT;
        while !p.placing.is_empty() {
            let now = Instant::now();
            for e in p.placing.ready(if now >= by { by + joblog::HOST_WAIT } else { now }) {
                note_error(&mut tally, j.write(&e));
            }
            if !p.placing.is_empty() {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        note_error(&mut tally, j.flush());
    }
    tally
}

fn note_error(tally: &mut Tally, r: Result<(), joblog::JoblogError>) {
    if let Err(e) = r {
        tally.write_error.get_or_insert(e.to_string());
    }
}

/// What one end prints: its stdout (tagged), a JSON line, or nothing (--results).
fn render(p: &Printing, job: &Pending, outcome: &TaskOutcome, tally: &mut Tally) -> Vec<u8> {
    if p.json {
        let line = match outcome {
            Ok(b) => serde_json::json!({"name": job.name, "ok": true, "stdout": String::from_utf8_lossy(b)}),
            Err(e) => serde_json::json!({"name": job.name, "ok": false, "error": e.to_string()}),
        };
        return format!("{line}\n").into_bytes();
    }
    if let Err(e) = outcome {
        eprintln!("strand: job {} failed: {}: {e}", job.seq, job.command);
    }
    if let Some(dir) = &p.results {
        if let Err(e) = write_results(dir, job, outcome) {
            tally.write_error.get_or_insert(format!("--results {}: {e}", dir.display()));
        }
        return Vec::new();
    }
    // A failed job's output is printed too, as GNU parallel does.
    let bytes = match outcome {
        Ok(b) => b,
        Err(TaskError::Failed { failure, .. }) => failure.stdout(),
        Err(_) => return Vec::new(),
    };
    if !p.tag {
        return bytes.to_vec();
    }
    let tag = job.inputs.join(" ");
    let mut text = Vec::with_capacity(bytes.len() + 16);
    for line in bytes.split_inclusive(|b| *b == b'\n') {
        text.extend_from_slice(tag.as_bytes());
        text.push(b'\t');
        text.extend_from_slice(line);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halt_forms() {
        let h = |s| parse_halt(s).expect(s);
        assert_eq!(h("now,fail=1"), Halt { now: true, count: HaltCount::Fail, limit: HaltLimit::Jobs(1) });
        assert_eq!(h("2"), h("now,fail=1"));
        assert_eq!(h("soon,fail=20%").limit, HaltLimit::Percent(20.0));
        assert!(!h("fail=2").now);
        assert!(!h("never").due(100, 0));
        for bad in ["later,fail=1", "now,fail=0", "now,fail", "now,fail=200%", "x"] {
            assert!(parse_halt(bad).expect_err(bad).contains("expected never"), "{bad}");
        }
        assert!(h("now,fail=1").due(1, 0) && !h("now,fail=2").due(1, 5));
        assert!(h("soon,fail=50%").due(2, 2) && !h("soon,fail=50%").due(1, 0), "a percentage needs 3 ends");
    }

    #[test]
    fn slots_from_cores() {
        assert_eq!(slots("3", 8).expect("n"), 3);
        assert_eq!(slots("0", 8).expect("0"), 8);
        assert_eq!(slots("50%", 8).expect("%"), 4);
        assert_eq!(slots("+2", 8).expect("+"), 10);
        assert_eq!(slots("-2", 8).expect("-"), 6);
        assert_eq!(slots("-20", 8).expect("at least one"), 1);
        assert!(slots("two", 8).is_err());
    }

    #[test]
    fn tries_and_timeouts() {
        assert_eq!(parse_tries("3"), Ok(3));
        assert!(parse_tries("0").expect_err("0").contains("forever"));
        assert_eq!(parse_timeout("1m"), Ok(60_000));
        assert!(parse_timeout("200%").expect_err("%").contains("percentage"));
    }
}
