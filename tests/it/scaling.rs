//! Scaling runs end to end (`strand bench strong`, `weak`, `max-workers`, `latency --out`,
//! `plot`) at a small size on real local blocks and on simulated managers, each with its
//! default output directory under a fresh current directory: the expected points, the plots'
//! series equal to the medians of `results.jsonl`, files that decode, resuming, refusals.

use crate::common::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use strand::bench::scaling::max_workers::MaxWorkersReport;
use strand::bench::scaling::plot::{median, Chart, PlotReport, PLOTS_JSON};
use strand::bench::scaling::results::{self, Experiment, PointResult, TaskKind};
use strand::bench::scaling::SweepReport;

/// Run `strand bench ARGS...` in `cwd`, bounded; its one JSON line, after checking it exited 0.
fn bench<T: serde::de::DeserializeOwned>(cwd: &Path, args: &[&str], limit: Duration) -> T {
    let text = run_ok(cwd, "strand bench", Command::new(bin("strand")).arg("bench").args(args), limit);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON line: {text}");
    serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("not a report ({e}): {}", lines[0]))
}

/// `strand bench ARGS...` that must be refused: its stderr, after checking it exited 2.
fn refused(cwd: &Path, args: &[&str]) -> String {
    let out =
        Command::new(bin("strand")).arg("bench").args(args).current_dir(cwd).output_within(Duration::from_secs(60));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{args:?} must be refused: {err}");
    err
}

fn charts(dir: &Path) -> Vec<Chart> {
    let text = std::fs::read_to_string(dir.join(PLOTS_JSON)).expect("plots.json");
    serde_json::from_str(&text).expect("charts")
}

fn chart<'a>(charts: &'a [Chart], name: &str) -> &'a Chart {
    charts.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no {name} chart"))
}

/// Every plot of `dir` exists as SVG and PNG of the plot size, and each SVG names its series.
fn check_files(dir: &Path, charts: &[Chart]) {
    for c in charts {
        assert_eq!(decode_png(&dir.join(format!("{}.png", c.name))), (900, 600), "{}", c.name);
        let svg = std::fs::read_to_string(dir.join(format!("{}.svg", c.name))).expect("svg");
        assert!(svg.starts_with("<svg"), "{}", c.name);
        for s in &c.series {
            assert!(svg.contains(&s.label), "{}.svg names the series {:?}", c.name, s.label);
        }
    }
}

/// The medians over repetitions, by (duration µs, workers), of one field of the points.
fn medians(points: &[PointResult], f: impl Fn(&PointResult) -> f64) -> BTreeMap<(u64, u64), f64> {
    let mut by: BTreeMap<(u64, u64), Vec<f64>> = BTreeMap::new();
    for p in points {
        by.entry(((p.duration_s * 1e6).round() as u64, p.workers)).or_default().push(f(p));
    }
    by.into_iter()
        .map(|(k, mut v)| {
            v.sort_by(f64::total_cmp);
            (k, median(&v))
        })
        .collect()
}

/// Two maps of values equal to the last few bits (serde_json's float parsing is not exact).
fn assert_same(a: BTreeMap<(u64, u64), f64>, b: BTreeMap<(u64, u64), f64>) {
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (k, x) in &a {
        let y = b[k];
        assert!((x - y).abs() <= 1e-12 * x.abs().max(y.abs()), "{k:?}: {x} vs {y}");
    }
}

/// The measured series of a chart, by (duration µs, workers); `durations` in the series order.
fn series_values(c: &Chart, durations_us: &[u64]) -> BTreeMap<(u64, u64), f64> {
    let measured: Vec<_> = c.series.iter().filter(|s| !s.ideal && !s.reference).collect();
    assert_eq!(measured.len(), durations_us.len(), "{}: a series per duration", c.name);
    let mut m = BTreeMap::new();
    for (s, d) in measured.iter().zip(durations_us) {
        for p in &s.points {
            m.insert((*d, p.x as u64), p.y);
        }
    }
    m
}

#[test]
fn strong_sweep_on_local_blocks_plots_its_points_and_resumes() {
    let _file = crate::common::file_group(module_path!());
    let cwd = tempfile::tempdir().expect("cwd");
    let args = ["strong", "--tasks", "40", "--workers", "1,2", "--durations", "0,20ms", "--reps", "2"];
    let r: SweepReport = bench(cwd.path(), &args, Duration::from_secs(240));
    let out = cwd.path().join("scaling/strong");
    assert_eq!((r.bench.as_str(), r.measured, r.resumed, r.failed, r.simulated), ("strong", 8, 0, 0, false));
    assert_eq!(Path::new(&r.out), out.canonicalize().expect("out").as_path());
    let points = results::read(&out).expect("results.jsonl");
    let mut seen: Vec<(u64, u64, u32)> =
        points.iter().map(|p| (p.workers, (p.duration_s * 1e3).round() as u64, p.rep)).collect();
    seen.sort();
    assert_eq!(seen, vec![(1, 0, 0), (1, 0, 1), (1, 20, 0), (1, 20, 1), (2, 0, 0), (2, 0, 1), (2, 20, 0), (2, 20, 1)]);
    for p in &points {
        assert_eq!(
            (p.experiment, p.simulated, p.tasks, p.failed, p.kind),
            (Experiment::Strong, false, 40, 0, TaskKind::Function)
        );
        assert_eq!(p.provenance.executor, "local");
        assert!(!p.provenance.host.is_empty() && p.provenance.cores >= 1);
        if p.duration_s > 0.0 {
            // 40 tasks of 20 ms: 20 rounds on 2 workers, 40 on 1; nothing beats the ideal.
            assert!((p.ideal_s - 0.8 / p.workers as f64).abs() < 1e-9, "{p:?}");
            assert!(p.makespan_s >= p.ideal_s, "{p:?}");
            let e = p.efficiency.expect("efficiency");
            assert!(e > 0.3 && e <= 1.0, "{p:?}");
        } else {
            assert_eq!(p.efficiency, None);
        }
        assert!(p.result_p50_s <= p.result_p99_s && p.result_p99_s <= p.makespan_s + 1e-3, "{p:?}");
    }
    // The plots drew the medians of results.jsonl.
    let cs = charts(&out);
    let names: Vec<&str> = cs.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["strong-time", "strong-efficiency", "strong-throughput"]);
    assert_same(series_values(chart(&cs, "strong-time"), &[0, 20_000]), medians(&points, |p| p.makespan_s));
    assert_same(series_values(chart(&cs, "strong-throughput"), &[0, 20_000]), medians(&points, |p| p.tasks_per_s));
    let timed: Vec<PointResult> = points.iter().filter(|p| p.duration_s > 0.0).cloned().collect();
    assert_same(
        series_values(chart(&cs, "strong-efficiency"), &[20_000]),
        medians(&timed, |p| p.efficiency.expect("efficiency")),
    );
    let ideal = chart(&cs, "strong-time").series.iter().find(|s| s.label == "20ms, ideal").expect("ideal series");
    assert_eq!(ideal.points.iter().map(|p| p.y).collect::<Vec<_>>(), vec![0.8, 0.4]);
    check_files(&out, &cs);
    let csv = std::fs::read_to_string(out.join("results.csv")).expect("csv");
    assert_eq!(csv.lines().count(), 9, "a header and a row per point");

    // Run again: nothing left to measure.
    let again: SweepReport = bench(cwd.path(), &args, Duration::from_secs(60));
    assert_eq!((again.measured, again.resumed), (0, 8));
    // A sweep interrupted after five points measures the three it lacks.
    let text = std::fs::read_to_string(out.join("results.jsonl")).expect("read");
    let kept: Vec<&str> = text.lines().take(5).collect();
    std::fs::write(out.join("results.jsonl"), format!("{}\n", kept.join("\n"))).expect("truncate");
    let resumed: SweepReport = bench(cwd.path(), &args, Duration::from_secs(240));
    assert_eq!((resumed.measured, resumed.resumed), (3, 5));
    assert_eq!(results::read(&out).expect("read").len(), 8);
}

#[test]
fn weak_sweep_of_real_processes_keeps_tasks_per_worker() {
    let _file = crate::common::file_group(module_path!());
    let cwd = tempfile::tempdir().expect("cwd");
    let args = ["weak", "--tasks-per-worker", "4", "--workers", "1,2", "--durations", "50ms", "--kind", "command"];
    let r: SweepReport = bench(cwd.path(), &args, Duration::from_secs(240));
    assert_eq!((r.bench.as_str(), r.measured, r.failed), ("weak", 2, 0));
    let out = cwd.path().join("scaling/weak");
    let points = results::read(&out).expect("results");
    for p in &points {
        assert_eq!((p.experiment, p.kind, p.tasks), (Experiment::Weak, TaskKind::Command, 4 * p.workers));
        assert!((p.ideal_s - 0.2).abs() < 1e-9 && p.makespan_s >= 0.2, "{p:?}");
    }
    let cs = charts(&out);
    let time = chart(&cs, "weak-time");
    assert!(!time.log_y, "weak scaling's time axis is linear from zero, so flat looks flat");
    assert_same(series_values(time, &[50_000]), medians(&points, |p| p.makespan_s));
    assert_eq!(time.series[0].label, "sleep 50ms (process)");
    check_files(&out, &cs);
}

#[test]
fn simulated_sweep_says_so_everywhere() {
    let _file = crate::common::file_group(module_path!());
    let cwd = tempfile::tempdir().expect("cwd");
    let args = ["strong", "--simulate", "--tasks", "3000", "--workers", "128,1024", "--durations", "0,100ms"];
    let r: SweepReport = bench(cwd.path(), &args, Duration::from_secs(120));
    assert!(r.simulated && r.failed == 0 && r.measured == 4, "{r:?}");
    let out = cwd.path().join("scaling/strong");
    let points = results::read(&out).expect("results");
    for p in &points {
        assert!(p.simulated && p.provenance.executor == "simulated", "{p:?}");
        assert_eq!(p.managers, p.workers / 128);
        if p.duration_s > 0.0 {
            // Simulated slots hold each try for its duration: 3000 tasks of 100 ms on 128
            // slots take at least 24 rounds (2.4 s), on 1024 at least 3 (0.3 s).
            assert!(p.makespan_s >= p.ideal_s && p.ideal_s == (3000f64 / p.workers as f64).ceil() * 0.1, "{p:?}");
        }
    }
    for c in charts(&out) {
        assert!(c.title.contains("(simulated workers)"), "{}", c.title);
        assert!(c.series.iter().all(|s| s.simulated && s.label.contains("(simulated)")), "{}", c.name);
    }
    let e = refused(cwd.path(), &["strong", "--simulate", "--workers", "200"]);
    assert!(e.contains("--workers 200 is not a multiple of --workers-per-manager 128"), "{e}");
}

#[test]
fn max_workers_steps_from_real_launchers_to_simulated_managers() {
    let _file = crate::common::file_group(module_path!());
    let cwd = tempfile::tempdir().expect("cwd");
    let args = [
        "max-workers",
        "--real",
        "1,2",
        "--managers",
        "2,8",
        "--workers-per-manager",
        "16",
        "--tasks",
        "5000",
        "--real-tasks",
        "500",
    ];
    let r: MaxWorkersReport = bench(cwd.path(), &args, Duration::from_secs(240));
    assert_eq!((r.max_real_workers, r.max_simulated_workers, r.measured), (2, 128, 4), "{r:?}");
    assert_eq!(r.stopped_by, None);
    let out = cwd.path().join("scaling/max-workers");
    let points = results::read(&out).expect("results");
    let steps: Vec<(bool, u64, u64)> = points.iter().map(|p| (p.simulated, p.workers, p.managers)).collect();
    assert_eq!(steps, [(false, 1, 1), (false, 2, 1), (true, 32, 2), (true, 128, 8)]);
    for p in &points {
        assert_eq!((p.failed, p.tasks), (0, if p.simulated { 5000 } else { 500 }), "{p:?}");
        assert!(p.registration_s > 0.0 && p.interchange_rss_mib > 1.0 && p.tasks_per_s > 0.0, "{p:?}");
    }
    assert!((r.registration_s_at_max - points[3].registration_s).abs() < 1e-12);
    let cs = charts(&out);
    let names: Vec<&str> = cs.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["max-workers-registration", "max-workers-memory", "max-workers-throughput"]);
    assert_eq!(
        cs[0].series.iter().map(|s| s.label.as_str()).collect::<Vec<_>>(),
        ["real launchers", "simulated managers"]
    );
    check_files(&out, &cs);
}

#[test]
fn latency_distribution_and_overlaid_plots_with_reference_points() {
    let _file = crate::common::file_group(module_path!());
    let cwd = tempfile::tempdir().expect("cwd");
    let run = |dir: &str| {
        let text = run_ok(
            cwd.path(),
            "strand bench latency",
            Command::new(bin("strand")).args(["bench", "latency", "--tasks", "200", "--workers", "1", "--out", dir]),
            Duration::from_secs(120),
        );
        let r: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text.trim()).expect("json line");
        assert_eq!(r["failed"], 0);
    };
    run("lat-a");
    run("lat-b");
    let a = cwd.path().join("lat-a");
    let points = results::read(&a).expect("results");
    assert_eq!(points.len(), 1);
    let p = &points[0];
    assert_eq!((p.experiment, p.tasks, p.latencies_us.len()), (Experiment::Latency, 200, 200));
    assert!(p.result_p50_s > 0.0 && p.result_p50_s <= p.result_p99_s, "{p:?}");
    let cs = charts(&a);
    let hist = chart(&cs, "latency-histogram");
    assert_eq!(hist.series[0].points.iter().map(|p| p.y).sum::<f64>(), 200.0, "every round trip in a bin");
    let cdf = chart(&cs, "latency-cdf");
    let last = cdf.series[0].points.last().expect("cdf");
    assert_eq!(last.y, 1.0);
    assert_eq!(last.x, p.latencies_us.iter().copied().fold(0.0, f64::max));
    check_files(&a, &cs);

    // Two runs overlaid, named by their directories, with a strong sweep's reference points.
    let strong: SweepReport = bench(
        cwd.path(),
        &["strong", "--tasks", "20", "--workers", "1", "--durations", "10ms", "--out", "s"],
        Duration::from_secs(120),
    );
    assert_eq!(strong.failed, 0);
    std::fs::write(
        cwd.path().join("parsl.csv"),
        "label,experiment,workers,duration_s,makespan_s,tasks_per_s\nParsl HTEX,strong,1,0.01,0.5,40\n",
    )
    .expect("csv");
    let r: PlotReport = bench(
        cwd.path(),
        &["plot", "lat-a", "lat-b", "s", "--out", "compare", "--reference", "parsl.csv"],
        Duration::from_secs(60),
    );
    assert_eq!(Path::new(&r.out), cwd.path().join("compare").canonicalize().expect("compare").as_path());
    let cs = charts(&cwd.path().join("compare"));
    let labels: Vec<&str> = chart(&cs, "latency-cdf").series.iter().map(|s| s.label.as_str()).collect();
    assert_eq!(labels, ["lat-a", "lat-b"]);
    let time = chart(&cs, "strong-time");
    assert!(time.series.iter().any(|s| s.reference && s.label == "Parsl HTEX (10ms)" && s.points[0].y == 0.5));
    assert!(time.series.iter().any(|s| s.label == "s: 10ms"));
    check_files(&cwd.path().join("compare"), &cs);
    let e = refused(cwd.path(), &["plot", "lat-a", "lat-b"]);
    assert!(e.contains("say where with --out DIR"), "{e}");
    let e = refused(cwd.path(), &["plot", "nowhere"]);
    assert!(e.contains("no points in") && e.contains("nowhere/results.jsonl"), "{e}");
    let e = refused(cwd.path(), &["strong", "--durations", "fast"]);
    assert!(e.contains("\"fast\" is not a duration"), "{e}");
}

/// Each `strand bench` line of docs/scaling.md and the README's scaling block, run as written
/// but shrunk (fewer tasks, workers and repetitions; the flags and their order unchanged), so a
/// renamed or refused option in the docs fails here.
#[test]
fn the_docs_scaling_commands_run_at_a_small_size() {
    let _file = crate::common::file_group(module_path!());
    let cwd = tempfile::tempdir().expect("cwd");
    let mut lines = vec![];
    for doc in ["docs/scaling.md", "README.md"] {
        let text = std::fs::read_to_string(repo().join(doc)).expect(doc);
        lines.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| l.starts_with("strand bench ") || l.starts_with("target/release/strand bench "))
                .filter(|l| {
                    ["strong", "weak", "max-workers", "latency", "plot"]
                        .iter()
                        .any(|k| l.contains(&format!("bench {k} ")))
                })
                .map(str::to_string),
        );
    }
    assert!(lines.len() >= 12, "the scaling commands of docs/scaling.md and README.md: {lines:?}");
    let shrink = |flag: &str, simulated: bool, sweep: bool| -> Option<&'static str> {
        Some(match flag {
            "--tasks" => "300",
            "--tasks-per-worker" | "--reps" => "2",
            "--durations" => "0,10ms",
            "--workers" if simulated => "256,512",
            "--workers" if sweep => "1,2",
            "--real" => "1",
            "--managers" => "2",
            "--real-tasks" => "100",
            _ => return None,
        })
    };
    // Plots are drawn last, from the sweeps above, with another machine's copy and a CSV.
    lines.sort_by_key(|l| l.contains("bench plot"));
    for line in lines {
        let words: Vec<&str> = line.split_whitespace().collect();
        let simulated = words.contains(&"--simulate");
        let sweep = words[2] == "strong" || words[2] == "weak";
        let mut args: Vec<String> = vec![];
        let mut i = 2; // after "strand bench"
        while i < words.len() {
            args.push(words[i].to_string());
            if let (Some(small), Some(_)) = (shrink(words[i], simulated, sweep), words.get(i + 1)) {
                args.push(small.to_string());
                i += 1;
            }
            i += 1;
        }
        if args[0] == "plot" {
            for other in ["other-machine/strong", "other/strong"] {
                std::fs::create_dir_all(cwd.path().join(other)).expect("dir");
                std::fs::copy(
                    cwd.path().join("scaling/strong/results.jsonl"),
                    cwd.path().join(other).join("results.jsonl"),
                )
                .expect("copy a sweep");
            }
            std::fs::write(
                cwd.path().join("published.csv"),
                "label,experiment,workers,duration_s,makespan_s,tasks_per_s\nParsl HTEX,strong,2,0.01,0.5,\n",
            )
            .expect("csv");
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = Command::new(bin("strand"))
            .arg("bench")
            .args(&args)
            .current_dir(cwd.path())
            .output_within(Duration::from_secs(240));
        assert!(out.status.success(), "{line}\n  ran as {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    assert!(cwd.path().join("compare/strong-time.png").is_file());
}

/// The tails of every block's `.out` in the run directories under `runs`, for failure messages.
fn block_outputs(runs: &Path) -> String {
    std::fs::read_dir(runs)
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".out"))
        .map(|e| format!("{}:\n{}", e.path().display(), tail(&e.path())))
        .collect()
}

/// The one run directory under `runs` (a `--config` sweep has one executor for all its points)
/// and the names of the block scripts in it that end in `ext`, sorted.
fn block_scripts(runs: &Path, ext: &str) -> (std::path::PathBuf, Vec<String>) {
    let dirs: Vec<_> = std::fs::read_dir(runs).expect("runs").flatten().collect();
    assert_eq!(dirs.len(), 1, "one executor for the whole sweep");
    let mut scripts: Vec<String> = std::fs::read_dir(dirs[0].path())
        .expect("run dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(ext))
        .collect();
    scripts.sort();
    (dirs[0].path(), scripts)
}

/// A sweep over 1 and 2 nodes of a real Slurm on loopback (tests/it/common/slurm.rs): the two
/// one-node blocks of the largest point are submitted once, with sbatch, and reused (the
/// 1-node point feeds one and holds the other); the points name their nodes and the executor.
#[test]
fn strong_sweep_over_nodes_of_a_slurm_allocation() {
    let _file = crate::common::file_group(module_path!());
    use crate::common::slurm::{LocalSlurm, SlurmOptions};
    let slurm = LocalSlurm::start_with(SlurmOptions { nodes: 2, cpus_per_node: 4 });
    let cwd = tempfile::tempdir().expect("cwd");
    let config = cwd.path().join("slurm.toml");
    std::fs::write(
        &config,
        format!(
            "[[executor]]\nlabel = \"cluster\"\nprovider = \"slurm\"\nlauncher_path = {:?}\naddress = \"127.0.0.1\"\n\
             ranks_per_node = 2\nsteps_per_block = 1\nwalltime = \"00:05:00\"\ndrain_margin = 30\nstrategy_period = 0.5\n\
             block_connect_timeout = 120\n",
            bin("strand-launcher").display().to_string()
        ),
    )
    .expect("config");
    let args =
        ["bench", "strong", "--config", "slurm.toml", "--nodes", "1,2", "--tasks", "20", "--durations", "0,50ms"];
    let out = Command::new(bin("strand"))
        .args(args)
        .envs(slurm.env())
        .current_dir(cwd.path())
        .output_within(Duration::from_secs(300));
    if !out.status.success() {
        let blocks = block_outputs(&cwd.path().join("scaling/strong/runs"));
        panic!("{}\nblocks:\n{blocks}\nslurm:\n{}", String::from_utf8_lossy(&out.stderr), slurm.logs());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let r: SweepReport = serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!((r.measured, r.failed, r.simulated), (4, 0, false), "{r:?}");
    let points = results::read(&cwd.path().join("scaling/strong")).expect("results");
    let mut shape: Vec<(u64, u64, u64)> =
        points.iter().map(|p| (p.nodes, p.workers, (p.duration_s * 1e3) as u64)).collect();
    shape.sort();
    // A node is one pool of 2 ranks: a manager and one worker.
    assert_eq!(shape, [(1, 1, 0), (1, 1, 50), (2, 2, 0), (2, 2, 50)]);
    for p in &points {
        assert_eq!((p.provenance.executor.as_str(), p.failed), ("cluster (slurm)", 0), "{p:?}");
        if p.duration_s > 0.0 {
            assert!(p.makespan_s >= p.ideal_s && (p.ideal_s - 20.0 * 0.05 / p.workers as f64).abs() < 1e-9, "{p:?}");
        }
    }
    // Two blocks in all, in the sweep's one run directory, each run as its own job.
    let (_, scripts) = block_scripts(&cwd.path().join("scaling/strong/runs"), ".sbatch");
    assert_eq!(scripts, ["cluster-1.sbatch", "cluster-2.sbatch"], "both blocks submitted once, neither again");
    // The 1-node point's tries all ran on one block: its managers were the only ones fed.
    let one = points.iter().filter(|p| p.nodes == 1).map(|p| p.managers).collect::<Vec<_>>();
    assert_eq!(one, [1, 1]);
}

/// The same sweep inside one allocation, as docs/scaling.md shows it: `sbatch` of
/// job-scripts/slurm-allocation.sbatch runs `strand bench strong` on the job's first node with
/// an executor of provider = "local", launch = "srun", whose two blocks are job steps of that
/// same job on its two nodes. Outside an allocation the same command is refused, naming why.
#[test]
fn strong_sweep_inside_one_slurm_allocation_runs_its_blocks_as_job_steps() {
    let _file = crate::common::file_group(module_path!());
    use crate::common::slurm::{wait_until, LocalSlurm, SlurmOptions};
    let cwd = tempfile::tempdir().expect("cwd");
    std::fs::write(
        cwd.path().join("steps.toml"),
        format!(
            "[[executor]]\nlabel = \"steps\"\nprovider = \"local\"\nlaunch = \"srun\"\nlauncher_path = {:?}\n\
             address = \"127.0.0.1\"\nranks_per_node = 2\nstrategy_period = 0.5\nblock_connect_timeout = 120\n",
            bin("strand-launcher").display().to_string()
        ),
    )
    .expect("config");
    let sweep =
        ["bench", "strong", "--config", "steps.toml", "--nodes", "1,2", "--tasks", "20", "--durations", "0,50ms"];

    // Here, in no allocation: refused before anything starts.
    let out = Command::new(bin("strand"))
        .args(sweep)
        .env_remove("SLURM_JOB_ID")
        .current_dir(cwd.path())
        .output_within(Duration::from_secs(60));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("steps.toml: executor \"steps\"") && err.contains("SLURM_JOB_ID is not set"), "{err}");
    assert!(!cwd.path().join("scaling").exists(), "nothing was started or created: {err}");

    let slurm = LocalSlurm::start_with(SlurmOptions { nodes: 2, cpus_per_node: 4 });
    let script = repo().join("job-scripts/slurm-allocation.sbatch");
    let dir = cwd.path().display().to_string();
    let (export, chdir, output) = (
        format!("--export=ALL,STRAND={}", bin("strand").display()),
        format!("--chdir={dir}"),
        format!("--output={dir}/job.out"),
    );
    let script = script.display().to_string();
    let job = slurm.sbatch(&[&[export.as_str(), "--nodes=2", &chdir, &output, &script], &sweep[..]].concat());
    // The job's steps, as squeue lists them while it runs (this Slurm keeps no accounting).
    let mut steps = std::collections::BTreeSet::new();
    wait_until(&format!("job {job} to end"), Duration::from_secs(300), || {
        steps.extend(slurm.steps(&job));
        slurm
            .job_state(&job)
            .is_some_and(|s| !matches!(s.as_str(), "PENDING" | "RUNNING" | "COMPLETING" | "CONFIGURING"))
    });
    let state = slurm.job_state(&job);
    let job_out = std::fs::read_to_string(cwd.path().join("job.out")).unwrap_or_default();
    assert_eq!(
        state.as_deref(),
        Some("COMPLETED"),
        "{job_out}\nblocks:\n{}\nslurm:\n{}",
        block_outputs(&cwd.path().join("scaling/strong/runs")),
        slurm.logs()
    );
    let report = job_out.lines().find(|l| l.starts_with('{')).unwrap_or_else(|| panic!("no report: {job_out}"));
    let r: SweepReport = serde_json::from_str(report).unwrap_or_else(|e| panic!("{e}: {report}"));
    assert_eq!((r.measured, r.failed, r.simulated), (4, 0, false), "{r:?}");
    let points = results::read(&cwd.path().join("scaling/strong")).expect("results");
    let mut shape: Vec<(u64, u64, u64, u64)> =
        points.iter().map(|p| (p.nodes, p.workers, p.managers, (p.duration_s * 1e3) as u64)).collect();
    shape.sort();
    assert_eq!(shape, [(1, 1, 1, 0), (1, 1, 1, 50), (2, 2, 2, 0), (2, 2, 2, 50)]);
    assert!(points.iter().all(|p| p.provenance.executor == "steps (local)" && p.failed == 0), "{points:?}");
    // Two blocks, each a local script that ran `srun --exact` inside the job, neither resubmitted.
    let (run_dir, scripts) = block_scripts(&cwd.path().join("scaling/strong/runs"), ".sh");
    assert_eq!(scripts, ["steps-1.sh", "steps-2.sh"], "both blocks started once");
    let text = std::fs::read_to_string(run_dir.join("steps-1.sh")).expect("script");
    assert!(text.contains("exec srun --mpi=pmix --kill-on-bad-exit=0 --exact --mem=0 --nodes=1 --ntasks=2"), "{text}");
    // Slurm ran them as job steps 0 and 1 of this job.
    for step in ["0", "1"] {
        assert!(steps.contains(&format!("{job}.{step}")), "step {step} of {job}: {steps:?}");
    }
}
