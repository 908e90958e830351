//! Simulated managers for `strand bench sim`: many real ZeroMQ connections, no MPI.
//!
//! Each simulated manager registers like a real one and answers every try at
//! once with an empty success, so the interchange (a separate process) is the
//! only thing measured. All managers live in one thread of this process.

use crate::block::BlockId;
use crate::connection::{ConnectionInfo, Side};
use crate::task::{ManagerId, Outcome, TryResult};
use crate::wire::{Codec, ManagerMsg, Registration, ToManagerMsg};
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
        while !stop.load(Ordering::Relaxed) {
            let mut items: Vec<zmq::PollItem> = self.sockets.iter().map(|s| s.as_poll_item(zmq::POLLIN)).collect();
            if zmq::poll(&mut items, 50).is_err() {
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
                            let results: Vec<TryResult> =
                                tries.into_iter().map(|t| TryResult::new(t.id, Outcome::Done(Vec::new()))).collect();
                            seq += 1;
                            let _ = s.send(self.codec.encode(&ManagerMsg::Results(results), seq), 0);
                        }
                        ToManagerMsg::Heartbeat | ToManagerMsg::Reregister => {}
                        ToManagerMsg::Stop => return report,
                    }
                }
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

/// Run the simulator on its own thread; `stop` ends it.
pub fn spawn(sim: Simulator, stop: Arc<AtomicBool>, registered: Arc<AtomicBool>) -> std::thread::JoinHandle<SimReport> {
    std::thread::spawn(move || sim.run(&stop, &registered))
}
