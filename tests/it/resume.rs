//! Run directories: a re-run skips completed tasks; an edited app re-runs with its dependents;
//! a `strand run` killed with SIGKILL resumes where it stopped.

use crate::common::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn workflow(dir: &Path, b_command: &str) -> std::path::PathBuf {
    let log = dir.join("log.txt");
    let wf = dir.join("wf.toml");
    let l = log.display();
    std::fs::write(
        &wf,
        format!(
            "[[task]]\nname = \"a\"\ncommand = \"echo a >> {l}; echo a\"\n\n\
             [[task]]\nname = \"b\"\ncommand = \"{b_command} >> {l}; echo b\"\nafter = [\"a\"]\n\n\
             [[task]]\nname = \"c\"\ncommand = \"echo c >> {l}\"\nafter = [\"b\"]\n\n\
             [[task]]\nname = \"d\"\ncommand = \"echo d >> {l}\"\nafter = [\"a\"]\n"
        ),
    )
    .expect("write workflow");
    wf
}

fn run(wf: &Path, run_dir: &Path) -> String {
    let out = Command::new(bin("strand"))
        .arg("run")
        .arg(wf)
        .args(["--workers", "1", "--timeout", "60"])
        .arg("--run-dir")
        .arg(run_dir)
        .output_within(Duration::from_secs(120));
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "strand run failed:\n{text}");
    text
}

fn log_lines(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_to_string(dir.join("log.txt")).unwrap_or_default().lines().map(String::from).collect();
    v.sort();
    v
}

#[test]
fn rerun_skips_completed_tasks_and_an_edit_reruns_only_its_subtree() {
    let _file = crate::common::file_group(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let run_dir = dir.path().join("run");
    let wf = workflow(dir.path(), "echo b");
    let first = run(&wf, &run_dir);
    assert!(first.contains("4 done (0 skipped"), "{first}");
    assert_eq!(log_lines(dir.path()), ["a", "b", "c", "d"]);

    let second = run(&wf, &run_dir);
    assert!(second.contains("4 done (4 skipped"), "{second}");
    assert_eq!(log_lines(dir.path()), ["a", "b", "c", "d"], "nothing ran again");

    let wf = workflow(dir.path(), "echo B");
    let third = run(&wf, &run_dir);
    assert!(third.contains("4 done (2 skipped"), "{third}");

    let out = Command::new(bin("strand")).arg("status").arg(&run_dir).output_within(Duration::from_secs(120));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("4 tasks: 4 done (2 from an earlier run), 0 failed"), "{text}");
    let out =
        Command::new(bin("strand")).arg("status").arg(&run_dir).arg("--json").output_within(Duration::from_secs(120));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let b = v.as_array().and_then(|a| a.iter().find(|t| t["name"] == "b")).expect("task b");
    assert_eq!(b["state"], "done");
    assert_eq!(b["tries"], 1);
    assert_eq!(log_lines(dir.path()), ["B", "a", "b", "c", "c", "d"], "only b (edited) and c (its dependent) ran");
}

#[test]
fn killed_run_resumes_and_finishes_with_the_same_results() {
    let _file = crate::common::file_group(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let run_dir = dir.path().join("run");
    let log = dir.path().join("log.txt");
    let mut text = String::new();
    for i in 0..24 {
        text += &format!(
            "[[task]]\nname = \"t{i}\"\ncommand = \"sleep 0.3; echo t{i} >> {}; echo result-{i}\"\n\n",
            log.display()
        );
    }
    let wf = dir.path().join("wf.toml");
    std::fs::write(&wf, text).expect("write");

    let mut first = Guard::spawn(
        "strand run",
        Command::new(bin("strand"))
            .arg("run")
            .arg(&wf)
            .args(["--workers", "2", "--timeout", "120"])
            .arg("--run-dir")
            .arg(&run_dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
    );
    let checkpoint = run_dir.join("checkpoint.jsonl");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(&checkpoint).map(|s| s.lines().count()).unwrap_or(0) < 4 {
        assert!(Instant::now() < deadline, "no progress in the first run");
        std::thread::sleep(Duration::from_millis(20));
    }
    let helpers = children_of(first.pid());
    // SAFETY: SIGKILL to our own child, not its group: its children must clean up by themselves.
    unsafe { libc::kill(first.pid(), libc::SIGKILL) };
    first.wait(Duration::from_secs(10));
    let recorded: Vec<String> = std::fs::read_to_string(&checkpoint)
        .expect("checkpoint")
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["name"].as_str().map(String::from))
        .collect();
    assert!(recorded.len() >= 4 && recorded.len() < 24, "killed mid-run: {recorded:?}");
    // The local interchange and block die with their parent.
    let deadline = Instant::now() + Duration::from_secs(30);
    for pid in helpers {
        while std::path::Path::new(&format!("/proc/{pid}")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default().contains(") Z")
        {
            assert!(Instant::now() < deadline, "process {pid} of the killed run is still alive");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    let out = run(&wf, &run_dir);
    assert!(out.contains("resuming from"), "{out}");
    assert!(out.contains(&format!("24 done ({} skipped", recorded.len())), "{out}");
    for i in 0..24 {
        assert!(out.contains(&format!("t{i}: done: result-{i}\n")), "t{i} result missing:\n{out}");
    }
    let lines = std::fs::read_to_string(&log).expect("log");
    for name in &recorded {
        let n = lines.lines().filter(|l| l == name).count();
        assert_eq!(n, 1, "{name} completed before the kill and must not run again");
    }
}
