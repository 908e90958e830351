//! The interchange's dispatch logic: a state machine over plain structs.
//!
//! It owns the truth of where every in-flight try is (queued, or held by one
//! manager) and is driven by messages; what it wants sent goes through the
//! [`Comm`] trait, so it is unit-tested without sockets.

use crate::task::{ClientId, Failure, ManagerId, Outcome, Try, TryId, TryResult};
use crate::wire::{DropCounts, ManagerMode, ManagerStatus, Registration, StatusReport};
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::time::{Duration, Instant};

/// Where the dispatcher's decisions go: implemented over ZeroMQ in the server and by a recorder in tests.
pub trait Comm {
    /// Send a batch of tries to a manager.
    fn send_tasks(&mut self, manager: ManagerId, tries: Vec<Try>);
    /// Send a batch of results to a client.
    fn send_results(&mut self, client: ClientId, results: Vec<TryResult>);
    /// Tell a client these tries were not queued because the queue is full.
    fn send_refused(&mut self, client: ClientId, tries: Vec<TryId>, limit: u64);
}

/// Limits and timings of the dispatcher.
#[derive(Clone, Debug)]
pub struct DispatchConfig {
    /// A manager not heard from for this long is declared lost.
    pub heartbeat_threshold: Duration,
    /// Most tries queued at once; submissions beyond it are refused.
    pub max_queue: usize,
    /// Most tries in one batch to a manager.
    pub max_batch: usize,
    /// A client with queued tries not heard from for this long is gone: its queued tries are dropped.
    pub client_timeout: Duration,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        DispatchConfig {
            heartbeat_threshold: Duration::from_secs(120),
            max_queue: 1_000_000,
            max_batch: 4096,
            // Clients with tries out ping every 30 s (a quarter of their own 120 s timeout).
            client_timeout: Duration::from_secs(300),
        }
    }
}

/// A queued try, ordered so the heap pops the lowest priority value first, FIFO among equals.
struct Queued {
    priority: i32,
    seq: u64,
    item: Try,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    fn cmp(&self, other: &Self) -> Ordering {
        // BinaryHeap is a max-heap: reverse so smaller (priority, seq) comes out first.
        (other.priority, other.seq).cmp(&(self.priority, self.seq))
    }
}

/// What the dispatcher knows about one manager.
struct ManagerState {
    reg: Registration,
    /// Tries it may hold at once: slots plus prefetch.
    capacity: u32,
    /// Tries it holds now.
    tries: HashSet<TryId>,
    /// Accepting new tries, held by a client, or draining.
    mode: ManagerMode,
    last_seen: Instant,
    /// When it last went from busy to holding nothing.
    idle_since: Instant,
}

impl ManagerState {
    fn free(&self) -> u32 {
        if self.mode == ManagerMode::Active {
            self.capacity.saturating_sub(self.tries.len() as u32)
        } else {
            0
        }
    }
}

/// The dispatcher: queue, managers, ownership of in-flight tries.
pub struct Dispatcher {
    cfg: DispatchConfig,
    queue: BinaryHeap<Queued>,
    next_seq: u64,
    managers: HashMap<ManagerId, ManagerState>,
    /// Which manager holds each in-flight try: the single owner.
    owner: HashMap<TryId, ManagerId>,
    /// Managers that may have free capacity; checked lazily at dispatch.
    hungry: HashSet<ManagerId>,
    /// Results waiting for `flush`, batched per client.
    outbox: HashMap<ClientId, Vec<TryResult>>,
    /// Draining managers that now hold nothing: the server tells them to stop.
    drained: Vec<ManagerId>,
    drops: DropCounts,
    /// When each client that submitted tries was last heard from.
    clients: HashMap<ClientId, Instant>,
}

impl Dispatcher {
    /// An empty dispatcher.
    pub fn new(cfg: DispatchConfig) -> Dispatcher {
        Dispatcher {
            cfg,
            queue: BinaryHeap::new(),
            next_seq: 0,
            managers: HashMap::new(),
            owner: HashMap::new(),
            hungry: HashSet::new(),
            outbox: HashMap::new(),
            drained: Vec::new(),
            drops: DropCounts::default(),
            clients: HashMap::new(),
        }
    }

    /// Tries waiting for a manager.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Tries held by managers.
    pub fn in_flight(&self) -> usize {
        self.owner.len()
    }

    /// Registered managers.
    pub fn manager_count(&self) -> usize {
        self.managers.len()
    }

    /// Whether this manager is registered.
    pub fn is_registered(&self, m: ManagerId) -> bool {
        self.managers.contains_key(&m)
    }

    /// Counters of dropped frames and results; the server adds frame drops here too.
    pub fn drops_mut(&mut self) -> &mut DropCounts {
        &mut self.drops
    }

    /// Register a manager. A manager that registers again under the same id
    /// is treated as a new one: whatever the old incarnation held is lost.
    pub fn register(&mut self, reg: Registration, now: Instant) {
        let id = reg.manager;
        if self.managers.contains_key(&id) {
            self.manager_lost(id);
        }
        let capacity = reg.slots.saturating_add(reg.prefetch).max(1);
        self.managers.insert(
            id,
            ManagerState {
                reg,
                capacity,
                tries: HashSet::new(),
                mode: ManagerMode::Active,
                last_seen: now,
                idle_since: now,
            },
        );
        self.hungry.insert(id);
    }

    /// A manager's capacity changed (it lost a worker). Tries it holds beyond the new capacity
    /// stay with it (its other workers run them); it gets new ones once it is below it.
    pub fn set_capacity(&mut self, m: ManagerId, slots: u32, prefetch: u32) {
        let Some(st) = self.managers.get_mut(&m) else { return };
        st.reg.slots = slots;
        st.reg.prefetch = prefetch;
        st.capacity = if slots == 0 { 0 } else { slots.saturating_add(prefetch) };
        if st.free() == 0 {
            self.hungry.remove(&m);
        }
    }

    /// Any message from a manager proves it alive.
    pub fn touch(&mut self, m: ManagerId, now: Instant) {
        if let Some(st) = self.managers.get_mut(&m) {
            st.last_seen = now;
        }
    }

    /// Any message from a client that submitted tries proves it alive.
    pub fn touch_client(&mut self, c: ClientId, now: Instant) {
        if let Some(t) = self.clients.get_mut(&c) {
            *t = now;
        }
    }

    /// Drop the queued tries of a client that left; returns how many. Tries already held by
    /// managers run to the end (their results are dropped when nobody collects them).
    pub fn drop_client(&mut self, c: ClientId) -> usize {
        self.clients.remove(&c);
        let before = self.queue.len();
        self.queue.retain(|q| q.item.id.client != c);
        before - self.queue.len()
    }

    /// Clients silent past the client timeout: their queued tries are dropped, so no manager
    /// runs work nobody will read. Returns each such client and how many tries it lost.
    pub fn expire_clients(&mut self, now: Instant) -> Vec<(ClientId, usize)> {
        let timeout = self.cfg.client_timeout;
        let gone: Vec<ClientId> = self
            .clients
            .iter()
            .filter(|(_, t)| now.saturating_duration_since(**t) > timeout)
            .map(|(c, _)| *c)
            .collect();
        gone.into_iter().map(|c| (c, self.drop_client(c))).collect()
    }

    /// Queue tries from a client; those past the queue limit are refused back to it.
    pub fn submit(&mut self, client: ClientId, tries: Vec<Try>, comm: &mut impl Comm) {
        self.clients.insert(client, Instant::now());
        let room = self.cfg.max_queue.saturating_sub(self.queue.len());
        let mut refused = Vec::new();
        for (i, t) in tries.into_iter().enumerate() {
            if i >= room {
                refused.push(t.id);
                continue;
            }
            let seq = self.next_seq;
            self.next_seq += 1;
            self.queue.push(Queued { priority: t.spec.priority, seq, item: t });
        }
        if !refused.is_empty() {
            comm.send_refused(client, refused, self.cfg.max_queue as u64);
        }
    }

    /// Take results from a manager; only tries it owns are accepted, the rest are counted and dropped.
    pub fn results(&mut self, m: ManagerId, results: Vec<TryResult>, now: Instant) {
        let Some(st) = self.managers.get_mut(&m) else {
            self.drops.stale_results += results.len() as u64;
            return;
        };
        st.last_seen = now;
        for r in results {
            if self.owner.get(&r.id) == Some(&m) {
                self.owner.remove(&r.id);
                st.tries.remove(&r.id);
                self.outbox.entry(r.id.client).or_default().push(r);
            } else {
                self.drops.stale_results += 1;
            }
        }
        if st.tries.is_empty() {
            st.idle_since = now;
            if st.mode == ManagerMode::Draining {
                self.drained.push(m);
            }
        }
        if st.free() > 0 {
            self.hungry.insert(m);
        }
    }

    /// A manager said goodbye or was declared lost: each try it held fails with `ManagerLost`.
    pub fn manager_lost(&mut self, m: ManagerId) {
        let Some(st) = self.managers.remove(&m) else { return };
        self.hungry.remove(&m);
        for id in st.tries {
            self.owner.remove(&id);
            let failure = Failure::ManagerLost { manager: m, host: st.reg.host.clone(), block: st.reg.block.clone() };
            self.outbox.entry(id.client).or_default().push(TryResult { id, outcome: Outcome::Failed(failure) });
        }
    }

    /// Put a manager in `mode`: `Held` and `Draining` get no new tries; `Active` resumes.
    /// A draining manager that holds nothing is reported by `take_drained` at once.
    /// Returns false for an unknown manager.
    pub fn set_mode(&mut self, m: ManagerId, mode: ManagerMode) -> bool {
        let Some(st) = self.managers.get_mut(&m) else { return false };
        // Draining is one-way: a manager that announced it is leaving is not re-activated.
        if st.mode == ManagerMode::Draining && mode != ManagerMode::Draining {
            return false;
        }
        st.mode = mode;
        if mode == ManagerMode::Draining && st.tries.is_empty() {
            self.drained.push(m);
        }
        if st.free() > 0 {
            self.hungry.insert(m);
        }
        true
    }

    /// Draining managers that have finished everything they held (each reported once).
    pub fn take_drained(&mut self) -> Vec<ManagerId> {
        let mut v = std::mem::take(&mut self.drained);
        v.dedup();
        v
    }

    /// Declare lost every manager silent past the threshold; returns them.
    pub fn expire(&mut self, now: Instant) -> Vec<ManagerId> {
        let threshold = self.cfg.heartbeat_threshold;
        let lost: Vec<ManagerId> = self
            .managers
            .iter()
            .filter(|(_, st)| now.saturating_duration_since(st.last_seen) > threshold)
            .map(|(id, _)| *id)
            .collect();
        for m in &lost {
            self.manager_lost(*m);
        }
        lost
    }

    /// Registered managers.
    pub fn managers(&self) -> impl Iterator<Item = ManagerId> + '_ {
        self.managers.keys().copied()
    }

    /// Send queued tries to managers with free capacity, then all pending results.
    pub fn flush(&mut self, comm: &mut impl Comm) {
        self.dispatch(comm);
        for (client, results) in self.outbox.drain() {
            comm.send_results(client, results);
        }
    }

    /// Fair dispatch: every hungry manager gets an equal share of the queue (up to
    /// its free capacity), those with the most free slots first, so no manager
    /// idles while another builds up a prefetch backlog.
    fn dispatch(&mut self, comm: &mut impl Comm) {
        while !self.queue.is_empty() && !self.hungry.is_empty() {
            let mut order: Vec<(u32, ManagerId)> =
                self.hungry.iter().filter_map(|m| self.managers.get(m).map(|st| (st.free(), *m))).collect();
            order.sort_unstable_by(|a, b| b.cmp(a));
            let share = self.queue.len().div_ceil(order.len()).max(1);
            for (free, m) in order {
                if self.queue.is_empty() {
                    break;
                }
                let n = (free as usize).min(share).min(self.cfg.max_batch);
                let Some(st) = self.managers.get_mut(&m) else { continue };
                let mut batch = Vec::with_capacity(n.min(self.queue.len()));
                while batch.len() < n {
                    let Some(q) = self.queue.pop() else { break };
                    self.owner.insert(q.item.id, m);
                    st.tries.insert(q.item.id);
                    batch.push(q.item);
                }
                if st.free() == 0 {
                    self.hungry.remove(&m);
                }
                if !batch.is_empty() {
                    comm.send_tasks(m, batch);
                }
            }
            self.hungry.retain(|m| self.managers.get(m).is_some_and(|st| st.free() > 0));
        }
    }

    /// A snapshot for `strand status`.
    pub fn status(&self, now: Instant) -> StatusReport {
        let mut managers: Vec<ManagerStatus> = self
            .managers
            .values()
            .map(|st| ManagerStatus {
                id: st.reg.manager,
                host: st.reg.host.clone(),
                block: st.reg.block.clone(),
                slots: st.reg.slots,
                in_flight: st.tries.len() as u32,
                mode: st.mode,
                idle_ms: if st.tries.is_empty() {
                    now.saturating_duration_since(st.idle_since).as_millis() as u64
                } else {
                    0
                },
            })
            .collect();
        managers.sort_by_key(|m| m.id);
        StatusReport {
            queued: self.queue.len() as u64,
            in_flight: self.owner.len() as u64,
            managers,
            dropped: self.drops,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::BlockId;
    use crate::task::*;

    #[derive(Default)]
    struct Recorder {
        tasks: Vec<(ManagerId, Vec<Try>)>,
        results: Vec<(ClientId, Vec<TryResult>)>,
        refused: Vec<(ClientId, Vec<TryId>)>,
    }

    impl Comm for Recorder {
        fn send_tasks(&mut self, manager: ManagerId, tries: Vec<Try>) {
            self.tasks.push((manager, tries));
        }
        fn send_results(&mut self, client: ClientId, results: Vec<TryResult>) {
            self.results.push((client, results));
        }
        fn send_refused(&mut self, client: ClientId, tries: Vec<TryId>, _limit: u64) {
            self.refused.push((client, tries));
        }
    }

    impl Recorder {
        fn sent_to(&self, m: ManagerId) -> Vec<TryId> {
            self.tasks.iter().filter(|(x, _)| *x == m).flat_map(|(_, t)| t.iter().map(|t| t.id)).collect()
        }
        fn all_results(&self) -> Vec<TryResult> {
            self.results.iter().flat_map(|(_, r)| r.iter().cloned()).collect()
        }
    }

    fn reg(id: u64, slots: u32, prefetch: u32) -> Registration {
        Registration {
            manager: ManagerId(id),
            block: BlockId("b0".into()),
            host: format!("node{id}"),
            pool_size: slots + 1,
            slots,
            prefetch,
            launcher_version: "t".into(),
            mpi_version: "t".into(),
        }
    }

    fn tries(client: u64, range: std::ops::Range<u64>, priority: i32) -> Vec<Try> {
        range
            .map(|i| Try {
                id: TryId { client: ClientId(client), task: TaskId(i), attempt: 0 },
                spec: TaskSpec {
                    app: App::Function(FunctionCall { name: "noop".into(), args: vec![] }),
                    walltime_ms: None,
                    priority,
                    outputs: vec![],
                    resources: Default::default(),
                },
            })
            .collect()
    }

    fn done(id: TryId) -> TryResult {
        TryResult { id, outcome: Outcome::Done(vec![]) }
    }

    fn cfg() -> DispatchConfig {
        DispatchConfig {
            heartbeat_threshold: Duration::from_millis(500),
            max_queue: 100,
            max_batch: 1000,
            client_timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn a_silent_client_loses_its_queued_tries_but_not_the_running_ones() {
        let mut d = Dispatcher::new(cfg());
        let mut c = Recorder::default();
        let now = Instant::now();
        d.register(reg(1, 1, 0), now);
        d.submit(ClientId(9), tries(9, 0..10, 0), &mut c);
        d.submit(ClientId(8), tries(8, 0..3, 5), &mut c);
        d.flush(&mut c);
        assert_eq!((d.queued(), d.in_flight()), (12, 1));
        let later = Instant::now() + Duration::from_secs(6);
        d.touch_client(ClientId(8), later);
        assert_eq!(d.expire_clients(later), vec![(ClientId(9), 9)]);
        assert_eq!((d.queued(), d.in_flight()), (3, 1), "client 8 keeps its tries; the running one runs on");
        assert!(d.expire_clients(later).is_empty(), "reported once");
        assert_eq!(d.drop_client(ClientId(8)), 3);
        assert_eq!(d.queued(), 0);
    }

    #[test]
    fn dispatch_respects_capacity_and_results_flow_back() {
        let now = Instant::now();
        let mut d = Dispatcher::new(cfg());
        let mut c = Recorder::default();
        d.register(reg(1, 2, 1), now);
        d.submit(ClientId(9), tries(9, 0..10, 0), &mut c);
        d.flush(&mut c);
        let sent = c.sent_to(ManagerId(1));
        assert_eq!(sent.len(), 3, "capacity is slots + prefetch");
        assert_eq!(d.queued(), 7);
        d.results(ManagerId(1), vec![done(sent[0])], now);
        d.flush(&mut c);
        assert_eq!(c.all_results(), vec![done(sent[0])]);
        assert_eq!(c.sent_to(ManagerId(1)).len(), 4, "freed slot is refilled at once");
    }

    #[test]
    fn a_manager_that_lost_workers_gets_only_what_it_has_left() {
        let now = Instant::now();
        let mut d = Dispatcher::new(cfg());
        let mut c = Recorder::default();
        d.register(reg(1, 2, 2), now);
        d.submit(ClientId(9), tries(9, 0..10, 0), &mut c);
        d.flush(&mut c);
        let sent = c.sent_to(ManagerId(1));
        assert_eq!(sent.len(), 4);
        // It lost a worker: one slot and one prefetch left, while it still holds 4.
        d.set_capacity(ManagerId(1), 1, 1);
        assert_eq!(d.status(now).managers[0].slots, 1, "status shows the capacity left");
        for (i, t) in sent.iter().take(2).enumerate() {
            d.results(ManagerId(1), vec![done(*t)], now);
            d.flush(&mut c);
            assert_eq!(c.sent_to(ManagerId(1)).len(), 4, "still at or over its capacity after {} result(s)", i + 1);
        }
        d.results(ManagerId(1), vec![done(sent[2])], now);
        d.flush(&mut c);
        assert_eq!(c.sent_to(ManagerId(1)).len(), 5, "below its new capacity of 2, it gets one more");
        // A pool with no worker left gets nothing.
        d.set_capacity(ManagerId(1), 0, 0);
        d.results(ManagerId(1), vec![done(sent[3])], now);
        d.flush(&mut c);
        assert_eq!(c.sent_to(ManagerId(1)).len(), 5);
    }

    #[test]
    fn priority_then_fifo() {
        let now = Instant::now();
        let mut d = Dispatcher::new(cfg());
        let mut c = Recorder::default();
        d.submit(ClientId(1), tries(1, 0..3, 5), &mut c);
        d.submit(ClientId(1), tries(1, 3..6, -1), &mut c);
        d.register(reg(1, 6, 0), now);
        d.flush(&mut c);
        let order: Vec<u64> = c.sent_to(ManagerId(1)).iter().map(|t| t.task.0).collect();
        assert_eq!(order, vec![3, 4, 5, 0, 1, 2]);
    }

    #[test]
    fn fair_share_across_managers() {
        let now = Instant::now();
        let mut d = Dispatcher::new(cfg());
        let mut c = Recorder::default();
        d.register(reg(1, 4, 4), now);
        d.register(reg(2, 4, 4), now);
        d.submit(ClientId(1), tries(1, 0..8, 0), &mut c);
        d.flush(&mut c);
        assert_eq!(c.sent_to(ManagerId(1)).len(), 4);
        assert_eq!(c.sent_to(ManagerId(2)).len(), 4);
    }

    #[test]
    fn stale_and_duplicate_results_are_dropped_and_counted() {
        let now = Instant::now();
        let mut d = Dispatcher::new(cfg());
        let mut c = Recorder::default();
        d.register(reg(1, 1, 0), now);
        d.register(reg(2, 1, 0), now);
        d.submit(ClientId(1), tries(1, 0..2, 0), &mut c);
        d.flush(&mut c);
        let t1 = c.sent_to(ManagerId(1))[0];
        // Manager 2 answers a try it does not own; manager 1 answers twice; an unknown manager answers.
        d.results(ManagerId(2), vec![done(t1)], now);
        d.results(ManagerId(1), vec![done(t1), done(t1)], now);
        d.results(ManagerId(77), vec![done(t1)], now);
        d.flush(&mut c);
        assert_eq!(c.all_results(), vec![done(t1)], "delivered exactly once");
        assert_eq!(d.status(now).dropped.stale_results, 3);
    }

    #[test]
    fn lost_manager_fails_its_tries_with_its_identity() {
        let t0 = Instant::now();
        let mut d = Dispatcher::new(cfg());
        let mut c = Recorder::default();
        d.register(reg(1, 2, 0), t0);
        d.register(reg(2, 2, 0), t0);
        d.submit(ClientId(1), tries(1, 0..4, 0), &mut c);
        d.flush(&mut c);
        let held_by_1 = c.sent_to(ManagerId(1));
        // Manager 2 keeps talking, manager 1 goes silent.
        let later = t0 + Duration::from_millis(600);
        d.touch(ManagerId(2), later);
        assert_eq!(d.expire(later), vec![ManagerId(1)]);
        d.flush(&mut c);
        let res = c.all_results();
        assert_eq!(res.len(), 2);
        for r in &res {
            assert!(held_by_1.contains(&r.id));
            match &r.outcome {
                Outcome::Failed(Failure::ManagerLost { manager, host, block }) => {
                    assert_eq!(*manager, ManagerId(1));
                    assert_eq!(host, "node1");
                    assert_eq!(block.0, "b0");
                }
                o => panic!("unexpected outcome {o:?}"),
            }
        }
        // A late result from the lost manager is dropped.
        d.results(ManagerId(1), vec![done(held_by_1[0])], later);
        d.flush(&mut c);
        assert_eq!(c.all_results().len(), 2);
        assert_eq!(d.manager_count(), 1);
    }

    #[test]
    fn queue_limit_refuses_the_excess() {
        let mut d = Dispatcher::new(cfg());
        let mut c = Recorder::default();
        d.submit(ClientId(1), tries(1, 0..150, 0), &mut c);
        assert_eq!(d.queued(), 100);
        assert_eq!(c.refused.len(), 1);
        assert_eq!(c.refused[0].1.len(), 50);
        assert_eq!(c.refused[0].1[0].task, TaskId(100));
    }

    #[test]
    fn held_and_draining_managers_get_nothing_new() {
        let now = Instant::now();
        let mut d = Dispatcher::new(cfg());
        let mut c = Recorder::default();
        d.register(reg(1, 2, 0), now);
        d.register(reg(2, 2, 0), now);
        d.submit(ClientId(1), tries(1, 0..2, 0), &mut c);
        d.flush(&mut c);
        let on_1 = c.sent_to(ManagerId(1));
        assert!(d.set_mode(ManagerId(1), ManagerMode::Draining));
        assert!(d.set_mode(ManagerId(2), ManagerMode::Held));
        d.submit(ClientId(1), tries(1, 2..6, 0), &mut c);
        d.flush(&mut c);
        assert_eq!(c.tasks.len(), 2, "nothing new was sent");
        assert!(d.take_drained().is_empty(), "manager 1 still holds tries");
        d.results(ManagerId(1), on_1.iter().map(|t| done(*t)).collect(), now);
        assert_eq!(d.take_drained(), vec![ManagerId(1)], "drained once it held nothing");
        assert!(!d.set_mode(ManagerId(1), ManagerMode::Active), "draining is one-way");
        assert!(d.set_mode(ManagerId(2), ManagerMode::Active));
        d.flush(&mut c);
        // It held 1 of its 2 slots when it was held; released, it takes 1 more.
        assert_eq!(c.sent_to(ManagerId(2)).len(), 2, "released manager is fed again");
        assert_eq!(d.queued(), 3);
        assert!(!d.set_mode(ManagerId(9), ManagerMode::Held), "unknown manager");
        let st = d.status(now);
        assert_eq!(st.managers[0].mode, ManagerMode::Draining);
    }

    #[test]
    fn reregistration_loses_the_old_incarnation() {
        let now = Instant::now();
        let mut d = Dispatcher::new(cfg());
        let mut c = Recorder::default();
        d.register(reg(1, 1, 0), now);
        d.submit(ClientId(1), tries(1, 0..1, 0), &mut c);
        d.flush(&mut c);
        d.register(reg(1, 1, 0), now);
        d.flush(&mut c);
        assert!(matches!(c.all_results()[0].outcome, Outcome::Failed(Failure::ManagerLost { .. })));
    }
}
