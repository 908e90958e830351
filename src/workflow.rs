//! Workflow files (TOML): tasks, commands or functions, dependencies, defaults.
//!
//! ```toml
//! [defaults]
//! walltime = "10m"          # seconds (number) or "90s", "10m", "1h30m"
//! retries = 1
//!
//! [[task]]
//! name = "hello"
//! command = "echo hello"    # or argv = [...], or function = "echo" with args = "..."
//! after = ["other"]
//! ```
//!
//! Every error names the file, the line and column, what is wrong and what was expected.

use crate::task::{App, CommandSpec, FunctionCall, Program, TaskSpec};
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::Path;
use thiserror::Error;
use toml::Spanned;

/// A parsed, checked workflow.
#[derive(Debug, Clone)]
pub struct Workflow {
    /// Tasks in file order.
    pub tasks: Vec<WorkflowTask>,
}

/// One task of a workflow.
#[derive(Debug, Clone)]
pub struct WorkflowTask {
    /// Its unique name.
    pub name: String,
    /// What to run.
    pub spec: TaskSpec,
    /// Indices (into `Workflow::tasks`) of the tasks it runs after.
    pub after: Vec<usize>,
    /// Extra tries after a failure.
    pub retries: u32,
}

/// Why a workflow file was refused.
#[derive(Debug, Error)]
pub enum WorkflowError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Something at a place in the file.
    #[error("{origin}:{line}:{column}: {message}")]
    At {
        /// The file.
        origin: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong and what was expected.
        message: String,
    },
    /// Something about the file as a whole.
    #[error("{origin}: {message}")]
    File {
        /// The file.
        origin: String,
        /// What is wrong.
        message: String,
    },
}

/// A walltime as written: seconds, or a duration string.
#[derive(Debug, Clone, Copy)]
struct Walltime(u64);

impl<'de> Deserialize<'de> for Walltime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Walltime;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("seconds as a number or a duration string like \"90s\", \"10m\", \"1h30m\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Walltime, E> {
                self.visit_f64(v as f64)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Walltime, E> {
                self.visit_f64(v as f64)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Walltime, E> {
                if v.is_finite() && v > 0.0 {
                    Ok(Walltime((v * 1000.0).round() as u64))
                } else {
                    Err(E::custom(format!("walltime must be positive, got {v}")))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Walltime, E> {
                parse_duration(v).map(Walltime).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// Parse "90s", "10m", "1h30m", "1.5h", "250ms" or plain seconds into milliseconds.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let bad = || format!("expected a duration like \"90s\", \"10m\", \"1h30m\", got {s:?}");
    let t = s.trim();
    if let Ok(secs) = t.parse::<f64>() {
        return if secs.is_finite() && secs > 0.0 { Ok((secs * 1000.0).round() as u64) } else { Err(bad()) };
    }
    let mut total = 0.0;
    let mut num = String::new();
    let mut chars = t.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let unit_ms = match c {
            'h' => 3_600_000.0,
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                1.0
            }
            'm' => 60_000.0,
            's' => 1000.0,
            _ => return Err(bad()),
        };
        let v: f64 = num.parse().map_err(|_| bad())?;
        total += v * unit_ms;
        num.clear();
        any = true;
    }
    if !num.is_empty() || !any || total <= 0.0 {
        return Err(bad());
    }
    Ok(total.round() as u64)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    defaults: Option<RawDefaults>,
    task: Option<Vec<Spanned<RawTask>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    walltime: Option<Walltime>,
    retries: Option<u32>,
    priority: Option<i32>,
    cwd: Option<String>,
    env: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTask {
    name: Option<Spanned<String>>,
    command: Option<Spanned<String>>,
    argv: Option<Spanned<Vec<String>>>,
    function: Option<Spanned<String>>,
    args: Option<Spanned<String>>,
    after: Option<Vec<Spanned<String>>>,
    walltime: Option<Walltime>,
    retries: Option<u32>,
    priority: Option<i32>,
    cwd: Option<String>,
    env: Option<BTreeMap<String, String>>,
    stdout: Option<String>,
    stderr: Option<String>,
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    (line, column)
}

struct Ctx<'a> {
    text: &'a str,
    origin: &'a str,
}

impl Ctx<'_> {
    fn at(&self, span: Range<usize>, message: impl Into<String>) -> WorkflowError {
        let (line, column) = line_col(self.text, span.start);
        WorkflowError::At { origin: self.origin.to_string(), line, column, message: message.into() }
    }
}

fn valid_name(n: &str) -> bool {
    !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

impl Workflow {
    /// Read and check a workflow file.
    pub fn from_file(path: &Path) -> Result<Workflow, WorkflowError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| WorkflowError::Read { path: path.display().to_string(), source })?;
        Workflow::parse(&text, &path.display().to_string())
    }

    /// Check workflow text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Workflow, WorkflowError> {
        let cx = Ctx { text, origin };
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let msg = e.message().trim_end().to_string();
            match e.span() {
                Some(span) => cx.at(span, msg),
                None => WorkflowError::File { origin: origin.into(), message: msg },
            }
        })?;
        let defaults = raw.defaults.unwrap_or_default();
        let raw_tasks = raw.task.unwrap_or_default();
        if raw_tasks.is_empty() {
            return Err(WorkflowError::File {
                origin: origin.into(),
                message: "no tasks: add at least one [[task]] table with a name and a command".into(),
            });
        }
        // First pass: names, so dependencies may point forward.
        let mut index: HashMap<String, (usize, Range<usize>)> = HashMap::new();
        for (i, t) in raw_tasks.iter().enumerate() {
            let Some(name) = &t.get_ref().name else {
                return Err(cx.at(t.span(), "task without a name: add name = \"...\""));
            };
            if !valid_name(name.get_ref()) {
                return Err(cx.at(
                    name.span(),
                    format!("task name {:?} may use only letters, digits, '_', '.' and '-'", name.get_ref()),
                ));
            }
            if let Some((_, first)) = index.get(name.get_ref()) {
                let (line, _) = line_col(text, first.start);
                return Err(cx.at(
                    name.span(),
                    format!(
                        "task name {:?} is used twice (first on line {line}); names must be unique",
                        name.get_ref()
                    ),
                ));
            }
            index.insert(name.get_ref().clone(), (i, name.span()));
        }
        let mut tasks = Vec::with_capacity(raw_tasks.len());
        for t in raw_tasks {
            let span = t.span();
            let t = t.into_inner();
            let name = t.name.map(Spanned::into_inner).unwrap_or_default();
            let given: Vec<&str> =
                [("command", t.command.is_some()), ("argv", t.argv.is_some()), ("function", t.function.is_some())]
                    .iter()
                    .filter(|(_, g)| *g)
                    .map(|(k, _)| *k)
                    .collect();
            if given.len() != 1 {
                let what = if given.is_empty() {
                    "none of".to_string()
                } else {
                    format!("both `{}` and", given.join("` and `"))
                };
                return Err(cx.at(
                    span,
                    format!(
                        "task {name:?} has {what} command, argv, function; give exactly one of command, argv, function"
                    ),
                ));
            }
            if let (Some(a), None) = (&t.args, &t.function) {
                return Err(cx.at(a.span(), format!("task {name:?}: `args` is only for `function` tasks")));
            }
            let mut env: BTreeMap<String, String> = defaults.env.clone().unwrap_or_default();
            env.extend(t.env.unwrap_or_default());
            let cwd = t.cwd.or_else(|| defaults.cwd.clone());
            let command = |program| {
                App::Command(CommandSpec {
                    program,
                    env: env.clone().into_iter().collect(),
                    cwd: cwd.clone(),
                    stdout: t.stdout.clone(),
                    stderr: t.stderr.clone(),
                })
            };
            let app = if let Some(c) = t.command {
                command(Program::Shell(c.into_inner()))
            } else if let Some(a) = t.argv {
                if a.get_ref().is_empty() {
                    return Err(
                        cx.at(a.span(), format!("task {name:?}: argv is empty; give the program and its arguments"))
                    );
                }
                command(Program::Argv(a.into_inner()))
            } else {
                let f = t.function.map(Spanned::into_inner).unwrap_or_default();
                App::Function(FunctionCall {
                    name: f,
                    args: t.args.map(|a| a.into_inner().into_bytes()).unwrap_or_default(),
                })
            };
            let mut after = Vec::new();
            for dep in t.after.unwrap_or_default() {
                match index.get(dep.get_ref()) {
                    Some((j, _)) => after.push(*j),
                    None => {
                        return Err(cx.at(
                            dep.span(),
                            format!("task {name:?} runs after {:?}, but no task has that name", dep.get_ref()),
                        ))
                    }
                }
            }
            tasks.push(WorkflowTask {
                name,
                spec: TaskSpec {
                    app,
                    walltime_ms: t.walltime.or(defaults.walltime).map(|w| w.0),
                    priority: t.priority.or(defaults.priority).unwrap_or(0),
                },
                after,
                retries: t.retries.or(defaults.retries).unwrap_or(0),
            });
        }
        let wf = Workflow { tasks };
        if let Err(cycle) = wf.order() {
            let names: Vec<&str> = cycle.iter().map(|&i| wf.tasks[i].name.as_str()).collect();
            let (_, first) = &index[names[0]];
            return Err(cx.at(first.clone(), format!("dependency cycle among tasks {}", names.join(", "))));
        }
        Ok(wf)
    }

    /// A launch order in which every task comes after its dependencies (Kahn's algorithm, O(n + e)).
    pub fn topological_order(&self) -> Vec<usize> {
        self.order().unwrap_or_default()
    }

    /// The order, or the tasks left in a cycle.
    fn order(&self) -> Result<Vec<usize>, Vec<usize>> {
        let n = self.tasks.len();
        let mut indegree = vec![0usize; n];
        let mut dependents = vec![Vec::new(); n];
        for (i, t) in self.tasks.iter().enumerate() {
            indegree[i] = t.after.len();
            for &d in &t.after {
                dependents[d].push(i);
            }
        }
        let mut ready: Vec<usize> = (0..n).filter(|&i| indegree[i] == 0).rev().collect();
        let mut out = Vec::with_capacity(n);
        while let Some(i) = ready.pop() {
            out.push(i);
            for &d in &dependents[i] {
                indegree[d] -= 1;
                if indegree[d] == 0 {
                    ready.push(d);
                }
            }
        }
        if out.len() == n {
            Ok(out)
        } else {
            Err((0..n).filter(|&i| indegree[i] > 0).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        Workflow::parse(text, "wf.toml").expect_err("should fail").to_string()
    }

    #[test]
    fn examples_parse() {
        for f in ["hello.toml", "diamond.toml"] {
            let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(f);
            let wf = Workflow::from_file(&p).unwrap_or_else(|e| panic!("{e}"));
            assert!(!wf.tasks.is_empty());
            assert_eq!(wf.topological_order().len(), wf.tasks.len());
        }
    }

    #[test]
    fn defaults_merge_and_order() {
        let wf = Workflow::parse(
            r#"
[defaults]
walltime = "1m30s"
retries = 2
env = { A = "1", B = "2" }

[[task]]
name = "b"
argv = ["echo", "b"]
after = ["a"]
env = { B = "3" }
walltime = 5

[[task]]
name = "a"
function = "echo"
args = "hi"
"#,
            "wf.toml",
        )
        .expect("parses");
        let b = &wf.tasks[0];
        assert_eq!(b.spec.walltime_ms, Some(5000));
        assert_eq!(b.retries, 2);
        match &b.spec.app {
            App::Command(c) => assert_eq!(c.env, vec![("A".into(), "1".into()), ("B".into(), "3".into())]),
            o => panic!("{o:?}"),
        }
        assert_eq!(wf.tasks[1].spec.walltime_ms, Some(90_000));
        assert_eq!(wf.topological_order(), vec![1, 0]);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(90_000));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration("250ms"), Ok(250));
        assert_eq!(parse_duration("2.5"), Ok(2500));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("10").is_ok());
        assert!(parse_duration("10x").is_err());
    }

    #[test]
    fn errors_name_line_and_expectation() {
        let e = err("[[task]]\nname = \"a\"\ncommand = \"x\"\n\n[[task]]\nname = \"b\"\ncomand = \"x\"\n");
        assert!(e.starts_with("wf.toml:7:"), "{e}");
        assert!(e.contains("comand") && e.contains("command"), "{e}");

        let e = err("[[task]]\nname = \"a\"\ncommand = \"x\"\nwalltime = true\n");
        assert!(e.starts_with("wf.toml:4:"), "{e}");
        assert!(e.contains("duration string"), "{e}");

        let e = err("[[task]]\nname = \"a\"\ncommand = \"x\"\nargv = [\"y\"]\n");
        assert!(e.starts_with("wf.toml:1:"), "{e}");
        assert!(e.contains("exactly one of command, argv, function"), "{e}");

        let e = err("[[task]]\nname = \"a\"\ncommand = \"x\"\n[[task]]\nname = \"a\"\ncommand = \"y\"\n");
        assert!(e.starts_with("wf.toml:5:") && e.contains("first on line 2"), "{e}");

        let e = err("[[task]]\nname = \"a\"\ncommand = \"x\"\nafter = [\"zz\"]\n");
        assert!(e.starts_with("wf.toml:4:") && e.contains("\"zz\""), "{e}");

        let e = err("[[task]]\nname = \"a\"\ncommand = \"x\"\nafter = [\"b\"]\n[[task]]\nname = \"b\"\ncommand = \"y\"\nafter = [\"a\"]\n");
        assert!(e.contains("dependency cycle among tasks a, b"), "{e}");

        let e = err("[[task]]\nname = \"a b\"\ncommand = \"x\"\n");
        assert!(e.starts_with("wf.toml:2:") && e.contains("letters, digits"), "{e}");

        let e = err("[[task]]\nname = \"a\"\nargv = []\n");
        assert!(e.starts_with("wf.toml:3:") && e.contains("argv is empty"), "{e}");

        let e = err("[[task]]\nname = \"a\"\ncommand = \"x\"\nargs = \"1\"\n");
        assert!(e.starts_with("wf.toml:4:") && e.contains("only for `function`"), "{e}");

        let e = err("[[task]]\ncommand = \"x\"\n");
        assert!(e.starts_with("wf.toml:1:") && e.contains("without a name"), "{e}");

        let e = err("[[task]\nname = 1\n");
        assert!(e.starts_with("wf.toml:1:"), "{e}");

        assert!(err("# nothing\n").contains("no tasks"));
        let e = Workflow::from_file(Path::new("/no/such/wf.toml")).expect_err("missing");
        assert!(e.to_string().starts_with("/no/such/wf.toml:"), "{e}");
    }
}
