//! What a sweep leaves in its `--out` directory: `results.jsonl` (one [`PointResult`] per
//! point and repetition, appended as each ends, so an interrupted sweep resumes from it) and
//! `results.csv` (the same numbers, for spreadsheets and other plotting tools).

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The points file of a sweep's output directory.
pub const RESULTS_JSONL: &str = "results.jsonl";
/// The same points as CSV.
pub const RESULTS_CSV: &str = "results.csv";

/// Which experiment a point belongs to.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Experiment {
    /// A fixed number of tasks over more and more workers.
    Strong,
    /// A fixed number of tasks per worker.
    Weak,
    /// One task at a time: the round-trip distribution.
    Latency,
    /// Connect more and more workers: registration time, memory, throughput.
    MaxWorkers,
}

impl Experiment {
    /// The name used in files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Experiment::Strong => "strong",
            Experiment::Weak => "weak",
            Experiment::Latency => "latency",
            Experiment::MaxWorkers => "max-workers",
        }
    }
}

/// What each task runs.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum TaskKind {
    /// The launcher's built-in functions (`noop`, or `sleep` for a duration): no process.
    #[default]
    Function,
    /// Real processes: `true`, or `sleep SECONDS` for a duration.
    Command,
}

/// The machine, the build and the configuration a point was measured with.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Provenance {
    /// Host name of the machine that ran the sweep (the submit host).
    pub host: String,
    /// Cores it has.
    pub cores: u32,
    /// Its CPU model, from /proc/cpuinfo ("" when not known).
    pub cpu: String,
    /// The strand version.
    pub version: String,
    /// The git commit of the source tree the binary was run from (with "-dirty" for
    /// uncommitted changes); "" when it is not in a git checkout.
    pub commit: String,
    /// Where the workers were: "local" (a local block under mpirun), "simulated" (simulated
    /// managers: real ZeroMQ, no MPI, tasks on timers) or an executor configuration's label.
    pub executor: String,
    /// Tries each worker holds beyond the one it runs.
    pub prefetch: u32,
}

/// One point of a sweep and one repetition of it: a line of `results.jsonl`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct PointResult {
    /// The experiment.
    pub experiment: Experiment,
    /// Whether the workers were simulated (every output drawn from such points says so).
    pub simulated: bool,
    /// Workers (task slots) serving the point.
    pub workers: u64,
    /// Nodes they were on (1: this machine's local block; 0: simulated).
    #[serde(default)]
    pub nodes: u64,
    /// Managers (pools) they were in.
    pub managers: u64,
    /// Tasks run.
    pub tasks: u64,
    /// Each task's duration, seconds (0: no-op).
    pub duration_s: f64,
    /// What the tasks ran.
    pub kind: TaskKind,
    /// Which repetition (from 0).
    pub rep: u32,
    /// Seconds from the first submit to the last result.
    pub makespan_s: f64,
    /// Tasks per second over the makespan.
    pub tasks_per_s: f64,
    /// The best makespan any executor could reach: ceil(tasks / workers) x duration (0 for no-ops).
    pub ideal_s: f64,
    /// `ideal_s / makespan_s`; absent for no-ops, which have no ideal.
    pub efficiency: Option<f64>,
    /// Time from a task's submit to its result, percentiles in seconds (in a bulk sweep this
    /// includes its wait in the queue; the latency experiment runs one task at a time).
    pub result_p50_s: f64,
    /// 95th percentile of the same.
    pub result_p95_s: f64,
    /// 99th percentile of the same.
    pub result_p99_s: f64,
    /// Tasks that did not succeed (0 in a good point).
    pub failed: u64,
    /// Seconds until every manager had registered (max-workers; 0 elsewhere).
    #[serde(default)]
    pub registration_s: f64,
    /// The interchange's peak resident memory when the point ended, MiB (0: not read).
    #[serde(default)]
    pub interchange_rss_mib: f64,
    /// Every round trip, microseconds (the latency experiment only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub latencies_us: Vec<f64>,
    /// What stopped this point, when it failed to run (max-workers records its limit so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When it ended, seconds since the Unix epoch.
    pub ended_unix: f64,
    /// Machine, build and configuration.
    pub provenance: Provenance,
}

impl PointResult {
    /// A point of `workers` workers and `tasks` no-op tasks before it runs: one node, one
    /// manager, real workers, nothing measured yet (callers set the rest by struct update).
    pub fn new(experiment: Experiment, workers: u64, tasks: u64, provenance: Provenance) -> PointResult {
        PointResult {
            experiment,
            simulated: false,
            workers,
            nodes: 1,
            managers: 1,
            tasks,
            duration_s: 0.0,
            kind: TaskKind::Function,
            rep: 0,
            makespan_s: 0.0,
            tasks_per_s: 0.0,
            ideal_s: 0.0,
            efficiency: None,
            result_p50_s: 0.0,
            result_p95_s: 0.0,
            result_p99_s: 0.0,
            failed: 0,
            registration_s: 0.0,
            interchange_rss_mib: 0.0,
            latencies_us: vec![],
            error: None,
            ended_unix: 0.0,
            provenance,
        }
    }
}

/// Why a results file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// A line is not a point.
    #[error("{path}:{line}: not a sweep point ({why}); the file is written by `strand bench strong/weak/latency/max-workers --out`")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Line number, from 1.
        line: usize,
        /// The parser's message.
        why: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ResultsError + '_ {
    move |source| ResultsError::Io { path: path.to_path_buf(), source }
}

/// The points of `dir/results.jsonl` (none when the file does not exist). A torn last line
/// (a sweep killed while writing it) is ignored; a bad line elsewhere is an error.
pub fn read(dir: &Path) -> Result<Vec<PointResult>, ResultsError> {
    let path = dir.join(RESULTS_JSONL);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(&path)(e)),
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut points = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<PointResult>(line) {
            Ok(p) => points.push(p),
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => {}
            Err(e) => return Err(ResultsError::Parse { path: path.clone(), line: i + 1, why: e.to_string() }),
        }
    }
    Ok(points)
}

/// Append one point to `dir/results.jsonl` and flush it to the file.
pub fn append(dir: &Path, p: &PointResult) -> Result<(), ResultsError> {
    let path = dir.join(RESULTS_JSONL);
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&path).map_err(io(&path))?;
    // A torn line from a killed sweep would glue onto this one: start on a line of its own.
    let len = f.metadata().map_err(io(&path))?.len();
    let mut line = if len > 0 && !ends_with_newline(&path)? { "\n".to_string() } else { String::new() };
    line.push_str(&serde_json::to_string(p).map_err(|e| io(&path)(e.into()))?);
    line.push('\n');
    f.write_all(line.as_bytes()).map_err(io(&path))?;
    f.sync_data().map_err(io(&path))
}

fn ends_with_newline(path: &Path) -> Result<bool, ResultsError> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    f.seek(SeekFrom::End(-1)).map_err(io(path))?;
    let mut b = [0u8; 1];
    f.read_exact(&mut b).map_err(io(path))?;
    Ok(b[0] == b'\n')
}

/// Write `dir/results.csv` from the points (one row each, the latencies left out).
pub fn write_csv(dir: &Path, points: &[PointResult]) -> Result<(), ResultsError> {
    let path = dir.join(RESULTS_CSV);
    let mut out = String::from(
        "experiment,simulated,workers,nodes,managers,tasks,duration_s,kind,rep,makespan_s,tasks_per_s,ideal_s,efficiency,\
         result_p50_s,result_p95_s,result_p99_s,failed,registration_s,interchange_rss_mib,error,host,cores,commit,executor\n",
    );
    for p in points {
        let kind = if p.kind == TaskKind::Function { "function" } else { "command" };
        let eff = p.efficiency.map(|e| format!("{e:.6}")).unwrap_or_default();
        let error = csv_field(p.error.as_deref().unwrap_or(""));
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{kind},{},{:.6},{:.3},{:.6},{eff},{:.6},{:.6},{:.6},{},{:.6},{:.3},{error},{},{},{},{}\n",
            p.experiment.name(),
            p.simulated,
            p.workers,
            p.nodes,
            p.managers,
            p.tasks,
            p.duration_s,
            p.rep,
            p.makespan_s,
            p.tasks_per_s,
            p.ideal_s,
            p.result_p50_s,
            p.result_p95_s,
            p.result_p99_s,
            p.failed,
            p.registration_s,
            p.interchange_rss_mib,
            csv_field(&p.provenance.host),
            p.provenance.cores,
            csv_field(&p.provenance.commit),
            csv_field(&p.provenance.executor),
        ));
    }
    std::fs::write(&path, out).map_err(io(&path))
}

/// A CSV field, quoted when it holds a comma, quote or line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The machine and build, for [`Provenance`] (the caller fills in executor and prefetch).
pub fn this_machine(executor: &str, prefetch: u32) -> Provenance {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_default();
    Provenance {
        host: crate::host::hostname(),
        cores: std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1),
        cpu,
        version: env!("CARGO_PKG_VERSION").into(),
        commit: source_commit().unwrap_or_default(),
        executor: executor.into(),
        prefetch,
    }
}

/// The commit of the checkout this executable was built in (found from the executable's own
/// path, never the current directory), with "-dirty" when tracked files changed.
fn source_commit() -> Option<String> {
    let exe = std::env::current_exe().ok()?;
    let root = exe.ancestors().find(|d| d.join(".git").exists())?;
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git").arg("-C").arg(root).args(args).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let head = git(&["rev-parse", "--short=12", "HEAD"])?;
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(if dirty { format!("{head}-dirty") } else { head })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A strong-scaling point for tests.
    pub(crate) fn point(workers: u64, duration_s: f64, rep: u32, makespan_s: f64) -> PointResult {
        PointResult {
            duration_s,
            rep,
            makespan_s,
            tasks_per_s: 100.0 / makespan_s,
            ..PointResult::new(Experiment::Strong, workers, 100, this_machine("local", 64))
        }
    }

    #[test]
    fn appended_points_read_back_and_a_torn_last_line_is_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(read(dir.path()).expect("no file").is_empty());
        append(dir.path(), &point(1, 0.1, 0, 10.0)).expect("append");
        append(dir.path(), &point(2, 0.1, 0, 5.0)).expect("append");
        // A sweep killed while writing its third line.
        let path = dir.path().join(RESULTS_JSONL);
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).expect("open");
        f.write_all(b"{\"experiment\":\"str").expect("write");
        let back = read(dir.path()).expect("read");
        assert_eq!(back, vec![point(1, 0.1, 0, 10.0), point(2, 0.1, 0, 5.0)]);
        // The next point starts on its own line and the torn one then reads as an error.
        append(dir.path(), &point(4, 0.1, 0, 2.5)).expect("append");
        let err = read(dir.path()).expect_err("torn line in the middle");
        assert!(err.to_string().contains("results.jsonl:3: not a sweep point"), "{err}");
    }

    #[test]
    fn csv_has_a_row_per_point_and_quotes_what_needs_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut p = point(8, 0.01, 1, 1.5);
        p.error = Some("a, \"b\"".into());
        write_csv(dir.path(), &[point(1, 0.01, 0, 3.0), p]).expect("csv");
        let text = std::fs::read_to_string(dir.path().join(RESULTS_CSV)).expect("read");
        let rows: Vec<&str> = text.lines().collect();
        assert_eq!(rows.len(), 3);
        assert!(rows[0].starts_with("experiment,simulated,workers,"));
        assert!(rows[2].starts_with("strong,false,8,1,1,100,0.01,function,1,1.500000,"), "{}", rows[2]);
        assert!(rows[2].contains(",\"a, \"\"b\"\"\","), "{}", rows[2]);
    }
}
