//! The manager as plain data: worker slots, backlog, held tries, capacity, draining.
//!
//! Driven by events (a message from the interchange, a message from worker rank r, a result
//! of the manager's own slots, a tick with the current time); everything it does goes through
//! [`ManagerComm`]. Time is always passed in, never read, so tests are deterministic.

use super::comm::ManagerComm;
use super::{ManagerConfig, ManagerExit};
use crate::group::Groups;
use crate::pool_msg::{ToWorker, WorkerHello, WorkerRank, WorkerTry};
use crate::wide::{Action, WidePlanner, WorkerView};
use slog::{debug, info, warn, Logger};
use std::collections::{BTreeSet, HashSet, VecDeque};
use std::time::{Duration, Instant};
use strand::block::BlockId;
use strand::sample::Samples;
use strand::task::{App, Failure, Outcome, Try, TryId, TryResult};
use strand::wire::{ManagerMsg, Registration, ToManagerMsg};

/// Between heartbeats to the interchange, the longest an idle manager sleeps, so that a signal
/// (seen by the loop, not by a wake-up) is acted on promptly.
const IDLE_WAIT_CAP: Duration = Duration::from_millis(100);

/// What the manager knows about its pool and itself when it starts.
#[derive(Clone, Debug)]
pub struct PoolInfo {
    /// Ranks in the pool, the manager included (its workers are ranks 1 to size - 1).
    pub size: u32,
    /// Whether the manager runs tries itself (a pool of one rank has a local executor).
    pub local: bool,
    /// The manager's host name, for its registration.
    pub host: String,
    /// The MPI library's version string, for its registration.
    pub mpi_version: String,
}

/// One worker rank as its manager sees it.
struct WorkerSlot {
    rank: WorkerRank,
    /// Tries handed to it and not yet answered.
    tries: HashSet<TryId>,
    /// When it last sent anything (results or a heartbeat).
    last_heard: Instant,
    /// Its host, from its heartbeats ("" until the first).
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

/// A manager's whole state between events.
pub struct ManagerState {
    cfg: ManagerConfig,
    pool: PoolInfo,
    /// A registration is on its way: further `Reregister`s (one per message sent before it) are moot.
    registering: bool,
    /// The (slots, prefetch) the interchange was last told.
    advertised: (u32, u32),
    workers: Vec<WorkerSlot>,
    /// Most tries one worker holds: its slots and their prefetch.
    per_worker: u32,
    /// Tries on the manager's own slots.
    local_held: u32,
    /// Plain tries received and not yet handed to a worker, each with its arrival number.
    backlog: VecDeque<(u64, Try)>,
    /// Tries received so far: the next one's arrival number (wide tries keep their place by it).
    arrivals: u64,
    /// Tries that need several worker ranks or GPUs.
    wide: WidePlanner,
    /// MPI function tries running on their members.
    groups: Groups,
    /// Results not yet sent to the interchange.
    results: Vec<TryResult>,
    /// Resource samples from the workers, sent at the next [`ManagerState::timers`] due.
    samples: Samples,
    /// When the samples go next (`None`: the pool is not sampled).
    next_samples: Option<Instant>,
    /// When the interchange was last heard from.
    last_heard: Instant,
    /// Silence from the interchange past this stops the pool (the connect timeout until registered).
    threshold: Duration,
    heartbeat_period: Duration,
    next_heartbeat: Instant,
    /// When [`ManagerState::timers`] last ran, to tell a suspended process from a silent interchange.
    last_check: Instant,
    log: Logger,
}

impl ManagerState {
    /// A manager for `pool` at time `now`, not yet registered (see [`ManagerState::start`]).
    pub fn new(cfg: ManagerConfig, pool: PoolInfo, now: Instant, log: Logger) -> ManagerState {
        let workers = (1..pool.size as i32)
            .map(|rank| WorkerSlot {
                rank: WorkerRank(rank),
                tries: HashSet::new(),
                last_heard: now,
                host: String::new(),
                cpus: None,
                lost: false,
            })
            .collect();
        ManagerState {
            registering: false,
            advertised: (0, 0),
            workers,
            per_worker: cfg.slots_per_worker * (1 + cfg.prefetch),
            local_held: 0,
            backlog: VecDeque::new(),
            arrivals: 0,
            wide: WidePlanner::new(cfg.id, cfg.gpu_ids.clone(), cfg.mpi.clone()),
            groups: Groups::default(),
            results: Vec::new(),
            samples: Samples::default(),
            next_samples: cfg.resource_interval.map(|_| now),
            last_heard: now,
            threshold: cfg.connect_timeout,
            heartbeat_period: Duration::from_secs(30),
            next_heartbeat: now + cfg.connect_timeout,
            last_check: now,
            cfg,
            pool,
            log,
        }
    }

    /// Register with the interchange: the first thing a manager does.
    pub fn start(&mut self, comm: &mut impl ManagerComm) {
        self.register(comm);
    }

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
        if self.pool.local {
            self.cfg.local_slots
        } else {
            0
        }
    }

    fn register(&mut self, comm: &mut impl ManagerComm) {
        let (slots, prefetch) = self.capacity();
        self.advertised = (slots, prefetch);
        let reg = Registration {
            manager: self.cfg.id,
            block: BlockId(self.cfg.block.clone()),
            host: self.pool.host.clone(),
            pool_size: self.pool.size,
            slots,
            prefetch,
            launcher_version: env!("CARGO_PKG_VERSION").to_string(),
            mpi_version: self.pool.mpi_version.clone(),
        };
        info!(self.log, "registering"; "manager" => %self.cfg.id, "slots" => slots, "prefetch" => prefetch);
        self.registering = true;
        comm.to_interchange(ManagerMsg::Register(reg));
    }

    /// A message from the interchange arrived at `now` (authentic and in order: the loop checked).
    /// Returns why to stop, if it says so.
    pub fn interchange(&mut self, msg: ToManagerMsg, now: Instant, comm: &mut impl ManagerComm) -> Option<ManagerExit> {
        self.last_heard = now;
        match msg {
            ToManagerMsg::Registered { heartbeat_period_ms, heartbeat_threshold_ms } => {
                self.registering = false;
                self.heartbeat_period = Duration::from_millis(heartbeat_period_ms.max(1));
                self.threshold = Duration::from_millis(heartbeat_threshold_ms.max(1));
                self.next_heartbeat = now + self.heartbeat_period;
                // The first samples go now, not an interval after start: those taken while
                // registering were let go, and a run shorter than the interval would have none.
                if self.next_samples.is_some() {
                    self.next_samples = Some(now);
                }
                info!(self.log, "registered with the interchange";
                    "heartbeat_ms" => heartbeat_period_ms, "threshold_ms" => heartbeat_threshold_ms);
                // A worker lost while the registration was on its way.
                self.advertise_capacity(comm);
            }
            ToManagerMsg::Tasks(tries) => {
                debug!(self.log, "tries received"; "n" => tries.len());
                for t in tries {
                    let seq = self.arrivals;
                    self.arrivals += 1;
                    if self.is_mpi_function(&t) {
                        self.wide.push_group(t, seq);
                    } else if t.spec.resources.is_single() {
                        self.backlog.push_back((seq, t));
                    } else {
                        self.wide.push(t, seq);
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
                self.register(comm);
            }
            ToManagerMsg::Stop => return Some(ManagerExit::Stopped),
        }
        None
    }

    /// Whether `t` calls one of the registry's MPI functions (on every rank it asks for).
    fn is_mpi_function(&self, t: &Try) -> bool {
        matches!(&t.spec.app, App::Function(f) if self.cfg.mpi_functions.contains(&f.name))
    }

    fn worker_mut(&mut self, rank: WorkerRank) -> Option<&mut WorkerSlot> {
        self.workers.iter_mut().find(|w| w.rank == rank)
    }

    /// Worker `rank` sent a heartbeat at `now` (`None`: one that did not decode, which still
    /// says the rank is alive).
    pub fn worker_hello(&mut self, rank: WorkerRank, hello: Option<WorkerHello>, now: Instant) {
        let Some(w) = self.worker_mut(rank) else { return };
        w.last_heard = now;
        if let (true, Some(h)) = (w.host.is_empty(), hello) {
            // Host and cpuset come together, and are set once: a rank does not move. An empty
            // cpuset is no binding to lend.
            w.host = h.host;
            w.cpus = h.cpus.filter(|c| !c.is_empty());
        }
    }

    /// Worker `rank` sent results at `now`.
    pub fn worker_results(&mut self, rank: WorkerRank, results: Vec<TryResult>, now: Instant) {
        let Some(w) = self.workers.iter_mut().find(|w| w.rank == rank) else { return };
        w.last_heard = now;
        // Only answers to tries it still holds count: a lost worker's late results were
        // already reported as WorkerLost and must not be delivered a second time.
        let before = results.len();
        let mut kept: Vec<TryResult> = results.into_iter().filter(|r| !w.lost && w.tries.remove(&r.id)).collect();
        if kept.len() < before {
            info!(self.log, "dropped stale results from a worker"; "rank" => w.rank.0, "n" => before - kept.len());
        }
        // Where it ran, for the run database: stamped here, where it is known for sure.
        for r in &mut kept {
            r.ran.manager = self.cfg.id;
            r.ran.rank = u32::try_from(rank.0).unwrap_or(0);
        }
        if self.groups.is_empty() {
            self.results.extend(kept);
            return;
        }
        for r in kept {
            if self.groups.contains(&r.id) {
                self.member_answered(rank, r);
            } else {
                self.results.push(r);
            }
        }
    }

    /// Member `rank` of an MPI function try answered `r` (or was lost): report the try's result
    /// when it is known, free its ranks when every member is back.
    fn member_answered(&mut self, rank: WorkerRank, r: TryResult) {
        let id = r.id;
        let answer = self.groups.answer(rank, r);
        if answer.ended {
            self.wide.finished(&id);
        }
        self.results.extend(answer.report);
    }

    /// A try on the manager's own slots ended.
    pub fn local_result(&mut self, mut r: TryResult) {
        self.local_held = self.local_held.saturating_sub(1);
        r.ran.manager = self.cfg.id;
        r.ran.rank = 0;
        self.results.push(r);
    }

    /// After the events of one round, at `now`: declare silent workers lost, feed the workers
    /// and the local slots, and send the results gathered. Returns whether any try was handed out.
    pub fn step(&mut self, now: Instant, comm: &mut impl ManagerComm) -> bool {
        self.check_workers(now, comm);
        let fed = self.feed(now, comm);
        if !self.results.is_empty() {
            if self.wide.running() > 0 {
                // An MPI function try that failed early keeps its ranks until its members are back.
                for r in self.results.iter().filter(|r| !self.groups.contains(&r.id)) {
                    self.wide.finished(&r.id);
                }
            }
            comm.to_interchange(ManagerMsg::Results(std::mem::take(&mut self.results)));
        }
        fed
    }

    /// The clock's part of a round, at `now`: judge the interchange's silence, announce
    /// draining, send heartbeats. Returns why to stop, if it is time.
    pub fn timers(&mut self, now: Instant, comm: &mut impl ManagerComm) -> Option<ManagerExit> {
        // Consecutive checks are normally at most a wait apart. A long gap means this
        // process was suspended (SIGSTOP, a stalled node) somewhere in the loop, not that
        // the interchange went quiet: ask it before judging it gone. If it has declared
        // us lost meanwhile, it answers Reregister.
        let gap = now.saturating_duration_since(self.last_check);
        self.last_check = now;
        if gap > self.threshold / 2 {
            warn!(self.log, "this manager was suspended; checking in with the interchange";
                "suspended_ms" => gap.as_millis() as u64);
            self.last_heard = now;
            comm.to_interchange(ManagerMsg::Heartbeat);
        } else if now.saturating_duration_since(self.last_heard) > self.threshold {
            warn!(self.log, "nothing heard from the interchange; stopping the pool";
                "silent_for_s" => now.saturating_duration_since(self.last_heard).as_secs());
            return Some(ManagerExit::InterchangeGone);
        }
        if self.cfg.drain_at.is_some_and(|t| now >= t) {
            info!(self.log, "walltime margin reached: draining (no new tries; finishing what we hold)");
            comm.to_interchange(ManagerMsg::Draining);
            self.cfg.drain_at = None;
        }
        if now >= self.next_heartbeat {
            comm.to_interchange(ManagerMsg::Heartbeat);
            self.next_heartbeat = now + self.heartbeat_period;
        }
        if let (Some(due), Some(every)) = (self.next_samples, self.cfg.resource_interval) {
            if now >= due {
                self.next_samples = Some(now + every);
                self.send_samples(comm);
            }
        }
        None
    }

    /// A worker's resource samples: kept for the next send (a node's latest only).
    pub fn worker_samples(&mut self, samples: Samples) {
        if self.next_samples.is_some() {
            self.samples.merge(samples);
        }
    }

    /// Send the workers' samples with this rank's own. Before registration the interchange
    /// would refuse them (and ask to register again), so they are let go: they are
    /// measurements, and the next ones come an interval later.
    fn send_samples(&mut self, comm: &mut impl ManagerComm) {
        let mut samples = std::mem::take(&mut self.samples);
        samples.merge(comm.sample_here());
        if !self.registering && !samples.is_empty() {
            comm.to_interchange(ManagerMsg::Samples(samples));
        }
    }

    /// Whether workers hold tries beyond the ones they run (`--prefetch` above 0).
    pub fn prefetches(&self) -> bool {
        self.cfg.prefetch > 0
    }

    /// Whether ranks hold or wait for work, so results must be polled for (MPI has no fd to sleep on).
    pub fn busy(&self) -> bool {
        self.workers.iter().any(|w| !w.tries.is_empty()) || self.local_held > 0 || self.wide.waiting() > 0
    }

    /// How long an idle manager may sleep on the interchange's socket at `now`: until its next
    /// heartbeat, capped so signals are seen promptly.
    pub fn idle_wait(&self, now: Instant) -> Duration {
        let next = self.next_samples.map_or(self.next_heartbeat, |s| s.min(self.next_heartbeat));
        next.saturating_duration_since(now).min(IDLE_WAIT_CAP)
    }

    /// The manager stops for `exit`: say goodbye unless told to stop, and stop every worker.
    pub fn finish(&mut self, exit: ManagerExit, comm: &mut impl ManagerComm) {
        info!(self.log, "manager stopping"; "why" => ?exit, "backlog" => self.backlog.len());
        if exit != ManagerExit::Stopped {
            // Tell the interchange we are leaving so it fails what we hold as ManagerLost
            // at once instead of after the heartbeat threshold.
            comm.to_interchange(ManagerMsg::Goodbye);
        }
        for w in &self.workers {
            comm.to_worker(w.rank, ToWorker::Stop);
        }
    }

    /// Declare lost every worker silent past the threshold; its tries fail with `WorkerLost`.
    fn check_workers(&mut self, now: Instant, comm: &mut impl ManagerComm) {
        let threshold = self.cfg.worker_threshold;
        let manager = self.cfg.id;
        let mut lost_any = false;
        let mut members_lost = vec![];
        let groups = &self.groups;
        // A member inside an MPI function sends no heartbeats: it is judged after its try's walltime.
        for w in self.workers.iter_mut().filter(|w| {
            !w.lost && now.saturating_duration_since(w.last_heard) > threshold && !groups.excused(w.rank, now)
        }) {
            w.lost = true;
            lost_any = true;
            warn!(self.log, "worker lost: silent past the threshold; its tries fail, it gets no more";
                "rank" => w.rank.0, "host" => &w.host, "tries" => w.tries.len(),
                "silent_ms" => now.saturating_duration_since(w.last_heard).as_millis() as u64);
            let host = if w.host.is_empty() { "unknown".to_string() } else { w.host.clone() };
            for id in w.tries.drain() {
                let failure = Failure::WorkerLost { manager, rank: w.rank.0, host: host.clone() };
                let r = TryResult::new(id, Outcome::Failed(failure));
                if groups.contains(&id) {
                    members_lost.push((w.rank, r));
                } else {
                    self.results.push(r);
                }
            }
        }
        for (rank, r) in members_lost {
            self.member_answered(rank, r);
        }
        if lost_any {
            self.advertise_capacity(comm);
        }
    }

    /// Tell the interchange the capacity left, if it changed, so it stops counting lost ranks'
    /// slots (during a registration, the `Registered` reply calls this again).
    fn advertise_capacity(&mut self, comm: &mut impl ManagerComm) {
        let now = self.capacity();
        if self.registering || now == self.advertised {
            return;
        }
        info!(self.log, "advertising the capacity left"; "slots" => now.0, "prefetch" => now.1);
        self.advertised = now;
        comm.to_interchange(ManagerMsg::Capacity { slots: now.0, prefetch: now.1 });
    }

    /// Start the wide tries whose ranks are free; refuse those the pool can never run.
    fn feed_wide(&mut self, now: Instant, comm: &mut impl ManagerComm) -> bool {
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
        let actions = self.wide.step(&views, self.backlog.front().map(|(seq, _)| *seq));
        let fed = !actions.is_empty();
        for a in actions {
            match a {
                Action::Fail(r) => self.results.push(r),
                Action::Launch { leader, job } => {
                    let Some(w) = self.worker_mut(leader) else { continue };
                    w.tries.insert(job.try_.id);
                    comm.to_worker(leader, ToWorker::Tries(vec![*job]));
                }
                Action::LaunchGroup(g) => {
                    let (id, walltime) = (g.try_.id, g.try_.spec.walltime_ms);
                    self.groups.start(id, &g.members, walltime, self.cfg.worker_threshold, now);
                    for &m in &g.members {
                        if let Some(w) = self.worker_mut(m) {
                            w.tries.insert(id);
                        }
                        comm.to_worker(m, ToWorker::Group(g.clone()));
                    }
                }
            }
        }
        fed
    }

    /// Hand backlog to workers (least loaded first, level by level) and to local slots, up to their depth.
    fn feed(&mut self, now: Instant, comm: &mut impl ManagerComm) -> bool {
        let mut fed = self.feed_wide(now, comm);
        if self.backlog.is_empty() {
            return fed;
        }
        let wide = &self.wide;
        let eligible: Vec<usize> = (0..self.workers.len())
            .filter(|&i| !self.workers[i].lost && !wide.is_blocked(self.workers[i].rank))
            .collect();
        let held: Vec<u32> = eligible.iter().map(|&i| self.workers[i].held()).collect();
        let mut batches: Vec<Vec<WorkerTry>> = vec![Vec::new(); eligible.len()];
        for k in share_out(&held, self.per_worker, self.backlog.len()) {
            let Some((_, t)) = self.backlog.pop_front() else { break };
            batches[k].push(WorkerTry::plain(t));
        }
        for (k, batch) in batches.into_iter().enumerate().filter(|(_, b)| !b.is_empty()) {
            let w = &mut self.workers[eligible[k]];
            w.tries.extend(batch.iter().map(|t| t.try_.id));
            comm.to_worker(w.rank, ToWorker::Tries(batch));
            fed = true;
        }
        if self.pool.local {
            let depth = self.cfg.local_slots * (1 + self.cfg.prefetch);
            while self.local_held < depth {
                let Some((_, t)) = self.backlog.pop_front() else { break };
                comm.run_locally(t);
                self.local_held += 1;
                fed = true;
            }
        }
        fed
    }
}
