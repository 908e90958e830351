//! Simulated managers for `strand bench sim` and the scaling sweeps' `--simulate`: many real
//! ZeroMQ connections, no MPI.
//!
//! Each simulated manager registers like a real one. A try of the built-in `sleep` function
//! (or a `sleep SECONDS` command) holds one of the manager's slots for its duration, on a
//! timer (no thread per task); any other try is answered at once with an empty success, so
//! the interchange (a separate process) is the only thing measured. All managers live in one
//! thread of this process.

use crate::block::BlockId;
use crate::connection::{ConnectionInfo, Side};
use crate::task::{App, ManagerId, Outcome, Program, Try, TryId, TryResult};
use crate::wire::{Codec, ManagerMsg, Registration, ToManagerMsg};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the simulator saw.
#[derive(Debug, Default, Clone)]
pub struct SimReport {
    /// Managers that got `Registered`.
    pub registered: usize,
    /// Time until the last of them did.
    pub registration: Duration,
    /// Tries answered.
    pub answered: u64,
}

/// The simulated managers.
pub struct Simulator {
    sockets: Vec<zmq::Socket>,
    codec: Codec,
    workers_per_manager: u32,
    _contexts: Vec<zmq::Context>,
}

/// The sequence number of a sender's first frame (see [`crate::wire::ReplayGuard`]).
pub const FIRST_SEQ: u64 = 1;

/// libzmq caps one context at 1,023 sockets by default; use a context per this many.
const SOCKETS_PER_CONTEXT: usize = 1000;

impl Simulator {
    /// Open `managers` connections to the interchange (not yet registered).
    pub fn connect(conn: &ConnectionInfo, managers: usize, workers_per_manager: u32) -> Result<Simulator, zmq::Error> {
        let contexts: Vec<zmq::Context> =
            (0..managers.div_ceil(SOCKETS_PER_CONTEXT)).map(|_| zmq::Context::new()).collect();
        let mut sockets = Vec::with_capacity(managers);
        for i in 0..managers {
            let ctx = &contexts[i / SOCKETS_PER_CONTEXT];
            let s = conn.dealer(ctx, Side::Manager, Self::id(i).0, Duration::ZERO).map_err(|e| e.source)?;
            sockets.push(s);
        }
        Ok(Simulator { sockets, codec: conn.codec(), workers_per_manager, _contexts: contexts })
    }

    fn id(i: usize) -> ManagerId {
        ManagerId(0x5157_0000_0000_0000u64 | i as u64)
    }

    /// Register every manager and serve until `stop` is set; returns what happened.
    pub fn run(&self, stop: &AtomicBool, registered_flag: &AtomicBool) -> SimReport {
        let start = Instant::now();
        for (i, s) in self.sockets.iter().enumerate() {
            let reg = Registration {
                manager: Self::id(i),
                block: BlockId(format!("sim-{}", i / 64)),
                host: format!("sim{i}"),
                pool_size: self.workers_per_manager + 1,
                slots: self.workers_per_manager,
                prefetch: self.workers_per_manager,
                launcher_version: "sim".into(),
                mpi_version: "none".into(),
            };
            // Each manager numbers its frames from 1: the interchange refuses a frame that does
            // not number above the sender's last (0 before it has heard anything) as a replay.
            let _ = s.send(self.codec.encode(&ManagerMsg::Register(reg), FIRST_SEQ), 0);
        }
        let mut report = SimReport::default();
        // One counter for all managers: it rises for each of them, which is all replay
        // protection asks.
        let mut seq = FIRST_SEQ;
        let mut last_hb = Instant::now();
        let mut slots = Slots::new(self.sockets.len(), self.workers_per_manager);
        while !stop.load(Ordering::Relaxed) {
            let wait_ms = slots
                .next_due()
                .map_or(50, |due| due.saturating_duration_since(Instant::now()).as_millis().min(50) as i64);
            let mut items: Vec<zmq::PollItem> = self.sockets.iter().map(|s| s.as_poll_item(zmq::POLLIN)).collect();
            if zmq::poll(&mut items, wait_ms).is_err() {
                continue;
            }
            let ready: Vec<usize> =
                items.iter().enumerate().filter(|(_, it)| it.is_readable()).map(|(i, _)| i).collect();
            drop(items);
            for i in ready {
                let s = &self.sockets[i];
                while let Ok(frame) = s.recv_bytes(zmq::DONTWAIT) {
                    let Ok((_, msg)) = self.codec.decode::<ToManagerMsg>(&frame) else { continue };
                    match msg {
                        ToManagerMsg::Registered { .. } => {
                            report.registered += 1;
                            if report.registered == self.sockets.len() {
                                report.registration = start.elapsed();
                                registered_flag.store(true, Ordering::Relaxed);
                            }
                        }
                        ToManagerMsg::Tasks(tries) => {
                            report.answered += tries.len() as u64;
                            let now = Instant::now();
                            let at_once: Vec<TryResult> =
                                tries.into_iter().filter_map(|t| slots.take(i, t, now)).map(done).collect();
                            if !at_once.is_empty() {
                                seq += 1;
                                let _ = s.send(self.codec.encode(&ManagerMsg::Results(at_once), seq), 0);
                            }
                        }
                        ToManagerMsg::Heartbeat | ToManagerMsg::Reregister => {}
                        ToManagerMsg::Stop => return report,
                    }
                }
            }
            for (i, ended) in slots.finish_due(Instant::now()) {
                seq += 1;
                let results = ended.into_iter().map(done).collect();
                let _ = self.sockets[i].send(self.codec.encode(&ManagerMsg::Results(results), seq), 0);
            }
            // Heartbeats keep the simulated managers alive at the default threshold.
            if last_hb.elapsed() > Duration::from_secs(10) {
                for s in &self.sockets {
                    seq += 1;
                    let _ = s.send(self.codec.encode(&ManagerMsg::Heartbeat, seq), 0);
                }
                last_hb = Instant::now();
            }
        }
        report
    }
}

/// An empty success for a try.
fn done(id: TryId) -> TryResult {
    TryResult::new(id, Outcome::Done(Vec::new()))
}

/// How long a try holds a simulated slot: the `sleep` function's seconds or a `sleep SECONDS`
/// command's; zero (answered at once) for anything else or an argument that is no duration.
pub fn simulated_duration(app: &App) -> Duration {
    let secs = match app {
        App::Function(f) if f.name == "sleep" => std::str::from_utf8(&f.args).ok().map(str::trim),
        App::Command(c) => match &c.program {
            Program::Argv(a) if a.len() == 2 && a[0] == "sleep" => Some(a[1].as_str()),
            Program::Shell(line) => line.strip_prefix("sleep ").map(str::trim),
            Program::Argv(_) => None,
        },
        _ => None,
    };
    secs.and_then(|s| s.parse::<f64>().ok()).and_then(|s| Duration::try_from_secs_f64(s).ok()).unwrap_or_default()
}

/// The simulated managers' task slots: tries holding one until a timer ends them, and the
/// tries each manager holds beyond its slots (its prefetch), in arrival order.
struct Slots {
    per_manager: u32,
    running: Vec<u32>,
    waiting: Vec<VecDeque<(TryId, Duration)>>,
    timers: BinaryHeap<Reverse<(Instant, usize, TryId)>>,
}

impl Slots {
    fn new(managers: usize, per_manager: u32) -> Slots {
        Slots {
            per_manager,
            running: vec![0; managers],
            waiting: vec![VecDeque::new(); managers],
            timers: BinaryHeap::new(),
        }
    }

    /// Manager `m` received `t`: its id back if it ends at once, else it runs or waits.
    fn take(&mut self, m: usize, t: Try, now: Instant) -> Option<TryId> {
        let d = simulated_duration(&t.spec.app);
        if d.is_zero() {
            return Some(t.id);
        }
        if self.running[m] < self.per_manager {
            self.running[m] += 1;
            self.timers.push(Reverse((now + d, m, t.id)));
        } else {
            self.waiting[m].push_back((t.id, d));
        }
        None
    }

    /// When the next running try ends.
    fn next_due(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((due, _, _))| *due)
    }

    /// The tries whose time is up, by manager; each freed slot starts that manager's next try.
    fn finish_due(&mut self, now: Instant) -> Vec<(usize, Vec<TryId>)> {
        let mut ended: BTreeMap<usize, Vec<TryId>> = BTreeMap::new();
        while let Some(Reverse((due, m, id))) = self.timers.peek().copied() {
            if due > now {
                break;
            }
            self.timers.pop();
            ended.entry(m).or_default().push(id);
            match self.waiting[m].pop_front() {
                // The next try starts when this one ended, not when the loop noticed.
                Some((next, d)) => self.timers.push(Reverse((due + d, m, next))),
                None => self.running[m] -= 1,
            }
        }
        ended.into_iter().collect()
    }
}

/// Run the simulator on its own thread; `stop` ends it.
pub fn spawn(sim: Simulator, stop: Arc<AtomicBool>, registered: Arc<AtomicBool>) -> std::thread::JoinHandle<SimReport> {
    std::thread::spawn(move || sim.run(&stop, &registered))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dfk::Call;
    use crate::task::{ClientId, TaskId, TaskSpec};

    fn try_of(task: u64, call: Call) -> Try {
        let spec =
            TaskSpec { app: call.app, walltime_ms: None, priority: 0, outputs: vec![], resources: Default::default() };
        Try { id: TryId { client: ClientId(1), task: TaskId(task), attempt: 0 }, spec }
    }

    #[test]
    fn durations_of_sleep_functions_and_commands() {
        let d = |c: Call| simulated_duration(&c.app);
        assert_eq!(d(Call::function("sleep", b"0.25".to_vec())), Duration::from_millis(250));
        assert_eq!(d(Call::argv(["sleep", "1.5"])), Duration::from_millis(1500));
        assert_eq!(d(Call::shell("sleep 0.01")), Duration::from_millis(10));
        assert_eq!(d(Call::function("noop", Vec::new())), Duration::ZERO);
        assert_eq!(d(Call::function("sleep", b"soon".to_vec())), Duration::ZERO);
        assert_eq!(d(Call::shell("sleep 1; rm -rf x")), Duration::ZERO);
    }

    #[test]
    fn a_manager_runs_at_most_its_slots_and_starts_the_next_when_one_ends() {
        let mut s = Slots::new(2, 2);
        let t0 = Instant::now();
        let sleep = |secs: &str| Call::function("sleep", secs.as_bytes().to_vec());
        assert_eq!(s.take(0, try_of(0, Call::function("noop", Vec::new())), t0).map(|i| i.task), Some(TaskId(0)));
        for k in 1..=3 {
            assert_eq!(s.take(0, try_of(k, sleep("1")), t0), None);
        }
        assert_eq!(s.take(1, try_of(4, sleep("2")), t0), None);
        assert_eq!(s.next_due(), Some(t0 + Duration::from_secs(1)));
        assert!(s.finish_due(t0 + Duration::from_millis(999)).is_empty());
        // Two slots on manager 0: tasks 1 and 2 end at 1 s, task 3 starts then and ends at 2 s.
        let at1 = s.finish_due(t0 + Duration::from_secs(1));
        assert_eq!(at1.len(), 1);
        assert_eq!(at1[0].0, 0);
        assert_eq!(at1[0].1.iter().map(|i| i.task.0).collect::<Vec<_>>(), vec![1, 2]);
        let at2 = s.finish_due(t0 + Duration::from_secs(2));
        let by: Vec<(usize, Vec<u64>)> =
            at2.into_iter().map(|(m, ids)| (m, ids.iter().map(|i| i.task.0).collect())).collect();
        assert_eq!(by, vec![(0, vec![3]), (1, vec![4])]);
        assert_eq!(s.running, vec![0, 0]);
        assert_eq!(s.next_due(), None);
    }
}
