//! What a run did, read from its run database: the numbers and series `strand report` draws.
//!
//! [`Report::load`] reads one run of `monitoring.db` (the latest unless told) into plain data;
//! [`html::render`] draws it, and [`png`] its charts as images. Every series is binned over the
//! run's span at load time, so the HTML stays a few hundred kilobytes whether the run had a
//! thousand tries or a million.

pub mod html;
pub mod png;
mod samples;

pub use samples::Sampled;

use super::db::{self, DbError};
use rusqlite::{params, Connection};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Points on the time axis of every series.
pub const BINS: usize = 200;
/// Apps drawn separately; the rest are summed as `other`.
const MAX_APPS: usize = 8;
/// Workers (task slots) drawn in the Gantt chart; more are sampled evenly.
pub const MAX_LANES: usize = 400;
/// Examples kept per failure reason.
const EXAMPLES: usize = 3;

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// No database where one was expected.
    #[error(
        "{0} has no run database (monitoring.db): was the run made with --no-monitoring, by a strand \
         before monitoring, or is this not a run directory?"
    )]
    NoDatabase(PathBuf),
    /// The database could not be read.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A query failed (a damaged file).
    #[error("reading {path}: {source}")]
    Query {
        /// The file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The database holds no run (or not the one asked for).
    #[error("{path} holds no run{}", .run.map(|r| format!(" numbered {r}")).unwrap_or_default())]
    NoRun {
        /// The file.
        path: PathBuf,
        /// The run asked for.
        run: Option<i64>,
    },
}

/// The run a report is about.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct RunInfo {
    /// Its number in the file (runs in one run directory are numbered 1, 2, ...).
    pub run: i64,
    /// Runs in the file.
    pub runs_in_file: i64,
    /// When it started (µs since the epoch).
    pub started_us: i64,
    /// When its DFK stopped; `None` if it never did (killed, or still going).
    pub ended_us: Option<i64>,
    /// The command line that started it.
    pub command: String,
    /// The strand version that wrote it.
    pub version: String,
}

/// The headline numbers.
#[derive(Serialize, Clone, Debug, Default, PartialEq)]
pub struct Summary {
    /// Tasks submitted.
    pub tasks: u64,
    /// Tasks by final state (`done`, `memo_hit`, `failed`, `dep_failed`, `cancelled`, `pending`).
    pub by_state: BTreeMap<String, u64>,
    /// Tries that came back.
    pub tries: u64,
    /// Tries beyond each task's first.
    pub retries: u64,
    /// Tries by outcome (`done` or the failure's kind).
    pub tries_by_outcome: BTreeMap<String, u64>,
    /// From the first submission to the last end, in seconds.
    pub makespan_s: f64,
    /// Seconds tries ran on workers, summed.
    pub busy_s: f64,
    /// Worker-slot seconds the managers offered while connected, summed.
    pub capacity_s: f64,
    /// `busy_s / capacity_s`, when capacity is known.
    pub utilization: Option<f64>,
    /// Managers that registered.
    pub managers: u64,
    /// Blocks in the block log.
    pub blocks: u64,
}

/// One app's run times.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Durations {
    /// The app.
    pub app: String,
    /// Tries that ran on a worker.
    pub n: u64,
    /// Median run time, µs.
    pub p50_us: u64,
    /// 95th percentile, µs.
    pub p95_us: u64,
    /// Longest, µs.
    pub max_us: u64,
    /// Counts per bin of [`Report::duration_edges_us`].
    pub counts: Vec<u64>,
}

/// One worker slot's busy spans, merged where closer than the chart can show.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Lane {
    /// `host rank r slot s` or the manager id when its host is unknown.
    pub name: String,
    /// `(start, end, ok)` in µs since the epoch; `ok` is false for failed tries (spans merge
    /// only with neighbours that ended alike).
    pub spans: Vec<(i64, i64, bool)>,
}

/// What one app's command tries used, as the kernel counted it when each was reaped.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct ResourceUse {
    /// The app.
    pub app: String,
    /// Tries measured (commands; functions run inside their worker).
    pub tries: u64,
    /// CPU seconds (user + system), summed.
    pub cpu_s: f64,
    /// CPU time over run time: the cores its tries kept busy on average.
    pub cores: f64,
    /// The largest resident set of any one try, KiB.
    pub max_rss_kib: u64,
    /// The mean of each try's largest resident set, KiB.
    pub mean_rss_kib: u64,
}

/// Failures of one kind.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct FailureGroup {
    /// The failure's kind (`ExitCode`, `WorkerLost` ...).
    pub kind: String,
    /// Tries that failed so.
    pub count: u64,
    /// A few of them: task (name or id), try number, reason.
    pub examples: Vec<(String, u32, String)>,
}

/// Everything `strand report` shows about one run.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Report {
    /// The database read.
    pub db: PathBuf,
    /// The run.
    pub run: RunInfo,
    /// Headline numbers.
    pub summary: Summary,
    /// Start and end of the time axis (µs since the epoch).
    pub span_us: (i64, i64),
    /// Tries running, averaged over each bin, per app (the apps' order is the legend's).
    pub running: Vec<(String, Vec<f64>)>,
    /// Worker slots offered by connected managers, averaged over each bin.
    pub capacity: Vec<f64>,
    /// Blocks pending (submitted, no manager yet) and running, averaged over each bin.
    pub blocks: Vec<(f64, f64)>,
    /// Tries queued at the interchange, from its status polls: `(t_us, queued)`.
    pub queued: Vec<(i64, u64)>,
    /// Edges of the run-time histogram's bins, µs (one more than the counts).
    pub duration_edges_us: Vec<u64>,
    /// Run times per app.
    pub durations: Vec<Durations>,
    /// The Gantt chart's lanes.
    pub lanes: Vec<Lane>,
    /// Worker slots that ran anything (the chart shows at most [`MAX_LANES`]).
    pub lanes_total: usize,
    /// Failures by kind, most frequent first.
    pub failures: Vec<FailureGroup>,
    /// Resource use by app, most CPU first.
    pub resources: Vec<ResourceUse>,
    /// What the launchers' resource samples show over time; `None` when there are none.
    pub sampled: Option<Sampled>,
    /// What the reader should know (a run that never ended, an empty run ...).
    pub notes: Vec<String>,
}

/// The database file of a run directory, or the file itself.
pub fn database_of(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join(crate::run_dir::MONITORING_DB)
    } else {
        path.to_path_buf()
    }
}

/// Add `weight` per µs of `[a, b)` to the bins over `[t0, t0 + width * bins.len())`, averaged
/// over each bin's width.
fn spread(bins: &mut [f64], t0: i64, width: f64, a: i64, b: i64, weight: f64) {
    let (fa, fb) = (((a - t0) as f64 / width).max(0.0), ((b - t0) as f64 / width).min(bins.len() as f64));
    for i in bins_touched(bins.len(), t0, width, a, b) {
        let overlap = (fb.min(i as f64 + 1.0) - fa.max(i as f64)).max(0.0);
        bins[i] += overlap * weight;
    }
}

/// The indices of the `len` bins over `[t0, t0 + width * len)` that `[a, b)` touches (none
/// when the span is empty or off the axis).
fn bins_touched(len: usize, t0: i64, width: f64, a: i64, b: i64) -> std::ops::Range<usize> {
    if b <= a {
        return 0..0;
    }
    let first = (((a - t0) as f64 / width).max(0.0) as usize).min(len);
    let end = ((((b - t0) as f64 / width).ceil().max(0.0)) as usize).min(len);
    first..end.max(first)
}

fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

impl Report {
    /// Read run `run` (default: the latest) of the database at `path` (a run directory or the file).
    pub fn load(path: &Path, run: Option<i64>) -> Result<Report, ReportError> {
        let file = database_of(path);
        if !file.is_file() {
            return Err(ReportError::NoDatabase(path.to_path_buf()));
        }
        let conn = db::open_to_read(&file)?;
        Loader { conn: &conn, file: &file }.load(run).map_err(|e| match e {
            LoadError::Sql(source) => ReportError::Query { path: file.clone(), source },
            LoadError::Report(r) => r,
        })
    }
}

/// A query's error, or a report error found while loading.
enum LoadError {
    Sql(rusqlite::Error),
    Report(ReportError),
}

impl From<rusqlite::Error> for LoadError {
    fn from(e: rusqlite::Error) -> LoadError {
        LoadError::Sql(e)
    }
}

struct Loader<'a> {
    conn: &'a Connection,
    file: &'a Path,
}

/// One try as the report reads it.
struct TryRow {
    app: usize,
    started: i64,
    ended: i64,
    lane: (i64, u32, u32),
    ok: bool,
}

impl Loader<'_> {
    fn load(&self, run: Option<i64>) -> Result<Report, LoadError> {
        let c = self.conn;
        let runs_in_file: i64 = c.query_row("SELECT count(*) FROM runs", [], |r| r.get(0))?;
        let run = match run {
            Some(r) => r,
            None => db::latest_run(c)?
                .ok_or_else(|| LoadError::Report(ReportError::NoRun { path: self.file.to_path_buf(), run: None }))?,
        };
        let info = c
            .query_row("SELECT started_us, ended_us, command, version FROM runs WHERE run = ?1", [run], |r| {
                Ok(RunInfo {
                    run,
                    runs_in_file,
                    started_us: r.get(0)?,
                    ended_us: r.get(1)?,
                    command: r.get(2)?,
                    version: r.get(3)?,
                })
            })
            .map_err(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => {
                    LoadError::Report(ReportError::NoRun { path: self.file.to_path_buf(), run: Some(run) })
                }
                e => LoadError::Sql(e),
            })?;
        let mut notes = Vec::new();
        if info.ended_us.is_none() {
            notes.push(
                "This run has no end on record: it is still going, or it was killed. What it wrote is shown; \
                 tries that were out when it stopped are not."
                    .to_string(),
            );
        }
        let mut s = Summary::default();
        let mut st = c.prepare("SELECT state, count(*) FROM tasks WHERE run = ?1 GROUP BY state")?;
        for row in st.query_map([run], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
            let (state, n) = row?;
            s.tasks += n as u64;
            s.by_state.insert(state, n as u64);
        }
        let mut st = c.prepare("SELECT outcome, count(*) FROM tries WHERE run = ?1 GROUP BY outcome")?;
        for row in st.query_map([run], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
            let (outcome, n) = row?;
            s.tries += n as u64;
            s.tries_by_outcome.insert(outcome, n as u64);
        }
        s.retries = c
            .query_row("SELECT count(*) FROM tries WHERE run = ?1 AND attempt > 0", [run], |r| r.get::<_, i64>(0))?
            as u64;
        let (first, last): (Option<i64>, Option<i64>) = c.query_row(
            "SELECT min(submitted_us), max(coalesce(ended_us, submitted_us)) FROM tasks WHERE run = ?1",
            [run],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let last_try: Option<i64> =
            c.query_row("SELECT max(ended_us) FROM tries WHERE run = ?1", [run], |r| r.get(0))?;
        let t0 = first.unwrap_or(info.started_us);
        let t1 = last.max(last_try).unwrap_or(t0).max(t0 + 1);
        s.makespan_s = (t1 - t0) as f64 / 1e6;
        let width = (t1 - t0) as f64 / BINS as f64;

        // Apps, most tries first.
        let mut apps: Vec<(String, u64)> = Vec::new();
        let mut st = c.prepare("SELECT app, count(*) AS n FROM tasks WHERE run = ?1 GROUP BY app ORDER BY n DESC")?;
        for row in st.query_map([run], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
            let (app, n) = row?;
            apps.push((app, n as u64));
        }
        let shown = apps.len().min(MAX_APPS);
        let mut app_index: HashMap<String, usize> = HashMap::new();
        for (i, (a, _)) in apps.iter().enumerate() {
            app_index.insert(a.clone(), i.min(shown));
        }
        let mut names: Vec<String> = apps.iter().take(shown).map(|(a, _)| a.clone()).collect();
        if apps.len() > shown {
            names.push("other".into());
        }

        let tries = self.tries(run, &app_index)?;
        let mut running = vec![vec![0.0; BINS]; names.len()];
        let mut per_app: Vec<Vec<u64>> = vec![Vec::new(); names.len()];
        for t in &tries {
            spread(&mut running[t.app], t0, width, t.started, t.ended, 1.0);
            per_app[t.app].push((t.ended - t.started) as u64);
            s.busy_s += (t.ended - t.started) as f64 / 1e6;
        }

        // Capacity: each manager's slots from its registration to when it was last seen.
        let mut capacity = vec![0.0; BINS];
        let mut hosts: HashMap<i64, String> = HashMap::new();
        let mut st = c.prepare(
            "SELECT manager, host, slots, registered_us, coalesce(lost_us, gone_us, last_seen_us) \
             FROM managers WHERE run = ?1",
        )?;
        for row in st.query_map([run], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })? {
            let (m, host, slots, from, to) = row?;
            s.managers += 1;
            // A manager seen in one poll only was there for at least a poll's interval.
            let to = if to > from { to } else { (from + 1_000_000).min(t1) };
            spread(&mut capacity, t0, width, from, to, slots as f64);
            s.capacity_s += slots as f64 * (to - from) as f64 / 1e6;
            hosts.insert(m, host);
        }
        s.utilization = (s.capacity_s > 0.0).then(|| (s.busy_s / s.capacity_s).min(1.0));

        let mut blocks = vec![(0.0, 0.0); BINS];
        let mut pending = vec![0.0; BINS];
        let mut up = vec![0.0; BINS];
        let mut st = c.prepare("SELECT submitted_us, connected_us, ended_us FROM blocks")?;
        for row in st.query_map([], |r| {
            Ok((r.get::<_, Option<i64>>(0)?, r.get::<_, Option<i64>>(1)?, r.get::<_, Option<i64>>(2)?))
        })? {
            let (sub, con, end) = row?;
            s.blocks += 1;
            let end = end.unwrap_or(t1);
            if let Some(sub) = sub {
                spread(&mut pending, t0, width, sub, con.unwrap_or(end), 1.0);
            }
            if let Some(con) = con {
                spread(&mut up, t0, width, con, end, 1.0);
            }
        }
        for (i, b) in blocks.iter_mut().enumerate() {
            *b = (pending[i], up[i]);
        }

        let mut queued = Vec::new();
        let mut st = c.prepare("SELECT t_us, queued FROM samples WHERE run = ?1 ORDER BY t_us")?;
        for row in st.query_map([run], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))? {
            let (t, q) = row?;
            queued.push((t, q as u64));
        }

        let (duration_edges_us, durations) = durations(&names, per_app);
        let (lanes, lanes_total) = lanes(&tries, &hosts, (t1 - t0) as f64 / 1000.0);
        let failures = self.failures(run)?;
        let resources = self.resources(run)?;
        let sampled = samples::load(c, run, t0, width)?;
        if s.tasks == 0 {
            notes.push("This run submitted no tasks.".into());
        }
        let running = names.into_iter().zip(running).collect();
        Ok(Report {
            db: self.file.to_path_buf(),
            run: info,
            summary: s,
            span_us: (t0, t1),
            running,
            capacity,
            blocks,
            queued,
            duration_edges_us,
            durations,
            lanes,
            lanes_total,
            failures,
            resources,
            sampled,
            notes,
        })
    }

    fn resources(&self, run: i64) -> Result<Vec<ResourceUse>, LoadError> {
        let mut st = self.conn.prepare(
            "SELECT t.app, count(*), sum(r.cpu_us), sum(r.run_us), max(r.max_rss_kib), avg(r.max_rss_kib) AS m \
             FROM tries r JOIN tasks t ON t.run = r.run AND t.task = r.task \
             WHERE r.run = ?1 AND r.max_rss_kib IS NOT NULL GROUP BY t.app ORDER BY sum(r.cpu_us) DESC",
        )?;
        let rows = st.query_map([run], |r| {
            let (cpu, ran): (i64, i64) = (r.get(2)?, r.get(3)?);
            Ok(ResourceUse {
                app: r.get(0)?,
                tries: r.get::<_, i64>(1)? as u64,
                cpu_s: cpu as f64 / 1e6,
                cores: if ran > 0 { cpu as f64 / ran as f64 } else { 0.0 },
                max_rss_kib: r.get::<_, i64>(4)? as u64,
                mean_rss_kib: r.get::<_, f64>(5)? as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every try that ran on a worker, with its app's index.
    fn tries(&self, run: i64, app_index: &HashMap<String, usize>) -> Result<Vec<TryRow>, LoadError> {
        let mut st = self.conn.prepare(
            "SELECT t.app, r.started_us, r.run_us, r.manager, r.rank, r.slot, r.outcome = 'done' \
             FROM tries r JOIN tasks t ON t.run = r.run AND t.task = r.task \
             WHERE r.run = ?1 AND r.started_us IS NOT NULL",
        )?;
        let mut out = Vec::new();
        let mut rows = st.query(params![run])?;
        while let Some(r) = rows.next()? {
            let app: String = r.get(0)?;
            let started: i64 = r.get(1)?;
            let run_us: i64 = r.get(2)?;
            out.push(TryRow {
                app: app_index.get(&app).copied().unwrap_or(0),
                started,
                ended: started + run_us.max(0),
                lane: (r.get::<_, Option<i64>>(3)?.unwrap_or(0), r.get(4)?, r.get(5)?),
                ok: r.get(6)?,
            });
        }
        Ok(out)
    }

    fn failures(&self, run: i64) -> Result<Vec<FailureGroup>, LoadError> {
        let mut groups = Vec::new();
        let mut st = self.conn.prepare(
            "SELECT outcome, count(*) AS n FROM tries WHERE run = ?1 AND outcome <> 'done' GROUP BY outcome ORDER BY n DESC",
        )?;
        let kinds: Vec<(String, i64)> =
            st.query_map([run], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
        let mut ex = self.conn.prepare(
            "SELECT coalesce(t.name, 'task ' || r.task), r.attempt, coalesce(r.reason, '') \
             FROM tries r JOIN tasks t ON t.run = r.run AND t.task = r.task \
             WHERE r.run = ?1 AND r.outcome = ?2 ORDER BY r.ended_us LIMIT ?3",
        )?;
        for (kind, count) in kinds {
            let examples = ex
                .query_map(params![run, kind, EXAMPLES as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<_, _>>()?;
            groups.push(FailureGroup { kind, count: count as u64, examples });
        }
        Ok(groups)
    }
}

/// The run-time histogram: log-spaced edges over all apps, and each app's counts and percentiles.
fn durations(names: &[String], per_app: Vec<Vec<u64>>) -> (Vec<u64>, Vec<Durations>) {
    const N: usize = 30;
    let lo = per_app.iter().flatten().copied().min().unwrap_or(1).max(1) as f64;
    let hi = (per_app.iter().flatten().copied().max().unwrap_or(1) as f64).max(lo * 10.0);
    let edges: Vec<u64> = (0..=N).map(|i| (lo * (hi / lo).powf(i as f64 / N as f64)).round() as u64).collect();
    let (llo, step) = (lo.ln(), (hi / lo).ln() / N as f64);
    let mut out = Vec::new();
    for (name, mut v) in names.iter().zip(per_app) {
        if v.is_empty() {
            continue;
        }
        v.sort_unstable();
        let mut counts = vec![0u64; N];
        for &d in &v {
            let i = (((d.max(1) as f64).ln() - llo) / step).floor().clamp(0.0, (N - 1) as f64) as usize;
            counts[i] += 1;
        }
        out.push(Durations {
            app: name.clone(),
            n: v.len() as u64,
            p50_us: percentile(&v, 0.5),
            p95_us: percentile(&v, 0.95),
            max_us: v.last().copied().unwrap_or(0),
            counts,
        });
    }
    (edges, out)
}

/// A worker slot: manager, rank, slot.
type LaneKey = (i64, u32, u32);
/// A busy span: start, end (µs), and whether every try in it succeeded.
type Span = (i64, i64, bool);

/// Each worker slot's spans, sampled to [`MAX_LANES`] slots and merged where closer than `gap_us`.
fn lanes(tries: &[TryRow], hosts: &HashMap<i64, String>, gap_us: f64) -> (Vec<Lane>, usize) {
    let mut by_lane: BTreeMap<LaneKey, Vec<Span>> = BTreeMap::new();
    for t in tries {
        by_lane.entry(t.lane).or_default().push((t.started, t.ended, t.ok));
    }
    let total = by_lane.len();
    let step = total.div_ceil(MAX_LANES).max(1);
    let mut out = Vec::new();
    for (k, ((manager, rank, slot), mut spans)) in by_lane.into_iter().enumerate() {
        if k % step != 0 {
            continue;
        }
        spans.sort_unstable();
        let mut merged: Vec<(i64, i64, bool)> = Vec::new();
        for (a, b, ok) in spans {
            // Only spans that ended alike merge, so a failure stays visible in a busy lane.
            match merged.last_mut() {
                Some(last) if (a - last.1) as f64 <= gap_us && last.2 == ok => {
                    last.1 = last.1.max(b);
                }
                _ => merged.push((a, b, ok)),
            }
        }
        let host = hosts.get(&manager).cloned().unwrap_or_else(|| format!("manager {manager:x}"));
        out.push(Lane { name: format!("{host} rank {rank} slot {slot}"), spans: merged });
    }
    (out, total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_averages_over_bins() {
        let mut b = vec![0.0; 4];
        // Busy from the middle of bin 0 to the middle of bin 2, bins 10 µs wide.
        spread(&mut b, 0, 10.0, 5, 25, 1.0);
        assert_eq!(b, vec![0.5, 1.0, 0.5, 0.0]);
        // Outside the axis: nothing.
        spread(&mut b, 0, 10.0, 50, 60, 1.0);
        assert_eq!(b.iter().sum::<f64>(), 2.0);
    }

    #[test]
    fn durations_bin_every_try_once() {
        let (edges, d) = durations(&["a".into()], vec![vec![1, 10, 100, 1000, 1000]]);
        assert_eq!(edges.len(), 31);
        assert_eq!(d[0].counts.iter().sum::<u64>(), 5);
        assert_eq!((d[0].p50_us, d[0].max_us), (100, 1000));
    }
}
