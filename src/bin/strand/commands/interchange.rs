//! `strand interchange`: bind ports, write the connection file, broker tasks until stopped.

use super::seconds;
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use strand::interchange::{DispatchConfig, Interchange, InterchangeConfig};

/// `strand interchange` arguments.
#[derive(clap::Args)]
pub struct Args {
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
    /// Largest message in MiB that any peer sends or accepts (written into the connection
    /// file). Batches are split to fit; a single try or result larger than this fails with
    /// TooLarge. Raise it for tasks with big arguments or function outputs.
    #[arg(long, default_value_t = 64, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..=256))]
    max_frame_mib: u64,
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

/// Serve until SIGTERM, SIGINT or a client's shutdown.
pub fn exec(a: Args, verbose: u8) -> Result<i32> {
    let log = strand::log::stderr_logger(strand::log::level(verbose, false));
    // One socket per manager and client, plus ZeroMQ's own descriptors.
    let need = a.max_managers + 256;
    match strand::host::raise_fd_limit(need, &format!("{} managers", a.max_managers)) {
        Ok(n) => slog::debug!(log, "open-file limit"; "limit" => n),
        Err(e) => slog::warn!(log, "{}", e),
    }
    // Absolute once, here: the connection file and logs are named by it from elsewhere.
    let run_dir = std::path::absolute(&a.run_dir).with_context(|| format!("resolving {}", a.run_dir.display()))?;
    let cfg = InterchangeConfig {
        run_dir,
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
        max_frame: a.max_frame_mib << 20,
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
