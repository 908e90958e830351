//! A worker rank: receives tries from its manager over MPI, runs them, sends results back.

use crate::backoff::Backoff;
use crate::exec::Executor;
use crate::placement;
use crate::pool_msg::{self, TAG_HEARTBEAT, TAG_RESULTS, TAG_STOP, TAG_TRIES};
use crate::stop::StopFlag;
use mpi::point_to_point::{Destination, MatchedReceiveVec, Source};
use mpi::topology::{Communicator, SimpleCommunicator};
use slog::{debug, warn, Logger};
use std::collections::BTreeSet;
use strand::task::{Try, TryResult};

/// Why a worker loop ended.
#[derive(Debug, PartialEq, Eq)]
pub enum WorkerExit {
    /// The manager told it to stop.
    Stopped,
    /// SIGTERM or SIGINT.
    Signalled,
}

/// Run the worker loop on `pool` (this rank is not rank 0) until stopped, telling the
/// manager every `heartbeat` that this rank is alive (so a hung rank can be told apart) and
/// where it runs: its host and `cpus`, the rank's binding (`None`: unknown).
pub fn run_worker(
    pool: &SimpleCommunicator,
    executor: Executor,
    heartbeat: std::time::Duration,
    cpus: Option<&BTreeSet<u32>>,
    stop: &StopFlag,
    log: &Logger,
) -> WorkerExit {
    let manager = pool.process_at_rank(0);
    if cpus.is_none() {
        warn!(log, "cannot read this rank's CPU affinity; wide tries here keep their leader's binding");
    }
    let host = heartbeat_payload(&strand::host::hostname(), cpus);
    let mut next_heartbeat = std::time::Instant::now();
    let mut backoff = Backoff::default();
    let mut running = 0usize;
    let mut done: Vec<TryResult> = Vec::new();
    let exit = loop {
        let mut active = false;
        let mut told_to_stop = false;
        // Take every message that has arrived, not one per round.
        while let Some(probed) = manager.immediate_matched_probe() {
            active = true;
            let (bytes, status) = probed.matched_receive_vec::<u8>();
            match status.tag() {
                TAG_TRIES => match pool_msg::decode::<Vec<Try>>(&bytes) {
                    Some(tries) => {
                        running += tries.len();
                        for t in tries {
                            executor.submit(t);
                        }
                    }
                    None => warn!(log, "undecodable tries from the manager"; "bytes" => bytes.len()),
                },
                TAG_STOP => told_to_stop = true,
                tag => warn!(log, "unexpected pool message"; "tag" => tag),
            }
        }
        if told_to_stop {
            break WorkerExit::Stopped;
        }
        if std::time::Instant::now() >= next_heartbeat {
            manager.send_with_tag(&host[..], TAG_HEARTBEAT);
            next_heartbeat = std::time::Instant::now() + heartbeat;
        }
        if stop.is_set() {
            break WorkerExit::Signalled;
        }
        while let Ok(r) = executor.completions().try_recv() {
            done.push(r);
        }
        if !done.is_empty() {
            active = true;
            running = running.saturating_sub(done.len());
            manager.send_with_tag(&pool_msg::encode_results(&done)[..], TAG_RESULTS);
            done.clear();
        }
        if active {
            backoff.reset();
        }
        // Sleep on the completion channel: a finished task wakes us at once;
        // only a new message from the manager waits for the backoff.
        let wait = backoff.next_wait();
        if wait.is_zero() {
            std::thread::yield_now();
        } else if let Ok(r) = executor.completions().recv_timeout(wait) {
            done.push(r);
        }
    };
    debug!(log, "worker stopping"; "rank" => pool.rank(), "why" => ?exit);
    // Tries still running belong to a pool that is going away; the interchange
    // fails them as ManagerLost when the manager leaves, so kill rather than wait.
    executor.kill_running();
    executor.shutdown();
    exit
}

/// The heartbeat body: the host name, then (after a newline, which no host name contains) the
/// rank's cpuset as a kernel CPU list, so the manager can give a wide try the cores of every
/// rank it reserved. A manager that knows only host names would read the whole body as one.
pub fn heartbeat_payload(host: &str, cpus: Option<&BTreeSet<u32>>) -> Vec<u8> {
    match cpus {
        Some(c) => format!("{host}\n{}", placement::list_string(c)).into_bytes(),
        None => host.as_bytes().to_vec(),
    }
}

/// Read a heartbeat body: the host, and the cpuset when the worker sent a valid one (a bare
/// host name, from an older worker, or an unreadable list give `None`: cpus unknown).
pub fn parse_heartbeat(bytes: &[u8]) -> (String, Option<BTreeSet<u32>>) {
    let text = String::from_utf8_lossy(bytes);
    match text.split_once('\n') {
        Some((host, cpus)) => (host.to_string(), placement::parse_list(cpus).filter(|c| !c.is_empty())),
        None => (text.into_owned(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeats_carry_the_host_and_the_cpuset() {
        let cpus: BTreeSet<u32> = [0, 1, 2, 3, 8].into();
        let body = heartbeat_payload("node7", Some(&cpus));
        assert_eq!(body, b"node7\n0-3,8");
        assert_eq!(parse_heartbeat(&body), ("node7".to_string(), Some(cpus)));
        assert_eq!(parse_heartbeat(&heartbeat_payload("node7", None)), ("node7".to_string(), None));
    }

    #[test]
    fn old_or_odd_heartbeats_still_give_the_host() {
        // An older worker sends its host name only.
        assert_eq!(parse_heartbeat(b"node7"), ("node7".to_string(), None));
        assert_eq!(parse_heartbeat(b"node7\nnot a list"), ("node7".to_string(), None));
        assert_eq!(parse_heartbeat(b"node7\n"), ("node7".to_string(), None));
        assert_eq!(parse_heartbeat(b""), (String::new(), None));
    }
}
