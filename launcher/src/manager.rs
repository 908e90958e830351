//! The manager: rank 0 of a pool, the only rank that talks ZeroMQ to the interchange.
//!
//! It registers, receives batches of tries, keeps each worker fed up to its
//! prefetch depth from a local backlog (so a short task never waits for a
//! round trip to the interchange), and returns results in batches.

use crate::backoff::Backoff;
use crate::exec::Executor;
use crate::pool_msg::{self, TAG_HEARTBEAT, TAG_RESULTS, TAG_STOP, TAG_TRIES};
use crate::stop::StopFlag;
use crate::wide::{Action, WidePlanner, WorkerView};
use mpi::point_to_point::{Destination, MatchedReceiveVec, Source};
use mpi::request::{Request, StaticScope};
use mpi::topology::{Communicator, SimpleCommunicator};
use slog::{debug, info, warn, Logger};
use std::collections::VecDeque;
use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};
use strand::connection::ConnectionInfo;
use strand::task::{Failure, ManagerId, Outcome, Try, TryId, TryResult};
use strand::wire::{Codec, ManagerMsg, Registration, ToManagerMsg};
use thiserror::Error;

/// How a manager runs its pool.
#[derive(Clone, Debug)]
pub struct ManagerConfig {
    /// This manager's id (random per process).
    pub id: ManagerId,
    /// Block id to register under.
    pub block: String,
    /// Task slots each worker rank runs at once.
    pub slots_per_worker: u32,
    /// Tries each worker holds beyond its slots.
    pub prefetch: u32,
    /// Task slots of the manager itself (used when the pool has no workers).
    pub local_slots: u32,
    /// Give up when the interchange has not answered registration within this.
    pub connect_timeout: Duration,
    /// When to announce draining (the block's walltime minus a margin), so no try
    /// is killed by the scheduler's deadline.
    pub drain_at: Option<Instant>,
    /// A worker silent this long is lost: its tries fail with `WorkerLost`.
    pub worker_threshold: Duration,
    /// GPU ids each node of the pool offers to tries that ask for GPUs.
    pub gpu_ids: Vec<String>,
}

/// Why a manager could not run.
#[derive(Debug, Error)]
pub enum ManagerError {
    /// ZeroMQ failed.
    #[error("{what}: {source}")]
    Zmq {
        /// What was being done.
        what: &'static str,
        /// The error.
        source: zmq::Error,
    },
}

/// Why a manager stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum ManagerExit {
    /// The interchange said stop.
    Stopped,
    /// SIGTERM or SIGINT.
    Signalled,
    /// Nothing heard from the interchange within the threshold.
    InterchangeGone,
}

struct WorkerSlot {
    rank: i32,
    /// Tries handed to it and not yet answered.
    tries: HashSet<TryId>,
    /// When it last sent anything (results or a heartbeat).
    last_heard: Instant,
    /// Its host, from its heartbeats.
    host: String,
    /// The CPUs it is bound to, from its heartbeats (`None`: not said, or not yet).
    cpus: Option<BTreeSet<u32>>,
    /// Declared lost: gets nothing more; whatever it sends is dropped.
    lost: bool,
}

impl WorkerSlot {
    fn held(&self) -> u32 {
        self.tries.len() as u32
    }
}

/// A send to a worker still in progress. Sends are non-blocking so that a hung worker (one
/// that stopped receiving) can never block the manager: a large batch goes by rendezvous,
/// which waits for the receiver.
struct PendingSend {
    rank: i32,
    req: Request<'static, [u8]>,
    /// The leaked buffer the request reads from; freed when the request completes.
    buf: *mut [u8],
}

/// Which worker each of the first `n` backlog tries goes to: `held[k]` is what worker k holds,
/// `depth` the most it may hold. Level by level, the least loaded first: every idle worker gets
/// a try before any gets a second (the front of the backlog, its highest priority, runs at once
/// instead of waiting behind another try in a prefetch slot). Shorter than `n` when all are full.
pub(crate) fn share_out(held: &[u32], depth: u32, n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..held.len()).collect();
    order.sort_by_key(|&k| held[k]);
    let mut have: Vec<u32> = held.to_vec();
    let mut out = Vec::with_capacity(n.min(held.len() * depth as usize));
    for level in 1..=depth {
        for &k in &order {
            if out.len() == n {
                return out;
            }
            if have[k] < level {
                have[k] += 1;
                out.push(k);
            }
        }
    }
    out
}

/// Start a non-blocking send of `bytes` to `rank`; the buffer lives until the send completes.
fn isend(pool: &SimpleCommunicator, sends: &mut Vec<PendingSend>, rank: i32, bytes: Vec<u8>, tag: i32) {
    let buf: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    let ptr = buf as *const [u8] as *mut [u8];
    let req = pool.process_at_rank(rank).immediate_send_with_tag(StaticScope, buf, tag);
    sends.push(PendingSend { rank, req, buf: ptr });
}

/// Complete the sends that have finished and free their buffers; returns how many are left.
fn reap_sends(sends: &mut Vec<PendingSend>) -> usize {
    let mut left = Vec::with_capacity(sends.len());
    for p in sends.drain(..) {
        match p.req.test() {
            Ok(_) => {
                // SAFETY: `buf` came from Box::leak in `isend`, and the only borrow of it was the
                // request, which has just completed and been consumed.
                drop(unsafe { Box::from_raw(p.buf) });
            }
            Err(req) => left.push(PendingSend { req, ..p }),
        }
    }
    *sends = left;
    sends.len()
}

/// The manager's state between loop rounds.
struct Manager<'a> {
    cfg: ManagerConfig,
    pool: &'a SimpleCommunicator,
    socket: zmq::Socket,
    codec: Codec,
    seq: u64,
    /// Highest sequence number accepted from the interchange (replays are dropped).
    last_seen_seq: u64,
    /// A registration is on its way: further `Reregister`s (one per message sent before it) are moot.
    registering: bool,
    /// The (slots, prefetch) the interchange was last told.
    advertised: (u32, u32),
    workers: Vec<WorkerSlot>,
    per_worker: u32,
    local: Option<Executor>,
    local_held: u32,
    backlog: VecDeque<Try>,
    /// Sends to workers not yet completed.
    sends: Vec<PendingSend>,
    /// Tries that need several worker ranks or GPUs.
    wide: WidePlanner,
    results: Vec<TryResult>,
    last_heard: Instant,
    threshold: Duration,
    heartbeat_period: Duration,
    next_heartbeat: Instant,
    log: &'a Logger,
}

fn zerr(what: &'static str) -> impl FnOnce(zmq::Error) -> ManagerError {
    move |source| ManagerError::Zmq { what, source }
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
    let socket = ctx.socket(zmq::DEALER).map_err(zerr("create DEALER socket"))?;
    socket.set_identity(&cfg.id.0.to_le_bytes()).map_err(zerr("set identity"))?;
    socket.set_sndhwm(0).map_err(zerr("set SNDHWM"))?;
    socket.set_rcvhwm(0).map_err(zerr("set RCVHWM"))?;
    socket.set_linger(1000).map_err(zerr("set LINGER"))?;
    socket.connect(&conn.manager_endpoint()).map_err(zerr("connect to the interchange"))?;
    let workers: Vec<WorkerSlot> = (1..pool.size())
        .map(|rank| WorkerSlot {
            rank,
            tries: HashSet::new(),
            last_heard: Instant::now(),
            host: String::new(),
            cpus: None,
            lost: false,
        })
        .collect();
    let per_worker = cfg.slots_per_worker * (1 + cfg.prefetch);
    let now = Instant::now();
    let mut m = Manager {
        pool,
        socket,
        codec: conn.codec(),
        seq: 0,
        last_seen_seq: 0,
        registering: false,
        advertised: (0, 0),
        per_worker,
        local,
        local_held: 0,
        backlog: VecDeque::new(),
        sends: Vec::new(),
        wide: WidePlanner::new(cfg.id, cfg.gpu_ids.clone()),
        results: Vec::new(),
        last_heard: now,
        threshold: cfg.connect_timeout,
        heartbeat_period: Duration::from_secs(30),
        next_heartbeat: now + cfg.connect_timeout,
        workers,
        cfg,
        log,
    };
    m.register()?;
    let exit = m.serve(stop);
    info!(log, "manager stopping"; "why" => ?exit, "backlog" => m.backlog.len());
    if exit != ManagerExit::Stopped {
        // Tell the interchange we are leaving so it fails what we hold as ManagerLost
        // at once instead of after the heartbeat threshold.
        m.send(&ManagerMsg::Goodbye);
    }
    m.stop_workers();
    Ok(exit)
}

impl Manager<'_> {
    /// Tries the pool can run at once: its live workers' slots and its own.
    fn slots(&self) -> u32 {
        self.live_workers() * self.cfg.slots_per_worker + self.local_slots()
    }

    fn live_workers(&self) -> u32 {
        self.workers.iter().filter(|w| !w.lost).count() as u32
    }

    /// (slots, prefetch) to advertise: prefetch held by workers, plus a manager backlog as deep
    /// as the pool's slots so refills never wait for the interchange. `--prefetch 0` means no
    /// try waits in this pool at all (long tasks: a queued one could run on another pool).
    fn capacity(&self) -> (u32, u32) {
        let slots = self.slots();
        let backlog = if self.cfg.prefetch > 0 { slots } else { 0 };
        let prefetch = self.live_workers() * self.cfg.slots_per_worker * self.cfg.prefetch
            + self.local_slots() * self.cfg.prefetch
            + backlog;
        (slots, prefetch)
    }

    fn local_slots(&self) -> u32 {
        if self.local.is_some() {
            self.cfg.local_slots
        } else {
            0
        }
    }

    fn register(&mut self) -> Result<(), ManagerError> {
        let (slots, prefetch) = self.capacity();
        self.advertised = (slots, prefetch);
        let reg = Registration {
            manager: self.cfg.id,
            block: strand::block::BlockId(self.cfg.block.clone()),
            host: strand::host::hostname(),
            pool_size: self.pool.size() as u32,
            slots,
            prefetch,
            launcher_version: env!("CARGO_PKG_VERSION").to_string(),
            mpi_version: mpi::environment::library_version().unwrap_or_default().trim().to_string(),
        };
        info!(self.log, "registering"; "manager" => %self.cfg.id, "slots" => slots, "prefetch" => prefetch);
        self.registering = true;
        self.send(&ManagerMsg::Register(reg));
        Ok(())
    }

    fn send(&mut self, msg: &ManagerMsg) {
        self.seq += 1;
        let frame = self.codec.encode(msg, self.seq);
        if let Err(e) = self.socket.send(frame, 0) {
            warn!(self.log, "send to the interchange failed"; "error" => %e);
        }
    }

    fn serve(&mut self, stop: &StopFlag) -> ManagerExit {
        let mut backoff = Backoff::default();
        let mut last_check = Instant::now();
        loop {
            let mut active = false;
            match self.drain_interchange() {
                Ok(got) => active |= got,
                Err(exit) => return exit,
            }
            active |= self.drain_workers();
            if !self.sends.is_empty() {
                reap_sends(&mut self.sends);
            }
            self.check_workers();
            active |= self.drain_local();
            active |= self.feed();
            if !self.results.is_empty() {
                if self.wide.running() > 0 {
                    for r in &self.results {
                        self.wide.finished(&r.id);
                    }
                }
                let batch = std::mem::take(&mut self.results);
                self.send(&ManagerMsg::Results(batch));
            }
            if stop.is_set() {
                return ManagerExit::Signalled;
            }
            let now = Instant::now();
            // Consecutive checks are normally at most a wait apart. A long gap means this
            // process was suspended (SIGSTOP, a stalled node) somewhere in the loop, not that
            // the interchange went quiet: ask it before judging it gone. If it has declared
            // us lost meanwhile, it answers Reregister.
            let gap = now.saturating_duration_since(last_check);
            last_check = now;
            if gap > self.threshold / 2 {
                warn!(self.log, "this manager was suspended; checking in with the interchange";
                    "suspended_ms" => gap.as_millis() as u64);
                self.last_heard = now;
                self.send(&ManagerMsg::Heartbeat);
            } else if now.saturating_duration_since(self.last_heard) > self.threshold {
                warn!(self.log, "nothing heard from the interchange; stopping the pool";
                    "silent_for_s" => now.saturating_duration_since(self.last_heard).as_secs());
                return ManagerExit::InterchangeGone;
            }
            if self.cfg.drain_at.is_some_and(|t| now >= t) {
                info!(self.log, "walltime margin reached: draining (no new tries; finishing what we hold)");
                self.send(&ManagerMsg::Draining);
                self.cfg.drain_at = None;
            }
            if now >= self.next_heartbeat {
                self.send(&ManagerMsg::Heartbeat);
                self.next_heartbeat = now + self.heartbeat_period;
            }
            if active {
                backoff.reset();
            }
            // Only results from ranks doing work need polling; otherwise sleep on the
            // socket until the next heartbeat (capped so signals are seen promptly).
            let busy =
                self.workers.iter().any(|w| !w.tries.is_empty()) || self.local_held > 0 || self.wide.waiting() > 0;
            let wait = if busy {
                backoff.next_wait()
            } else {
                self.next_heartbeat.saturating_duration_since(now).min(Duration::from_millis(100))
            };
            if wait.is_zero() {
                std::thread::yield_now();
            } else {
                self.wait_for_interchange(wait);
            }
        }
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

    /// Take every frame that has arrived; returns whether anything did, or why to stop.
    fn drain_interchange(&mut self) -> Result<bool, ManagerExit> {
        let mut got = false;
        while let Ok(frame) = self.socket.recv_bytes(zmq::DONTWAIT) {
            got = true;
            let msg = match self.codec.decode::<ToManagerMsg>(&frame) {
                Ok((h, _)) if h.seq <= self.last_seen_seq => {
                    warn!(self.log, "dropped a replayed frame from the interchange"; "seq" => h.seq);
                    continue;
                }
                Ok((h, msg)) => {
                    self.last_seen_seq = h.seq;
                    msg
                }
                Err(e) => {
                    warn!(self.log, "dropped a frame from the interchange"; "reason" => %e);
                    continue;
                }
            };
            self.last_heard = Instant::now();
            match msg {
                ToManagerMsg::Registered { heartbeat_period_ms, heartbeat_threshold_ms } => {
                    self.registering = false;
                    self.heartbeat_period = Duration::from_millis(heartbeat_period_ms.max(1));
                    self.threshold = Duration::from_millis(heartbeat_threshold_ms.max(1));
                    self.next_heartbeat = self.last_heard + self.heartbeat_period;
                    info!(self.log, "registered with the interchange";
                        "heartbeat_ms" => heartbeat_period_ms, "threshold_ms" => heartbeat_threshold_ms);
                    // A worker lost while the registration was on its way.
                    self.advertise_capacity();
                }
                ToManagerMsg::Tasks(tries) => {
                    debug!(self.log, "tries received"; "n" => tries.len());
                    for t in tries {
                        if t.spec.resources.is_single() {
                            self.backlog.push_back(t);
                        } else {
                            self.wide.push(t);
                        }
                    }
                }
                ToManagerMsg::Heartbeat => {}
                ToManagerMsg::Reregister if self.registering => {}
                ToManagerMsg::Reregister => {
                    // The interchange restarted or declared us lost: what we hold belongs to
                    // no one now. Tries not started are dropped; running ones finish and their
                    // results are dropped there as stale. Clients resubmit them as new tries.
                    warn!(self.log, "interchange does not know us; registering again";
                        "dropped_backlog" => self.backlog.len());
                    self.backlog.clear();
                    self.wide.clear_waiting();
                    if let Err(e) = self.register() {
                        warn!(self.log, "re-registration failed"; "error" => %e);
                    }
                }
                ToManagerMsg::Stop => return Err(ManagerExit::Stopped),
            }
        }
        Ok(got)
    }

    /// Take every result and heartbeat the workers have sent.
    fn drain_workers(&mut self) -> bool {
        let mut got = false;
        while let Some(probed) = self.pool.any_process().immediate_matched_probe_with_tag(TAG_HEARTBEAT) {
            let (bytes, status) = probed.matched_receive_vec::<u8>();
            if let Some(w) = self.workers.iter_mut().find(|w| w.rank == status.source_rank()) {
                w.last_heard = Instant::now();
                if w.host.is_empty() {
                    // Host and cpuset come together, and are set once: a rank does not move.
                    (w.host, w.cpus) = crate::worker::parse_heartbeat(&bytes);
                }
            }
        }
        while let Some(probed) = self.pool.any_process().immediate_matched_probe_with_tag(TAG_RESULTS) {
            got = true;
            let (bytes, status) = probed.matched_receive_vec::<u8>();
            let Some(results) = pool_msg::decode::<Vec<TryResult>>(&bytes) else {
                warn!(self.log, "undecodable results from a worker"; "rank" => status.source_rank());
                continue;
            };
            let Some(w) = self.workers.iter_mut().find(|w| w.rank == status.source_rank()) else { continue };
            w.last_heard = Instant::now();
            // Only answers to tries it still holds count: a lost worker's late results were
            // already reported as WorkerLost and must not be delivered a second time.
            let before = results.len();
            let kept: Vec<TryResult> = results.into_iter().filter(|r| !w.lost && w.tries.remove(&r.id)).collect();
            if kept.len() < before {
                debug!(self.log, "dropped stale results from a worker"; "rank" => w.rank, "n" => before - kept.len());
            }
            self.results.extend(kept);
        }
        got
    }

    /// Declare lost every worker silent past the threshold; its tries fail with `WorkerLost`.
    fn check_workers(&mut self) {
        let threshold = self.cfg.worker_threshold;
        let manager = self.cfg.id;
        let mut lost_any = false;
        for w in self.workers.iter_mut().filter(|w| !w.lost && w.last_heard.elapsed() > threshold) {
            w.lost = true;
            lost_any = true;
            warn!(self.log, "worker lost: silent past the threshold; its tries fail, it gets no more";
                "rank" => w.rank, "host" => &w.host, "tries" => w.tries.len(),
                "silent_ms" => w.last_heard.elapsed().as_millis() as u64);
            let host = if w.host.is_empty() { "unknown".to_string() } else { w.host.clone() };
            for id in w.tries.drain() {
                let failure = Failure::WorkerLost { manager, rank: w.rank, host: host.clone() };
                self.results.push(TryResult { id, outcome: Outcome::Failed(failure) });
            }
        }
        if lost_any {
            self.advertise_capacity();
        }
    }

    /// Tell the interchange the capacity left, if it changed, so it stops counting lost ranks'
    /// slots (during a registration, the `Registered` reply calls this again).
    fn advertise_capacity(&mut self) {
        let now = self.capacity();
        if self.registering || now == self.advertised {
            return;
        }
        info!(self.log, "advertising the capacity left"; "slots" => now.0, "prefetch" => now.1);
        self.advertised = now;
        self.send(&ManagerMsg::Capacity { slots: now.0, prefetch: now.1 });
    }

    fn drain_local(&mut self) -> bool {
        let Some(exec) = &self.local else { return false };
        let before = self.results.len();
        while let Ok(r) = exec.completions().try_recv() {
            self.results.push(r);
        }
        let n = (self.results.len() - before) as u32;
        self.local_held = self.local_held.saturating_sub(n);
        n > 0
    }

    /// Start the wide tries whose ranks are free; refuse those the pool can never run.
    fn feed_wide(&mut self) -> bool {
        if self.wide.waiting() == 0 {
            return false;
        }
        let views: Vec<WorkerView> = self
            .workers
            .iter()
            .map(|w| WorkerView {
                rank: w.rank,
                host: w.host.clone(),
                held: w.held(),
                lost: w.lost,
                cpus: w.cpus.clone(),
            })
            .collect();
        let actions = self.wide.step(&views);
        let fed = !actions.is_empty();
        for a in actions {
            match a {
                Action::Fail(r) => self.results.push(r),
                Action::Launch { leader, try_ } => {
                    let Some(w) = self.workers.iter_mut().find(|w| w.rank == leader) else { continue };
                    let batch = [*try_];
                    isend(self.pool, &mut self.sends, w.rank, pool_msg::encode_tries(&batch), TAG_TRIES);
                    w.tries.insert(batch[0].id);
                }
            }
        }
        fed
    }

    /// Hand backlog to workers (least loaded first, level by level) and to local slots, up to their depth.
    fn feed(&mut self) -> bool {
        let mut fed = self.feed_wide();
        if self.backlog.is_empty() {
            return fed;
        }
        let wide = &self.wide;
        let eligible: Vec<usize> = (0..self.workers.len())
            .filter(|&i| !self.workers[i].lost && !wide.is_blocked(self.workers[i].rank))
            .collect();
        let held: Vec<u32> = eligible.iter().map(|&i| self.workers[i].held()).collect();
        let mut batches: Vec<Vec<Try>> = vec![Vec::new(); eligible.len()];
        for k in share_out(&held, self.per_worker, self.backlog.len()) {
            let Some(t) = self.backlog.pop_front() else { break };
            batches[k].push(t);
        }
        for (k, batch) in batches.into_iter().enumerate().filter(|(_, b)| !b.is_empty()) {
            let w = &mut self.workers[eligible[k]];
            isend(self.pool, &mut self.sends, w.rank, pool_msg::encode_tries(&batch), TAG_TRIES);
            w.tries.extend(batch.iter().map(|t| t.id));
            fed = true;
        }
        if let Some(exec) = &self.local {
            let depth = self.cfg.local_slots * (1 + self.cfg.prefetch);
            while self.local_held < depth {
                let Some(t) = self.backlog.pop_front() else { break };
                exec.submit(t);
                self.local_held += 1;
                fed = true;
            }
        }
        fed
    }

    fn stop_workers(&mut self) {
        for w in &self.workers {
            isend(self.pool, &mut self.sends, w.rank, Vec::new(), TAG_STOP);
        }
        // Live workers take their stop at once; a hung or dead one never will, and must not
        // keep this rank from exiting: its sends are abandoned (and their buffers leaked).
        let deadline = Instant::now() + Duration::from_secs(2);
        while reap_sends(&mut self.sends) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        for p in self.sends.drain(..) {
            warn!(self.log, "abandoning a send to a worker that does not receive"; "rank" => p.rank);
            std::mem::forget(p.req);
        }
        if let Some(exec) = self.local.take() {
            exec.kill_running();
            exec.shutdown();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::share_out;

    #[test]
    fn every_idle_worker_gets_a_try_before_any_gets_a_second() {
        // Two idle workers, prefetch 1 (depth 2), two tries: one each, not both to the first.
        assert_eq!(share_out(&[0, 0], 2, 2), [0, 1]);
        // Three tries: the front two run at once, the third waits in a prefetch slot.
        assert_eq!(share_out(&[0, 0], 2, 3), [0, 1, 0]);
    }

    #[test]
    fn the_least_loaded_come_first_and_full_workers_get_nothing() {
        assert_eq!(share_out(&[1, 0, 2], 2, 5), [1, 1, 0]);
        assert_eq!(share_out(&[2, 2], 2, 4), Vec::<usize>::new());
        assert_eq!(share_out(&[], 2, 4), Vec::<usize>::new());
    }

    #[test]
    fn multi_slot_workers_fill_their_slots_level_by_level() {
        // Workers of 2 slots with prefetch 1 (depth 4): slots first, across workers.
        assert_eq!(share_out(&[0, 1], 4, 4), [0, 0, 1, 0]);
        assert_eq!(share_out(&[0, 0], 4, 100).len(), 8);
    }
}
