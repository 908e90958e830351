//! Plots of sweep points (`plotters`), as SVG and PNG, and `plots.json`: the numbers each plot
//! drew, so a test (or a person) can check a picture against `results.jsonl`.
//!
//! Points of one configuration are grouped into a series (by run, experiment, duration and
//! task kind); each series draws the median over repetitions with a min-max bar. Log axes are
//! drawn as linear axes over log10 of the values, labelled with the values themselves.

use super::results::{self, Experiment, PointResult, ResultsError, TaskKind};
use super::show_duration;
use plotters::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// Where Debian, Fedora and Arch keep DejaVu Sans.
const FONTS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// Register a font for plotters' text (once per process).
fn font() -> Result<(), PlotError> {
    static FONT: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    FONT.get_or_init(|| {
        let bytes = FONTS.iter().find_map(|p| std::fs::read(p).ok()).ok_or_else(|| FONTS.join(", "))?;
        // plotters keeps fonts for the life of the process.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| "not a TrueType font".to_string())
    })
    .clone()
    .map_err(PlotError::NoFont)
}

/// Plot size in pixels.
const SIZE: (u32, u32) = (900, 600);

/// Draw `c` into `path` (SVG or PNG by its extension).
pub fn draw(c: &Chart, path: &Path) -> Result<(), PlotError> {
    font()?;
    let fail = |why: String| PlotError::Draw { path: path.to_path_buf(), why };
    if path.extension().is_some_and(|e| e == "png") {
        let root = BitMapBackend::new(path, SIZE).into_drawing_area();
        render(&root, c).map_err(fail)?;
        root.present().map_err(|e| fail(e.to_string()))
    } else {
        let root = SVGBackend::new(path, SIZE).into_drawing_area();
        render(&root, c).map_err(fail)?;
        root.present().map_err(|e| fail(e.to_string()))
    }
}

/// A value on an axis: its log10 on a log axis.
fn axis(v: f64, log: bool) -> f64 {
    if log {
        v.max(1e-12).log10()
    } else {
        v
    }
}

/// Tick positions (axis coordinates) for `lo..hi` (axis coordinates).
fn ticks(lo: f64, hi: f64, log: bool, xs: &[f64]) -> Vec<f64> {
    if log && !xs.is_empty() && xs.len() <= 12 {
        // Worker counts: a tick at each one measured.
        return xs.iter().map(|&x| axis(x, true)).collect();
    }
    if log {
        let mut t: Vec<f64> = (lo.floor() as i32..=hi.ceil() as i32).map(f64::from).collect();
        if t.len() <= 3 {
            t = t.iter().flat_map(|d| [*d, d + 2f64.log10(), d + 3f64.log10(), d + 5f64.log10()]).collect();
        }
        return t.into_iter().filter(|v| *v >= lo - 1e-9 && *v <= hi + 1e-9).collect();
    }
    let span = (hi - lo).max(1e-12);
    let raw = span / 6.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|s| span / s <= 7.0).unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

/// A tick label: the value (undoing log10 on a log axis), short.
fn tick_label(v: f64, log: bool) -> String {
    let x = if log { 10f64.powf(v) } else { v };
    let a = x.abs();
    if a >= 1e6 {
        let m = format!("{:.3}", x / 1e6);
        format!("{}M", m.trim_end_matches('0').trim_end_matches('.'))
    } else if a >= 1e4 {
        format!("{:.0}k", x / 1e3)
    } else if a >= 10.0 || x == x.round() {
        format!("{:.0}", x)
    } else {
        // Three significant digits, trailing zeros dropped: 0.25, 0.001, 1.5.
        let decimals = (2 - a.log10().floor() as i32).max(0) as usize;
        let s = format!("{x:.decimals$}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A linear axis over axis coordinates with ticks where we say (plotters' own key points
/// fall between worker counts); labels come from `tick_label`.
struct Axis {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
}

impl plotters::coord::ranged1d::Ranged for Axis {
    type FormatOption = plotters::coord::ranged1d::DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let f = (v - self.lo) / (self.hi - self.lo).max(1e-12);
        limit.0 + (f * (limit.1 - limit.0) as f64).round() as i32
    }

    fn key_points<H: plotters::coord::ranged1d::KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.max_num_points() == 0 {
            return vec![];
        }
        self.ticks.clone()
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
    RGBColor(140, 86, 75),
    RGBColor(127, 127, 127),
];

fn render<DB: DrawingBackend>(root: &DrawingArea<DB, plotters::coord::Shift>, c: &Chart) -> Result<(), String> {
    let e = |x: DrawingAreaErrorKind<DB::ErrorType>| x.to_string();
    root.fill(&WHITE).map_err(e)?;
    let pts = || c.series.iter().flat_map(|s| s.points.iter());
    let xs: Vec<f64> = {
        let mut v: Vec<f64> = pts().map(|p| p.x).collect();
        v.sort_by(f64::total_cmp);
        v.dedup();
        v
    };
    let ys = pts().flat_map(|p| [p.min, p.max, p.y]).filter(|v| v.is_finite() && (!c.log_y || *v > 0.0));
    let (mut ylo, mut yhi) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if !ylo.is_finite() {
        (ylo, yhi) = (0.0, 1.0);
    }
    let (mut y0, mut y1) = (axis(ylo, c.log_y), axis(yhi, c.log_y));
    if c.log_y {
        (y0, y1) = (y0 - 0.1, y1 + 0.1);
    } else {
        // Linear axes start at zero, so "flat" and "half" look like what they are.
        (y0, y1) = (y0.min(0.0), y1 * 1.1 + 1e-9);
    }
    let (mut x0, mut x1) =
        (axis(xs.first().copied().unwrap_or(1.0), c.log_x), axis(xs.last().copied().unwrap_or(10.0), c.log_x));
    let pad = ((x1 - x0) * 0.05).max(0.05);
    (x0, x1) = (x0 - pad, x1 + pad);
    let xt = ticks(x0, x1, c.log_x, if c.name.starts_with("latency") { &[] } else { &xs });
    let yt = ticks(y0, y1, c.log_y, &[]);
    let mut chart = ChartBuilder::on(root)
        .caption(&c.title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(Axis { lo: x0, hi: x1, ticks: xt }, Axis { lo: y0, hi: y1, ticks: yt })
        .map_err(e)?;
    let (log_x, log_y) = (c.log_x, c.log_y);
    chart
        .configure_mesh()
        .x_desc(&c.x_label)
        .y_desc(&c.y_label)
        .x_label_formatter(&|v| tick_label(*v, log_x))
        .y_label_formatter(&|v| tick_label(*v, log_y))
        .label_style(("sans-serif", 14))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(e)?;
    for s in &c.series {
        let (cx, cy) = (|p: &SeriesPoint| axis(p.x, log_x), |v: f64| axis(v, log_y));
        let line: Vec<(f64, f64)> = s.points.iter().filter(|p| !log_y || p.y > 0.0).map(|p| (cx(p), cy(p.y))).collect();
        let col = COLORS[s.color % COLORS.len()];
        if s.ideal {
            chart
                .draw_series(DashedLineSeries::new(line, 6, 4, col.stroke_width(1)))
                .map_err(e)?
                .label(&s.label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 10, y), (x + 14, y), (x + 20, y)], col.mix(0.6))
                });
            continue;
        }
        if s.reference {
            chart
                .draw_series(line.iter().map(|&(x, y)| TriangleMarker::new((x, y), 7, col.filled())))
                .map_err(e)?
                .label(&s.label)
                .legend(move |(x, y)| TriangleMarker::new((x + 10, y), 6, col.filled()));
            continue;
        }
        chart
            .draw_series(LineSeries::new(line.clone(), col.stroke_width(2)))
            .map_err(e)?
            .label(&s.label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], col.stroke_width(2)));
        chart.draw_series(line.iter().map(|&(x, y)| Circle::new((x, y), 3, col.filled()))).map_err(e)?;
        let bars = s.points.iter().filter(|p| p.n > 1 && p.max > p.min && (!log_y || p.min > 0.0));
        chart
            .draw_series(
                bars.map(|p| ErrorBar::new_vertical(cx(p), cy(p.min), cy(p.y), cy(p.max), col.stroke_width(1), 8)),
            )
            .map_err(e)?;
    }
    chart
        .configure_series_labels()
        .position(if c.log_y || c.name.ends_with("cdf") {
            SeriesLabelPosition::UpperRight
        } else {
            SeriesLabelPosition::LowerRight
        })
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(e)?;
    Ok(())
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

    #[test]
    fn ticks_and_labels() {
        assert_eq!(ticks(0.0, 10.0, false, &[]), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(ticks(-0.1, 0.7, true, &[1.0, 2.0, 4.0]).len(), 3);
        assert_eq!(tick_label(3.0, true), "1000");
        assert_eq!(tick_label(6.0, true), "1M");
        assert_eq!(tick_label(0.25, false), "0.25");
        assert_eq!(tick_label(2f64.log10() + 4.0, true), "20k");
        assert_eq!(tick_label(-4.0, true), "0.0001");
        assert_eq!(tick_label(1.5, false), "1.5");
        assert_eq!(tick_label(0.0, false), "0");
    }
}
