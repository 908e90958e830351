//! `strand bench load` end to end: a stream of no-op tasks through a real local block, with the
//! memory samples the docs quote. Checks the report's shape and counts, not its speed.

use crate::common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn bench_load_streams_every_task_and_samples_memory() {
    let _file = crate::common::file_group(module_path!());
    let run = tempfile::tempdir().expect("run dir");
    let out = run.path().join("load.json");
    let mut g = Guard::spawn(
        "strand bench load",
        Command::new(bin("strand"))
            .args(["bench", "load", "--tasks", "3000", "--window", "1000", "--sample-every", "1000", "--workers", "1"])
            .arg("--run-dir")
            .arg(run.path().join("run"))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).expect("output file")),
    );
    let status = g.wait(Duration::from_secs(120));
    let text = std::fs::read_to_string(&out).expect("output");
    assert!(status.success(), "exit {status}: {text}");
    let v: serde_json::Value = serde_json::from_str(text.trim()).expect("one JSON line");
    assert_eq!(v["bench"], "load");
    assert_eq!(v["tasks"], 3000);
    assert_eq!(v["failed"], 0);
    let samples = v["samples"].as_array().expect("samples");
    let done: Vec<u64> = samples.iter().map(|s| s["tasks_done"].as_u64().expect("tasks_done")).collect();
    assert_eq!(done, [0, 1000, 2000, 3000]);
    for s in samples {
        assert!(s["driver_rss_mib"].as_f64().expect("driver rss") > 1.0, "{s}");
        assert!(s["interchange_rss_mib"].as_f64().expect("interchange rss") > 1.0, "{s}");
    }
    assert!(v["driver_growth_after_window_mib"].is_number() && v["interchange_growth_after_window_mib"].is_number());
}

#[test]
fn bench_load_refuses_a_zero_window() {
    let _file = crate::common::file_group(module_path!());
    let o = Command::new(bin("strand"))
        .args(["bench", "load", "--window", "0"])
        .stdin(Stdio::null())
        .output_within(Duration::from_secs(120));
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("--window"), "{e}");
}
