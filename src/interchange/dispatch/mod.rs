//! The interchange's dispatch logic: a state machine over plain structs.
//!
//! It owns the truth of where every in-flight try is (queued, or held by one
//! manager) and is driven by messages; what it wants sent goes through the
//! [`Comm`] trait, so it is unit-tested without sockets.

use crate::sample::{NodeSample, Samples};
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
    /// Send resource samples to a client.
    fn send_samples(&mut self, client: ClientId, samples: Samples);
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

/// Where the two orders of the queue meet: submitted tries count up from here, tries handed
/// back count down.
const FRONT: u64 = u64::MAX / 2;

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
    /// Order of submitted tries: counts up from [`FRONT`].
    next_seq: u64,
    /// Order of tries handed back by managers: counts down from [`FRONT`], so they go before
    /// every submitted try of their priority (they waited their turn once already).
    front_seq: u64,
    managers: HashMap<ManagerId, ManagerState>,
    /// Which manager holds each in-flight try: the single owner.
    owner: HashMap<TryId, ManagerId>,
    /// Managers that may have free capacity; checked lazily at dispatch.
    hungry: HashSet<ManagerId>,
    /// Results waiting for `flush`, batched per client.
    outbox: HashMap<ClientId, Vec<TryResult>>,
    /// Resource samples waiting for `flush`, per client.
    sample_outbox: HashMap<ClientId, Samples>,
    /// Each node's latest sample, which a client gets when it first submits: managers sample
    /// once an interval from their registration, often before the client arrives, and a run
    /// shorter than the interval would otherwise have none. One per host sampled.
    nodes_latest: HashMap<String, NodeSample>,
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
            next_seq: FRONT,
            front_seq: FRONT,
            managers: HashMap::new(),
            owner: HashMap::new(),
            hungry: HashSet::new(),
            outbox: HashMap::new(),
            sample_outbox: HashMap::new(),
            nodes_latest: HashMap::new(),
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
        self.withdraw(c).len()
    }

    /// Take a client's queued tries out of the queue; returns their ids. Tries already held by
    /// managers run on.
    pub fn withdraw(&mut self, c: ClientId) -> Vec<TryId> {
        let mut taken = Vec::new();
        self.queue.retain(|q| {
            let mine = q.item.id.client == c;
            if mine {
                taken.push(q.item.id);
            }
            !mine
        });
        taken
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
        if self.clients.insert(client, Instant::now()).is_none() && !self.nodes_latest.is_empty() {
            self.sample_outbox.entry(client).or_default().nodes.extend(self.nodes_latest.values().cloned());
        }
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
        self.released(m, now);
    }

    /// Take resource samples from a manager: each try's goes to the client that submitted it,
    /// each node's to every client (they all may run there). Samples are measurements, not
    /// work: one of a try that has just ended is still true of its past and is passed on;
    /// those of clients that are gone have nobody to read them and are let go.
    pub fn samples(&mut self, m: ManagerId, samples: Samples, now: Instant) {
        let Some(st) = self.managers.get_mut(&m) else { return };
        st.last_seen = now;
        for t in samples.tries {
            if self.clients.contains_key(&t.id.client) {
                self.sample_outbox.entry(t.id.client).or_default().tries.push(t);
            }
        }
        if !samples.nodes.is_empty() {
            for c in self.clients.keys() {
                self.sample_outbox.entry(*c).or_default().nodes.extend(samples.nodes.iter().cloned());
            }
            for n in samples.nodes {
                self.nodes_latest.insert(n.host.clone(), n);
            }
        }
    }

    /// Tries left manager `m` at `now`: it may be idle, drained, or hungry again.
    fn released(&mut self, m: ManagerId, now: Instant) {
        let Some(st) = self.managers.get_mut(&m) else { return };
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

    /// Tries a manager hands back unrun (it did not hold their Python function; the server
    /// filled it in): they leave the manager and go to the front of the queue, with no try
    /// counted. Tries it does not own are counted as unexpected and dropped.
    pub fn hand_back(&mut self, m: ManagerId, tries: Vec<Try>, now: Instant) {
        let Some(st) = self.managers.get_mut(&m) else {
            self.drops.unexpected += tries.len() as u64;
            return;
        };
        st.last_seen = now;
        // Ahead of everything queued, in the order handed back.
        self.front_seq -= tries.len() as u64;
        for (seq, t) in (self.front_seq..).zip(tries) {
            if self.owner.get(&t.id) != Some(&m) {
                self.drops.unexpected += 1;
                continue;
            }
            self.owner.remove(&t.id);
            st.tries.remove(&t.id);
            self.queue.push(Queued { priority: t.spec.priority, seq, item: t });
        }
        self.released(m, now);
    }

    /// A manager said goodbye or was declared lost: each try it held fails with `ManagerLost`.
    pub fn manager_lost(&mut self, m: ManagerId) {
        let Some(st) = self.managers.remove(&m) else { return };
        self.hungry.remove(&m);
        for id in st.tries {
            self.owner.remove(&id);
            let failure = Failure::ManagerLost { manager: m, host: st.reg.host.clone(), block: st.reg.block.clone() };
            self.outbox.entry(id.client).or_default().push(TryResult::new(id, Outcome::Failed(failure)));
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
        for (client, samples) in self.sample_outbox.drain() {
            comm.send_samples(client, samples);
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
mod tests;
