//! `strand hold`, `strand release` and `strand drain`: put one manager in a mode through the
//! interchange (the same request, three commands, so each has its own `--help`).

use anyhow::Result;
use std::path::PathBuf;
use std::time::Duration;
use strand::client::Client;
use strand::connection::ConnectionInfo;
use strand::task::ManagerId;
use strand::wire::ManagerMode;

/// The manager and the interchange, as all three commands take them.
#[derive(clap::Args)]
pub struct ManagerArgs {
    /// The manager, as `strand status --connection FILE` shows it (manager-<16 hex digits>).
    #[arg(value_name = "MANAGER", value_parser = parse_manager)]
    manager: ManagerId,
    /// Connection file of the interchange.
    #[arg(long, value_name = "FILE")]
    connection: PathBuf,
}

/// `strand hold` arguments.
#[derive(clap::Args)]
pub struct HoldArgs {
    #[command(flatten)]
    m: ManagerArgs,
}

/// `strand release` arguments.
#[derive(clap::Args)]
pub struct ReleaseArgs {
    #[command(flatten)]
    m: ManagerArgs,
}

/// `strand drain` arguments.
#[derive(clap::Args)]
pub struct DrainArgs {
    #[command(flatten)]
    m: ManagerArgs,
}

/// One mode change, whichever command asked for it.
pub struct Request {
    m: ManagerArgs,
    mode: ManagerMode,
}

impl From<HoldArgs> for Request {
    fn from(a: HoldArgs) -> Request {
        Request { m: a.m, mode: ManagerMode::Held }
    }
}

impl From<ReleaseArgs> for Request {
    fn from(a: ReleaseArgs) -> Request {
        Request { m: a.m, mode: ManagerMode::Active }
    }
}

impl From<DrainArgs> for Request {
    fn from(a: DrainArgs) -> Request {
        Request { m: a.m, mode: ManagerMode::Draining }
    }
}

/// Parse a manager id as `strand status` prints it (`manager-<16 hex digits>`) or bare hex.
fn parse_manager(s: &str) -> Result<ManagerId, String> {
    let hex = s.strip_prefix("manager-").unwrap_or(s);
    u64::from_str_radix(hex, 16)
        .map(ManagerId)
        .map_err(|_| format!("{s:?} is not a manager id; expected manager-<16 hex digits> as `strand status` shows"))
}

/// Exit 0 if the interchange did it, 1 if it refused (e.g. no such manager).
pub fn exec(r: Request) -> Result<i32> {
    let conn = ConnectionInfo::load(&r.m.connection)?;
    let mut c = Client::connect(&conn)?;
    let (ok, message) = c.set_mode(r.m.manager, r.mode, Duration::from_secs(10))?;
    println!("{message}");
    Ok(if ok { 0 } else { 1 })
}
