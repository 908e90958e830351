//! Plots of sweep points (`plotters`), as SVG and PNG, and `plots.json`: the numbers each plot
//! drew, so a test (or a person) can check a picture against `results.jsonl`.
//!
//! Points of one configuration are grouped into a series (by run, experiment, duration and
//! task kind); each series draws the median over repetitions with a min-max bar. [`draw`] turns a
//! chart into a picture.

use super::results::{self, Experiment, PointResult, ResultsError, TaskKind};
use super::show_duration;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod draw;

pub use draw::draw;

/// The file beside the plots that holds their series.
pub const PLOTS_JSON: &str = "plots.json";

/// One point of a series: the median over repetitions and its range.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SeriesPoint {
    /// Workers (or, in the latency plots, microseconds).
    pub x: f64,
    /// Median.
    pub y: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
    /// Repetitions behind it.
    pub n: usize,
}

/// A line on a plot.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// An ideal (dashed, no markers) rather than a measurement.
    pub ideal: bool,
    /// Reference points read from a CSV (markers only).
    pub reference: bool,
    /// Drawn from simulated workers.
    pub simulated: bool,
    /// Its colour, by index (the same configuration has the same colour on every plot).
    pub color: usize,
    /// The points, by x.
    pub points: Vec<SeriesPoint>,
}

/// One plot.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Chart {
    /// File name without extension (`strong-time` ...).
    pub name: String,
    /// Caption.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// Logarithmic x axis.
    pub log_x: bool,
    /// Logarithmic y axis.
    pub log_y: bool,
    /// Its lines.
    pub series: Vec<Series>,
}

/// A point from a reference CSV (`label,experiment,workers,duration_s,makespan_s,tasks_per_s`,
/// e.g. Parsl's published figures); an empty field is not drawn.
#[derive(Clone, Debug, PartialEq)]
pub struct Reference {
    /// Legend text.
    pub label: String,
    /// Which plots it goes on.
    pub experiment: Experiment,
    /// Workers.
    pub workers: f64,
    /// Task duration, seconds.
    pub duration_s: f64,
    /// Completion time, seconds.
    pub makespan_s: Option<f64>,
    /// Throughput.
    pub tasks_per_s: Option<f64>,
}

/// Why plots could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The points could not be read.
    #[error(transparent)]
    Results(#[from] ResultsError),
    /// A reference CSV is wrong.
    #[error("{path}:{line}: {why} (expected a header `label,experiment,workers,duration_s,makespan_s,tasks_per_s`)")]
    Reference {
        /// The file.
        path: PathBuf,
        /// Line, from 1.
        line: usize,
        /// What is wrong.
        why: String,
    },
    /// No font to draw text with.
    #[error(
        "plots need a TrueType font and none of {0} exists; install Debian's fonts-dejavu-core (README command 1 does)"
    )]
    NoFont(String),
    /// Drawing or writing a file failed.
    #[error("drawing {path}: {why}")]
    Draw {
        /// The file.
        path: PathBuf,
        /// What failed.
        why: String,
    },
    /// Nothing to draw.
    #[error("{0}")]
    Empty(String),
}

/// What `strand bench plot` prints.
#[derive(Serialize, Deserialize, Debug)]
pub struct PlotReport {
    /// Always "plot".
    pub bench: String,
    /// Where the plots went.
    pub out: String,
    /// The files written.
    pub plots: Vec<String>,
}

/// Group values by x into medians with ranges.
fn summarize(mut by_x: BTreeMap<u64, Vec<f64>>, x_of: impl Fn(u64) -> f64) -> Vec<SeriesPoint> {
    by_x.iter_mut()
        .map(|(x, v)| {
            v.sort_by(f64::total_cmp);
            SeriesPoint { x: x_of(*x), y: median(v), min: v[0], max: v[v.len() - 1], n: v.len() }
        })
        .collect()
}

/// The median of sorted values (the mean of the middle two for an even count).
pub fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// A configuration's series key: run, experiment, duration (µs), kind, simulated.
type Group = (usize, Experiment, u64, TaskKind, bool);

fn series_label(run: &str, d_us: u64, kind: TaskKind, simulated: bool) -> String {
    let d = Duration::from_micros(d_us);
    let what = match (kind, d.is_zero()) {
        (TaskKind::Function, true) => "no-op".to_string(),
        (TaskKind::Function, false) => show_duration(d),
        (TaskKind::Command, true) => "true (process)".to_string(),
        (TaskKind::Command, false) => format!("sleep {} (process)", show_duration(d)),
    };
    let sim = if simulated { " (simulated)" } else { "" };
    if run.is_empty() {
        format!("{what}{sim}")
    } else {
        format!("{run}: {what}{sim}")
    }
}

/// Every plot the points of `runs` (label, points) make, with `reference` points overlaid.
pub fn charts(runs: &[(String, Vec<PointResult>)], reference: &[Reference]) -> Vec<Chart> {
    let mut groups: BTreeMap<Group, Vec<&PointResult>> = BTreeMap::new();
    for (i, (_, points)) in runs.iter().enumerate() {
        for p in points.iter().filter(|p| p.error.is_none() && p.failed == 0) {
            let g = (i, p.experiment, (p.duration_s * 1e6).round() as u64, p.kind, p.simulated);
            groups.entry(g).or_default().push(p);
        }
    }
    let by_workers = |ps: &[&PointResult], f: &dyn Fn(&PointResult) -> Option<f64>| {
        let mut m: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
        for p in ps {
            if let Some(v) = f(p) {
                m.entry(p.workers).or_default().push(v);
            }
        }
        summarize(m, |w| w as f64)
    };
    let any_sim = |e: Experiment| groups.keys().any(|g| g.1 == e && g.4);
    let title = |t: &str, e: Experiment| if any_sim(e) { format!("{t} (simulated workers)") } else { t.to_string() };
    let mut out = Vec::new();
    for e in [Experiment::Strong, Experiment::Weak] {
        let gs: Vec<(&Group, &Vec<&PointResult>)> = groups.iter().filter(|(g, _)| g.1 == e).collect();
        if gs.is_empty() {
            continue;
        }
        let (mut time, mut eff, mut rate) = (vec![], vec![], vec![]);
        let n_groups = gs.len();
        for (color, ((run, _, d_us, kind, sim), ps)) in gs.into_iter().enumerate() {
            let label = series_label(&runs[*run].0, *d_us, *kind, *sim);
            let measured = |points| Series {
                label: label.clone(),
                ideal: false,
                reference: false,
                simulated: *sim,
                color,
                points,
            };
            let t = by_workers(ps, &|p| Some(p.makespan_s));
            // The ideal: ceil(tasks / workers) x duration; for no-ops (no duration), linear
            // speed-up from the fewest workers measured.
            let ideal: Vec<SeriesPoint> = if *d_us > 0 {
                by_workers(ps, &|p| Some(p.ideal_s))
            } else {
                let first = t.first().cloned();
                t.iter()
                    .filter_map(|q| first.as_ref().map(|f| f.y * f.x / q.x))
                    .zip(&t)
                    .map(|(y, q)| SeriesPoint { x: q.x, y, min: y, max: y, n: 1 })
                    .collect()
            };
            time.push(measured(t));
            time.push(Series {
                label: format!("{label}, ideal"),
                ideal: true,
                reference: false,
                simulated: *sim,
                color,
                points: ideal,
            });
            if *d_us > 0 {
                eff.push(measured(by_workers(ps, &|p| p.efficiency)));
            }
            rate.push(measured(by_workers(ps, &|p| Some(p.tasks_per_s))));
        }
        let mut refs = 0;
        for r in reference.iter().filter(|r| r.experiment == e) {
            let (label, x) =
                (format!("{} ({})", r.label, show_duration(Duration::from_secs_f64(r.duration_s))), r.workers);
            let color = n_groups + refs;
            let mut added = false;
            let mut add = |v: &mut Vec<Series>, y: Option<f64>| {
                let Some(y) = y else { return };
                let pt = SeriesPoint { x, y, min: y, max: y, n: 1 };
                match v.iter_mut().find(|s| s.reference && s.label == label) {
                    Some(s) => s.points.push(pt),
                    None => {
                        added = true;
                        v.push(Series {
                            label: label.clone(),
                            ideal: false,
                            reference: true,
                            simulated: false,
                            color,
                            points: vec![pt],
                        })
                    }
                }
            };
            add(&mut time, r.makespan_s);
            add(&mut rate, r.tasks_per_s);
            refs += usize::from(added);
        }
        let name = e.name();
        let scaling = if e == Experiment::Strong { "Strong scaling" } else { "Weak scaling" };
        out.push(Chart {
            name: format!("{name}-time"),
            title: title(&format!("{scaling}: completion time"), e),
            x_label: "workers".into(),
            y_label: "completion time (s)".into(),
            log_x: true,
            log_y: e == Experiment::Strong,
            series: time,
        });
        if eff.iter().any(|s| !s.points.is_empty()) {
            out.push(Chart {
                name: format!("{name}-efficiency"),
                title: title(&format!("{scaling}: efficiency (ideal / measured)"), e),
                x_label: "workers".into(),
                y_label: "efficiency".into(),
                log_x: true,
                log_y: false,
                series: eff,
            });
        }
        out.push(Chart {
            name: format!("{name}-throughput"),
            title: title(&format!("{scaling}: throughput"), e),
            x_label: "workers".into(),
            y_label: "tasks per second".into(),
            log_x: true,
            log_y: true,
            series: rate,
        });
    }
    latency_charts(runs, &mut out);
    max_workers_charts(runs, &groups, &mut out);
    out
}

/// The latency histogram and CDF, one series per run.
fn latency_charts(runs: &[(String, Vec<PointResult>)], out: &mut Vec<Chart>) {
    let mut hist = vec![];
    let mut cdf = vec![];
    for (label, points) in runs {
        let mut us: Vec<f64> = points
            .iter()
            .filter(|p| p.experiment == Experiment::Latency && p.error.is_none())
            .flat_map(|p| p.latencies_us.iter().copied())
            .collect();
        if us.is_empty() {
            continue;
        }
        us.sort_by(f64::total_cmp);
        let sim = points.iter().any(|p| p.experiment == Experiment::Latency && p.simulated);
        let name = if label.is_empty() { "round trip".to_string() } else { label.clone() };
        let name = if sim { format!("{name} (simulated)") } else { name };
        // 40 log-spaced bins from the fastest to the slowest round trip.
        let (lo, hi) = (us[0].max(1.0).log10(), us[us.len() - 1].max(1.0).log10() + 1e-9);
        let bins = 40usize;
        let width = ((hi - lo) / bins as f64).max(1e-6);
        let mut counts = vec![0usize; bins];
        for v in &us {
            let b = (((v.max(1.0).log10() - lo) / width) as usize).min(bins - 1);
            counts[b] += 1;
        }
        let hpoints = counts
            .iter()
            .enumerate()
            .map(|(b, &c)| {
                let x = 10f64.powf(lo + (b as f64 + 0.5) * width);
                SeriesPoint { x, y: c as f64, min: c as f64, max: c as f64, n: c }
            })
            .collect();
        let color = hist.len();
        hist.push(Series {
            label: name.clone(),
            ideal: false,
            reference: false,
            simulated: sim,
            color,
            points: hpoints,
        });
        let n = us.len();
        let step = (n / 200).max(1);
        let cpoints = (0..n)
            .filter(|i| i % step == 0 || *i == n - 1)
            .map(|i| {
                let y = (i + 1) as f64 / n as f64;
                SeriesPoint { x: us[i], y, min: y, max: y, n: 1 }
            })
            .collect();
        cdf.push(Series { label: name, ideal: false, reference: false, simulated: sim, color, points: cpoints });
    }
    if hist.is_empty() {
        return;
    }
    out.push(Chart {
        name: "latency-histogram".into(),
        title: "Latency: round trips of one no-op task at a time".into(),
        x_label: "round trip (µs)".into(),
        y_label: "tasks".into(),
        log_x: true,
        log_y: false,
        series: hist,
    });
    out.push(Chart {
        name: "latency-cdf".into(),
        title: "Latency: cumulative distribution".into(),
        x_label: "round trip (µs)".into(),
        y_label: "fraction of tasks".into(),
        log_x: true,
        log_y: false,
        series: cdf,
    });
}

/// Registration time, interchange memory and throughput against connected workers.
fn max_workers_charts(
    runs: &[(String, Vec<PointResult>)],
    groups: &BTreeMap<Group, Vec<&PointResult>>,
    out: &mut Vec<Chart>,
) {
    let mut reg = vec![];
    let mut rss = vec![];
    let mut rate = vec![];
    for (color, ((run, _, _, _, sim), ps)) in groups.iter().filter(|(g, _)| g.1 == Experiment::MaxWorkers).enumerate() {
        let base = if runs[*run].0.is_empty() { String::new() } else { format!("{}: ", runs[*run].0) };
        let label = format!("{base}{}", if *sim { "simulated managers" } else { "real launchers" });
        let mk = |f: &dyn Fn(&PointResult) -> f64| {
            let mut m: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
            for p in ps {
                m.entry(p.workers).or_default().push(f(p));
            }
            let points = summarize(m, |w| w as f64);
            Series { label: label.clone(), ideal: false, reference: false, simulated: *sim, color, points }
        };
        reg.push(mk(&|p| p.registration_s.max(1e-4)));
        rss.push(mk(&|p| p.interchange_rss_mib));
        rate.push(mk(&|p| p.tasks_per_s));
    }
    if reg.is_empty() {
        return;
    }
    for (name, title, y_label, log_y, series) in [
        ("max-workers-registration", "Maximum workers: time until all registered", "seconds", true, reg),
        ("max-workers-memory", "Maximum workers: interchange peak memory", "MiB", false, rss),
        ("max-workers-throughput", "Maximum workers: throughput", "tasks per second", true, rate),
    ] {
        out.push(Chart {
            name: name.into(),
            title: title.into(),
            x_label: "workers".into(),
            y_label: y_label.into(),
            log_x: true,
            log_y,
            series,
        });
    }
}

/// Read a reference CSV.
pub fn read_reference(path: &Path) -> Result<Vec<Reference>, PlotError> {
    let bad = |line: usize, why: String| PlotError::Reference { path: path.to_path_buf(), line, why };
    let text = std::fs::read_to_string(path).map_err(|e| bad(0, e.to_string()))?;
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'));
    let header = lines.next().map(|(_, l)| l.trim().to_string()).unwrap_or_default();
    if header != "label,experiment,workers,duration_s,makespan_s,tasks_per_s" {
        return Err(bad(1, format!("header {header:?}")));
    }
    let mut out = vec![];
    for (i, line) in lines {
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        if f.len() != 6 {
            return Err(bad(i + 1, format!("{} fields, expected 6", f.len())));
        }
        let num = |k: usize, what: &str| -> Result<Option<f64>, PlotError> {
            if f[k].is_empty() {
                return Ok(None);
            }
            f[k].parse::<f64>().map(Some).map_err(|_| bad(i + 1, format!("{what} {:?} is not a number", f[k])))
        };
        let experiment = match f[1] {
            "strong" => Experiment::Strong,
            "weak" => Experiment::Weak,
            other => return Err(bad(i + 1, format!("experiment {other:?}, expected strong or weak"))),
        };
        out.push(Reference {
            label: f[0].to_string(),
            experiment,
            workers: num(2, "workers")?.ok_or_else(|| bad(i + 1, "workers is empty".into()))?,
            duration_s: num(3, "duration_s")?.unwrap_or(0.0),
            makespan_s: num(4, "makespan_s")?,
            tasks_per_s: num(5, "tasks_per_s")?,
        });
    }
    Ok(out)
}

/// Redraw the plots of the sweeps in `dirs` (overlaid; a series is named by its directory when
/// there is more than one) with `reference` points, into `out`. Returns the files written.
pub fn draw_dirs(dirs: &[PathBuf], reference: &[Reference], out: &Path) -> Result<Vec<PathBuf>, PlotError> {
    let mut runs = vec![];
    for d in dirs {
        let label = if dirs.len() > 1 {
            d.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
        } else {
            String::new()
        };
        runs.push((label, results::read(d)?));
    }
    if runs.iter().all(|(_, p)| p.is_empty()) {
        let names: Vec<String> = dirs.iter().map(|d| d.join(results::RESULTS_JSONL).display().to_string()).collect();
        return Err(PlotError::Empty(format!("no points in {}", names.join(", "))));
    }
    std::fs::create_dir_all(out).map_err(|e| PlotError::Draw { path: out.to_path_buf(), why: e.to_string() })?;
    let charts = charts(&runs, reference);
    let mut files = vec![];
    for c in &charts {
        for ext in ["svg", "png"] {
            let path = out.join(format!("{}.{ext}", c.name));
            draw(c, &path)?;
            files.push(path);
        }
    }
    let json = out.join(PLOTS_JSON);
    let text = serde_json::to_string_pretty(&charts)
        .map_err(|e| PlotError::Draw { path: json.clone(), why: e.to_string() })?;
    std::fs::write(&json, text).map_err(|e| PlotError::Draw { path: json.clone(), why: e.to_string() })?;
    Ok(files)
}

/// The plots of one sweep directory, into itself.
pub fn draw_dir(dir: &Path, reference: &[Reference], out: &Path) -> Result<Vec<PathBuf>, PlotError> {
    draw_dirs(&[dir.to_path_buf()], reference, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::scaling::results::tests::point;

    #[test]
    fn a_series_per_duration_with_medians_ranges_and_ideals() {
        let mut pts = vec![];
        for (w, times) in [(1u64, [10.0, 12.0, 11.0]), (2, [5.0, 6.0, 5.5])] {
            for (rep, t) in times.iter().enumerate() {
                let mut p = point(w, 0.1, rep as u32, *t);
                p.ideal_s = 10.0 / w as f64;
                p.efficiency = Some(p.ideal_s / t);
                pts.push(p);
            }
        }
        pts.push(point(1, 0.0, 0, 2.0));
        pts.push(point(2, 0.0, 0, 1.5));
        let c = charts(&[(String::new(), pts)], &[]);
        let names: Vec<&str> = c.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, vec!["strong-time", "strong-efficiency", "strong-throughput"]);
        let time = &c[0];
        let labels: Vec<&str> = time.series.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(labels, vec!["no-op", "no-op, ideal", "100ms", "100ms, ideal"]);
        let m = &time.series[2].points;
        assert_eq!((m[0].x, m[0].y, m[0].min, m[0].max, m[0].n), (1.0, 11.0, 10.0, 12.0, 3));
        assert_eq!((m[1].x, m[1].y), (2.0, 5.5));
        assert_eq!(time.series[3].points.iter().map(|p| p.y).collect::<Vec<_>>(), vec![10.0, 5.0]);
        // No-ops have no ideal of their own: linear speed-up from the fewest workers.
        assert_eq!(time.series[1].points.iter().map(|p| p.y).collect::<Vec<_>>(), vec![2.0, 1.0]);
        assert_eq!(c[1].series.len(), 1, "efficiency only for tasks with a duration");
    }

    #[test]
    fn files_are_drawn_and_reference_points_overlaid() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (w, t) in [(1, 10.0), (2, 5.2), (4, 2.7)] {
            results::append(dir.path(), &point(w, 0.1, 0, t)).expect("append");
        }
        let csv = dir.path().join("parsl.csv");
        std::fs::write(
            &csv,
            "label,experiment,workers,duration_s,makespan_s,tasks_per_s\nParsl HTEX,strong,2,0.1,6.5,\n",
        )
        .expect("csv");
        let reference = read_reference(&csv).expect("reference");
        let files = draw_dir(dir.path(), &reference, dir.path()).expect("draw");
        assert_eq!(files.len(), 4, "time and throughput, SVG and PNG: {files:?}");
        let svg = std::fs::read_to_string(dir.path().join("strong-time.svg")).expect("svg");
        assert!(svg.contains("Parsl HTEX (100ms)") && svg.contains("100ms, ideal"), "legend");
        let png = std::fs::read(dir.path().join("strong-time.png")).expect("png");
        assert_eq!(&png[1..4], b"PNG");
        let back: Vec<Chart> =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join(PLOTS_JSON)).expect("json")).expect("charts");
        assert_eq!(back[0].series.iter().filter(|s| s.reference).count(), 1);
        std::fs::write(&csv, "workers,time\n1,2\n").expect("csv");
        let e = read_reference(&csv).expect_err("bad header");
        assert!(e.to_string().contains("parsl.csv:1: header \"workers,time\""), "{e}");
    }
}
