//! The manager's loop: the ZeroMQ socket, the pool communicator and the waiting.
//!
//! It turns frames and MPI messages into events for [`ManagerState`] and carries out what
//! the state asks through [`ManagerComm`]. It sleeps on the socket's fd with `ppoll` when the
//! pool is idle and polls MPI with a backoff only while ranks hold tries.

use super::comm::ManagerComm;
use super::state::{ManagerState, PoolInfo};
use super::{ManagerConfig, ManagerError, ManagerExit};
use crate::backoff::Backoff;
use crate::exec::Executor;
use crate::pool_msg::{self, ToWorker, WorkerHello, WorkerRank, TAG_HEARTBEAT, TAG_RESULTS, TAG_SAMPLES};
use crate::sampler::Sampler;
use crate::stop::StopFlag;
use mpi::point_to_point::{Destination, MatchedReceiveVec, Source};
use mpi::request::{Request, StaticScope};
use mpi::topology::{Communicator, SimpleCommunicator};
use slog::{info, warn, Logger};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use strand::connection::{ConnectionInfo, Side};
use strand::task::{Failure, Outcome, Try, TryResult};
use strand::wire::{functions, split_by_size, Codec, ManagerMsg, ToManagerMsg};

/// Most bytes of Python functions a worker rank keeps: a quarter of a manager's, since a node
/// may run a hundred ranks (16 MiB each is 1.6 GiB) where it runs one manager.
const WORKER_KEEP_BYTES: usize = functions::LINK_KEEP_BYTES / 4;

/// How long stopping waits for workers to take their stop before abandoning the sends.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// A send to a worker still in progress. Sends are non-blocking so that a hung worker (one
/// that stopped receiving) can never block the manager: a large batch goes by rendezvous,
/// which waits for the receiver.
struct PendingSend {
    rank: WorkerRank,
    req: Request<'static, [u8]>,
    /// The leaked buffer the request reads from; freed when the request completes.
    buf: *mut [u8],
}

/// Complete the sends that have finished and free their buffers; returns how many are left.
fn reap_sends(sends: &mut Vec<PendingSend>) -> usize {
    let mut left = Vec::with_capacity(sends.len());
    for p in sends.drain(..) {
        match p.req.test() {
            Ok(_) => {
                // SAFETY: `buf` came from Box::leak in `to_worker`, and the only borrow of it was
                // the request, which has just completed and been consumed.
                drop(unsafe { Box::from_raw(p.buf) });
            }
            Err(req) => left.push(PendingSend { req, ..p }),
        }
    }
    *sends = left;
    sends.len()
}

/// The manager's side of the world: what [`ManagerComm`] acts on.
struct Transport<'a> {
    pool: &'a SimpleCommunicator,
    socket: zmq::Socket,
    codec: Codec,
    seq: u64,
    /// Highest sequence number accepted from the interchange (replays are dropped).
    last_seen_seq: u64,
    /// The Python functions the interchange told us to keep.
    held: functions::Held,
    /// The sending end of each worker's link: the functions it keeps.
    worker_links: HashMap<WorkerRank, functions::Sent>,
    /// Sends to workers not yet completed.
    sends: Vec<PendingSend>,
    local: Option<Executor>,
    /// This rank's own resource samples (its local slots and node); `None`: not sampled.
    sampler: Option<Sampler>,
    log: &'a Logger,
}

impl Transport<'_> {
    fn send(&mut self, msg: &ManagerMsg) {
        self.seq += 1;
        let frame = self.codec.encode(msg, self.seq);
        if let Err(e) = self.socket.send(frame, 0) {
            warn!(self.log, "send to the interchange failed"; "error" => %e);
        }
    }
}

impl ManagerComm for Transport<'_> {
    /// Results go in as many frames as the run's frame limit needs. A result that alone is
    /// larger than a frame would be refused by the interchange and its task would wait
    /// forever, so it is sent as a `TooLarge` failure instead, which names the limit.
    fn to_interchange(&mut self, msg: ManagerMsg) {
        let ManagerMsg::Results(results) = msg else {
            self.send(&msg);
            return;
        };
        let (batches, too_large) = split_by_size(results, self.codec.batch_budget());
        for b in batches {
            self.send(&ManagerMsg::Results(b));
        }
        let limit = self.codec.max_frame() as u64;
        for t in too_large {
            warn!(self.log, "a result exceeds the frame limit; it is sent as a TooLarge failure";
                "try" => %t.item.id, "bytes" => t.bytes, "limit" => limit);
            let failure = Failure::TooLarge { what: "the result".into(), bytes: t.bytes as u64, limit };
            self.send(&ManagerMsg::Results(vec![TryResult::new(t.item.id, Outcome::Failed(failure))]));
        }
    }

    fn to_worker(&mut self, rank: WorkerRank, msg: ToWorker) {
        // MPI delivers every send in order, so a worker always holds what its link told it to.
        let link = self.worker_links.entry(rank).or_insert_with(|| functions::Sent::with_room(WORKER_KEEP_BYTES));
        let (tag, bytes) = msg.encode_over(link);
        // The buffer must outlive the non-blocking send; `reap_sends` frees it.
        let buf: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        let ptr = buf as *const [u8] as *mut [u8];
        let req = self.pool.process_at_rank(rank.0).immediate_send_with_tag(StaticScope, buf, tag);
        self.sends.push(PendingSend { rank, req, buf: ptr });
    }

    fn run_locally(&mut self, t: Try) {
        if let Some(exec) = &self.local {
            exec.submit(t);
        }
    }

    fn sample_here(&mut self) -> strand::sample::Samples {
        self.sampler.as_mut().map(|s| s.take_now(self.local.as_ref())).unwrap_or_default()
    }
}

impl Transport<'_> {
    /// Hand every frame that has arrived to `m`; returns whether any did, or why to stop.
    fn drain_interchange(&mut self, m: &mut ManagerState) -> Result<bool, ManagerExit> {
        let mut got = false;
        while let Ok(frame) = self.socket.recv_bytes(zmq::DONTWAIT) {
            got = true;
            let msg = match self.codec.decode_over::<ToManagerMsg>(&frame, &mut self.held) {
                Ok((h, ..)) if h.seq <= self.last_seen_seq => {
                    warn!(self.log, "dropped a replayed frame from the interchange"; "seq" => h.seq);
                    continue;
                }
                Ok((h, msg, missing)) => {
                    self.last_seen_seq = h.seq;
                    self.keep_only_held(msg, &missing)
                }
                Err(e) => {
                    warn!(self.log, "dropped a frame from the interchange"; "reason" => %e);
                    continue;
                }
            };
            if let Some(exit) = m.interchange(msg, Instant::now(), self) {
                return Err(exit);
            }
        }
        Ok(got)
    }

    /// What of `msg` the manager can act on: a registration resets the functions kept (the
    /// interchange's end of the link starts empty), and tries naming a function not held go
    /// back to the interchange unrun, to come again with it.
    fn keep_only_held(&mut self, msg: ToManagerMsg, missing: &[functions::FunctionKey]) -> ToManagerMsg {
        match msg {
            ToManagerMsg::Registered { .. } => {
                self.held.clear();
                msg
            }
            ToManagerMsg::Tasks(tries) if !missing.is_empty() => {
                let (back, run): (Vec<Try>, Vec<Try>) = tries.into_iter().partition(|t| t.calls_any(missing));
                info!(self.log, "tries name Python functions not held here; handing them back";
                    "tries" => back.len(), "functions" => missing.len());
                let (batches, too_large) = split_by_size(back, self.codec.batch_budget());
                for b in batches.into_iter().chain(too_large.into_iter().map(|t| vec![t.item])) {
                    self.send(&ManagerMsg::NotHeld(b));
                }
                ToManagerMsg::Tasks(run)
            }
            msg => msg,
        }
    }

    /// Hand every heartbeat and result the workers have sent to `m`, telling `pace` how long
    /// the tries ran; returns whether results came.
    fn drain_workers(&mut self, m: &mut ManagerState, pace: &mut Backoff) -> bool {
        let mut got = false;
        while let Some(probed) = self.pool.any_process().immediate_matched_probe_with_tag(TAG_HEARTBEAT) {
            let (bytes, status) = probed.matched_receive_vec::<u8>();
            let rank = WorkerRank(status.source_rank());
            let hello = pool_msg::decode::<WorkerHello>(&bytes);
            if hello.is_none() {
                warn!(self.log, "undecodable heartbeat from a worker"; "rank" => rank.0);
            }
            m.worker_hello(rank, hello, Instant::now());
        }
        while let Some(probed) = self.pool.any_process().immediate_matched_probe_with_tag(TAG_RESULTS) {
            got = true;
            let (bytes, status) = probed.matched_receive_vec::<u8>();
            let Some(results) = pool_msg::decode::<Vec<TryResult>>(&bytes) else {
                warn!(self.log, "undecodable results from a worker"; "rank" => status.source_rank());
                continue;
            };
            for r in &results {
                pace.observe_run(r.ran.run_us);
            }
            m.worker_results(WorkerRank(status.source_rank()), results, Instant::now());
        }
        while let Some(probed) = self.pool.any_process().immediate_matched_probe_with_tag(TAG_SAMPLES) {
            let (bytes, status) = probed.matched_receive_vec::<u8>();
            match pool_msg::decode::<strand::sample::Samples>(&bytes) {
                Some(samples) => m.worker_samples(samples),
                None => warn!(self.log, "undecodable resource samples from a worker"; "rank" => status.source_rank()),
            }
        }
        got
    }

    /// Hand the results of the manager's own slots to `m`, telling `pace` how long they ran;
    /// returns whether any came.
    fn drain_local(&mut self, m: &mut ManagerState, pace: &mut Backoff) -> bool {
        let Some(exec) = &self.local else { return false };
        let mut got = false;
        while let Ok(r) = exec.completions().try_recv() {
            pace.observe_run(r.ran.run_us);
            m.local_result(r);
            got = true;
        }
        got
    }

    /// Block on the ZeroMQ socket's file descriptor for at most `wait` (microsecond resolution, unlike zmq_poll).
    fn wait_for_interchange(&self, wait: Duration) {
        // ZMQ_FD is edge-triggered: only sleep if nothing is pending right now.
        if self.socket.get_events().map(|e| e.contains(zmq::POLLIN)).unwrap_or(false) {
            return;
        }
        let Ok(fd) = self.socket.get_fd() else {
            std::thread::sleep(wait);
            return;
        };
        let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        let ts =
            libc::timespec { tv_sec: wait.as_secs() as libc::time_t, tv_nsec: wait.subsec_nanos() as libc::c_long };
        // SAFETY: one valid pollfd, a valid timespec and no signal mask change.
        unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
    }

    /// Wait (bounded) for the workers to take their stop, then shut the local executor down.
    fn close(&mut self) {
        // Live workers take their stop at once; a hung or dead one never will, and must not
        // keep this rank from exiting: its sends are abandoned (and their buffers leaked).
        let deadline = Instant::now() + STOP_GRACE;
        while reap_sends(&mut self.sends) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        for p in self.sends.drain(..) {
            warn!(self.log, "abandoning a send to a worker that does not receive"; "rank" => p.rank.0);
            std::mem::forget(p.req);
        }
        if let Some(exec) = self.local.take() {
            exec.kill_running();
            exec.shutdown();
        }
    }
}

/// Run the manager of `pool` until the interchange stops it, a signal arrives,
/// or the interchange goes silent. Workers are told to stop in every case.
pub fn run_manager(
    pool: &SimpleCommunicator,
    conn: &ConnectionInfo,
    cfg: ManagerConfig,
    local: Option<Executor>,
    stop: &StopFlag,
    log: &Logger,
) -> Result<ManagerExit, ManagerError> {
    let ctx = zmq::Context::new();
    let socket = conn
        .dealer(&ctx, Side::Manager, cfg.id.0, Duration::from_secs(1))
        .map_err(|e| ManagerError::Zmq { what: e.what, source: e.source })?;
    let info = PoolInfo {
        size: pool.size() as u32,
        local: local.is_some(),
        host: strand::host::hostname(),
        mpi_version: mpi::environment::library_version().unwrap_or_default().trim().to_string(),
    };
    let sampler = Sampler::new(cfg.resource_interval, Instant::now());
    let mut m = ManagerState::new(cfg, info, Instant::now(), log.clone());
    let mut t = Transport {
        pool,
        socket,
        codec: conn.codec(),
        seq: 0,
        last_seen_seq: 0,
        held: functions::Held::default(),
        worker_links: HashMap::new(),
        sends: Vec::new(),
        local,
        sampler,
        log,
    };
    m.start(&mut t);
    let exit = serve(&mut m, &mut t, stop);
    m.finish(exit, &mut t);
    t.close();
    Ok(exit)
}

/// One round after another until the state, the interchange or a signal says stop.
fn serve(m: &mut ManagerState, t: &mut Transport, stop: &StopFlag) -> ManagerExit {
    let mut backoff = Backoff::default();
    let queued = m.prefetches();
    loop {
        let mut active = match t.drain_interchange(m) {
            Ok(got) => got,
            Err(exit) => return exit,
        };
        active |= t.drain_workers(m, &mut backoff);
        if !t.sends.is_empty() {
            reap_sends(&mut t.sends);
        }
        active |= t.drain_local(m, &mut backoff);
        active |= m.step(Instant::now(), t);
        if stop.is_set() {
            return ManagerExit::Signalled;
        }
        let now = Instant::now();
        if let Some(exit) = m.timers(now, t) {
            return exit;
        }
        if active {
            backoff.reset();
        }
        // Only results from ranks doing work need polling; otherwise sleep on the
        // socket until the next heartbeat.
        let wait = match (m.busy(), queued) {
            // Each worker's next try is queued behind its running one (prefetch): results of
            // long tries can wait a little.
            (true, true) => backoff.next_wait_queued(),
            (true, false) => backoff.next_wait(),
            (false, _) => m.idle_wait(now),
        };
        if wait.is_zero() {
            std::thread::yield_now();
        } else {
            t.wait_for_interchange(wait);
        }
    }
}
