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
//!
//! [[task]]
//! name = "sim"                 # a sweep: one task per combination, named sim[0,300] ...
//! command = "simulate --seed {seed} --T {T}"
//! over = { seed = "0..10", T = [300, 400] }   # "a..b" excludes b, "a..=b" includes it
//! after = ["prep"]             # a base name means every task of that array;
//!                              # "sim[{seed},300]" names one element
//! resources = { cores = 4, gpus = 1, ranks = 2 }   # per try; each key defaults to 1, 0, 1
//! ```
//!
//! Every error names the file, the line and column, what is wrong and what was expected.
//!
//! One piece (about 670 lines) on purpose: sweeps, defaults, file dependencies and `after`
//! references are resolved against each other in one pass over the parsed tables, so that
//! every error can point at the span it came from.

use crate::task::{App, CommandSpec, FunctionCall, Program, TaskSpec};
use crate::text::line_col;
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
    /// Its input files (sweep variables substituted).
    pub input_files: Vec<String>,
    /// Whether its input files' content is part of its memo key (`hash_inputs`).
    pub hash_inputs: bool,
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
                seconds_to_ms(v).map(Walltime).map_err(|m| E::custom(format!("walltime {m}, got {v}")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Walltime, E> {
                parse_duration(v).map(Walltime).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// Largest walltime accepted: a year is already far past any batch queue's limit, and a cap
/// keeps `as u64` from saturating a typo like `1e30` into "forever".
const MAX_WALLTIME_MS: f64 = 366.0 * 24.0 * 3_600_000.0;

/// Seconds to whole milliseconds, refusing what would silently become 0 ms or saturate.
fn seconds_to_ms(secs: f64) -> Result<u64, String> {
    ms_checked(secs * 1000.0)
}

fn ms_checked(ms: f64) -> Result<u64, String> {
    if !ms.is_finite() || ms <= 0.0 {
        return Err("must be positive".into());
    }
    if ms > MAX_WALLTIME_MS {
        return Err("must be at most a year (31622400 s)".into());
    }
    // A walltime that rounds to 0 ms would kill the try at once; refuse it rather than guess.
    match ms.round() as u64 {
        0 => Err("must be at least 1 ms".into()),
        v => Ok(v),
    }
}

/// Parse "90s", "10m", "1h30m", "1.5h", "250ms" or plain seconds into milliseconds.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let bad = || format!("expected a duration like \"90s\", \"10m\", \"1h30m\", got {s:?}");
    let t = s.trim();
    if let Ok(secs) = t.parse::<f64>() {
        return seconds_to_ms(secs).map_err(|m| format!("{} ({m})", bad()));
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
    if !num.is_empty() || !any {
        return Err(bad());
    }
    ms_checked(total).map_err(|m| format!("{} ({m})", bad()))
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
    resources: Option<crate::task::ResourceRequest>,
    hash_inputs: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTask {
    over: Option<Spanned<toml::Table>>,
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
    inputs: Option<Vec<String>>,
    outputs: Option<Vec<String>>,
    resources: Option<crate::task::ResourceRequest>,
    hash_inputs: Option<bool>,
}

/// One concrete task of a `[[task]]` table: its full name and sweep bindings.
struct Element {
    raw: usize,
    name: String,
    vars: Vec<(String, String)>,
}

/// Most tasks one `[[task]]` table may expand to.
const MAX_SWEEP: usize = 10_000_000;

/// Sweep variables in the order written: each a range like "0..10" / "1..=5", or a list.
fn parse_sweep(over: &toml::Table) -> Result<Vec<(String, Vec<String>)>, String> {
    let mut out = Vec::new();
    let mut total: usize = 1;
    for (var, values) in over {
        if !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || var.is_empty() {
            return Err(format!("variable name {var:?} may use only letters, digits and '_'"));
        }
        let vals: Vec<String> = match values {
            toml::Value::String(r) => parse_range(r).map_err(|m| format!("{var}: {m}"))?,
            toml::Value::Array(l) => l
                .iter()
                .map(|v| match v {
                    toml::Value::String(s) => Ok(s.clone()),
                    toml::Value::Integer(i) => Ok(i.to_string()),
                    toml::Value::Float(f) => Ok(f.to_string()),
                    toml::Value::Boolean(b) => Ok(b.to_string()),
                    other => Err(format!("{var}: list values must be strings or numbers, got {other}")),
                })
                .collect::<Result<_, _>>()?,
            other => return Err(format!("{var}: expected a range string like \"0..10\" or a list, got {other}")),
        };
        if vals.is_empty() {
            return Err(format!("{var} has no values"));
        }
        total = total.saturating_mul(vals.len());
        if total > MAX_SWEEP {
            return Err(format!("expands to more than {MAX_SWEEP} tasks; split it into several tables"));
        }
        out.push((var.clone(), vals));
    }
    Ok(out)
}

fn parse_range(r: &str) -> Result<Vec<String>, String> {
    let bad = || format!("expected a range like \"0..10\" (end excluded) or \"1..=10\", or a list, got {r:?}");
    let (a, b, inclusive) = match r.split_once("..=") {
        Some((a, b)) => (a, b, true),
        None => r.split_once("..").map(|(a, b)| (a, b, false)).ok_or_else(bad)?,
    };
    let a: i64 = a.trim().parse().map_err(|_| bad())?;
    let b: i64 = b.trim().parse().map_err(|_| bad())?;
    let end = if inclusive { b.checked_add(1).ok_or_else(bad)? } else { b };
    if end <= a {
        return Err(format!("range {r:?} is empty"));
    }
    if (end - a) as u128 > MAX_SWEEP as u128 {
        return Err(format!("range {r:?} has more than {MAX_SWEEP} values"));
    }
    Ok((a..end).map(|i| i.to_string()).collect())
}

/// Every combination of the sweep's values, in a stable order (one empty binding without a sweep).
fn cartesian(sweep: &[(String, Vec<String>)]) -> Vec<Vec<(String, String)>> {
    let mut out: Vec<Vec<(String, String)>> = vec![vec![]];
    for (var, vals) in sweep {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                vals.iter().map(move |v| {
                    let mut p = prefix.clone();
                    p.push((var.clone(), v.clone()));
                    p
                })
            })
            .collect();
    }
    out
}

/// Replace `{var}` by its value for each sweep variable; other braces are left alone.
fn substitute_vars(s: &str, vars: &[(String, String)]) -> String {
    let mut out = s.to_string();
    for (k, v) in vars {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
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

/// Byte offset of the first non-blank character of the line holding `offset` (the key of an
/// inline `key = value`); falls back to `offset` when the value sits in an inline table.
fn line_start_of(text: &str, offset: usize) -> usize {
    let offset = offset.min(text.len());
    let start = text.get(..offset).and_then(|b| b.rfind('\n')).map(|i| i + 1).unwrap_or(0);
    let line = text.get(start..offset).unwrap_or("");
    if line.contains('{') || line.contains(',') {
        return offset;
    }
    start + (line.len() - line.trim_start().len())
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
            let mut msg =
                e.message().trim_end().lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ");
            if msg.is_empty() {
                // The TOML parser says nothing for some characters (a NUL in a comment): name it.
                let found = e.span().and_then(|s| text.get(s.start..)).and_then(|t| t.chars().next());
                msg = match found {
                    Some(c) => format!("invalid TOML: unexpected character {c:?}"),
                    None => "invalid TOML".into(),
                };
            }
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
        // First pass: names and sweep expansions, so dependencies may point forward.
        let mut base_names: HashMap<String, Range<usize>> = HashMap::new();
        let mut elements: Vec<Element> = Vec::new();
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
            if let Some(first) = base_names.get(name.get_ref()) {
                let (line, _) = line_col(text, first.start);
                return Err(cx.at(
                    name.span(),
                    format!(
                        "task name {:?} is used twice (first on line {line}); names must be unique",
                        name.get_ref()
                    ),
                ));
            }
            base_names.insert(name.get_ref().clone(), name.span());
            let sweep = match &t.get_ref().over {
                Some(over) => parse_sweep(over.get_ref()).map_err(|m| cx.at(over.span(), format!("`over`: {m}")))?,
                None => Vec::new(),
            };
            for vars in cartesian(&sweep) {
                let full = if vars.is_empty() {
                    name.get_ref().clone()
                } else {
                    format!(
                        "{}[{}]",
                        name.get_ref(),
                        vars.iter().map(|(_, v)| v.as_str()).collect::<Vec<_>>().join(",")
                    )
                };
                elements.push(Element { raw: i, name: full, vars });
            }
        }
        let mut by_full: HashMap<&str, usize> = HashMap::new();
        let mut by_base: HashMap<&str, Vec<usize>> = HashMap::new();
        for (j, e) in elements.iter().enumerate() {
            by_full.insert(e.name.as_str(), j);
            if let Some(Some(n)) = raw_tasks.get(e.raw).map(|t| t.get_ref().name.as_ref()) {
                by_base.entry(n.get_ref().as_str()).or_default().push(j);
            }
        }
        // Checks that do not depend on the sweep values, once per [[task]].
        for t in &raw_tasks {
            let span = t.span();
            let t = t.get_ref();
            let name = t.name.as_ref().map(|n| n.get_ref().as_str()).unwrap_or_default();
            let given: Vec<(&str, Range<usize>)> = [
                ("command", t.command.as_ref().map(|c| c.span())),
                ("argv", t.argv.as_ref().map(|a| a.span())),
                ("function", t.function.as_ref().map(|f| f.span())),
            ]
            .into_iter()
            .filter_map(|(k, s)| Some((k, s?)))
            .collect();
            match given.as_slice() {
                [_] => {}
                [] => {
                    return Err(cx.at(
                        span,
                        format!("task {name:?} has none of command, argv, function; give exactly one of them"),
                    ))
                }
                [_, _, ..] => {
                    let keys: Vec<String> = given.iter().map(|(k, _)| format!("`{k}`")).collect();
                    let both = if keys.len() == 2 { "both " } else { "" };
                    // Point at whichever of them comes last in the file (the one that made it
                    // ambiguous), at its key rather than its value: that is what the user deletes.
                    let latest = given.iter().map(|(_, s)| s.start).max().unwrap_or(span.start);
                    let at = line_start_of(text, latest);
                    return Err(cx.at(
                        at..at,
                        format!(
                            "task {name:?} has {both}{}; give exactly one of command, argv, function",
                            keys.join(" and ")
                        ),
                    ));
                }
            }
            if let (Some(a), None) = (&t.args, &t.function) {
                return Err(cx.at(a.span(), format!("task {name:?}: `args` is only for `function` tasks")));
            }
            if let Some(a) = &t.argv {
                if a.get_ref().is_empty() {
                    return Err(
                        cx.at(a.span(), format!("task {name:?}: argv is empty; give the program and its arguments"))
                    );
                }
            }
        }
        // Files make dependencies: a task reading a file runs after the one that writes it.
        let mut writers: HashMap<String, usize> = HashMap::new();
        for (j, e) in elements.iter().enumerate() {
            let t = raw_tasks[e.raw].get_ref();
            for o in t.outputs.iter().flatten() {
                let o = substitute_vars(o, &e.vars);
                if let Some(&k) = writers.get(&o) {
                    let span = raw_tasks[e.raw].span();
                    return Err(cx.at(
                        span,
                        format!(
                            "tasks {:?} and {:?} both declare output {o:?}; each file needs one writer",
                            elements[k].name, e.name
                        ),
                    ));
                }
                writers.insert(o, j);
            }
        }
        let mut tasks = Vec::with_capacity(elements.len());
        for (me, e) in elements.iter().enumerate() {
            let t = raw_tasks[e.raw].get_ref();
            let sub = |s: &str| substitute_vars(s, &e.vars);
            let inputs: Vec<String> = t.inputs.iter().flatten().map(|i| sub(i)).collect();
            let outputs: Vec<String> = t.outputs.iter().flatten().map(|o| sub(o)).collect();
            let files = |s: String| crate::dfk::graph::fill_file_placeholders(&s, &inputs, &outputs);
            let mut env: BTreeMap<String, String> = defaults.env.clone().unwrap_or_default();
            env.extend(t.env.clone().unwrap_or_default());
            let env: Vec<(String, String)> = env.into_iter().map(|(k, v)| (k, sub(&v))).collect();
            let cwd = t.cwd.clone().or_else(|| defaults.cwd.clone()).map(|c| sub(&c));
            let command = |program| {
                App::Command(CommandSpec {
                    program,
                    env: env.clone(),
                    cwd: cwd.clone(),
                    stdout: t.stdout.as_deref().map(sub),
                    stderr: t.stderr.as_deref().map(sub),
                })
            };
            let app = if let Some(c) = &t.command {
                command(Program::Shell(files(sub(c.get_ref()))))
            } else if let Some(a) = &t.argv {
                command(Program::Argv(a.get_ref().iter().map(|x| files(sub(x))).collect()))
            } else {
                App::Function(FunctionCall {
                    name: t.function.as_ref().map(|f| f.get_ref().clone()).unwrap_or_default(),
                    args: t.args.as_ref().map(|a| sub(a.get_ref()).into_bytes()).unwrap_or_default(),
                })
            };
            let mut after: Vec<usize> =
                inputs.iter().filter_map(|i| writers.get(i).copied()).filter(|&w| w != me).collect();
            for dep in t.after.iter().flatten() {
                let wanted = sub(dep.get_ref());
                if let Some(&j) = by_full.get(wanted.as_str()) {
                    after.push(j);
                } else if let Some(group) = by_base.get(wanted.as_str()) {
                    after.extend(group.iter().copied());
                } else {
                    return Err(cx.at(
                        dep.span(),
                        format!("task {:?} runs after {wanted:?}, but no task has that name", e.name),
                    ));
                }
            }
            // A dependency named twice (or an array and one of its elements) is still one edge.
            after.sort_unstable();
            after.dedup();
            tasks.push(WorkflowTask {
                name: e.name.clone(),
                spec: TaskSpec {
                    app,
                    walltime_ms: t.walltime.or(defaults.walltime).map(|w| w.0),
                    priority: t.priority.or(defaults.priority).unwrap_or(0),
                    outputs: outputs.clone(),
                    resources: t.resources.unwrap_or_default().or(defaults.resources).into(),
                },
                after,
                retries: t.retries.or(defaults.retries).unwrap_or(0),
                input_files: inputs.clone(),
                hash_inputs: t.hash_inputs.or(defaults.hash_inputs).unwrap_or(false),
            });
        }
        let wf = Workflow { tasks };
        if let Err(stuck) = wf.order() {
            let cycle = wf.one_cycle(&stuck);
            let names: Vec<&str> = cycle.iter().map(|&i| wf.tasks[i].name.as_str()).collect();
            let raw = elements[cycle[0]].raw;
            let span = raw_tasks[raw].get_ref().name.as_ref().map(|n| n.span()).unwrap_or(0..0);
            let message = if let [only] = names.as_slice() {
                format!("dependency cycle: task {only:?} runs after itself; remove it from its `after`")
            } else {
                let mut ring = names.clone();
                ring.push(names[0]);
                format!(
                    "dependency cycle among tasks {} ({}, each after the one before); remove one `after` entry",
                    names.join(", "),
                    ring.join(" -> ")
                )
            };
            return Err(cx.at(span, message));
        }
        Ok(wf)
    }

    /// Submit every task to `dfk`, each after its dependencies; the futures in file order.
    pub fn submit(&self, dfk: &crate::dfk::Dfk) -> Vec<crate::dfk::TaskFuture> {
        use crate::dfk::Call;
        let mut futures: Vec<Option<crate::dfk::TaskFuture>> = vec![None; self.tasks.len()];
        for i in self.topological_order() {
            let t = &self.tasks[i];
            let mut call = Call::app(t.spec.app.clone())
                .named(&t.name)
                .retries(t.retries)
                .priority(t.spec.priority)
                .resources(t.spec.resources);
            call.walltime_ms = t.spec.walltime_ms;
            // File dependencies were resolved when the file was parsed; outputs are still checked.
            call.output_files = t.spec.outputs.clone();
            if t.hash_inputs {
                // Their content joins the memo key (hashed off the DFK's lock when the task is ready).
                call.input_files = t.input_files.clone();
                call = call.hash_inputs(true);
            }
            for &d in &t.after {
                if let Some(f) = &futures[d] {
                    call = call.after(f);
                }
            }
            futures[i] = Some(dfk.submit(call));
        }
        // A topological order visits every task once, so every slot is filled.
        futures.into_iter().flatten().collect()
    }

    /// A launch order in which every task comes after its dependencies (Kahn's algorithm, O(n + e)).
    pub fn topological_order(&self) -> Vec<usize> {
        self.order().unwrap_or_default()
    }

    /// One cycle among `stuck` (the tasks Kahn's algorithm could not release), in run-after
    /// order and starting from its lowest index so the message is stable. O(n + e).
    fn one_cycle(&self, stuck: &[usize]) -> Vec<usize> {
        let n = self.tasks.len();
        let mut is_stuck = vec![false; n];
        for &i in stuck {
            is_stuck[i] = true;
        }
        // Every stuck task waits on at least one stuck task, so walking those waits from any
        // stuck task must revisit one: the walk from that first repeat is a cycle.
        let mut seen_at = vec![usize::MAX; n];
        let mut walk = Vec::new();
        let mut at = stuck.first().copied().unwrap_or(0);
        while seen_at.get(at) == Some(&usize::MAX) {
            seen_at[at] = walk.len();
            walk.push(at);
            match self.tasks[at].after.iter().copied().find(|&d| is_stuck.get(d) == Some(&true)) {
                Some(d) => at = d,
                None => break,
            }
        }
        let from = seen_at.get(at).copied().filter(|&s| s != usize::MAX).unwrap_or(0);
        let mut cycle: Vec<usize> = walk[from..].to_vec();
        // The walk follows "waits on" edges; reverse it so each task runs after the one before.
        cycle.reverse();
        if let Some(min) = cycle.iter().enumerate().min_by_key(|(_, &t)| t).map(|(k, _)| k) {
            cycle.rotate_left(min);
        }
        cycle
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
mod tests;
