//! Everything a manager's state machine does to the world, as one small trait.
//!
//! The loop in `run.rs` implements it over the ZeroMQ socket, the pool communicator and the
//! local executor; tests implement it with a recorder, so the manager's logic runs without
//! sockets, MPI or processes.

use crate::pool_msg::{ToWorker, WorkerRank};
use strand::sample::Samples;
use strand::task::Try;
use strand::wire::ManagerMsg;

/// Where a manager's messages and tries go.
pub trait ManagerComm {
    /// Send a message to the interchange (numbered and signed by the implementation).
    fn to_interchange(&mut self, msg: ManagerMsg);
    /// Send a message to worker `rank`; never blocks (a hung worker must not stall the manager).
    fn to_worker(&mut self, rank: WorkerRank, msg: ToWorker);
    /// Run a try on the manager's own slots (a pool of one rank); its result comes back as an event.
    fn run_locally(&mut self, t: Try);
    /// Sample, now, what the manager's own rank runs (its local slots) and its node.
    fn sample_here(&mut self) -> Samples;
}
