//! Fuzz the workflow-file parser: any text gives a workflow or a located error, never a panic.
//!
//! The checks of one input, shared by the fuzz target (`fuzz/fuzz_targets/workflow_parse.rs`) and
//! the ordinary test that replays the seeds and any local corpus (`tests/it/fuzz_replay.rs`), so a
//! regression on a known input fails CI without nightly.

use strand::workflow::{Workflow, WorkflowError};

/// Most tasks an input may expand to. Sweeps of up to 10,000,000 tasks per table are valid
/// workflows, and `after = ["array"]` makes |A| x |B| edges; materialising them is what the
/// parser is for, so inputs that ask for more than this are skipped rather than timed out.
/// Sweeps the parser refuses (over `MAX_SWEEP`) cost nothing and are kept.
const MAX_TASKS: u128 = 2_000;
/// The parser's own limit on one `[[task]]` table (`workflow.rs`).
const MAX_SWEEP: u128 = 10_000_000;

/// Values one sweep variable takes, as `workflow.rs` counts them (1 when it would refuse the value).
fn values(v: &toml::Value) -> u128 {
    match v {
        toml::Value::Array(a) => a.len() as u128,
        toml::Value::String(r) => {
            let (a, b, inclusive) = match r.split_once("..=") {
                Some((a, b)) => (a, b, true),
                None => match r.split_once("..") {
                    Some((a, b)) => (a, b, false),
                    None => return 1,
                },
            };
            match (a.trim().parse::<i64>(), b.trim().parse::<i64>()) {
                (Ok(a), Ok(b)) => (b as i128 + inclusive as i128 - a as i128).max(1) as u128,
                _ => 1,
            }
        }
        _ => 1,
    }
}

/// Tasks the parser would build for the file, if TOML can read it.
fn expansion(text: &str) -> u128 {
    let Ok(doc) = text.parse::<toml::Table>() else { return 0 };
    let Some(toml::Value::Array(tasks)) = doc.get("task") else { return 0 };
    tasks
        .iter()
        .map(|t| match t.get("over") {
            Some(toml::Value::Table(over)) => {
                let n = over.values().map(values).fold(1u128, |p, n| p.saturating_mul(n));
                // Refused before anything is built.
                if n > MAX_SWEEP {
                    1
                } else {
                    n
                }
            }
            _ => 1,
        })
        .fold(0u128, |s, n| s.saturating_add(n))
}

/// Check one input; panics on a violated property.
pub fn one_input(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if expansion(text) > MAX_TASKS {
        return;
    }
    match Workflow::parse(text, "fuzz.toml") {
        Ok(wf) => {
            assert!(!wf.tasks.is_empty());
            let n = wf.tasks.len();
            for t in &wf.tasks {
                assert!(t.after.iter().all(|&d| d < n), "dependency index out of range");
            }
            assert_eq!(wf.topological_order().len(), n, "an accepted workflow has no cycle");
        }
        Err(WorkflowError::At { origin, line, column, message }) => {
            assert_eq!(origin, "fuzz.toml");
            assert!(line >= 1 && column >= 1);
            assert!(line <= text.split('\n').count(), "line {line} is past the end");
            assert!(!message.is_empty() && !message.contains('\n'), "one-line message: {message:?}");
        }
        Err(WorkflowError::File { origin, message }) => {
            assert_eq!(origin, "fuzz.toml");
            assert!(!message.is_empty());
        }
        Err(e @ WorkflowError::Read { .. }) => panic!("parsing text read a file: {e}"),
    }
}
