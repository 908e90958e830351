//! `strand run` on workflow files: errors before anything starts, and a real run on the local default.

use crate::common::*;
use std::process::Command;
use std::time::Duration;

#[test]
fn malformed_workflow_names_file_and_line_and_starts_nothing() {
    let _file = crate::common::file_group(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let wf = dir.path().join("bad.toml");
    std::fs::write(&wf, "[[task]]\nname = \"a\"\ncommand = \"true\"\n\n[[task]]\nname = \"b\"\ncomand = \"x\"\n")
        .expect("write");
    let run_dir = dir.path().join("run");
    let out = Command::new(bin("strand"))
        .arg("run")
        .arg(&wf)
        .arg("--run-dir")
        .arg(&run_dir)
        .output_within(Duration::from_secs(120));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "non-zero exit");
    assert!(err.contains("bad.toml:7"), "names file and line: {err}");
    assert!(err.contains("comand"), "names the bad key: {err}");
    assert!(!run_dir.exists(), "nothing was started");
}

#[test]
fn hello_workflow_runs_on_the_local_default() {
    let _file = crate::common::file_group(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let run_dir = dir.path().join("run");
    let wf = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello.toml");
    let mut g = Guard::spawn(
        "strand run",
        Command::new(bin("strand"))
            .arg("run")
            .arg(&wf)
            .args(["--workers", "2", "--timeout", "60"])
            .arg("--run-dir")
            .arg(&run_dir)
            .stdout(std::fs::File::create(dir.path().join("out")).expect("out")),
    );
    let st = g.wait(Duration::from_secs(120));
    let out = std::fs::read_to_string(dir.path().join("out")).unwrap_or_default();
    assert!(st.success(), "strand run failed ({st}):\n{out}\n{}", tail(&run_dir.join("block-local-0.log")));
    assert!(out.contains("0 failed"), "{out}");
}

#[test]
fn workflow_resources_reach_the_command() {
    let _file = crate::common::file_group(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let run_dir = dir.path().join("run");
    let wf = dir.path().join("wf.toml");
    std::fs::write(
        &wf,
        "[[task]]\nname = \"wide\"\ncommand = \"echo cores=$STRAND_CORES hosts=$STRAND_HOSTS\"\n\
         resources = { cores = 2 }\n\n[[task]]\nname = \"huge\"\ncommand = \"true\"\nresources = { ranks = 64 }\n",
    )
    .expect("write");
    let mut g = Guard::spawn(
        "strand run",
        Command::new(bin("strand"))
            .arg("run")
            .arg(&wf)
            .args(["--workers", "2", "--timeout", "60"])
            .arg("--run-dir")
            .arg(&run_dir)
            .stdout(std::fs::File::create(dir.path().join("out")).expect("out")),
    );
    let st = g.wait(Duration::from_secs(120));
    let out = std::fs::read_to_string(dir.path().join("out")).unwrap_or_default();
    assert_eq!(st.code(), Some(1), "one task cannot fit:\n{out}");
    assert!(out.contains("wide: done: cores=2 hosts="), "{out}");
    assert!(out.contains("huge: failed after 1 tries: Unsatisfiable: needs 64 rank(s)"), "{out}");
}

#[test]
fn submit_by_hand_against_a_running_interchange() {
    let _file = crate::common::file_group(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let (_ix, _conn) = interchange(dir.path(), &[]);
    let conn_file = dir.path().join("connection.json");
    let _block = launcher(dir.path(), "block", 2, &conn_file, &[]);
    let out = Command::new(bin("strand"))
        .arg("submit")
        .arg("--connection")
        .arg(&conn_file)
        .args(["--", "echo", "hello", "strand"])
        .output_within(Duration::from_secs(120));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello strand\n");
    let out = Command::new(bin("strand"))
        .arg("submit")
        .arg("--connection")
        .arg(&conn_file)
        .args(["--shell", "--", "exit 3"])
        .output_within(Duration::from_secs(120));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("exit code 3"));
    let out = Command::new(bin("strand"))
        .arg("status")
        .arg("--connection")
        .arg(&conn_file)
        .arg("--json")
        .output_within(Duration::from_secs(120));
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status --json is JSON");
    assert_eq!(v["managers"].as_array().map(|a| a.len()), Some(1));
}

#[test]
fn files_order_tasks_and_missing_outputs_fail() {
    let _file = crate::common::file_group(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().display();
    let wf = dir.path().join("files.toml");
    std::fs::write(
        &wf,
        format!(
            "[[task]]\nname = \"count\"\ncommand = \"wc -l < {{in0}}\"\ninputs = [\"{d}/sorted.txt\"]\n\n\
             [[task]]\nname = \"sort\"\ncommand = \"printf 'b\\\\na\\\\n' | sort > {{out0}}\"\noutputs = [\"{d}/sorted.txt\"]\n\n\
             [[task]]\nname = \"lazy\"\ncommand = \"true\"\noutputs = [\"{d}/never.txt\"]\n"
        ),
    )
    .expect("write");
    let out = Command::new(bin("strand"))
        .arg("run")
        .arg(&wf)
        .args(["--workers", "1", "--timeout", "60"])
        .arg("--run-dir")
        .arg(dir.path().join("run"))
        .output_within(Duration::from_secs(120));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("count: done: 2"), "count ran after sort wrote the file: {text}");
    assert!(text.contains("lazy: failed after 1 tries: MissingOutputs") && text.contains("never.txt"), "{text}");
}

/// `hash_inputs = true`: editing a data file no task writes re-runs its readers, and only them.
#[test]
fn hash_inputs_reruns_the_readers_of_an_edited_file() {
    let _file = crate::common::file_group(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let run_dir = dir.path().join("run");
    let data = dir.path().join("data.txt");
    let wf = dir.path().join("wf.toml");
    std::fs::write(
        &wf,
        format!(
            "[[task]]\nname = \"hashed\"\ncommand = \"wc -l < {{in0}}\"\ninputs = [\"{d}\"]\nhash_inputs = true\n\n\
             [[task]]\nname = \"by-name\"\ncommand = \"wc -l < {{in0}}\"\ninputs = [\"{d}\"]\n",
            d = data.display()
        ),
    )
    .expect("write");
    let run = |n: usize| {
        let out = dir.path().join(format!("out{n}"));
        let mut g = Guard::spawn(
            "strand run",
            Command::new(bin("strand"))
                .arg("run")
                .arg(&wf)
                .args(["--workers", "1", "--timeout", "60"])
                .arg("--run-dir")
                .arg(&run_dir)
                .stdout(std::fs::File::create(&out).expect("out")),
        );
        let st = g.wait(Duration::from_secs(120));
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        assert!(st.success(), "run {n} failed ({st}):\n{text}");
        text
    };
    std::fs::write(&data, "a\n").expect("write");
    let first = run(1);
    assert!(first.contains("hashed: done: 1") && first.contains("by-name: done: 1"), "{first}");
    assert!(first.contains("(0 skipped"), "{first}");
    let same = run(2);
    assert!(same.contains("(2 skipped"), "nothing changed, nothing runs:\n{same}");
    std::fs::write(&data, "a\nb\n").expect("write");
    let edited = run(3);
    assert!(edited.contains("hashed: done: 2"), "the hashed reader saw the new content:\n{edited}");
    assert!(edited.contains("by-name: done: 1"), "the reader keyed by name kept its result:\n{edited}");
    assert!(edited.contains("(1 skipped"), "{edited}");
}
