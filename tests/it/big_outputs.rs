//! Nothing lost to big outputs: every sender splits its batches to fit the run's frame limit,
//! and a single try or result that can never fit fails with TooLarge instead of hanging.
//!
//! The interchange runs with a small frame limit (`--max-frame-mib`) so that a handful of
//! workers ending together make a round of results far larger than one frame, as a hundred
//! workers with 1 MB outputs do at the default 64 MiB.

use crate::common::*;
use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

/// Run `strand map --json --connection CONN` over `lines` and return its JSON results by name.
fn map_json(conn_file: &std::path::Path, lines: &[String]) -> (Option<i32>, HashMap<String, Vec<serde_json::Value>>) {
    let input = lines.join("\n") + "\n";
    let dir = tempfile::tempdir().expect("tempdir");
    let input_file = dir.path().join("tasks.jsonl");
    std::fs::write(&input_file, input).expect("write tasks");
    let out = Command::new("sh")
        .arg("-c")
        .arg(r#"exec "$0" map --json --connection "$1" < "$2""#)
        .arg(bin("strand"))
        .arg(conn_file)
        .arg(&input_file)
        .output_within(Duration::from_secs(120));
    let mut by_name: HashMap<String, Vec<serde_json::Value>> = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        let name = v["name"].as_str().expect("name").to_string();
        by_name.entry(name).or_default().push(v);
    }
    assert!(out.status.code().is_some(), "strand map did not finish: {}", String::from_utf8_lossy(&out.stderr));
    (out.status.code(), by_name)
}

/// An interchange with a frame limit of `max_frame_mib` and one registered block of `ranks`.
struct Rig {
    dir: tempfile::TempDir,
    conn: strand::connection::ConnectionInfo,
    _ix: Guard,
    _block: Guard,
}

impl Rig {
    fn start(max_frame_mib: &str, ranks: u32) -> Rig {
        let dir = tempfile::tempdir().expect("tempdir");
        let (ix, conn) = interchange(dir.path(), &["--max-frame-mib", max_frame_mib, "--heartbeat-period", "1"]);
        let block = launcher(dir.path(), "block", ranks, &dir.path().join(strand::run_dir::CONNECTION_FILE), &[]);
        wait_managers(&conn, 1, Duration::from_secs(120));
        Rig { dir, conn, _ix: ix, _block: block }
    }

    fn conn_file(&self) -> std::path::PathBuf {
        self.dir.path().join(strand::run_dir::CONNECTION_FILE)
    }

    /// The interchange refused no frame as too large.
    fn assert_nothing_oversized(&self) {
        let mut c = strand::client::Client::connect(&self.conn).expect("client");
        let status = c.status(Duration::from_secs(10)).expect("status");
        assert_eq!(status.dropped.oversized, 0, "a frame was refused: {:?}", status.dropped);
    }
}

#[test]
fn a_round_of_results_larger_than_a_frame_all_arrive() {
    let _file = crate::common::file_group(module_path!());
    // 8 workers; each round ends 8 tries of 900 kB together: 7.2 MB of results, the frame 4 MiB.
    let rig = Rig::start("4", 9);
    const TASKS: usize = 48;
    const BYTES: usize = 900_000;
    let lines: Vec<String> = (0..TASKS)
        .map(|i| {
            let cmd = format!("sleep 0.5; head -c {BYTES} /dev/zero | tr '\\\\0' {}", (b'a' + (i % 26) as u8) as char);
            format!(r#"{{"name":"t{i}","command":"{cmd}"}}"#)
        })
        .collect();
    let (code, results) = map_json(&rig.conn_file(), &lines);
    assert_eq!(code, Some(0), "every task succeeds");
    assert_eq!(results.len(), TASKS, "every task answered");
    for i in 0..TASKS {
        let got = &results[&format!("t{i}")];
        assert_eq!(got.len(), 1, "t{i} answered exactly once: {} lines", got.len());
        let stdout = got[0]["stdout"].as_str().expect("stdout");
        let want = (b'a' + (i % 26) as u8) as char;
        assert_eq!(stdout.len(), BYTES, "t{i}'s whole output");
        assert!(stdout.chars().all(|c| c == want), "t{i}'s own output");
    }
    rig.assert_nothing_oversized();
}

#[test]
fn a_try_or_result_that_can_never_fit_fails_with_too_large() {
    let _file = crate::common::file_group(module_path!());
    let rig = Rig::start("1", 2);
    let big_arg = "y".repeat(1_200_000);
    let runs = rig.dir.path().join("runs.log");
    let log = runs.display();
    let lines = vec![
        // The launcher keeps 1 MiB of stdout: with its envelope, over a 1 MiB frame.
        format!(r#"{{"name":"big_result","retries":3,"command":"echo ran >> {log}; head -c 1048576 /dev/zero"}}"#),
        // The command line alone is 1.2 MB: the DFK cannot send it.
        format!(r#"{{"name":"big_try","retries":3,"command":"echo {big_arg}"}}"#),
        r#"{"name":"small","command":"echo fine"}"#.to_string(),
    ];
    let (code, results) = map_json(&rig.conn_file(), &lines);
    assert_eq!(code, Some(2), "the two big tasks fail (the exit status counts them), the small one does not");
    assert_eq!(results["small"][0]["stdout"], "fine\n");
    for name in ["big_result", "big_try"] {
        let r = &results[name];
        assert_eq!(r.len(), 1, "{name} answered once");
        assert_eq!(r[0]["ok"], false, "{name} fails");
        let error = r[0]["error"].as_str().expect("error");
        assert!(error.contains("TooLarge") && error.contains("--max-frame-mib"), "{name}: {error}");
    }
    let ran = std::fs::read_to_string(&runs).expect("run log");
    assert_eq!(ran.lines().count(), 1, "a TooLarge result is not retried: it ran {} times", ran.lines().count());
    // The output of the first was not sent as a whole: the interchange refused nothing.
    rig.assert_nothing_oversized();
}
