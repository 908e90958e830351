//! Tasks as JSON lines (`strand map --json`), so that any language can drive Strand:
//!
//! ```text
//! python make_tasks.py | strand map --json        # JSON lines in, JSON lines out
//! ```

use crate::dfk::Call;
use crate::task::{App, CommandSpec, FunctionCall, Program};
use serde::Deserialize;
use std::collections::BTreeMap;

/// One task as a JSON line: exactly one of `command`, `argv`, `function`.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct JsonTask {
    /// Name for people; defaults to the line number.
    pub name: Option<String>,
    /// Shell command.
    pub command: Option<String>,
    /// Program and arguments.
    pub argv: Option<Vec<String>>,
    /// Registered function.
    pub function: Option<String>,
    /// The function's argument (text).
    pub args: Option<String>,
    /// Walltime in seconds.
    pub walltime: Option<f64>,
    /// Extra tries after a failure.
    pub retries: Option<u32>,
    /// Lower runs first.
    pub priority: Option<i32>,
    /// Extra environment.
    pub env: Option<BTreeMap<String, String>>,
    /// Working directory.
    pub cwd: Option<String>,
    /// Cores, GPUs and MPI ranks per try (`{"cores": 4}`); one worker rank by default.
    pub resources: Option<crate::task::ResourceRequest>,
}

/// Turn one JSON line into a call; the error names the line and what was expected.
pub fn parse_json_line(line: &str, lineno: usize) -> Result<(String, Call), String> {
    let t: JsonTask = serde_json::from_str(line).map_err(|e| format!("line {lineno}: {e}"))?;
    let name = t.name.clone().unwrap_or_else(|| lineno.to_string());
    let given = [t.command.is_some(), t.argv.is_some(), t.function.is_some()].iter().filter(|g| **g).count();
    if given != 1 {
        return Err(format!("line {lineno}: give exactly one of \"command\", \"argv\", \"function\""));
    }
    if t.args.is_some() && t.function.is_none() {
        return Err(format!("line {lineno}: \"args\" is only for \"function\" tasks"));
    }
    let env: Vec<(String, String)> = t.env.unwrap_or_default().into_iter().collect();
    let command = |program| {
        App::Command(CommandSpec { program, env: env.clone(), cwd: t.cwd.clone(), stdout: None, stderr: None })
    };
    let app = match (t.command, t.argv, t.function) {
        (Some(c), _, _) => command(Program::Shell(c)),
        (_, Some(a), _) if a.is_empty() => return Err(format!("line {lineno}: \"argv\" is empty")),
        (_, Some(a), _) => command(Program::Argv(a)),
        (_, _, Some(f)) => App::Function(FunctionCall { name: f, args: t.args.unwrap_or_default().into_bytes() }),
        _ => unreachable!("exactly one was checked above"),
    };
    let mut call = Call::app(app)
        .named(&name)
        .retries(t.retries.unwrap_or(0))
        .priority(t.priority.unwrap_or(0))
        .resources(t.resources.unwrap_or_default().into());
    if let Some(w) = t.walltime {
        if !(w.is_finite() && w > 0.0) {
            return Err(format!("line {lineno}: \"walltime\" must be a positive number of seconds, got {w}"));
        }
        call.walltime_ms = Some((w * 1000.0).round() as u64);
    }
    Ok((name, call))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines() {
        let (name, c) =
            parse_json_line(r#"{"name":"a","argv":["echo","x"],"walltime":1.5,"retries":2}"#, 1).expect("ok");
        assert_eq!(name, "a");
        assert_eq!(c.walltime_ms, Some(1500));
        assert_eq!(c.retries, 2);
        let (_, c) = parse_json_line(r#"{"command":"x","resources":{"cores":2,"gpus":1}}"#, 1).expect("ok");
        assert_eq!(c.resources, crate::task::Resources { cores: 2, gpus: 1, ranks: 1 });
        let (name, _) = parse_json_line(r#"{"function":"echo","args":"hi"}"#, 3).expect("ok");
        assert_eq!(name, "3");
        for (bad, phrase) in [
            (r#"{"command":"x","argv":["y"]}"#, "exactly one"),
            (r#"{}"#, "exactly one"),
            (r#"{"comand":"x"}"#, "unknown field"),
            (r#"{"command":"x","args":"y"}"#, "only for"),
            (r#"{"argv":[]}"#, "empty"),
            (r#"{"command":"x","walltime":-1}"#, "positive"),
            (r#"{"command":"x","resources":{"ranks":0}}"#, "at least 1"),
            ("not json", "line 9"),
        ] {
            let e = parse_json_line(bad, 9).expect_err(bad);
            assert!(e.contains(phrase) && e.starts_with("line 9"), "{bad}: {e}");
        }
    }
}
