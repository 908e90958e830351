//! The run database and `strand report`, compared with what happened: counts by outcome, tries
//! per task against a run log the tasks write, each try's worker and block, a killed block's
//! tries marked lost, and a driver killed mid-run.

use crate::common::*;
use rusqlite::Connection;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn db(dir: &Path) -> Connection {
    let c = Connection::open(dir.join(strand::run_dir::MONITORING_DB)).expect("open monitoring.db");
    c.busy_timeout(Duration::from_secs(10)).expect("busy timeout");
    c
}

fn count(c: &Connection, sql: &str) -> i64 {
    c.query_row(sql, [], |r| r.get(0)).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// `strand report DIR --json`: its numbers, and the page it wrote.
fn report(dir: &Path) -> (serde_json::Value, String) {
    let out = Command::new(bin("strand")).arg("report").arg(dir).arg("--json").output_within(Duration::from_secs(60));
    assert!(out.status.success(), "strand report: {}", String::from_utf8_lossy(&out.stderr));
    let json = serde_json::from_slice(&out.stdout).expect("report JSON");
    let html = std::fs::read_to_string(dir.join("report.html")).expect("report.html");
    (json, html)
}

/// Lines of the run log by job.
fn runs_by_job(log: &Path) -> BTreeMap<String, i64> {
    let mut m = BTreeMap::new();
    for l in std::fs::read_to_string(log).unwrap_or_default().lines() {
        *m.entry(l.to_string()).or_insert(0) += 1;
    }
    m
}

#[test]
fn database_and_report_match_what_happened() {
    let _file = crate::common::file_group(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, mark) = (dir.path().join("ran.log"), dir.path().join("mark"));
    let run = dir.path().join("run");
    // Job 7 fails its first try only, job 13 every try: 30 jobs, 32 tries, 3 failed tries.
    let template = format!(
        "echo {{}} >> {log}; if [ {{}} = 7 ] && [ ! -e {mark} ]; then touch {mark}; exit 3; fi; test {{}} -ne 13",
        log = log.display(),
        mark = mark.display()
    );
    let jobs: Vec<String> = (1..=30).map(|i| i.to_string()).collect();
    let out = Command::new(bin("strand"))
        .args(["map", "--workers", "2", "--retries", "2", "--run-dir"])
        .arg(&run)
        .arg(&template)
        .arg(":::")
        .args(&jobs)
        .output_within(Duration::from_secs(120));
    assert_eq!(out.status.code(), Some(1), "one job fails: {}", String::from_utf8_lossy(&out.stderr));

    let c = db(&run);
    assert_eq!(count(&c, "SELECT count(*) FROM runs WHERE ended_us IS NOT NULL"), 1);
    assert_eq!(count(&c, "SELECT count(*) FROM tasks"), 30);
    assert_eq!(count(&c, "SELECT count(*) FROM tasks WHERE state = 'done'"), 29);
    assert_eq!(count(&c, "SELECT count(*) FROM tasks WHERE state = 'failed' AND name = '13'"), 1);
    assert_eq!(count(&c, "SELECT count(*) FROM tries"), 32);
    assert_eq!(count(&c, "SELECT count(*) FROM tries WHERE outcome = 'ExitCode'"), 3);
    assert_eq!(count(&c, "SELECT count(*) FROM tries WHERE exit_code = 3"), 1);
    // Tries per task equal the runs the tasks logged themselves, and the tasks' own count.
    let ran = runs_by_job(&log);
    let mut st = c
        .prepare("SELECT t.name, t.tries, count(r.attempt) FROM tasks t JOIN tries r USING (run, task) GROUP BY t.task")
        .expect("query");
    let rows: Vec<(String, i64, i64)> =
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).expect("rows").map(|r| r.expect("row")).collect();
    assert_eq!(rows.len(), 30);
    for (name, tries, rows) in &rows {
        assert_eq!(ran.get(name), Some(rows), "job {name}: run log against the database");
        assert_eq!(tries, rows, "job {name}: the task's tries against its try rows");
    }
    // Every try ran on one of the block's two worker ranks, between its launch and its end.
    assert_eq!(count(&c, "SELECT count(*) FROM managers"), 1);
    assert_eq!(count(&c, "SELECT count(*) FROM managers WHERE block = 'local-0' AND lost_us IS NULL"), 1);
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM tries r JOIN managers m USING (run, manager) \
             WHERE r.rank BETWEEN 1 AND 2 AND r.slot >= 1 AND r.launched_us <= r.started_us \
             AND r.started_us + r.run_us <= r.ended_us"
        ),
        32
    );
    assert_eq!(count(&c, "SELECT count(DISTINCT rank) FROM tries"), 2, "both workers ran tries");
    assert_eq!(
        count(&c, "SELECT count(*) FROM tries WHERE max_rss_kib > 0 AND cpu_us >= 0"),
        32,
        "each command measured"
    );

    let (j, html) = report(&run);
    let s = &j["summary"];
    assert_eq!(s["tasks"], 30);
    assert_eq!(s["by_state"]["done"], 29);
    assert_eq!(s["by_state"]["failed"], 1);
    assert_eq!(s["tries"], 32);
    assert_eq!(s["retries"], 2);
    assert_eq!(s["tries_by_outcome"]["ExitCode"], 3);
    assert_eq!(s["managers"], 1);
    let busy_us = count(&c, "SELECT sum(run_us) FROM tries") as f64;
    assert!((s["busy_s"].as_f64().expect("busy_s") - busy_us / 1e6).abs() < 1e-6, "{s}");
    let util = s["utilization"].as_f64().expect("utilization");
    assert!(util > 0.0 && util <= 1.0, "{s}");
    assert_eq!(j["failures"][0]["kind"], "ExitCode");
    assert_eq!(j["failures"][0]["count"], 3);
    assert_eq!(j["lanes_total"], 2);
    assert!(j["notes"].as_array().expect("notes").is_empty(), "{}", j["notes"]);
    // The page shows the same numbers and reaches for nothing outside itself.
    for (id, v) in [("tasks", "30"), ("tasks-done", "29"), ("tries", "32"), ("retries", "2"), ("fail-ExitCode", "3")] {
        assert!(html.contains(&format!("id=\"{id}\">{v}<")), "{id} = {v} not in the page");
    }
    for external in ["http://", "https://", "<script", " src=", " href=", "url("] {
        assert!(!html.contains(external), "the page holds {external:?}");
    }
    for chart in ["Tries running, by app", "Worker utilization", "run-time histogram", "workers over time"] {
        assert!(html.contains(&format!("aria-label=\"{chart}\"")), "no {chart} chart");
    }
    // --png: the same charts as images, drawn from the page's own SVG at 2 pixels a unit.
    let pngs = dir.path().join("png");
    let out = Command::new(bin("strand"))
        .arg("report")
        .arg(&run)
        .arg("--png")
        .arg(&pngs)
        .output_within(Duration::from_secs(60));
    assert!(out.status.success(), "strand report --png: {}", String::from_utf8_lossy(&out.stderr));
    let mut names: Vec<String> =
        std::fs::read_dir(&pngs).expect("png dir").flatten().map(|e| e.file_name().to_string_lossy().into()).collect();
    names.sort();
    assert!(names.len() >= 4, "{names:?}");
    for name in ["running.png", "utilization.png", "durations.png", "workers.png"] {
        assert!(names.iter().any(|n| n == name), "no {name} in {names:?}");
    }
    for name in &names {
        let (width, _) = decode_png(&pngs.join(name));
        assert_eq!(width, 1800, "{name}: a 900-unit chart at 2 pixels a unit");
    }

    // Off with a flag.
    let quiet = dir.path().join("quiet");
    let out = Command::new(bin("strand"))
        .args(["map", "--workers", "1", "--no-monitoring", "--run-dir"])
        .arg(&quiet)
        .args(["true", ":::", "1"])
        .output_within(Duration::from_secs(120));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!quiet.join(strand::run_dir::MONITORING_DB).exists());
    let out = Command::new(bin("strand")).arg("report").arg(&quiet).output_within(Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("has no run database") && err.contains("--no-monitoring"), "{err}");
}

/// A command's CPU time and memory come from the kernel when its worker reaps it.
#[test]
fn command_resource_use_is_measured() {
    let _file = crate::common::file_group(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let run = dir.path().join("run");
    let (memory, cpu) = ("b = b'x' * (64 << 20)", "sum(range(5 * 10 ** 6))");
    let out = Command::new(bin("strand"))
        .args(["map", "--workers", "2", "--run-dir"])
        .arg(&run)
        .args(["python3 -c {}", ":::", memory, cpu])
        .output_within(Duration::from_secs(120));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let c = db(&run);
    let rss = |name: &str| -> (i64, i64) {
        c.query_row(
            "SELECT r.max_rss_kib, r.cpu_us FROM tries r JOIN tasks t USING (run, task) WHERE t.name = ?1",
            [name],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect(name)
    };
    let (big, _) = rss(memory);
    assert!(big >= 64 * 1024, "a 64 MiB string needs at least 64 MiB resident: {big} KiB");
    let (small, spent) = rss(cpu);
    assert!(small < big, "{small} KiB against {big} KiB");
    assert!(spent >= 20_000, "summing 5 million numbers in Python takes CPU time: {spent} µs");
    let (j, html) = report(&run);
    let r = &j["resources"][0];
    assert_eq!(
        (r["app"].as_str(), r["tries"].as_u64(), r["max_rss_kib"].as_i64()),
        (Some("python3"), Some(2), Some(big))
    );
    assert!(html.contains("id=\"rss-python3\">"), "the page has the resource table");
    // A run much shorter than the default 10 s sampling interval still has its node's sample:
    // the manager sends one right after registering, and the interchange keeps it for the
    // client, which connects after that.
    let host = strand::host::hostname();
    let nodes = c
        .query_row("SELECT count(*) FROM node_samples WHERE host = ?1", [&host], |r| r.get::<_, i64>(0))
        .expect("node samples");
    assert!(nodes >= 1, "no node sample of {host} in a short run");
}

/// The launchers sample running tries and their nodes: a try's memory and CPU time over its
/// run, the node's load and memory, and the report's charts of them.
#[test]
fn running_tries_and_nodes_are_sampled() {
    let _file = crate::common::file_group(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let (run, config) = (dir.path().join("run"), dir.path().join("sampled.toml"));
    std::fs::write(
        &config,
        "[[executor]]\nlabel = \"sampled\"\nprovider = \"local\"\nranks_per_node = 3\n\
         [executor.launcher]\nresource_interval = 0.1\n",
    )
    .expect("config");
    let memory = "import time; b = b'x' * (48 << 20); time.sleep(1.5)";
    let cpu = "import time; t = time.time(); exec('while time.time() - t < 1.5: pass')";
    let out = Command::new(bin("strand"))
        .args(["map", "--config"])
        .arg(&config)
        .arg("--run-dir")
        .arg(&run)
        .args(["python3 -c {}", ":::", memory, cpu])
        .output_within(Duration::from_secs(120));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let c = db(&run);
    let peak = |name: &str| -> (i64, i64, i64) {
        c.query_row(
            "SELECT count(*), max(s.rss_kib), max(s.cpu_us) FROM try_samples s JOIN tasks t USING (run, task) \
             WHERE t.name = ?1",
            [name],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect(name)
    };
    let (n, rss, _) = peak(memory);
    assert!(n >= 3, "a 1.5 s try sampled every 0.1 s: {n} samples");
    assert!(rss >= 48 * 1024, "48 MiB held: {rss} KiB at most");
    let (n, rss_cpu, spent) = peak(cpu);
    assert!(n >= 3 && rss_cpu < rss, "{n} samples, {rss_cpu} KiB");
    assert!(spent >= 500_000, "a 1.5 s busy loop: {spent} µs of CPU at its last sample");
    // CPU time never goes back between one try's samples.
    let went_back = count(
        &c,
        "SELECT count(*) FROM try_samples a JOIN try_samples b USING (run, task, attempt) \
         WHERE b.t_us > a.t_us AND b.cpu_us < a.cpu_us",
    );
    assert_eq!(went_back, 0);
    let host = strand::host::node_name();
    let (nodes, total): (i64, i64) = c
        .query_row("SELECT count(*), min(mem_total_kib) FROM node_samples WHERE host = ?1", [&host], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .expect("node samples");
    assert!(nodes >= 3 && total > 0, "{nodes} samples of {host}, {total} KiB");
    let (j, html) = report(&run);
    let s = &j["sampled"];
    assert_eq!((s["tries"].as_u64(), s["nodes"].as_u64()), (Some(2), Some(1)), "{s}");
    let most = |key: &str| s[key].as_array().expect(key).iter().filter_map(|v| v.as_f64()).fold(0.0, f64::max);
    assert!(most("try_rss_kib") >= 48.0 * 1024.0, "{}", s["try_rss_kib"]);
    assert!(most("try_cores") >= 0.5, "{}", s["try_cores"]);
    for chart in ["Resident memory of running tries", "Cores kept busy by running tries", "Node load"] {
        assert!(html.contains(chart), "{chart}");
    }
}

/// Wait (bounded) until `sql` counts at least `n` in the database of `dir`.
fn wait_count(dir: &Path, sql: &str, n: i64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let got = if dir.join(strand::run_dir::MONITORING_DB).exists() {
            db(dir).query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap_or(0)
        } else {
            0
        };
        if got >= n {
            return;
        }
        assert!(Instant::now() < deadline, "{sql}: {got} < {n} after {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Two blocks; one is killed while its tries run: they are marked lost against its manager,
/// the manager is marked lost, and the retries run on the other block. Then the driver is
/// killed mid-run: the report says the run has no end and shows what was written.
#[test]
fn killed_block_and_killed_driver() {
    let _file = crate::common::file_group(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (_ix, _) = interchange(d, &["--heartbeat-period", "0.5", "--heartbeat-threshold", "2"]);
    let conn = d.join(strand::run_dir::CONNECTION_FILE);
    let mut doomed = launcher(d, "doomed", 3, &conn, &["--block-id", "doomed", "--prefetch", "0"]);
    let _kept = launcher(d, "kept", 3, &conn, &["--block-id", "kept", "--prefetch", "0"]);
    let info = strand::connection::ConnectionInfo::load(&conn).expect("connection");
    wait_managers(&info, 2, Duration::from_secs(60));
    let started = d.join("started.log");
    // The driver's own run directory (the interchange's is `d`).
    let client = d.join("client");
    let template = format!("echo {{}} >> {}; sleep 4", started.display());
    let mut map = Guard::spawn(
        "strand map",
        Command::new(bin("strand"))
            .args(["map", "--retries", "2", "--connection"])
            .arg(&conn)
            .arg("--run-dir")
            .arg(&client)
            .arg(&template)
            .args([":::", "a", "b", "c", "d"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("map.err")).expect("stderr")),
    );
    // All four run at once (two workers per block); the database knows both managers.
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(&started).unwrap_or_default().lines().count() < 4 {
        assert!(Instant::now() < deadline, "four tries did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_count(&client, "SELECT count(*) FROM managers", 2, Duration::from_secs(30));
    kill_launcher(&mut doomed);
    let status = map.wait(Duration::from_secs(90));
    assert!(status.success(), "every task succeeds on the kept block: {}", tail(&d.join("map.err")));

    let c = db(&client);
    let lost = count(&c, "SELECT count(*) FROM tries WHERE outcome IN ('ManagerLost', 'WorkerLost')");
    assert_eq!(lost, 2, "the doomed block's two tries");
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM tries r JOIN managers m USING (run, manager) \
             WHERE r.outcome IN ('ManagerLost', 'WorkerLost') AND m.block = 'doomed'"
        ),
        2,
        "the lost tries are recorded against the manager that held them"
    );
    assert_eq!(
        count(&c, "SELECT count(*) FROM tries WHERE outcome IN ('ManagerLost', 'WorkerLost') AND started_us IS NULL"),
        2,
        "a lost try never reached a result on its worker, so it has no start time"
    );
    assert_eq!(count(&c, "SELECT count(*) FROM managers WHERE block = 'doomed' AND lost_us IS NOT NULL"), 1);
    assert_eq!(count(&c, "SELECT count(*) FROM managers WHERE block = 'kept' AND lost_us IS NULL"), 1);
    assert_eq!(count(&c, "SELECT count(*) FROM tasks WHERE state = 'done' AND tries = 2"), 2);
    assert_eq!(
        count(&c, "SELECT count(*) FROM tries r JOIN managers m USING (run, manager) WHERE r.attempt = 1 AND m.block = 'kept'"),
        2,
        "the retries ran on the kept block"
    );
    assert_eq!(runs_by_job(&started).values().sum::<i64>(), 6, "4 first tries + 2 retries, no more");
    drop(c);

    // A driver killed mid-run leaves a run with no end; the report says so and shows the rest.
    let mut map = Guard::spawn(
        "strand map (killed)",
        Command::new(bin("strand"))
            .args(["map", "--connection"])
            .arg(&conn)
            .arg("--run-dir")
            .arg(&client)
            .arg(format!("echo {{}} >> {}; sleep 30", started.display()))
            .args([":::", "e", "f"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    wait_count(&client, "SELECT count(*) FROM tasks WHERE run = 2", 2, Duration::from_secs(30));
    map.kill();
    let (j, html) = report(&client);
    assert_eq!(j["run"]["run"], 2);
    assert_eq!(j["run"]["ended_us"], serde_json::Value::Null);
    assert_eq!(j["summary"]["tasks"], 2);
    assert_eq!(j["summary"]["by_state"]["pending"], 2);
    assert!(html.contains("no end on record"), "the page says the run did not end");
    let out =
        Command::new(bin("strand")).args(["report", "--run", "9"]).arg(&client).output_within(Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds no run numbered 9"));
}

/// A file that is not a database, and one from another schema: clear errors, no panic.
#[test]
fn bad_databases_are_named() {
    let _file = crate::common::file_group(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::write(d.join(strand::run_dir::MONITORING_DB), "not a database\n").expect("write");
    let out = Command::new(bin("strand")).arg("report").arg(d).output_within(Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("monitoring.db") && !err.contains("panicked"), "{err}");

    let other = d.join("other");
    std::fs::create_dir(&other).expect("mkdir");
    let c = Connection::open(other.join(strand::run_dir::MONITORING_DB)).expect("create");
    c.execute_batch("CREATE TABLE runs (run INTEGER); PRAGMA user_version = 99;").expect("schema");
    drop(c);
    let out = Command::new(bin("strand")).arg("report").arg(&other).output_within(Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("schema version 99") && err.contains("reads versions 1 to 2"), "{err}");
}

/// The lines docs/monitoring.md shows, run as they are (in a fresh directory, `strand` on PATH).
#[test]
fn the_docs_commands_run() {
    let _file = crate::common::file_group(module_path!());
    let doc = std::fs::read_to_string(repo().join("docs/monitoring.md")).expect("docs/monitoring.md");
    let block = doc.split("```sh\n").nth(1).and_then(|b| b.split("```").next()).expect("the first sh block");
    let cwd = tempfile::tempdir().expect("cwd");
    let path =
        format!("{}:{}", bin("strand").parent().expect("bin dir").display(), std::env::var("PATH").unwrap_or_default());
    let mut outputs = Vec::new();
    for line in block.lines().filter(|l| !l.trim().is_empty()) {
        let out = Command::new("bash")
            .args(["-o", "pipefail", "-c", line])
            .current_dir(cwd.path())
            .env("PATH", &path)
            .output_within(Duration::from_secs(120));
        // The map line has one failing job by design (exit status 1, as GNU parallel's).
        let want = if line.starts_with("strand map") { 1 } else { 0 };
        assert_eq!(out.status.code(), Some(want), "{line}: {}", String::from_utf8_lossy(&out.stderr));
        outputs.push(String::from_utf8_lossy(&out.stdout).to_string());
    }
    assert!(cwd.path().join("runs/sweep/report.html").is_file());
    assert!(outputs[2].contains("'tasks': 6") && outputs[2].contains("'failed': 1"), "{}", outputs[2]);
    assert_eq!(outputs[3].lines().collect::<Vec<_>>(), ["ExitCode|1", "done|5"]);
    for chart in ["running", "utilization", "durations", "workers"] {
        decode_png(&cwd.path().join(format!("runs/sweep/charts/{chart}.png")));
    }
}
