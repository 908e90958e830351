//! A worker rank: receives tries from its manager over MPI, runs them, sends results back.

use crate::backoff::Backoff;
use crate::exec::{Executor, Registry};
use crate::pool_msg::{
    self, GroupTry, WorkerHello, WorkerTry, TAG_GROUP, TAG_HEARTBEAT, TAG_RESULTS, TAG_SAMPLES, TAG_STOP, TAG_TRIES,
};
use crate::sampler::Sampler;
use crate::stop::StopFlag;
use mpi::point_to_point::{Destination, MatchedReceiveVec, Source};
use mpi::topology::{Communicator, SimpleCommunicator};
use slog::{debug, warn, Logger};
use std::collections::BTreeSet;
use strand::task::{App, Failure, Outcome, TryResult};
use strand::wire::functions;

/// Longest wait for a try's end while every slot runs a long try: how late a stop from the
/// manager or a resource sample may be.
const LONG_TRY_WAIT: std::time::Duration = std::time::Duration::from_millis(10);

/// Why a worker loop ended.
#[derive(Debug, PartialEq, Eq)]
pub enum WorkerExit {
    /// The manager told it to stop.
    Stopped,
    /// SIGTERM or SIGINT.
    Signalled,
}

/// How often a worker tells its manager that it is alive, and what its tries use.
pub struct WorkerTimers {
    /// Between heartbeats.
    pub heartbeat: std::time::Duration,
    /// Between resource samples (`None`: not sampled).
    pub resource_interval: Option<std::time::Duration>,
}

/// Run the worker loop on `pool` (this rank is not rank 0) until stopped, telling the
/// manager every heartbeat that this rank is alive (so a hung rank can be told apart) and
/// where it runs: its host and `cpus`, the rank's binding (`None`: unknown); and, every
/// resource interval, what its running tries and its node use. Its part of an MPI function try
/// runs on this thread (the one that calls MPI), from `registry`.
pub fn run_worker(
    pool: &SimpleCommunicator,
    executor: Executor,
    registry: &Registry,
    timers: &WorkerTimers,
    cpus: Option<&BTreeSet<u32>>,
    stop: &StopFlag,
    log: &Logger,
) -> WorkerExit {
    let manager = pool.process_at_rank(0);
    if cpus.is_none() {
        warn!(log, "cannot read this rank's CPU affinity; wide tries here keep their leader's binding");
    }
    // The node's name as its batch system knows it: wide tries name their nodes to srun with it.
    let hello = pool_msg::encode(&WorkerHello { host: strand::host::node_name(), cpus: cpus.cloned() });
    let mut next_heartbeat = std::time::Instant::now();
    let mut sampler = Sampler::new(timers.resource_interval, next_heartbeat);
    let mut backoff = Backoff::default();
    let mut running = 0usize;
    let mut done: Vec<TryResult> = Vec::new();
    // The Python functions the manager told this rank to keep.
    let mut held = functions::Held::default();
    let exit = loop {
        let mut active = false;
        let mut told_to_stop = false;
        // Take every message that has arrived, not one per round.
        while let Some(probed) = manager.immediate_matched_probe() {
            active = true;
            let (bytes, status) = probed.matched_receive_vec::<u8>();
            match status.tag() {
                TAG_TRIES => match pool_msg::decode_over::<Vec<WorkerTry>>(&bytes, &mut held) {
                    Some((tries, missing)) => {
                        running += tries.len();
                        for t in tries {
                            if t.try_.calls_any(&missing) {
                                done.push(not_held(&t, pool.rank()));
                            } else {
                                executor.submit_on(t.try_, t.cpus);
                            }
                        }
                    }
                    None => warn!(log, "undecodable tries from the manager"; "bytes" => bytes.len()),
                },
                // An MPI function try calls no Python function: nothing can be missing.
                TAG_GROUP => match pool_msg::decode_over::<GroupTry>(&bytes, &mut held).map(|(g, _)| g) {
                    // Its manager reserved this rank idle for it: nothing else runs meanwhile.
                    Some(g) => {
                        running += 1;
                        done.push(crate::group::run_member(pool, registry, &g));
                    }
                    None => warn!(log, "undecodable MPI function try from the manager"; "bytes" => bytes.len()),
                },
                TAG_STOP => told_to_stop = true,
                tag => warn!(log, "unexpected pool message"; "tag" => tag),
            }
        }
        if told_to_stop {
            break WorkerExit::Stopped;
        }
        let now = std::time::Instant::now();
        if now >= next_heartbeat {
            manager.send_with_tag(&hello[..], TAG_HEARTBEAT);
            next_heartbeat = now + timers.heartbeat;
        }
        if let Some(samples) = sampler.as_mut().and_then(|s| s.take(now, Some(&executor))) {
            manager.send_with_tag(&pool_msg::encode(&samples)[..], TAG_SAMPLES);
        }
        if stop.is_set() {
            break WorkerExit::Signalled;
        }
        while let Ok(r) = executor.completions().try_recv() {
            done.push(r);
        }
        if !done.is_empty() {
            active = true;
            for r in &done {
                backoff.observe_run(r.ran.run_us);
            }
            running = running.saturating_sub(done.len());
            manager.send_with_tag(&pool_msg::encode_results(&done)[..], TAG_RESULTS);
            done.clear();
        }
        if active {
            backoff.reset();
        }
        // Sleep on the completion channel: a finished task wakes us at once; only a new
        // message from the manager waits for the backoff.
        let slots = executor.slots();
        let wait = if running < slots {
            // A slot is idle: take its next try as soon as it comes.
            backoff.next_wait()
        } else if running == slots || !backoff.tries_run_long() {
            // Poll for the next try, so that it is queued before a running one ends (waking a
            // slot thread from here costs ~100 us on a virtual machine).
            backoff.next_wait_queued()
        } else {
            // Every slot runs a long try and the next one waits in the executor's queue: the
            // next thing to do is to send a result, and a finished try wakes us. Tries the
            // manager sends meanwhile wait in MPI, so the commands get the cores this rank
            // would have polled on.
            next_heartbeat.saturating_duration_since(now).min(LONG_TRY_WAIT)
        };
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

/// The result of a try whose Python function this rank was told it keeps but does not: MPI
/// delivers in order, so this is a bug, and the try fails saying so rather than hanging.
fn not_held(t: &WorkerTry, rank: i32) -> TryResult {
    let key = match &t.try_.spec.app {
        App::Python(call) => functions::hex(&call.function.key),
        _ => String::new(),
    };
    let failure = Failure::FunctionNotHeld { key, at: format!("worker rank {rank}") };
    TryResult::new(t.try_.id, Outcome::Failed(failure))
}
