//! `strand submit`: run one command (or function) on a running interchange and print its result.

use super::seconds;
use anyhow::Result;
use std::io::Write;
use std::path::PathBuf;
use strand::connection::ConnectionInfo;
use strand::dfk::{Call, Dfk, DfkConfig};
use strand::task::{App, CommandSpec, FunctionCall, Program};

/// `strand submit` arguments.
#[derive(clap::Args)]
pub struct Args {
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

/// Exit 0 with the task's output on stdout, or 1 with its failure on stderr.
pub fn exec(a: Args) -> Result<i32> {
    let conn = ConnectionInfo::load(&a.connection)?;
    let app = match &a.function {
        Some(name) => App::Function(FunctionCall { name: name.clone(), args: a.command.join(" ").into_bytes() }),
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
            std::io::stdout().write_all(&out)?;
            Ok(0)
        }
        Err(e) => {
            eprintln!("strand: task {e}");
            Ok(1)
        }
    }
}
