//! `strand`: the login-node CLI. `main` parses and dispatches; each subcommand is one file
//! in `commands/` (its clap arguments and its `exec`), and the work lives in the library.

mod commands;

use clap::{Parser, Subcommand};
use commands::*;

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
    Interchange(interchange::Args),
    /// Run a TOML workflow file; without --connection, start an interchange and a local block first.
    Run(run::Args),
    /// Run one command (or function) and print its result.
    Submit(submit::Args),
    /// Run a command template over many arguments (GNU parallel style), or tasks from JSON lines.
    Map(map::Args),
    /// Show a run directory's tasks and blocks (after or during a run), or a live interchange (--connection).
    Status(status::Args),
    /// Write a self-contained HTML report of a run (from RUN_DIR/monitoring.db).
    Report(report::Args),
    /// A live terminal view of a run: blocks, managers, queue, rates, failures; keys hold, release, drain.
    Top(top::Args),
    /// Hold a manager: it gets no new tasks and keeps what it has.
    Hold(manager_mode::HoldArgs),
    /// Release a held manager: it gets tasks again.
    Release(manager_mode::ReleaseArgs),
    /// Drain a manager: no new tasks; it stops once it has finished what it holds.
    Drain(manager_mode::DrainArgs),
    /// Stop every manager and the interchange.
    Shutdown(shutdown::Args),
    /// Benchmarks through the whole path; each prints one JSON line.
    Bench(bench::Args),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Interchange(a) => interchange::exec(a, cli.verbose),
        Cmd::Run(a) => run::exec(a),
        Cmd::Submit(a) => submit::exec(a),
        Cmd::Map(a) => map::exec(a),
        Cmd::Status(a) => status::exec(a),
        Cmd::Report(a) => report::exec(a),
        Cmd::Top(a) => top::exec(a),
        Cmd::Hold(a) => manager_mode::exec(a.into()),
        Cmd::Release(a) => manager_mode::exec(a.into()),
        Cmd::Drain(a) => manager_mode::exec(a.into()),
        Cmd::Shutdown(a) => shutdown::exec(a),
        Cmd::Bench(a) => bench::exec(a),
    };
    let code = result.unwrap_or_else(|e| {
        eprintln!("strand: error: {}", error_chain(&e));
        2
    });
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
