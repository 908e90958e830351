//! `strand map`: templates, files of commands, and JSON lines streamed both ways.

use crate::common::*;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn template_and_file_modes() {
    let _file = crate::common::file_group(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(bin("strand"))
        .args(["map", "--workers", "2", "--run-dir"])
        .arg(dir.path().join("r1"))
        .args(["echo {#}:{/}:{.}", ":::", "x/a.txt", "it's b"])
        .output_within(Duration::from_secs(120));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(String::from).collect();
    lines.sort();
    assert_eq!(lines, ["1:a.txt:x/a", "2:it's b:it's b"]);

    let cmds = dir.path().join("cmds.txt");
    std::fs::write(&cmds, "echo one\n\nexit 7\necho three\n").expect("write");
    let out = Command::new(bin("strand"))
        .args(["map", "--workers", "2", "--run-dir"])
        .arg(dir.path().join("r2"))
        .arg("--from")
        .arg(&cmds)
        .output_within(Duration::from_secs(120));
    assert_eq!(out.status.code(), Some(1), "one task failed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("one\n") && stdout.contains("three\n"), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("exit code 7") && stderr.contains("1 of 4 job(s) failed"), "{stderr}");
}

#[test]
fn json_lines_stream_results_while_input_is_open() {
    let _file = crate::common::file_group(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let mut g = Guard::spawn(
        "strand map --json",
        Command::new(bin("strand"))
            .args(["map", "--json", "--workers", "1", "--run-dir"])
            .arg(dir.path().join("r"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    let mut stdin = g.child.stdin.take().expect("stdin");
    let stdout = g.child.stdout.take().expect("stdout");
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // Like a driver that needs each result before it can write the next task.
    let mut prev = "seed".to_string();
    for i in 0..3 {
        writeln!(stdin, r#"{{"name":"step{i}","function":"echo","args":"{prev}+{i}"}}"#).expect("write");
        stdin.flush().expect("flush");
        let line = rx.recv_timeout(Duration::from_secs(60)).expect("a result while stdin is still open");
        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON line");
        assert_eq!(v["name"], format!("step{i}"));
        assert_eq!(v["ok"], true);
        prev = v["stdout"].as_str().expect("stdout").to_string();
    }
    assert_eq!(prev, "seed+0+1+2");
    writeln!(stdin, r#"{{"name":"bad","argv":[]}}"#).expect("write");
    drop(stdin);
    let line = rx.recv_timeout(Duration::from_secs(60)).expect("error line");
    assert!(line.contains("\"ok\":false") && line.contains("empty"), "{line}");
    assert_eq!(g.wait(Duration::from_secs(60)).code(), Some(1));
}

#[test]
fn a_window_of_one_still_runs_every_task_and_zero_is_refused() {
    let _file = crate::common::file_group(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(bin("strand"))
        .args(["map", "--window", "1", "--workers", "2", "--run-dir"])
        .arg(dir.path().join("r"))
        .args(["echo {}", ":::", "a", "b", "c"])
        .output_within(Duration::from_secs(120));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(String::from).collect();
    lines.sort();
    assert_eq!(lines, ["a", "b", "c"]);
    let out = Command::new(bin("strand"))
        .args(["map", "--window", "0", "--workers", "1", "echo", ":::", "a"])
        .output_within(Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2), "a usage error");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--window") && stderr.contains("0"), "{stderr}");
}
