//! Checking a configuration file: the raw TOML shapes, then every key of every executor,
//! each error naming the file, the executor, the key and what it accepts.

use super::*;
use crate::launcher_options::{is_interval_secs, is_positive_secs};
use crate::text::line_col;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    executor: Option<Vec<toml::Table>>,
}

/// A number of seconds or an `HH:MM:SS` string, as a walltime may be written.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawTime {
    Seconds(i64),
    Clock(String),
    /// `walltime = 01:00:00` without quotes is a TOML local time.
    Time(toml::value::Datetime),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawExecutor {
    label: Option<String>,
    provider: Option<String>,
    launch: Option<String>,
    nodes_per_block: Option<i64>,
    ranks_per_node: Option<i64>,
    pool_size: Option<i64>,
    steps_per_block: Option<i64>,
    init_blocks: Option<i64>,
    min_blocks: Option<i64>,
    max_blocks: Option<i64>,
    parallelism: Option<f64>,
    walltime: Option<RawTime>,
    max_idletime: Option<f64>,
    drain_margin: Option<f64>,
    strategy_period: Option<f64>,
    block_connect_timeout: Option<f64>,
    worker_init: Option<String>,
    launcher_path: Option<String>,
    python: Option<String>,
    /// Refused with a pointer to `launcher` (it was a list of flags before the table).
    launcher_args: Option<toml::Value>,
    launcher: Option<LauncherOptions>,
    launch_args: Option<Vec<String>>,
    address: Option<String>,
    scheduler: Option<RawScheduler>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawScheduler {
    partition: Option<String>,
    account: Option<String>,
    qos: Option<String>,
    constraint: Option<String>,
    gpus_per_node: Option<i64>,
    exclusive: Option<bool>,
    mpi: Option<String>,
    queue: Option<String>,
    select: Option<String>,
    extra: Option<Vec<String>>,
}

impl Config {
    /// Read and check the configuration file at `path`.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Io { path: path.to_path_buf(), source })?;
        Config::parse(&text, &path.display().to_string())
    }

    /// Parse and check a configuration; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let file_err = |message: String| ConfigError::File { origin: origin.into(), message };
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let msg = e.message().trim_end().to_string();
            match e.span() {
                Some(span) => {
                    let (line, col) = line_col(text, span.start);
                    file_err(format!("{line}:{col}: {msg}"))
                }
                None => file_err(msg),
            }
        })?;
        let tables = raw.executor.unwrap_or_default();
        if tables.is_empty() {
            return Err(file_err("no [[executor]] table: add one with at least label and provider".into()));
        }
        let mut executors: Vec<ExecutorConfig> = vec![];
        for (i, table) in tables.into_iter().enumerate() {
            let e = check_executor(table, i, origin)?;
            if let Some(j) = executors.iter().position(|x| x.label == e.label) {
                return Err(ConfigError::Key {
                    origin: origin.into(),
                    executor: format!("{:?}", e.label),
                    key: "label".into(),
                    message: format!(
                        "label = {:?} is already the label of executor #{}; labels must be unique",
                        e.label,
                        j + 1
                    ),
                });
            }
            executors.push(e);
        }
        Ok(Config { origin: origin.into(), executors })
    }

    /// Check one executor table made in code rather than read from a file (the Python
    /// package's `Dfk.serve`, from a Parsl executor's arguments); `origin` names it in errors.
    pub fn executor_table(table: toml::Table, origin: &str) -> Result<ExecutorConfig, ConfigError> {
        check_executor(table, 0, origin)
    }

    /// The executor labelled `label`, or the first one when `label` is `None`.
    pub fn executor(&self, label: Option<&str>) -> Result<&ExecutorConfig, ConfigError> {
        let found = match label {
            None => self.executors.first(),
            Some(l) => self.executors.iter().find(|e| e.label == l),
        };
        found.ok_or_else(|| ConfigError::NoSuchExecutor {
            origin: self.origin.clone(),
            label: label.unwrap_or_default().into(),
            labels: self.executors.iter().map(|e| e.label.clone()).collect(),
        })
    }
}

/// Errors about one executor, which carry its name.
struct Cx<'a> {
    origin: &'a str,
    executor: String,
}

impl Cx<'_> {
    fn err(&self, key: &str, message: String) -> ConfigError {
        ConfigError::Key { origin: self.origin.into(), executor: self.executor.clone(), key: key.into(), message }
    }

    /// `key = value` must be at least `min` (counts are read as i64 so a negative one gets
    /// this message rather than serde's "expected u32").
    fn count(&self, key: &str, v: Option<i64>, default: u32, min: u32) -> Result<u32, ConfigError> {
        let Some(v) = v else { return Ok(default) };
        if v < min as i64 || v > u32::MAX as i64 {
            return Err(self.err(key, format!("{key} = {v} must be a whole number of at least {min}")));
        }
        Ok(v as u32)
    }

    /// `key = value` in seconds: finite, and positive unless `zero_ok`.
    fn secs(&self, key: &str, v: Option<f64>, default: f64, zero_ok: bool) -> Result<Duration, ConfigError> {
        let s = v.unwrap_or(default);
        let above_floor = if zero_ok { s >= 0.0 } else { s > 0.0 };
        let ok = s.is_finite() && above_floor && s < 1e9;
        if !ok {
            let what = if zero_ok { "zero or more" } else { "more than zero" };
            return Err(self.err(key, format!("{key} = {s} must be a number of seconds, {what}")));
        }
        Ok(Duration::from_secs_f64(s))
    }
}

/// Turn serde's message (`invalid type: ...\nin \`key\``, `unknown field \`x\`, expected ...`)
/// into one naming the key and what is accepted.
fn serde_error(cx: &Cx, e: toml::de::Error) -> ConfigError {
    let text = e.to_string();
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("invalid value").to_string();
    let path = lines.find_map(|l| l.strip_prefix("in `").and_then(|l| l.strip_suffix('`'))).unwrap_or("");
    if let Some(rest) = first.strip_prefix("unknown field `") {
        let name = rest.split('`').next().unwrap_or("");
        let (key, accepted) = match path {
            "" => (name.to_string(), EXECUTOR_KEYS.join(", ")),
            "launcher" => (format!("launcher.{name}"), LAUNCHER_KEYS.join(", ")),
            _ => (format!("{path}.{name}"), SCHEDULER_KEYS.join(", ")),
        };
        if let Some(msg) = (path == "launcher").then(|| own_launcher_option(name)).flatten() {
            return cx.err(&key, msg);
        }
        return cx.err(&key, format!("unknown key {key}; accepted keys: {accepted}"));
    }
    let message = first
        .replace("expected i64", "expected a whole number")
        .replace("expected u32", "expected a whole number of at least 0")
        .replace("expected u64", "expected a whole number of at least 0")
        .replace("expected f64", "expected a number")
        .replace("expected struct LauncherOptions", "expected a table such as launcher = { prefetch = 2 }")
        .replace("expected a sequence", "expected a list of strings");
    let message = if path == "walltime" {
        format!("walltime must be \"HH:MM:SS\" or a whole number of seconds ({message})")
    } else if path.is_empty() {
        message
    } else {
        format!("{path}: {message}")
    };
    cx.err(if path.is_empty() { "executor" } else { path }, message)
}

/// Parse a walltime: `HH:MM:SS` (hours may exceed 24) or whole seconds.
pub fn parse_walltime(s: &str) -> Option<u64> {
    let parts: Vec<&str> = s.trim().split(':').collect();
    let nums: Option<Vec<u64>> = parts
        .iter()
        .map(|p| (!p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())).then(|| p.parse().ok()).flatten())
        .collect();
    match nums?.as_slice() {
        [secs] => Some(*secs),
        [h, m, s] if *m < 60 && *s < 60 => h.checked_mul(3600)?.checked_add(m * 60 + s),
        _ => None,
    }
}

/// Seconds as `HH:MM:SS`, the form Slurm and PBS both take.
pub fn format_walltime(secs: u64) -> String {
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

fn check_label(cx: &Cx, label: Option<String>) -> Result<String, ConfigError> {
    let Some(label) = label else {
        return Err(cx.err("label", "label is missing: every executor needs a unique label".into()));
    };
    let ok = !label.is_empty()
        && label.len() <= 64
        && label.starts_with(|c: char| c.is_ascii_alphanumeric())
        && label.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        return Err(cx.err(
            "label",
            format!(
                "label = {label:?} must be 1 to 64 letters, digits, '-', '_' or '.', starting with a letter or \
                 digit (it names block ids, job names and files)"
            ),
        ));
    }
    Ok(label)
}

fn check_executor(table: toml::Table, index: usize, origin: &str) -> Result<ExecutorConfig, ConfigError> {
    // Name the executor by its label in every error, even one about another key's type.
    let executor = match table.get("label").and_then(toml::Value::as_str) {
        Some(l) if !l.is_empty() => format!("{l:?}"),
        _ => format!("#{}", index + 1),
    };
    let cx = Cx { origin, executor };
    let raw = RawExecutor::deserialize(toml::Value::Table(table)).map_err(|e| serde_error(&cx, e))?;
    let label = check_label(&cx, raw.label)?;

    let provider_name = raw.provider.ok_or_else(|| {
        cx.err("provider", format!("provider is missing; accepted values: {}", PROVIDER_NAMES.join(", ")))
    })?;
    let provider = ProviderKind::parse(&provider_name).ok_or_else(|| {
        cx.err("provider", format!("provider = {provider_name:?} is not one of {}", PROVIDER_NAMES.join(", ")))
    })?;
    let launch = match &raw.launch {
        None => provider.default_launch(),
        Some(l) => LaunchKind::parse(l)
            .ok_or_else(|| cx.err("launch", format!("launch = {l:?} is not one of {}", LAUNCH_NAMES.join(", "))))?,
    };
    let allowed: &[ProviderKind] = match launch {
        // With local: each block an srun job step of the allocation strand runs in.
        LaunchKind::Srun => &[ProviderKind::Slurm, ProviderKind::Local],
        LaunchKind::Aprun => &[ProviderKind::Pbs, ProviderKind::Slurm],
        _ => &[ProviderKind::Local, ProviderKind::Slurm, ProviderKind::Pbs],
    };
    if !allowed.contains(&provider) {
        let names: Vec<&str> = allowed.iter().map(|p| p.name()).collect();
        return Err(cx.err(
            "launch",
            format!(
                "launch = {:?} does not work with provider = {:?} (it needs provider {})",
                launch.name(),
                provider.name(),
                names.join(" or ")
            ),
        ));
    }

    let local = provider == ProviderKind::Local;
    // Local job steps run on the allocation's nodes: shaped, addressed and timed as remote blocks.
    let job_steps = local && launch == LaunchKind::Srun;
    let this_machine = local && !job_steps;
    let nodes_per_block = cx.count("nodes_per_block", raw.nodes_per_block, 1, 1)?;
    if this_machine && nodes_per_block != 1 {
        return Err(cx.err(
            "nodes_per_block",
            format!(
                "nodes_per_block = {nodes_per_block}: provider = \"local\" runs a block on this machine, so it must be \
                 1 (or launch = \"srun\", to run blocks as job steps of the Slurm allocation strand runs in)"
            ),
        ));
    }
    if launch == LaunchKind::Simple && nodes_per_block != 1 {
        return Err(cx.err(
            "nodes_per_block",
            format!(
                "nodes_per_block = {nodes_per_block}: launch = \"simple\" starts one launcher process, so it must be 1"
            ),
        ));
    }
    let default_ranks = match (launch, provider) {
        (LaunchKind::Simple, _) => 1,
        // As `strand run` without a config: a manager plus one worker rank per core.
        (_, ProviderKind::Local) if this_machine => local_cores() + 1,
        // One rank per node owning the node (set launcher.local_slots, or more ranks).
        _ => 1,
    };
    let ranks_per_node = cx.count("ranks_per_node", raw.ranks_per_node, default_ranks, 1)?;
    if launch == LaunchKind::Simple && ranks_per_node != 1 {
        return Err(cx.err(
            "ranks_per_node",
            format!(
                "ranks_per_node = {ranks_per_node}: launch = \"simple\" starts one launcher process, so it must be 1"
            ),
        ));
    }
    let pool_size = raw.pool_size.map(|p| cx.count("pool_size", Some(p), 1, 1)).transpose()?;
    let steps_per_block = cx.count("steps_per_block", raw.steps_per_block, 1, 1)?;
    if steps_per_block > MAX_STEPS {
        return Err(cx.err(
            "steps_per_block",
            format!("steps_per_block = {steps_per_block} is more than {MAX_STEPS} concurrent job steps"),
        ));
    }
    if steps_per_block > 1 && job_steps {
        return Err(cx.err(
            "steps_per_block",
            format!(
                "steps_per_block = {steps_per_block}: with provider = \"local\" every block is already one job step \
                 of the allocation, so it must be 1 (more blocks give more fault domains)"
            ),
        ));
    }
    if steps_per_block > 1 && launch != LaunchKind::Srun {
        return Err(cx.err(
            "steps_per_block",
            format!(
                "steps_per_block = {steps_per_block} needs launch = \"srun\" (concurrent Slurm job steps); with launch \
                 = {:?} a block is one MPI job, so it must be 1",
                launch.name()
            ),
        ));
    }
    let ranks = nodes_per_block as u64 * ranks_per_node as u64;
    if steps_per_block as u64 > ranks || step_layout(nodes_per_block, ranks_per_node, steps_per_block).is_none() {
        return Err(cx.err(
            "steps_per_block",
            format!(
                "steps_per_block = {steps_per_block} is more than the block's {} ranks ({nodes_per_block} nodes x \
                 {ranks_per_node} ranks_per_node): every step needs at least one rank",
                ranks
            ),
        ));
    }

    let init_blocks = cx.count("init_blocks", raw.init_blocks, 1, 0)?;
    let min_blocks = cx.count("min_blocks", raw.min_blocks, 0, 0)?;
    let max_blocks = cx.count("max_blocks", raw.max_blocks, 1, 1)?;
    if min_blocks > max_blocks {
        return Err(
            cx.err("min_blocks", format!("min_blocks = {min_blocks} must not exceed max_blocks = {max_blocks}"))
        );
    }
    if init_blocks > max_blocks {
        return Err(
            cx.err("init_blocks", format!("init_blocks = {init_blocks} must not exceed max_blocks = {max_blocks}"))
        );
    }
    let parallelism = raw.parallelism.unwrap_or(1.0);
    if !(0.0..=1.0).contains(&parallelism) {
        return Err(cx.err("parallelism", format!("parallelism = {parallelism} must be between 0 and 1")));
    }

    let walltime_s = match &raw.walltime {
        None if local => Some(0),
        None => Some(3600),
        Some(RawTime::Seconds(s)) => u64::try_from(*s).ok(),
        Some(RawTime::Clock(c)) => parse_walltime(c),
        Some(RawTime::Time(t)) => match (t.date, t.time, t.offset) {
            (None, Some(t), None) => Some(t.hour as u64 * 3600 + t.minute as u64 * 60 + t.second as u64),
            _ => None,
        },
    };
    let Some(walltime_s) = walltime_s else {
        let shown = match &raw.walltime {
            Some(RawTime::Seconds(s)) => s.to_string(),
            Some(RawTime::Clock(c)) => format!("{c:?}"),
            Some(RawTime::Time(t)) => t.to_string(),
            None => String::new(),
        };
        return Err(cx.err(
            "walltime",
            format!("walltime = {shown} must be \"HH:MM:SS\" (minutes and seconds below 60) or whole seconds"),
        ));
    };
    if walltime_s == 0 && !local {
        return Err(cx.err(
            "walltime",
            format!("walltime = 0: provider = {:?} needs a walltime (\"HH:MM:SS\" or seconds)", provider.name()),
        ));
    }
    let max_idletime = cx.secs("max_idletime", raw.max_idletime, 120.0, true)?;
    // A quarter of a short walltime, so a test block of a minute still runs before it drains.
    let default_margin = (walltime_s / 4).min(300) as f64;
    let drain_margin = cx.secs("drain_margin", raw.drain_margin, default_margin, true)?;
    let drain_margin_s = drain_margin.as_secs_f64().ceil() as u64;
    if walltime_s > 0 && drain_margin_s >= walltime_s {
        return Err(cx.err(
            "drain_margin",
            format!(
                "drain_margin = {drain_margin_s} must be less than the walltime ({walltime_s} s), or the block drains as \
                 soon as it starts"
            ),
        ));
    }
    let strategy_period = cx.secs("strategy_period", raw.strategy_period, 5.0, false)?;
    // A job step may wait for nodes that other blocks' steps still hold.
    let connect_default = if this_machine { 60.0 } else { 600.0 };
    let block_connect_timeout = cx.secs("block_connect_timeout", raw.block_connect_timeout, connect_default, false)?;

    let launcher_path = match raw.launcher_path {
        Some(p) if p.trim().is_empty() => {
            return Err(cx.err("launcher_path", "launcher_path = \"\" must name the strand-launcher binary".into()))
        }
        Some(p) => p,
        // The one built next to `strand` on this machine; on a cluster, the one in PATH there.
        None if local => crate::process::sibling_binary("strand-launcher").display().to_string(),
        None => "strand-launcher".into(),
    };
    let python = match raw.python {
        // A relative path would be looked up from each worker's directory, which is not ours.
        Some(p) if p.trim().is_empty() || (p.contains('/') && !p.starts_with('/')) => {
            return Err(cx.err(
                "python",
                format!("python = {p:?}: expected an absolute path, or a command name on the nodes' PATH"),
            ))
        }
        p => p,
    };
    if raw.launcher_args.is_some() {
        let message = format!(
            "launcher_args is now the [executor.launcher] table, one key per launcher flag: write launcher = {{ \
             prefetch = 2 }} for [\"--prefetch\", \"2\"] (keys: {})",
            LAUNCHER_KEYS.join(", ")
        );
        return Err(cx.err("launcher_args", message));
    }
    let launcher = check_launcher(&cx, raw.launcher.unwrap_or_default())?;
    let address = match raw.address {
        Some(a) if a.trim().is_empty() => {
            return Err(cx.err("address", "address = \"\" must be an IP address or a host name".into()))
        }
        Some(a) => a,
        None if this_machine => "127.0.0.1".into(),
        None => crate::host::hostname(),
    };

    let scheduler = check_scheduler(&cx, raw.scheduler.unwrap_or_default(), provider, launch)?;
    Ok(ExecutorConfig {
        label,
        provider,
        launch,
        nodes_per_block,
        ranks_per_node,
        pool_size,
        steps_per_block,
        strategy: StrategyParams {
            init_blocks,
            min_blocks,
            max_blocks,
            parallelism,
            max_idletime,
            block_connect_timeout,
            period: strategy_period,
        },
        walltime_s,
        drain_margin_s,
        worker_init: raw.worker_init.unwrap_or_default(),
        launcher_path,
        python,
        launcher,
        launch_args: raw.launch_args.unwrap_or_default(),
        address,
        scheduler,
    })
}

/// Launcher options the executor sets itself, and where from; `[executor.launcher]` may not
/// set them. (Its `gpus_per_node` may: for GPUs the scheduler is not asked for, as on Polaris.)
const OWN_LAUNCHER_OPTIONS: [(&str, &str); 5] = [
    ("connection", "the run's connection file"),
    ("block_id", "the block id"),
    ("pool_size", "pool_size"),
    ("walltime", "walltime"),
    ("drain_margin", "drain_margin"),
];

/// The message for `launcher.KEY` that Strand sets itself, if `key` is one.
fn own_launcher_option(key: &str) -> Option<String> {
    let (_, from) = OWN_LAUNCHER_OPTIONS.iter().find(|(k, _)| *k == key)?;
    Some(format!("launcher.{key} may not be set: Strand sets it from {from}"))
}

fn check_launcher(cx: &Cx, o: LauncherOptions) -> Result<LauncherOptions, ConfigError> {
    let owned = [
        ("pool_size", o.pool_size.is_some()),
        ("walltime", o.walltime.is_some()),
        ("drain_margin", o.drain_margin.is_some()),
    ];
    for (key, _) in owned.iter().filter(|(_, set)| *set) {
        if let Some(msg) = own_launcher_option(key) {
            return Err(cx.err(&format!("launcher.{key}"), msg));
        }
    }
    for (key, v) in [("slots_per_worker", o.slots_per_worker), ("local_slots", o.local_slots)] {
        if v == Some(0) {
            return Err(
                cx.err(&format!("launcher.{key}"), format!("launcher.{key} = 0 must be a whole number of at least 1"))
            );
        }
    }
    for (key, v) in [("worker_heartbeat", o.worker_heartbeat), ("worker_threshold", o.worker_threshold)] {
        if let Some(v) = v.filter(|v| !is_positive_secs(*v)) {
            return Err(cx.err(
                &format!("launcher.{key}"),
                format!("launcher.{key} = {v} must be a number of seconds, more than zero"),
            ));
        }
    }
    if let Some(v) = o.resource_interval.filter(|v| !is_interval_secs(*v)) {
        return Err(cx.err(
            "launcher.resource_interval",
            format!("launcher.resource_interval = {v} must be a number of seconds: 0 (off) or more"),
        ));
    }
    Ok(o)
}

fn check_scheduler(
    cx: &Cx,
    raw: RawScheduler,
    provider: ProviderKind,
    launch: LaunchKind,
) -> Result<SchedulerOptions, ConfigError> {
    use ProviderKind::{Local, Pbs, Slurm};
    // A key the chosen provider would ignore is an error, not a silent no-op.
    let checks: [(&str, bool, &[ProviderKind]); 9] = [
        ("partition", raw.partition.is_some(), &[Slurm]),
        ("qos", raw.qos.is_some(), &[Slurm]),
        ("constraint", raw.constraint.is_some(), &[Slurm]),
        ("account", raw.account.is_some(), &[Slurm, Pbs]),
        ("exclusive", raw.exclusive.is_some(), &[Slurm, Pbs]),
        ("queue", raw.queue.is_some(), &[Pbs]),
        ("select", raw.select.is_some(), &[Pbs]),
        ("extra", raw.extra.is_some(), &[Slurm, Pbs]),
        ("gpus_per_node", raw.gpus_per_node.is_some(), &[Local, Slurm, Pbs]),
    ];
    for (key, set, providers) in checks {
        if set && !providers.contains(&provider) {
            let names: Vec<&str> = providers.iter().map(|p| p.name()).collect();
            return Err(cx.err(
                &format!("scheduler.{key}"),
                format!(
                    "scheduler.{key} has no effect with provider = {:?}; it is for provider {}",
                    provider.name(),
                    names.join(" or ")
                ),
            ));
        }
    }
    if raw.mpi.is_some() && launch != LaunchKind::Srun {
        return Err(cx.err(
            "scheduler.mpi",
            format!("scheduler.mpi is the srun --mpi plugin: it has no effect with launch = {:?}", launch.name()),
        ));
    }
    let gpus_per_node = raw.gpus_per_node.map(|g| cx.count("scheduler.gpus_per_node", Some(g), 0, 0)).transpose()?;
    let mpi = raw.mpi.unwrap_or_else(|| "pmix".into());
    if mpi.is_empty() || !mpi.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-')) {
        return Err(cx.err(
            "scheduler.mpi",
            format!("scheduler.mpi = {mpi:?} must be an srun --mpi plugin name such as pmix, pmi2 or cray_shasta"),
        ));
    }
    for (key, v) in [("partition", &raw.partition), ("account", &raw.account), ("qos", &raw.qos), ("queue", &raw.queue)]
    {
        if let Some(v) = v {
            if v.is_empty() || v.chars().any(char::is_whitespace) {
                return Err(cx.err(&format!("scheduler.{key}"), format!("scheduler.{key} = {v:?} must be one word")));
            }
        }
    }
    for (key, v) in [("constraint", &raw.constraint), ("select", &raw.select)] {
        if let Some(v) = v {
            if v.is_empty() || v.contains('\n') {
                return Err(cx.err(&format!("scheduler.{key}"), format!("scheduler.{key} = {v:?} must be one line")));
            }
        }
    }
    let extra = raw.extra.unwrap_or_default();
    if let Some(bad) = extra.iter().find(|e| e.trim().is_empty() || e.contains('\n')) {
        return Err(cx.err(
            "scheduler.extra",
            format!("scheduler.extra: {bad:?} must be one directive on one line, e.g. \"--mail-type=END\""),
        ));
    }
    Ok(SchedulerOptions {
        partition: raw.partition,
        account: raw.account,
        qos: raw.qos,
        constraint: raw.constraint,
        gpus_per_node,
        exclusive: raw.exclusive.unwrap_or(false),
        mpi,
        queue: raw.queue,
        select: raw.select,
        extra,
    })
}

/// Cores of this machine (the local provider's default ranks).
pub(super) fn local_cores() -> u32 {
    std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1)
}
