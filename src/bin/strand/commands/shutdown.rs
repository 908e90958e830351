//! `strand shutdown`: stop every manager and the interchange.

use anyhow::Result;
use std::path::PathBuf;
use std::time::Duration;
use strand::client::Client;
use strand::connection::ConnectionInfo;
use strand::wire::ClientMsg;

/// `strand shutdown` arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Connection file of the interchange to stop.
    #[arg(long, value_name = "FILE")]
    connection: PathBuf,
}

/// Check that the interchange is there (and has our key), then tell it to stop.
pub fn exec(a: Args) -> Result<i32> {
    let conn = ConnectionInfo::load(&a.connection)?;
    let mut c = Client::connect(&conn)?;
    c.hello(Duration::from_secs(10))?;
    c.send(&ClientMsg::Shutdown)?;
    println!("shutdown sent to the interchange at {}", c.endpoint());
    Ok(0)
}
