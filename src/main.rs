//! `strand`: the login-node CLI (interchange, run, submit, status, bench).

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use strand::client::Client;
use strand::connection::ConnectionInfo;
use strand::dfk::{Call, Dfk, DfkConfig, TaskFuture};
use strand::interchange::{DispatchConfig, Interchange, InterchangeConfig};
use strand::local::{LocalOptions, LocalRun};
use strand::task::{App, CommandSpec, ManagerId, Program};
use strand::wire::{ClientMsg, ManagerMode, ToClientMsg};
use strand::workflow::Workflow;

#[derive(Parser)]
#[command(name = "strand", version, about = "Strand: an MPI-native many-task launcher for HPC")]
struct Cli {
    /// More logging (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the interchange: bind ports, write RUN_DIR/connection.json (0600), broker tasks until stopped.
    Interchange(InterchangeArgs),
    /// Run a TOML workflow file; without --connection, start an interchange and a local block first.
    Run(RunArgs),
    /// Run one command (or function) and print its result.
    Submit(SubmitArgs),
    /// Run a command template over many arguments (GNU parallel style), or tasks from JSON lines.
    Map(MapArgs),
    /// Show a run directory's tasks (after or during a run), or a live interchange (--connection).
    Status(StatusArgs),
    /// Benchmarks through the whole path; each prints one JSON line.
    Bench(BenchArgs),
}

#[derive(Args)]
struct InterchangeArgs {
    /// Run directory for the connection file.
    #[arg(long, value_name = "DIR")]
    run_dir: PathBuf,
    /// Address to bind and advertise (an IP or a name that resolves to this host). Default: this host's name.
    #[arg(long, value_name = "ADDR")]
    address: Option<String>,
    /// Port for clients (0: any free port).
    #[arg(long, default_value_t = 0)]
    client_port: u16,
    /// Port for managers (0: any free port).
    #[arg(long, default_value_t = 0)]
    manager_port: u16,
    /// Seconds between manager heartbeats (fractions allowed).
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
    heartbeat_period: f64,
    /// Seconds of silence after which a manager is lost (its tries fail as ManagerLost).
    #[arg(long, default_value_t = 120.0, value_name = "SECONDS")]
    heartbeat_threshold: f64,
    /// Seconds of silence after which a client (a DFK) is gone: its queued tries are dropped
    /// so no one runs work nobody will read. Clients with tries out ping every 30 s.
    #[arg(long, default_value_t = 300.0, value_name = "SECONDS")]
    client_timeout: f64,
    /// Most tries queued; submissions beyond are refused and the client waits.
    #[arg(long, default_value_t = 1_000_000)]
    max_queue: usize,
    /// Restart on RUN_DIR after a crash: reuse its connection file (key, ports) so launchers
    /// re-register and clients resubmit what the old interchange held.
    #[arg(long)]
    resume: bool,
    /// Managers you expect to connect; the open-file limit is raised (and checked) for this many.
    #[arg(long, default_value_t = 4096)]
    max_managers: u64,
}

/// Where the tasks go: an existing interchange, or a local one started for this command.
#[derive(Args, Clone)]
struct Target {
    /// Connection file of a running interchange. Without it, a local interchange and block are started.
    #[arg(long, value_name = "FILE")]
    connection: Option<PathBuf>,
    /// Worker ranks of the local block (default: one per core).
    #[arg(long, value_name = "N")]
    workers: Option<u32>,
    /// Tries each local worker holds beyond the one it runs [default: 1 for run, 64 for bench].
    #[arg(long, value_name = "N")]
    prefetch: Option<u32>,
    /// Run directory of the local interchange and block (default: runs/<time>-<pid>).
    #[arg(long, value_name = "DIR")]
    run_dir: Option<PathBuf>,
    /// The strand-launcher binary for the local block (default: next to `strand`).
    #[arg(long, value_name = "PATH")]
    launcher: Option<PathBuf>,
    /// Executor configuration (TOML; see docs/executors.md): start an interchange here and let
    /// the strategy submit blocks through the executor's provider, instead of one local block.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["connection", "workers"])]
    config: Option<PathBuf>,
    /// The executor of --config to use, by label (default: the first in the file).
    #[arg(long, value_name = "LABEL", requires = "config")]
    executor: Option<String>,
}

#[derive(Args)]
struct RunArgs {
    /// The workflow file (TOML; see examples/hello.toml).
    workflow: PathBuf,
    #[command(flatten)]
    target: Target,
    /// Give up (exit 3) if the workflow has not finished after this many seconds.
    #[arg(long, value_name = "SECONDS")]
    timeout: Option<f64>,
    /// When completed tasks reach RUN_DIR/checkpoint.jsonl: task-exit, at-exit, or periodic:SECONDS.
    #[arg(long, default_value = "task-exit", value_name = "MODE")]
    checkpoint: strand::dfk::memo::CheckpointMode,
}

#[derive(Args)]
struct SubmitArgs {
    /// Connection file of a running interchange.
    #[arg(long, value_name = "FILE")]
    connection: PathBuf,
    /// Walltime in seconds.
    #[arg(long, value_name = "SECONDS")]
    walltime: Option<f64>,
    /// Run a registered function instead of a command; the trailing words are its argument.
    #[arg(long, value_name = "NAME")]
    function: Option<String>,
    /// Run the words as one string under /bin/sh -c instead of as argv.
    #[arg(long)]
    shell: bool,
    /// The command and its arguments (after --).
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<String>,
}

#[derive(Args)]
#[command(after_help = "Examples:\n  \
strand map 'gzip -9 {}' ::: a.txt b.txt c.txt\n  \
strand map 'convert {} {.}.png' --from images.txt     (one argument a line)\n  \
strand map --from commands.txt                         (one command a line)\n  \
python tasks.py | strand map --json                    (JSON lines in and out)\n\n\
Placeholders: {} argument, {.} without extension, {/} base name, {//} directory, {#} task number.\n\
JSON lines: {\"name\": \"t1\", \"command\": \"...\"} or \"argv\": [...] or \"function\": \"echo\", \"args\": \"...\";\n\
optional walltime (s), retries, priority, env, cwd. Output: {\"name\", \"ok\", \"stdout\" | \"error\"} per task as it ends.")]
struct MapArgs {
    /// Read arguments (with a TEMPLATE) or whole commands (without) one a line, or JSON lines with --json; `-` is stdin.
    #[arg(long, value_name = "FILE")]
    from: Option<PathBuf>,
    /// Tasks are JSON lines (from --from, default stdin); results are printed as JSON lines.
    #[arg(long)]
    json: bool,
    /// Walltime of each task in seconds.
    #[arg(long, value_name = "SECONDS")]
    walltime: Option<f64>,
    /// Extra tries after a failure.
    #[arg(long, default_value_t = 0)]
    retries: u32,
    #[command(flatten)]
    target: Target,
    /// The command template, then `:::` and the arguments (options go before the template).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "TEMPLATE [::: ARG...]")]
    words: Vec<String>,
}

#[derive(Args)]
struct StatusArgs {
    /// A run directory of `strand run` / `strand map`: summarize its tasks from events.jsonl.
    #[arg(value_name = "RUN_DIR", required_unless_present = "connection", conflicts_with = "connection")]
    run_dir: Option<PathBuf>,
    /// Connection file of a running interchange: its queue and managers.
    #[arg(long, value_name = "FILE")]
    connection: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Hold a manager: it gets no new tasks and keeps what it has (see MANAGER column).
    #[arg(long, value_name = "MANAGER", group = "command")]
    hold: Option<String>,
    /// Release a held manager.
    #[arg(long, value_name = "MANAGER", group = "command")]
    release: Option<String>,
    /// Drain a manager: no new tasks; it is stopped once it has finished what it holds.
    #[arg(long, value_name = "MANAGER", group = "command")]
    drain: Option<String>,
    /// Stop every manager and the interchange.
    #[arg(long, group = "command")]
    shutdown: bool,
}

/// Parse a manager id as `strand status` prints it (`manager-<16 hex digits>`) or bare hex.
fn parse_manager(s: &str) -> Result<ManagerId> {
    let hex = s.strip_prefix("manager-").unwrap_or(s);
    u64::from_str_radix(hex, 16).map(ManagerId).map_err(|_| {
        anyhow::anyhow!("{s:?} is not a manager id; expected manager-<16 hex digits> as `strand status` shows")
    })
}

#[derive(Args)]
struct BenchArgs {
    #[command(subcommand)]
    which: BenchKind,
}

#[derive(Subcommand)]
enum BenchKind {
    /// No-op tasks per second, all submitted at once.
    Throughput {
        /// Number of tasks.
        #[arg(long, default_value_t = 20_000)]
        tasks: u64,
        #[command(flatten)]
        target: Target,
    },
    /// Round trip of one no-op task at a time (mean, p50, p99 in microseconds).
    Latency {
        /// Number of tasks.
        #[arg(long, default_value_t = 1_000)]
        tasks: u64,
        #[command(flatten)]
        target: Target,
    },
    /// Per-link overhead of a chain of no-op tasks, each waiting for the previous one.
    Chain {
        /// Links in the chain.
        #[arg(long, default_value_t = 1000)]
        depth: u64,
        #[command(flatten)]
        target: Target,
    },
    /// A million no-op tasks streamed through the whole path, with at most --window in flight;
    /// the driver's and the interchange's resident memory sampled every --sample-every tasks.
    Load {
        /// Number of tasks.
        #[arg(long, default_value_t = 1_000_000)]
        tasks: u64,
        /// Most tasks in flight (submitted, not yet ended) at a time.
        #[arg(long, default_value_t = 100_000)]
        window: u64,
        /// Tasks between memory samples.
        #[arg(long, default_value_t = 100_000)]
        sample_every: u64,
        #[command(flatten)]
        target: Target,
    },
    /// Memory of the DFK (this process) and the interchange with N tasks pending and no workers.
    Memory {
        /// Tasks to submit.
        #[arg(long, default_value_t = 1_000_000)]
        tasks: u64,
        /// The interchange's queue limit (past it, it refuses and the DFK holds the rest).
        #[arg(long, default_value_t = 100_000)]
        max_queue: u64,
    },
    /// The Parsl paper's elasticity experiment, scaled down: stages of 20, 1, 20, 1 tasks of
    /// 10, 10, 5, 5 s on local blocks, static and elastic; makespan and worker utilization.
    Elasticity {
        /// Run only the elastic configuration.
        #[arg(long, conflicts_with = "static_only")]
        elastic_only: bool,
        /// Run only the static configuration.
        #[arg(long)]
        static_only: bool,
        /// Multiply every task's duration (e.g. 0.2 for a quick check, 6 for minute-long tasks).
        #[arg(long, default_value_t = 1.0, value_name = "X")]
        time_scale: f64,
        /// Seconds between strategy rounds.
        #[arg(long, default_value_t = 0.1, value_name = "SECONDS")]
        period: f64,
        /// Seconds a block must be idle before it is scaled in.
        #[arg(long, default_value_t = 0.2, value_name = "SECONDS")]
        max_idletime: f64,
        /// Run directory (default: a fresh one under runs/).
        #[arg(long, value_name = "DIR")]
        run_dir: Option<PathBuf>,
    },
    /// The interchange alone: simulated managers (no MPI) answer every task at once.
    Sim {
        /// Simulated managers (each a real ZeroMQ connection).
        #[arg(long, default_value_t = 64)]
        managers: usize,
        /// Workers (task slots) each simulated manager advertises.
        #[arg(long, default_value_t = 128)]
        workers_per_manager: u32,
        /// Number of no-op tasks.
        #[arg(long, default_value_t = 100_000)]
        tasks: u64,
        /// Run directory of the interchange (default: a fresh one under runs/).
        #[arg(long, value_name = "DIR")]
        run_dir: Option<PathBuf>,
        /// Pin the interchange to CPU 0 and this process (client and simulator) to the other CPUs.
        #[arg(long)]
        pin: bool,
    },
}

fn main() {
    let cli = Cli::parse();
    let code = match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("strand: error: {}", error_chain(&e));
            2
        }
    };
    std::process::exit(code);
}

/// The error and its causes, each said once (our error types already name their source).
fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

fn dispatch(cli: Cli) -> Result<i32> {
    match cli.cmd {
        Cmd::Interchange(a) => interchange(a, cli.verbose),
        Cmd::Run(a) => run(a),
        Cmd::Submit(a) => submit(a),
        Cmd::Map(a) => map(a),
        Cmd::Status(a) => status(a),
        Cmd::Bench(a) => bench(a),
    }
}

fn seconds(what: &str, s: f64) -> Result<Duration> {
    if !(s.is_finite() && s > 0.0) {
        bail!("{what} must be a positive number of seconds, got {s}");
    }
    Ok(Duration::from_secs_f64(s))
}

/// The address to bind when none is given: this host's name, resolved, so that compute nodes can reach it.
fn default_address() -> String {
    use std::net::ToSocketAddrs;
    let host = strand::host::hostname();
    match (host.as_str(), 0).to_socket_addrs().ok().and_then(|mut a| a.find(|a| a.is_ipv4())) {
        Some(a) => a.ip().to_string(),
        None => "127.0.0.1".into(),
    }
}

fn interchange(a: InterchangeArgs, verbose: u8) -> Result<i32> {
    let log = strand::log::stderr_logger(strand::log::level(verbose, false));
    // One socket per manager and client, plus ZeroMQ's own descriptors.
    let need = a.max_managers + 256;
    match strand::host::raise_fd_limit(need, &format!("{} managers", a.max_managers)) {
        Ok(n) => slog::debug!(log, "open-file limit"; "limit" => n),
        Err(e) => slog::warn!(log, "{}", e),
    }
    let cfg = InterchangeConfig {
        run_dir: a.run_dir,
        address: a.address.unwrap_or_else(default_address),
        client_port: a.client_port,
        manager_port: a.manager_port,
        heartbeat_period: seconds("--heartbeat-period", a.heartbeat_period)?,
        dispatch: DispatchConfig {
            heartbeat_threshold: seconds("--heartbeat-threshold", a.heartbeat_threshold)?,
            max_queue: a.max_queue,
            client_timeout: seconds("--client-timeout", a.client_timeout)?,
            ..DispatchConfig::default()
        },
        resume: a.resume,
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("installing signal handlers")?;
    }
    let ix = Interchange::bind(cfg, log.clone())?;
    ix.serve(stop)?;
    drop(log);
    Ok(0)
}

/// A connection to tasks' destination, with the local run kept alive as long as it is needed.
struct Session {
    conn: ConnectionInfo,
    local: Option<LocalRun>,
    workers: u32,
    /// Run directory: the local block's files and the checkpoint.
    run_dir: PathBuf,
    /// With `--config`: the interchange started here and the scaler that submits its blocks.
    scaled: Option<Scaled>,
}

/// What `--config` starts: an interchange here, and the scaler submitting the executor's blocks.
struct Scaled {
    interchange: strand::local::LocalInterchange,
    scaler: strand::executor::scaler::Scaler,
    /// The executor (what benchmarks wait for).
    executor: strand::executor::config::ExecutorConfig,
}

impl Session {
    /// `default_prefetch`: deep for benchmarks of no-op tasks, shallow for real work.
    fn open(t: &Target, default_prefetch: u32) -> Result<Session> {
        if let Some(config) = &t.config {
            return Session::open_config(t, config, t.executor.as_deref(), default_prefetch);
        }
        let run_dir = t.run_dir.clone().unwrap_or_else(default_run_dir);
        if let Some(path) = &t.connection {
            let conn = ConnectionInfo::load(path)?;
            std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
            return Ok(Session { conn, local: None, workers: t.workers.unwrap_or(0), run_dir, scaled: None });
        }
        let mut opts = LocalOptions::new(run_dir.clone());
        if let Some(w) = t.workers {
            if w == 0 {
                bail!("--workers must be at least 1");
            }
            opts.workers = w;
        }
        opts.prefetch = t.prefetch.unwrap_or(default_prefetch);
        if let Some(l) = &t.launcher {
            opts.launcher = l.clone();
        }
        let local = LocalRun::start(&opts).context("starting the local interchange and block")?;
        let got = local.wait_for_managers(1, Duration::from_secs(60));
        if got == 0 {
            bail!("the local block did not register within 60 s; see {}/block-local-0.log", opts.run_dir.display());
        }
        Ok(Session { conn: local.conn.clone(), local: Some(local), workers: opts.workers, run_dir, scaled: None })
    }

    /// An interchange here with no block of its own; executor `label` of the `config` file
    /// submits blocks to it through its provider as the strategy asks.
    fn open_config(
        t: &Target,
        config: &std::path::Path,
        label: Option<&str>,
        default_prefetch: u32,
    ) -> Result<Session> {
        use strand::executor::config::{Config, ProviderKind};
        // Parse before starting anything: a bad file must not leave processes behind.
        let file = Config::from_file(config)?;
        let mut exe = file.executor(label)?.clone();
        if let Some(l) = &t.launcher {
            exe.launcher_path = l.display().to_string();
        }
        // --prefetch on the command line wins over launcher_args; a benchmark's deeper default
        // applies only when the config says nothing.
        let says_prefetch = exe.launcher_args.iter().any(|a| a == "--prefetch" || a.starts_with("--prefetch="));
        if let Some(p) = t.prefetch.or((!says_prefetch && default_prefetch != 1).then_some(default_prefetch)) {
            remove_option(&mut exe.launcher_args, "--prefetch");
            exe.launcher_args.extend(["--prefetch".to_string(), p.to_string()]);
        }
        if exe.provider == ProviderKind::Local && !std::path::Path::new(&exe.launcher_path).is_file() {
            bail!(
                "{}: executor {:?}: launcher_path = {:?} is not a file (build it with `cargo build --release \
                 --workspace`, or pass --launcher PATH)",
                file.origin,
                exe.label,
                exe.launcher_path
            );
        }
        let run_dir = t.run_dir.clone().unwrap_or_else(default_run_dir);
        std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
        // Block scripts run in another directory, maybe on another node: their paths are absolute.
        let run_dir = std::fs::canonicalize(&run_dir).with_context(|| format!("resolving {}", run_dir.display()))?;
        let mut opts = LocalOptions::new(run_dir.clone());
        opts.address = exe.address.clone();
        if exe.provider != ProviderKind::Local {
            // Blocks on compute nodes: the interchange's own heartbeat defaults, not the local ones.
            opts.interchange_args.clear();
        }
        let ix = strand::local::LocalInterchange::start(&opts).context("starting the interchange")?;
        let conn_file = run_dir.join(strand::connection::CONNECTION_FILE);
        let scaler =
            strand::executor::scaler::Scaler::start(&ix.conn, exe.provider(), exe.scaler_config(&run_dir, &conn_file));
        eprintln!(
            "strand: executor {} ({} blocks of {} node(s), {}): blocks are listed by `strand status {}`",
            exe.label,
            exe.provider.name(),
            exe.nodes_per_block,
            exe.launch.name(),
            run_dir.display()
        );
        Ok(Session {
            conn: ix.conn.clone(),
            local: None,
            workers: exe.slots_per_block(),
            run_dir,
            scaled: Some(Scaled { interchange: ix, scaler, executor: exe }),
        })
    }

    /// Benchmarks measure warm blocks: with `--config`, wait until each of the executor's
    /// `init_blocks` has a registered manager (bounded by its `block_connect_timeout`).
    fn wait_warm(&self) -> Result<()> {
        let Some(Scaled { executor: exe, .. }) = &self.scaled else { return Ok(()) };
        if exe.init_blocks == 0 {
            bail!(
                "executor {:?} has init_blocks = 0: a benchmark measures warm blocks, so set init_blocks to the \
                 number of blocks to measure",
                exe.label
            );
        }
        let mut client = Client::connect(&self.conn)?;
        let deadline = std::time::Instant::now() + exe.block_connect_timeout + exe.strategy_period * 2;
        loop {
            let blocks: std::collections::HashSet<String> = client
                .status(Duration::from_secs(10))
                .map(|s| s.managers.into_iter().map(|m| m.block.0).collect())
                .unwrap_or_default();
            if blocks.len() >= exe.init_blocks as usize {
                return Ok(());
            }
            if let Some(why) = self.failure() {
                bail!("{why}");
            }
            if std::time::Instant::now() >= deadline {
                bail!(
                    "{} of executor {:?}'s {} initial blocks connected within {:?}; see {}",
                    blocks.len(),
                    exe.label,
                    exe.init_blocks,
                    exe.block_connect_timeout,
                    self.run_dir.display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Why the run cannot go on: the scaler gave up (every block failed, none ever connected).
    fn failure(&self) -> Option<String> {
        let why = self.scaled.as_ref().and_then(|s| s.scaler.state().error)?;
        Some(format!("{why}; the block scripts and their output are in {}", self.run_dir.display()))
    }

    fn close(self) {
        if let Some(l) = self.local {
            l.stop(Duration::from_secs(20));
        }
        if let Some(s) = self.scaled {
            // Cancel the blocks first (the scaler waits, bounded, for their jobs to end).
            s.scaler.stop();
            s.interchange.stop(Duration::from_secs(20));
        }
    }
}

/// Drop `name` and its value (`name VALUE` or `name=VALUE`) from an argument list.
fn remove_option(args: &mut Vec<String>, name: &str) {
    let mut out = Vec::with_capacity(args.len());
    let mut it = std::mem::take(args).into_iter();
    while let Some(a) = it.next() {
        if a == name {
            it.next();
        } else if !a.starts_with(&format!("{name}=")) {
            out.push(a);
        }
    }
    *args = out;
}

/// Wait for every task (or until `timeout`), in slices, so that an executor whose every block
/// failed ends the wait with its reason instead of leaving it waiting for blocks that will
/// never come. Returns the tasks not finished.
fn wait_all_or_fail(dfk: &Dfk, timeout: Option<Duration>, failure: &dyn Fn() -> Option<String>) -> Result<usize> {
    let deadline = timeout.map(|t| std::time::Instant::now() + t);
    loop {
        let slice = Duration::from_millis(500);
        let wait = deadline.map_or(slice, |d| d.saturating_duration_since(std::time::Instant::now()).min(slice));
        let left = dfk.wait_all(Some(wait));
        if left == 0 || deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            return Ok(left);
        }
        if let Some(why) = failure() {
            bail!("{why}");
        }
    }
}

fn default_run_dir() -> PathBuf {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    PathBuf::from("runs").join(format!("{t}-{}", std::process::id()))
}

fn run(a: RunArgs) -> Result<i32> {
    // Parse before starting anything: a bad file must not leave processes behind.
    let wf = Workflow::from_file(&a.workflow)?;
    let timeout = a.timeout.map(|s| seconds("--timeout", s)).transpose()?;
    let session = Session::open(&a.target, 1)?;
    let result = run_workflow(&wf, &session.conn, &session.run_dir, timeout, a.checkpoint, &|| session.failure());
    session.close();
    result
}

fn run_workflow(
    wf: &Workflow,
    conn: &ConnectionInfo,
    run_dir: &std::path::Path,
    timeout: Option<Duration>,
    checkpoint_mode: strand::dfk::memo::CheckpointMode,
    failure: &dyn Fn() -> Option<String>,
) -> Result<i32> {
    let checkpoint = run_dir.join(strand::dfk::memo::CHECKPOINT_FILE);
    let events = Some(run_dir.join(strand::dfk::events::EVENTS_FILE));
    let dfk = Dfk::connect(
        conn,
        DfkConfig {
            checkpoint: Some(checkpoint.clone()),
            events,
            memoize: true,
            checkpoint_mode,
            ..DfkConfig::default()
        },
    )?;
    let (loaded, torn) = dfk.checkpoint_loaded();
    if loaded > 0 || torn > 0 {
        eprintln!(
            "strand: resuming from {}: {loaded} completed tasks on record{}",
            checkpoint.display(),
            if torn > 0 { format!(", {torn} torn record(s) ignored") } else { String::new() }
        );
    }
    let mut futures: Vec<Option<TaskFuture>> = vec![None; wf.tasks.len()];
    for i in wf.topological_order() {
        let t = &wf.tasks[i];
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
    let progress = strand::progress::Progress::start(dfk.monitor(), Some(wf.tasks.len() as u64));
    let left = match wait_all_or_fail(&dfk, timeout, failure) {
        Ok(left) => left,
        Err(e) => {
            drop(progress);
            dfk.shutdown();
            return Err(e);
        }
    };
    drop(progress);
    let (mut done, mut failed) = (0, 0);
    for (t, f) in wf.tasks.iter().zip(&futures) {
        match f.as_ref().and_then(TaskFuture::peek) {
            Some(Ok(out)) => {
                done += 1;
                let text = String::from_utf8_lossy(&out);
                println!("{}: done{}{}", t.name, if text.trim().is_empty() { "" } else { ": " }, text.trim_end());
            }
            Some(Err(e)) => {
                failed += 1;
                println!("{}: {e}", t.name);
            }
            None => println!("{}: not finished", t.name),
        }
    }
    let hits = dfk.counts().memo_hits;
    println!(
        "{} tasks: {done} done ({hits} skipped: completed in an earlier run), {failed} failed, {left} not finished",
        wf.tasks.len()
    );
    for e in dfk.checkpoint_errors().iter().take(3) {
        eprintln!("strand: warning: could not write the checkpoint: {e}");
    }
    dfk.shutdown();
    Ok(if left > 0 {
        3
    } else if failed > 0 {
        1
    } else {
        0
    })
}

fn submit(a: SubmitArgs) -> Result<i32> {
    let conn = ConnectionInfo::load(&a.connection)?;
    let app = match &a.function {
        Some(name) => {
            App::Function(strand::task::FunctionCall { name: name.clone(), args: a.command.join(" ").into_bytes() })
        }
        None => App::Command(CommandSpec {
            program: if a.shell { Program::Shell(a.command.join(" ")) } else { Program::Argv(a.command.clone()) },
            env: vec![],
            cwd: std::env::current_dir().ok().map(|p| p.display().to_string()),
            stdout: None,
            stderr: None,
        }),
    };
    let mut call = Call::app(app);
    if let Some(w) = a.walltime {
        call = call.walltime(seconds("--walltime", w)?);
    }
    let dfk = Dfk::connect(&conn, DfkConfig::default())?;
    let outcome = dfk.submit(call).wait();
    dfk.shutdown();
    match outcome {
        Ok(out) => {
            use std::io::Write;
            std::io::stdout().write_all(&out)?;
            Ok(0)
        }
        Err(e) => {
            eprintln!("strand: task {e}");
            Ok(1)
        }
    }
}

/// `strand status RUN_DIR`: what the event log says about each task.
fn run_status(run_dir: &std::path::Path, json: bool) -> Result<i32> {
    use strand::dfk::events::{summarize, State, EVENTS_FILE};
    let path = run_dir.join(EVENTS_FILE);
    let (tasks, torn) = summarize(&path).with_context(|| {
        format!("reading {} (is {} a run directory of strand run or strand map?)", path.display(), run_dir.display())
    })?;
    if json {
        println!("{}", serde_json::to_string(&tasks)?);
        return Ok(0);
    }
    let count = |st: &[State]| tasks.iter().filter(|t| st.contains(&t.state)).count();
    println!(
        "{}: {} tasks: {} done ({} from an earlier run), {} failed, {} dependency failed, {} cancelled, {} running or waiting",
        run_dir.display(),
        tasks.len(),
        count(&[State::Done, State::MemoHit]),
        count(&[State::MemoHit]),
        count(&[State::Failed]),
        count(&[State::DepFailed]),
        count(&[State::Cancelled]),
        count(&[State::Submitted, State::Launched, State::Retrying]),
    );
    for t in tasks.iter().filter(|t| matches!(t.state, State::Failed | State::DepFailed)).take(20) {
        let name = t.name.clone().unwrap_or_else(|| format!("task-{}", t.task));
        println!("  {name}: {:?} after {} tries: {}", t.state, t.tries, t.detail.as_deref().unwrap_or(""));
    }
    if torn > 0 {
        println!("({torn} torn line(s) in {} ignored)", path.display());
    }
    if let Ok(blocks) = strand::executor::scaler::summarize_blocks(&run_dir.join(strand::executor::scaler::BLOCKS_FILE))
    {
        let live = blocks.iter().filter(|b| b.last_event != "ended" && b.last_event != "submit-failed").count();
        println!("{} block{}: {live} live", blocks.len(), if blocks.len() == 1 { "" } else { "s" });
        for b in &blocks {
            let detail = b.detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default();
            println!("  {:<16} job {:<14} {}{detail} after {:.1} s", b.block, b.job, b.last_event, b.lifetime_s);
        }
    }
    Ok(0)
}

fn status(a: StatusArgs) -> Result<i32> {
    let Some(connection) = a.connection else {
        let run_dir = a.run_dir.unwrap_or_default();
        return run_status(&run_dir, a.json);
    };
    let conn = ConnectionInfo::load(&connection)?;
    let mut c = Client::connect(&conn)?;
    if a.shutdown {
        c.hello(Duration::from_secs(10))?;
        c.send(&ClientMsg::Shutdown)?;
        println!("shutdown sent to the interchange at {}", c.endpoint());
        return Ok(0);
    }
    let command = [(a.hold, ManagerMode::Held), (a.release, ManagerMode::Active), (a.drain, ManagerMode::Draining)]
        .into_iter()
        .find_map(|(m, mode)| m.map(|m| (m, mode)));
    if let Some((m, mode)) = command {
        let manager = parse_manager(&m)?;
        let (ok, message) = c.request(&ClientMsg::SetMode { manager, mode }, Duration::from_secs(10), |r| match r {
            ToClientMsg::Ack { ok, message } => Some((ok, message)),
            _ => None,
        })?;
        println!("{message}");
        return Ok(if ok { 0 } else { 1 });
    }
    let s = c.status(Duration::from_secs(10))?;
    if a.json {
        println!("{}", serde_json::to_string(&s)?);
        return Ok(0);
    }
    println!("queued {}  in flight {}  managers {}", s.queued, s.in_flight, s.managers.len());
    if !s.managers.is_empty() {
        println!(
            "{:<26} {:<20} {:<12} {:>6} {:>9} {:>9}",
            "MANAGER", "HOST", "BLOCK", "SLOTS", "IN FLIGHT", "IDLE (s)"
        );
        for m in &s.managers {
            println!(
                "{:<26} {:<20} {:<12} {:>6} {:>9} {:>9.1}",
                m.id.to_string(),
                m.host,
                m.block.0,
                m.slots,
                m.in_flight,
                m.idle_ms as f64 / 1000.0
            );
        }
    }
    if s.dropped.total() > 0 {
        println!("dropped: {:?}", s.dropped);
    }
    Ok(0)
}

fn bench(a: BenchArgs) -> Result<i32> {
    let (tasks, target, which) = match a.which {
        BenchKind::Throughput { tasks, target } => (tasks, target, "throughput"),
        BenchKind::Latency { tasks, target } => (tasks, target, "latency"),
        BenchKind::Chain { depth, target } => (depth, target, "chain"),
        BenchKind::Memory { tasks, max_queue } => return bench_memory(tasks, max_queue),
        BenchKind::Load { tasks, window, sample_every, target } => {
            return bench_load(tasks, window, sample_every, &target)
        }
        BenchKind::Elasticity { elastic_only, static_only, time_scale, period, max_idletime, run_dir } => {
            let modes: &[bool] = match (elastic_only, static_only) {
                (true, _) => &[true],
                (_, true) => &[false],
                _ => &[false, true],
            };
            return bench_elasticity(modes, time_scale, period, max_idletime, run_dir.unwrap_or_else(default_run_dir));
        }
        BenchKind::Sim { managers, workers_per_manager, tasks, run_dir, pin } => {
            return bench_sim(managers, workers_per_manager, tasks, run_dir.unwrap_or_else(default_run_dir), pin);
        }
    };
    if tasks == 0 {
        bail!("--tasks must be at least 1");
    }
    let session = Session::open(&target, 64)?;
    session.wait_warm()?;
    let dfk = Dfk::connect(&session.conn, DfkConfig::default())?;
    let line = match which {
        "throughput" => serde_json::to_string(&strand::bench::throughput(&dfk, tasks, session.workers))?,
        "chain" => serde_json::to_string(&strand::bench::chain(&dfk, tasks, session.workers))?,
        _ => serde_json::to_string(&strand::bench::latency(&dfk, tasks, session.workers))?,
    };
    println!("{line}");
    dfk.shutdown();
    session.close();
    Ok(0)
}

/// `strand bench load`: one JSON line with the memory samples; exits 1 if a task failed.
fn bench_load(tasks: u64, window: u64, sample_every: u64, target: &Target) -> Result<i32> {
    if tasks == 0 || window == 0 || sample_every == 0 {
        bail!("--tasks, --window and --sample-every must each be at least 1");
    }
    let session = Session::open(target, 64)?;
    session.wait_warm()?;
    let ix_pid = session
        .local
        .as_ref()
        .and_then(LocalRun::interchange_pid)
        .or_else(|| session.scaled.as_ref().map(|s| s.interchange.pid()));
    let dfk = Dfk::connect(&session.conn, DfkConfig::default())?;
    let report = strand::bench::load(&dfk, tasks, window, sample_every, session.workers, ix_pid);
    println!("{}", serde_json::to_string(&report)?);
    dfk.shutdown();
    session.close();
    Ok(if report.failed == 0 { 0 } else { 1 })
}

/// `strand bench elasticity`: each mode in its own run directory; one JSON line each.
fn bench_elasticity(modes: &[bool], time_scale: f64, period: f64, idle: f64, run_dir: PathBuf) -> Result<i32> {
    for (name, v) in [("--time-scale", time_scale), ("--period", period), ("--max-idletime", idle)] {
        if !(v.is_finite() && v > 0.0) {
            bail!("{name} must be a positive number, got {v}");
        }
    }
    let mut failed = 0;
    for &elastic in modes {
        let opts = strand::elasticity::ElasticityOptions {
            elastic,
            time_scale,
            period: Duration::from_secs_f64(period),
            max_idletime: Duration::from_secs_f64(idle),
            run_dir: run_dir.join(if elastic { "elastic" } else { "static" }),
        };
        let report = strand::elasticity::run(&opts)?;
        failed += report.failed;
        let mut line = serde_json::to_value(&report)?;
        line["bench"] = "elasticity".into();
        println!("{line}");
    }
    Ok(if failed == 0 { 0 } else { 1 })
}

/// `strand bench sim`: a real interchange process, simulated managers and a DFK in this process.
fn bench_sim(managers: usize, workers: u32, tasks: u64, run_dir: PathBuf, pin: bool) -> Result<i32> {
    use std::sync::atomic::Ordering;
    if managers == 0 || workers == 0 || tasks == 0 {
        bail!("--managers, --workers-per-manager and --tasks must each be at least 1");
    }
    // ZeroMQ takes about two descriptors per socket here, and the interchange one per peer.
    strand::host::raise_fd_limit(2 * managers as u64 + 256, &format!("{managers} simulated managers"))?;
    let mut opts = LocalOptions::new(run_dir);
    opts.interchange_args = vec!["--max-managers".into(), managers.to_string()];
    let ix = strand::local::LocalInterchange::start(&opts)?;
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let pinned = pin && cores >= 2;
    if pinned {
        strand::host::pin_to_cpus(ix.pid(), &[0]).context("pinning the interchange to CPU 0")?;
        strand::host::pin_to_cpus(0, &(1..cores).collect::<Vec<_>>()).context("pinning this process")?;
    }
    let sim = strand::sim::Simulator::connect(&ix.conn, managers, workers)?;
    let stop = Arc::new(AtomicBool::new(false));
    let registered = Arc::new(AtomicBool::new(false));
    let handle = strand::sim::spawn(sim, Arc::clone(&stop), Arc::clone(&registered));
    let t0 = std::time::Instant::now();
    while !registered.load(Ordering::Relaxed) {
        if t0.elapsed() > Duration::from_secs(300) {
            bail!("simulated managers did not all register within 300 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let registration_s = t0.elapsed().as_secs_f64();
    let (_, cpu0) = strand::host::proc_usage(ix.pid()).unwrap_or((0, 0.0));
    let dfk = Dfk::connect(&ix.conn, DfkConfig::default())?;
    let start = std::time::Instant::now();
    let futures: Vec<TaskFuture> = (0..tasks).map(|_| dfk.submit(Call::function("noop", Vec::new()))).collect();
    let left = dfk.wait_all(Some(Duration::from_secs(1800)));
    let seconds = start.elapsed().as_secs_f64();
    let (rss, cpu1) = strand::host::proc_usage(ix.pid()).unwrap_or((0, 0.0));
    let done = futures.iter().filter(|f| matches!(f.peek(), Some(Ok(_)))).count();
    dfk.shutdown();
    stop.store(true, Ordering::Relaxed);
    let report = handle.join().map_err(|_| anyhow::anyhow!("simulator thread panicked"))?;
    ix.stop(Duration::from_secs(10));
    let line = serde_json::json!({
        "bench": "sim",
        "managers": managers,
        "workers_per_manager": workers,
        "workers": managers as u64 * workers as u64,
        "tasks": tasks,
        "done": done,
        "not_finished": left,
        "answered_by_managers": report.answered,
        "registration_s": registration_s,
        "seconds": seconds,
        "tasks_per_s": tasks as f64 / seconds,
        "interchange_peak_rss_mib": rss as f64 / (1 << 20) as f64,
        "interchange_cpu_s": cpu1 - cpu0,
        "interchange_tasks_per_cpu_s": tasks as f64 / (cpu1 - cpu0).max(0.01),
        "pinned": pinned,
    });
    println!("{line}");
    Ok(if done as u64 == tasks { 0 } else { 1 })
}

/// Where `strand map` reads its tasks from.
enum MapSource {
    /// A template and its arguments.
    Template(String, Box<dyn Iterator<Item = String>>),
    /// One shell command a line.
    Commands(Box<dyn Iterator<Item = String>>),
    /// One JSON task a line.
    Json(Box<dyn Iterator<Item = String>>),
}

fn lines_of(path: &std::path::Path) -> Result<Box<dyn Iterator<Item = String>>> {
    use std::io::BufRead;
    let reader: Box<dyn BufRead> = if path == std::path::Path::new("-") {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?,
        ))
    };
    Ok(Box::new(reader.lines().map_while(|l| l.ok())))
}

fn map_source(a: &MapArgs) -> Result<MapSource> {
    let split = a.words.iter().position(|w| w == ":::");
    let (template, args): (Vec<String>, Option<Vec<String>>) = match split {
        Some(i) => (a.words[..i].to_vec(), Some(a.words[i + 1..].to_vec())),
        None => (a.words.clone(), None),
    };
    let template = template.join(" ");
    if a.json {
        if !template.is_empty() || args.is_some() {
            bail!("--json reads whole tasks; give no TEMPLATE or ::: arguments with it");
        }
        return Ok(MapSource::Json(lines_of(a.from.as_deref().unwrap_or(std::path::Path::new("-")))?));
    }
    match (template.is_empty(), args, &a.from) {
        (false, Some(args), None) => Ok(MapSource::Template(template, Box::new(args.into_iter()))),
        (false, None, Some(f)) => Ok(MapSource::Template(template, lines_of(f)?)),
        (true, None, Some(f)) => Ok(MapSource::Commands(lines_of(f)?)),
        (_, Some(_), Some(_)) => bail!("give the arguments either after ::: or with --from, not both"),
        _ => {
            bail!("nothing to run: give TEMPLATE ::: ARG..., TEMPLATE --from FILE, --from FILE, or --json (see --help)")
        }
    }
}

fn map(a: MapArgs) -> Result<i32> {
    use std::collections::HashMap;
    use std::io::Write;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    let walltime = a.walltime.map(|w| seconds("--walltime", w)).transpose()?;
    let source = map_source(&a)?;
    let json = a.json;
    let session = Session::open(&a.target, 1)?;
    let checkpoint = session.run_dir.join(strand::dfk::memo::CHECKPOINT_FILE);
    let events = Some(session.run_dir.join(strand::dfk::events::EVENTS_FILE));
    let dfk = Dfk::connect(
        &session.conn,
        DfkConfig { checkpoint: Some(checkpoint), events, memoize: true, ..DfkConfig::default() },
    )?;
    let ends = dfk.ends();
    let table: Arc<Mutex<HashMap<strand::task::TaskId, (String, TaskFuture)>>> = Arc::default();
    let submitted = Arc::new(AtomicUsize::new(0));
    let input_done = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicUsize::new(0));
    let progress = strand::progress::Progress::start(dfk.monitor(), None);
    // Results are printed as tasks end, while input is still being read: a driver may
    // wait for one result before it writes the next task.
    let printer = {
        let (table, submitted, input_done, failed) =
            (Arc::clone(&table), Arc::clone(&submitted), Arc::clone(&input_done), Arc::clone(&failed));
        std::thread::spawn(move || {
            let mut printed = 0usize;
            let stdout = std::io::stdout();
            loop {
                if input_done.load(Ordering::Acquire) && printed == submitted.load(Ordering::Acquire) {
                    break;
                }
                let Ok(id) = ends.recv_timeout(Duration::from_millis(100)) else { continue };
                let Some((name, f)) = table.lock().unwrap_or_else(|p| p.into_inner()).remove(&id) else { continue };
                printed += 1;
                let mut out = stdout.lock();
                let outcome = f.peek();
                if !matches!(outcome, Some(Ok(_))) {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                let _ = match (json, outcome) {
                    (true, Some(Ok(b))) => writeln!(
                        out,
                        "{}",
                        serde_json::json!({"name": name, "ok": true, "stdout": String::from_utf8_lossy(&b)})
                    ),
                    (true, Some(Err(e))) => {
                        writeln!(out, "{}", serde_json::json!({"name": name, "ok": false, "error": e.to_string()}))
                    }
                    (false, Some(Ok(b))) => out.write_all(&b),
                    (false, Some(Err(e))) => {
                        eprintln!("strand: task {name}: {e}");
                        Ok(())
                    }
                    (_, None) => Ok(()),
                };
                let _ = out.flush();
            }
        })
    };
    let submit_one = |name: String, call: Call| {
        let mut call = call.retries(a.retries);
        if walltime.is_some() && call.walltime_ms.is_none() {
            call.walltime_ms = walltime.map(|w| w.as_millis() as u64);
        }
        // Insert under the lock so the printer never sees the end of a task it does not know.
        let mut t = table.lock().unwrap_or_else(|p| p.into_inner());
        let f = dfk.submit(call.named(&name));
        t.insert(f.id(), (name, f));
        submitted.fetch_add(1, Ordering::Release);
    };
    let mut bad_lines = 0;
    match source {
        MapSource::Template(template, args) => {
            for (i, arg) in args.enumerate() {
                submit_one(arg.clone(), Call::shell(strand::map::fill_template(&template, &arg, i + 1)));
            }
        }
        MapSource::Commands(lines) => {
            for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                submit_one((i + 1).to_string(), Call::shell(line));
            }
        }
        MapSource::Json(lines) => {
            for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                match strand::map::parse_json_line(&line, i + 1) {
                    Ok((name, call)) => submit_one(name, call),
                    Err(e) => {
                        bad_lines += 1;
                        println!("{}", serde_json::json!({"line": i + 1, "ok": false, "error": e}));
                    }
                }
            }
        }
    }
    input_done.store(true, Ordering::Release);
    if let Err(e) = wait_all_or_fail(&dfk, None, &|| session.failure()) {
        drop(progress);
        dfk.shutdown();
        session.close();
        return Err(e);
    }
    let _ = printer.join();
    drop(progress);
    let n_failed = failed.load(Ordering::Relaxed) + bad_lines;
    dfk.shutdown();
    session.close();
    if n_failed > 0 {
        eprintln!("strand: {n_failed} of {} tasks failed", submitted.load(Ordering::Relaxed) + bad_lines);
    }
    Ok(if n_failed > 0 { 1 } else { 0 })
}

/// `strand bench memory`: bytes per pending task in the DFK, with the interchange pushing back.
fn bench_memory(tasks: u64, max_queue: u64) -> Result<i32> {
    if tasks == 0 {
        bail!("--tasks must be at least 1");
    }
    let mut opts = LocalOptions::new(default_run_dir());
    opts.interchange_args = vec!["--max-queue".into(), max_queue.to_string()];
    let ix = strand::local::LocalInterchange::start(&opts)?;
    let dfk = Dfk::connect(&ix.conn, DfkConfig::default())?;
    let before = strand::host::current_rss(std::process::id()).unwrap_or(0);
    let started = std::time::Instant::now();
    let futures: Vec<TaskFuture> = (0..tasks).map(|_| dfk.submit(Call::function("noop", Vec::new()))).collect();
    let submit_s = started.elapsed().as_secs_f64();
    // Let the I/O thread push what the interchange will take (it refuses the rest).
    std::thread::sleep(Duration::from_secs(2));
    let after = strand::host::current_rss(std::process::id()).unwrap_or(0);
    let mut c = Client::connect(&ix.conn)?;
    let report = c.status(Duration::from_secs(10))?;
    let (ix_rss, _) = strand::host::proc_usage(ix.pid()).unwrap_or((0, 0.0));
    let line = serde_json::json!({
        "bench": "memory",
        "tasks": tasks,
        "submit_s": submit_s,
        "dfk_rss_growth_mib": (after.saturating_sub(before)) as f64 / (1 << 20) as f64,
        "dfk_bytes_per_pending_task": after.saturating_sub(before) as f64 / tasks as f64,
        "interchange_queued": report.queued,
        "interchange_max_queue": max_queue,
        "interchange_peak_rss_mib": ix_rss as f64 / (1 << 20) as f64,
    });
    println!("{line}");
    drop(futures);
    dfk.shutdown();
    ix.stop(Duration::from_secs(10));
    Ok(0)
}
