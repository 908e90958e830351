//! Every `strand bench` kind end to end at a small size, with its defaults (its default run
//! directory included, under a fresh current directory), checking the JSON line's fields and
//! that the counts add up. A change that breaks a benchmark fails here. (`bench load` has
//! its own file, tests/it/bench_load.rs.)

use crate::common::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Run `strand bench ARGS...` in `cwd`, bounded; its JSON lines, after checking it exited 0.
fn bench(cwd: &Path, args: &[&str], limit: Duration) -> Vec<Value> {
    let text = run_ok(cwd, "strand bench", Command::new(bin("strand")).arg("bench").args(args), limit);
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect()
}

/// The one run directory a benchmark made under `cwd/runs/`.
fn default_run_dir(cwd: &Path) -> std::path::PathBuf {
    let runs: Vec<_> = std::fs::read_dir(cwd.join("runs")).expect("runs/ made under the current directory").collect();
    assert_eq!(runs.len(), 1, "one fresh run directory");
    runs.into_iter().next().expect("one").expect("entry").path()
}

/// Regression: simulated managers sent `Register` with sequence number 0, which replay
/// protection refuses, so none ever registered and the benchmark gave up after 300 s.
#[test]
fn bench_sim_registers_every_manager_and_answers_every_task_once() {
    let _file = crate::common::file_group(module_path!());
    let cwd = tempfile::tempdir().expect("cwd");
    let v = bench(cwd.path(), &["sim", "--managers", "64", "--tasks", "20000"], Duration::from_secs(120));
    assert_eq!(v.len(), 1);
    let r = &v[0];
    assert_eq!(r["bench"], "sim");
    assert_eq!((r["managers"].as_u64(), r["workers_per_manager"].as_u64()), (Some(64), Some(128)));
    assert_eq!(r["workers"], 64 * 128);
    assert_eq!((r["tasks"].as_u64(), r["done"].as_u64()), (Some(20_000), Some(20_000)));
    assert_eq!(r["not_finished"], 0);
    assert_eq!(r["answered_by_managers"], 20_000, "every task answered exactly once");
    assert!(r["registration_s"].as_f64().expect("registration_s") < 60.0, "{r}");
    assert!(r["tasks_per_s"].as_f64().expect("rate") > 0.0);
    assert!(default_run_dir(cwd.path()).join("connection.json").is_file());
}

/// Regression: with its default (relative) run directory every block failed at once, since
/// the local provider ran `bash runs/<id>/static/static-1.sh` from inside the run directory.
#[test]
fn bench_elasticity_runs_with_its_default_run_directory() {
    let _file = crate::common::file_group(module_path!());
    let cwd = tempfile::tempdir().expect("cwd");
    let v = bench(cwd.path(), &["elasticity", "--time-scale", "0.05"], Duration::from_secs(300));
    let modes: Vec<&str> = v.iter().map(|r| r["mode"].as_str().expect("mode")).collect();
    assert_eq!(modes, ["static", "elastic"]);
    for r in &v {
        assert_eq!(r["bench"], "elasticity");
        assert_eq!(r["failed"], 0, "{r}");
        // 20 + 1 + 20 + 1 tasks of 10, 10, 5, 5 s, scaled.
        assert!((r["task_s"].as_f64().expect("task_s") - 0.05 * 315.0).abs() < 1e-6, "{r}");
        assert!(r["blocks_submitted"].as_u64().expect("blocks") >= 20, "{r}");
        let u = r["utilization"].as_f64().expect("utilization");
        assert!(u > 0.0 && u <= 1.0, "{r}");
        // Scale-in after the last result: measured only where the strategy scales; the
        // strategy promises max_idletime + period (0.3 s), the slack is for a loaded machine.
        let bound = r["scale_in_bound_s"].as_f64().expect("scale_in_bound_s");
        assert!((bound - 0.3).abs() < 1e-9, "{r}");
        match r["mode"].as_str() {
            Some("elastic") => {
                let s = r["scale_in_s"].as_f64().expect("scale_in_s");
                assert!(s > 0.0 && s < bound + 10.0, "{r}");
            }
            _ => assert!(r["scale_in_s"].is_null(), "{r}"),
        }
    }
    let run_dir = default_run_dir(cwd.path());
    let script = run_dir.join("static").join("static-1.sh");
    assert!(script.is_file(), "{} (the first static block's script)", script.display());
    // docs/benchmarks.md measures the scale-in latency with the elastic run alone.
    let elastic =
        bench(cwd.path(), &["elasticity", "--elastic-only", "--time-scale", "0.05"], Duration::from_secs(300));
    assert_eq!(elastic.len(), 1, "{elastic:?}");
    assert_eq!((elastic[0]["mode"].as_str(), elastic[0]["failed"].as_u64()), (Some("elastic"), Some(0)));
    assert!(elastic[0]["scale_in_s"].as_f64().is_some_and(|s| s > 0.0), "{}", elastic[0]);
}

#[test]
fn bench_throughput_latency_and_chain_on_the_local_default() {
    let _file = crate::common::file_group(module_path!());
    let cwd = tempfile::tempdir().expect("cwd");
    let t = &bench(cwd.path(), &["throughput", "--tasks", "2000", "--workers", "2"], Duration::from_secs(120))[0];
    assert_eq!(
        (t["bench"].as_str(), t["tasks"].as_u64(), t["workers"].as_u64()),
        (Some("throughput"), Some(2000), Some(2))
    );
    assert_eq!(t["failed"], 0);
    assert!(t["tasks_per_s"].as_f64().expect("rate") > 0.0);
    let l = &bench(cwd.path(), &["latency", "--tasks", "200", "--workers", "1"], Duration::from_secs(120))[0];
    assert_eq!((l["bench"].as_str(), l["tasks"].as_u64(), l["failed"].as_u64()), (Some("latency"), Some(200), Some(0)));
    let (p50, p99) = (l["p50_us"].as_f64().expect("p50"), l["p99_us"].as_f64().expect("p99"));
    assert!(0.0 < p50 && p50 <= p99, "{l}");
    let c = &bench(cwd.path(), &["chain", "--depth", "100", "--workers", "1"], Duration::from_secs(120))[0];
    assert_eq!((c["bench"].as_str(), c["depth"].as_u64(), c["ok"].as_bool()), (Some("chain"), Some(100), Some(true)));
    assert!(c["per_link_us"].as_f64().expect("per link") > 0.0);
    let runs = std::fs::read_dir(cwd.path().join("runs")).expect("runs").count();
    assert_eq!(runs, 3, "one default run directory each");
}

#[test]
fn bench_memory_holds_the_rest_when_the_interchange_is_full() {
    let _file = crate::common::file_group(module_path!());
    let cwd = tempfile::tempdir().expect("cwd");
    let args = ["memory", "--tasks", "20000", "--max-queue", "5000"];
    let r = &bench(cwd.path(), &args, Duration::from_secs(120))[0];
    assert_eq!((r["bench"].as_str(), r["tasks"].as_u64()), (Some("memory"), Some(20_000)));
    assert_eq!(r["interchange_max_queue"], 5000);
    assert_eq!(r["interchange_queued"], 5000, "the interchange takes exactly its queue limit: {r}");
    assert!(r["dfk_bytes_per_pending_task"].as_f64().expect("bytes per task") > 0.0, "{r}");
}

/// Run a benchmark that measures against a baseline in the same run (`--tasks N --workers 2`):
/// checks its name and sizes, that no task failed, that both rates are positive and that
/// `ratio` is the measured rate over the baseline's.
fn side_by_side(cwd: &Path, kind: &str, tasks: u64, (baseline, measured): (&str, &str)) -> Value {
    let n = tasks.to_string();
    let r = bench(cwd, &[kind, "--tasks", &n, "--workers", "2"], Duration::from_secs(120)).remove(0);
    assert_eq!((r["bench"].as_str(), r["tasks"].as_u64(), r["workers"].as_u64()), (Some(kind), Some(tasks), Some(2)));
    assert_eq!(r["failed"], 0, "every task answered: {r}");
    let (b, m) = (r[baseline].as_f64().expect("baseline rate"), r[measured].as_f64().expect("measured rate"));
    assert!(b > 0.0 && m > 0.0, "{r}");
    assert!((r["ratio"].as_f64().expect("ratio") - m / b).abs() < 1e-9, "{r}");
    r
}

#[test]
fn bench_json_lines_answers_every_task_both_ways() {
    let _file = crate::common::file_group(module_path!());
    let cwd = tempfile::tempdir().expect("cwd");
    let r = side_by_side(cwd.path(), "json-lines", 2000, ("rust_tasks_per_s", "json_tasks_per_s"));
    assert!(r["json_no_monitoring_tasks_per_s"].as_f64().is_some_and(|v| v > 0.0), "{r}");
    // The benchmark's run directory, and the two `strand map --connection` made for their
    // checkpoints: one with the run database, one without.
    let runs: Vec<_> =
        std::fs::read_dir(cwd.path().join("runs")).expect("runs").map(|e| e.expect("entry").path()).collect();
    assert_eq!(runs.len(), 3, "{runs:?}");
    let records: Vec<String> =
        runs.iter().filter_map(|r| std::fs::read_to_string(r.join("checkpoint.jsonl")).ok()).collect();
    assert_eq!(records.len(), 2, "two checkpoints, strand map's: {runs:?}");
    for r in &records {
        assert_eq!(r.lines().count(), 2000, "one checkpoint record per JSON task, written at task exit");
    }
    let monitored = runs.iter().filter(|r| r.join(strand::run_dir::MONITORING_DB).is_file()).count();
    assert_eq!(monitored, 1, "only the first strand map wrote a run database: {runs:?}");
}

#[test]
fn bench_monitoring_measures_the_run_database_beside_none() {
    let _file = crate::common::file_group(module_path!());
    let cwd = tempfile::tempdir().expect("cwd");
    let r = side_by_side(cwd.path(), "monitoring", 2000, ("off_tasks_per_s", "on_tasks_per_s"));
    let rate = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k}: {r}"));
    assert!((rate("results_ratio") - rate("on_results_per_s") / rate("off_results_per_s")).abs() < 1e-9, "{r}");
    for (results, end) in [("off_results_per_s", "off_tasks_per_s"), ("on_results_per_s", "on_tasks_per_s")] {
        // Medians of the same runs, each run's last result before its shutdown ends.
        assert!(rate(results) >= rate(end) * 0.999, "{results} below {end}: {r}");
    }
    assert_eq!(
        (r["reps"].as_u64(), r["db_tasks"].as_u64(), r["db_tries"].as_u64()),
        (Some(3), Some(2100), Some(2100)),
        "{r}"
    );
    assert!(
        r["db_bytes_per_task"].as_f64().expect("bytes") > 0.0 && r["report_s"].as_f64().expect("report") > 0.0,
        "{r}"
    );
    let db = std::path::PathBuf::from(r["db"].as_str().expect("db"));
    assert!(db.is_file() && db.starts_with(default_run_dir(cwd.path())), "{r}");
}

#[test]
fn bench_commands_measures_the_spawn_floor_beside_the_tasks() {
    let _file = crate::common::file_group(module_path!());
    let cwd = tempfile::tempdir().expect("cwd");
    side_by_side(cwd.path(), "commands", 300, ("floor_per_s", "tasks_per_s"));
}

#[test]
fn bench_gnu_parallel_times_both_and_streams_through_strand_map() {
    let _file = crate::common::file_group(module_path!());
    let cwd = tempfile::tempdir().expect("cwd");
    let args = ["gnu-parallel", "--tasks", "300", "--stream", "20000"];
    let r = bench(cwd.path(), &args, Duration::from_secs(300)).remove(0);
    assert_eq!(
        (r["bench"].as_str(), r["tasks"].as_u64(), r["workers"].as_u64()),
        (Some("gnu-parallel"), Some(300), Some(2))
    );
    assert_eq!(r["failed"], 0, "both ran every job: {r}");
    let (g, s) = (r["parallel_s"].as_f64().expect("parallel_s"), r["strand_s"].as_f64().expect("strand_s"));
    assert!(g > 0.0 && s > 0.0 && (r["speedup"].as_f64().expect("speedup") - g / s).abs() < 1e-9, "{r}");
    assert_eq!(r["stream_tasks"], 20_000);
    for mode in ["stream", "stream_no_monitoring"] {
        let tenths: Vec<f64> = r[&format!("{mode}_rss_mib")]
            .as_array()
            .unwrap_or_else(|| panic!("{mode}_rss_mib: {r}"))
            .iter()
            .map(|v| v.as_f64().unwrap_or(0.0))
            .collect();
        let peak = r[&format!("{mode}_peak_rss_mib")].as_f64().expect("peak");
        assert_eq!(tenths.len(), 10, "{mode}: {r}");
        assert!(tenths.iter().all(|&m| m > 1.0 && m <= peak), "{mode}: RSS read while it ran, under its peak: {r}");
        assert!(r[&format!("{mode}_bytes_per_task")].as_f64().is_some_and(|b| b >= 0.0), "{mode}: {r}");
    }
    let run_dir = default_run_dir(cwd.path());
    let streamed =
        std::fs::read_to_string(run_dir.join("map-stream-20000").join("checkpoint.jsonl")).expect("checkpoint");
    assert_eq!(streamed.lines().count(), 20_000, "every streamed argument answered once");
    assert!(run_dir.join("map-stream-20000").join(strand::run_dir::MONITORING_DB).is_file(), "monitored");
    let quiet = run_dir.join("map-stream-20000-no-monitoring");
    let streamed = std::fs::read_to_string(quiet.join("checkpoint.jsonl")).expect("checkpoint, no monitoring");
    assert_eq!(streamed.lines().count(), 20_000, "every streamed argument answered once, without monitoring too");
    assert!(!quiet.join(strand::run_dir::MONITORING_DB).exists(), "not monitored");
}

#[test]
fn bench_mixed_packs_wide_and_plain_tries_into_one_pool() {
    let _file = crate::common::file_group(module_path!());
    let cwd = tempfile::tempdir().expect("cwd");
    // The default mix on its default 16 workers, its durations shortened.
    let r = &bench(cwd.path(), &["mixed", "--time-scale", "0.1"], Duration::from_secs(180))[0];
    assert_eq!((r["bench"].as_str(), r["workers"].as_u64(), r["tries"].as_u64()), (Some("mixed"), Some(16), Some(250)));
    assert_eq!(r["failed"], 0, "{r}");
    let classes = r["classes"].as_array().expect("classes");
    let ranks: Vec<u64> = classes.iter().filter_map(|c| c["ranks"].as_u64()).collect();
    assert_eq!(ranks, [1, 4, 8], "{r}");
    // 200 x 1 x 0.02 + 40 x 4 x 0.05 + 10 x 8 x 0.1 rank-seconds over 16 workers.
    let (work, bound) = (r["work_rank_s"].as_f64().expect("work"), r["lower_bound_s"].as_f64().expect("bound"));
    assert!((work - 20.0).abs() < 1e-6 && (bound - 1.25).abs() < 1e-6, "{r}");
    let makespan = r["makespan_s"].as_f64().expect("makespan");
    assert!(makespan >= bound, "no schedule beats the lower bound: {r}");
    assert!((r["utilization"].as_f64().expect("utilization") - work / (16.0 * makespan)).abs() < 1e-9, "{r}");
    // A class too wide for the pool is refused before anything runs, naming the fix.
    let out = Command::new(bin("strand"))
        .current_dir(cwd.path())
        .args(["bench", "mixed", "--mix", "2x4@0", "--workers", "2"])
        .output()
        .expect("strand bench mixed");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("a class of 4 ranks cannot run on 2 worker ranks; give --workers 4"), "{err}");
}
