//! The DFK (DataFlowKernel): the submit host's task graph, futures and retries.
//!
//! `Dfk::submit` adds a task to the [`Graph`] and returns a [`TaskFuture`]; one
//! I/O thread moves ready tries to the interchange in batches and results back
//! into the graph. The API never touches the socket, so many threads may submit.
//!
//! ```no_run
//! use strand::dfk::{Call, Dfk, DfkConfig};
//! let conn = strand::connection::ConnectionInfo::load("runs/demo/connection.json".as_ref()).unwrap();
//! let dfk = Dfk::connect(&conn, DfkConfig::default()).unwrap();
//! let a = dfk.submit(Call::shell("echo 21"));
//! let b = dfk.submit(Call::shell("echo $(({0} * 2))").input(&a));
//! assert_eq!(b.wait().unwrap(), b"42\n");
//! dfk.shutdown();
//! ```

pub mod future;
pub mod graph;
pub mod hosts;
pub mod memo;
pub mod staging;

pub use future::{TaskError, TaskFuture, TaskOutcome};
pub use graph::{retry_on, Call, Graph, GraphCounts, JoinFn, RetryHandler};
pub use memo::{Memo, MemoKey};

use crate::client::{Client, ClientError};
use crate::connection::ConnectionInfo;
use crate::task::{Failure, Outcome, TryResult};
use crate::waker::{wait_readable, Waker};
use crate::wire::{ClientMsg, DropCounts, ToClientMsg};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Tuning of a DFK.
#[derive(Clone)]
pub struct DfkConfig {
    /// Most tries out at the interchange at once (bounds its queue from this client).
    pub window: usize,
    /// Most tries in one submit batch.
    pub batch: usize,
    /// Fail in-flight tries with `InterchangeLost` after this long without a word from it.
    pub interchange_timeout: Duration,
    /// How long to wait for the interchange's first answer.
    pub connect_timeout: Duration,
    /// Checkpoint file: results of earlier runs are reused, new ones appended.
    pub checkpoint: Option<std::path::PathBuf>,
    /// Event log: every task's state transitions, timestamped.
    pub events: Option<std::path::PathBuf>,
    /// The run database (`RUN_DIR/monitoring.db`): tasks, tries, managers, blocks.
    pub monitoring: Option<MonitoringConfig>,
    /// Memoize tasks that do not say otherwise (`strand run`/`map` turn it on with a run directory).
    pub memoize: bool,
    /// When results reach the checkpoint file.
    pub checkpoint_mode: memo::CheckpointMode,
    /// With a checkpoint file, also index this run's results, so that a task repeated within
    /// the run is a hit (on by default). `strand map` turns it off: its memory then stays flat
    /// over a stream of any length, and a later run with the same file still finds them.
    pub memo_indexes_new: bool,
    /// Where stagers put remote inputs.
    pub staging_dir: std::path::PathBuf,
    /// Stagers tried in order for each input file (default: local paths, HTTP(S)).
    pub stagers: Vec<Arc<dyn staging::Stager>>,
}

impl Default for DfkConfig {
    fn default() -> Self {
        DfkConfig {
            window: 200_000,
            batch: 4096,
            interchange_timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(30),
            checkpoint: None,
            events: None,
            monitoring: None,
            memoize: false,
            checkpoint_mode: memo::CheckpointMode::TaskExit,
            memo_indexes_new: true,
            staging_dir: std::path::PathBuf::from("staging"),
            stagers: staging::default_stagers(),
        }
    }
}

/// Where and how a DFK writes its run database.
#[derive(Clone, Debug)]
pub struct MonitoringConfig {
    /// The database file.
    pub db: std::path::PathBuf,
    /// The block log to mirror into it (`RUN_DIR/blocks.jsonl`), when blocks are known.
    pub blocks: Option<std::path::PathBuf>,
    /// What started the run (kept in the `runs` table).
    pub command: String,
    /// How often the interchange is asked for its managers and queue.
    pub poll: Duration,
}

impl MonitoringConfig {
    /// The run database of a run directory, polling the interchange every second.
    pub fn in_run_dir(dir: &crate::run_dir::RunDir, command: impl Into<String>) -> MonitoringConfig {
        MonitoringConfig {
            db: dir.file(crate::run_dir::MONITORING_DB),
            blocks: Some(dir.file(crate::run_dir::BLOCKS_FILE)),
            command: command.into(),
            poll: Duration::from_secs(1),
        }
    }
}

struct Shared {
    graph: Mutex<Graph>,
    stagers: Vec<Arc<dyn staging::Stager>>,
    staging_dir: std::path::PathBuf,
    /// Signalled whenever tasks reach a terminal state.
    progress: Condvar,
    waker: Waker,
    stop: AtomicBool,
    /// Set by [`Dfk::withdraw`]; the I/O thread acts on it (and clears it) in its next round.
    withdraw: AtomicBool,
    /// Frames from the interchange that the client dropped, as of the I/O thread's last round.
    dropped: Mutex<DropCounts>,
    /// Why the run database could not be written, once the I/O thread has stopped.
    monitoring_error: Mutex<Option<String>>,
    /// Where the managers that ran our tries are.
    hosts: hosts::ManagerHosts,
}

impl Shared {
    fn graph(&self) -> MutexGuard<'_, Graph> {
        self.graph.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Why a DFK could not start.
#[derive(Debug, thiserror::Error)]
pub enum DfkError {
    /// The interchange could not be reached.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The checkpoint could not be opened.
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] memo::CheckpointError),
    /// The run database could not be opened.
    #[error(transparent)]
    Monitoring(#[from] crate::monitoring::db::DbError),
    /// The event log could not be opened.
    #[error("event log {path}: {source}")]
    Events {
        /// The file.
        path: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Submits to a DFK from anywhere, e.g. from inside a join body.
#[derive(Clone)]
pub struct DfkHandle(Arc<Shared>);

impl DfkHandle {
    /// Add a task; it runs once the futures it takes are done. Remote input files are
    /// staged first by transfer tasks (see [`staging`]).
    pub fn submit(&self, call: Call) -> TaskFuture {
        let (transfers, call) = self.stage(call);
        let f = {
            let mut g = self.0.graph();
            for t in transfers {
                g.add(t);
            }
            g.add(call)
        };
        self.0.waker.wake();
        f
    }

    /// Add many tasks at once, under one lock of the task graph and with one wake of the
    /// DFK (a driver's batch: `strand.Dfk.map` from Python); their futures, in order.
    pub fn submit_many(&self, calls: impl IntoIterator<Item = Call>) -> Vec<TaskFuture> {
        let staged: Vec<_> = calls.into_iter().map(|c| self.stage(c)).collect();
        let futures = {
            let mut g = self.0.graph();
            let mut futures = Vec::with_capacity(staged.len());
            for (transfers, call) in staged {
                for t in transfers {
                    g.add(t);
                }
                futures.push(g.add(call));
            }
            futures
        };
        self.0.waker.wake();
        futures
    }

    /// The transfer tasks that stage `call`'s remote input files in, and the call reading
    /// their local copies.
    fn stage(&self, mut call: Call) -> (Vec<Call>, Call) {
        let mut transfers = Vec::new();
        for f in call.input_files.iter_mut() {
            if let Some(st) = self.0.stagers.iter().find(|s| s.handles(f)) {
                let local = st.local_path(f, &self.0.staging_dir);
                if let Some(t) = st.stage_in(f, &local) {
                    transfers.push(t);
                }
                *f = local.display().to_string();
            }
        }
        (transfers, call)
    }
}

/// Reads a DFK's progress (for progress bars) without holding it.
#[derive(Clone)]
pub struct Monitor(Arc<Shared>);

/// A moment of a DFK's progress.
#[derive(Clone, Copy, Debug, Default)]
pub struct Snapshot {
    /// Counters so far.
    pub counts: GraphCounts,
    /// Tasks not yet ended.
    pub pending: usize,
    /// Tries out at the interchange (queued there or running).
    pub in_flight: usize,
}

impl Monitor {
    /// The current counters.
    pub fn snapshot(&self) -> Snapshot {
        let g = self.0.graph();
        Snapshot { counts: g.counts(), pending: g.pending(), in_flight: g.in_flight() }
    }
}

/// A running DFK connected to one interchange.
pub struct Dfk {
    shared: Arc<Shared>,
    io: Option<JoinHandle<()>>,
}

impl Dfk {
    /// Connect to the interchange (waiting for its welcome) and start the I/O thread.
    pub fn connect(conn: &ConnectionInfo, cfg: DfkConfig) -> Result<Dfk, DfkError> {
        let memo = match &cfg.checkpoint {
            Some(p) => Memo::open(p)?,
            None => Memo::in_memory(),
        };
        let events = match &cfg.events {
            Some(p) => Some(
                crate::monitoring::events::EventLog::open(p)
                    .map_err(|source| DfkError::Events { path: p.clone(), source })?,
            ),
            None => None,
        };
        let mut client = Client::connect(conn)?;
        let (_, incarnation) = client.hello(cfg.connect_timeout)?;
        // After the interchange answered: a DFK that never connects leaves no run in the database.
        let db = match &cfg.monitoring {
            Some(m) => Some(crate::monitoring::db::RunDb::start(&m.db, m.blocks.clone(), &m.command)?),
            None => None,
        };
        let waker = Waker::new().map_err(ClientError::Random)?;
        let shared = Arc::new(Shared {
            graph: Mutex::new(Graph::with_memo(client.id(), memo)),
            stagers: cfg.stagers.clone(),
            staging_dir: cfg.staging_dir.clone(),
            progress: Condvar::new(),
            waker,
            stop: AtomicBool::new(false),
            withdraw: AtomicBool::new(false),
            dropped: Mutex::new(client.drops()),
            monitoring_error: Mutex::new(None),
            hosts: hosts::ManagerHosts::default(),
        });
        if db.is_some() {
            shared.graph().keep_records();
        }
        if let Some(log) = events {
            shared.graph().record_events(log);
        }
        shared.graph().memoize_by_default(cfg.memoize);
        shared.graph().set_checkpoint_mode(cfg.checkpoint_mode);
        shared.graph().set_memo_indexes_new(cfg.memo_indexes_new);
        let s2 = Arc::clone(&shared);
        let io = std::thread::Builder::new()
            .name("strand-dfk-io".into())
            .spawn(move || io_loop(client, s2, cfg, incarnation, db))
            .map_err(ClientError::Random)?;
        Ok(Dfk { shared, io: Some(io) })
    }

    /// Where the managers that ran this DFK's tries are: each learned from the interchange
    /// soon after its first result (by [`crate::task::Ran::manager`]).
    pub fn manager_hosts(&self) -> hosts::ManagerHosts {
        self.shared.hosts.clone()
    }

    /// Ids of tasks as they reach a terminal state, from now on (one receiver per DFK).
    pub fn ends(&self) -> crossbeam_channel::Receiver<crate::task::TaskId> {
        let (tx, rx) = crossbeam_channel::unbounded();
        self.shared.graph().notify_ends(tx);
        rx
    }

    /// A handle that reads the DFK's progress from another thread.
    pub fn monitor(&self) -> Monitor {
        Monitor(Arc::clone(&self.shared))
    }

    /// Write the checkpoint now (the `Manual` mode's "on demand"; harmless in the others).
    pub fn checkpoint(&self) {
        write_checkpoint(&self.shared, true);
    }

    /// Records loaded from the checkpoint, and torn records ignored.
    pub fn checkpoint_loaded(&self) -> (usize, usize) {
        self.shared.graph().memo_loaded()
    }

    /// Checkpoint write errors so far (the run goes on without them).
    pub fn checkpoint_errors(&self) -> Vec<String> {
        self.shared.graph().checkpoint_errors.clone()
    }

    /// Add a task; it runs once the futures it takes are done.
    pub fn submit(&self, call: Call) -> TaskFuture {
        self.handle().submit(call)
    }

    /// Add many tasks at once (one lock, one wake); their futures, in order.
    pub fn submit_many(&self, calls: impl IntoIterator<Item = Call>) -> Vec<TaskFuture> {
        self.handle().submit_many(calls)
    }

    /// A cloneable handle that submits to this DFK (for join bodies and other threads).
    pub fn handle(&self) -> DfkHandle {
        DfkHandle(Arc::clone(&self.shared))
    }

    /// Cancel a task and its dependents (they end as `Cancelled`); returns how many were cancelled.
    pub fn cancel(&self, f: &TaskFuture) -> usize {
        let n = self.shared.graph().cancel(f.id());
        self.shared.progress.notify_all();
        n
    }

    /// Start no more work (GNU parallel's `--halt soon`): cancel every task with no try out, and
    /// take back from the interchange the tries no manager holds yet, whose tasks end as
    /// `Cancelled` when it answers. Tries that managers hold run to their end. Returns at once.
    pub fn withdraw(&self) {
        self.shared.withdraw.store(true, Ordering::Release);
        self.shared.waker.wake();
    }

    /// Frames from the interchange this DFK dropped (failed checks or replays), by reason, as of
    /// its I/O thread's last round; the interchange's own drops are in its status.
    pub fn dropped(&self) -> DropCounts {
        *self.shared.dropped.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counters of the graph so far.
    pub fn counts(&self) -> GraphCounts {
        self.shared.graph().counts()
    }

    /// Tasks not yet ended.
    pub fn pending(&self) -> usize {
        self.shared.graph().pending()
    }

    /// Block until every submitted task has ended, or `timeout` passes; returns tasks still pending.
    pub fn wait_all(&self, timeout: Option<Duration>) -> usize {
        self.wait_pending_at_most(0, timeout)
    }

    /// Block until at most `n` tasks are pending (submitted, not ended), or `timeout` passes;
    /// returns tasks still pending. A streaming driver calls it before each submit to keep a
    /// bounded window, so its memory stays flat however long the stream.
    pub fn wait_pending_at_most(&self, n: usize, timeout: Option<Duration>) -> usize {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut g = self.shared.graph();
        while g.pending() > n {
            let wait = match deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    left.min(Duration::from_millis(200))
                }
                None => Duration::from_millis(200),
            };
            g = self.shared.progress.wait_timeout(g, wait).unwrap_or_else(|p| p.into_inner()).0;
        }
        g.pending()
    }

    /// Stop the I/O thread (tasks still pending stay unresolved) and say goodbye. Returns why
    /// the run database could not be written, if it could not (the run itself is unaffected).
    pub fn shutdown(mut self) -> Option<String> {
        self.stop_io();
        self.shared.monitoring_error.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    fn stop_io(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.waker.wake();
        if let Some(h) = self.io.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Dfk {
    fn drop(&mut self) {
        self.stop_io();
    }
}

/// Records handed to the run database's writer at once, at most every [`HANDOFF_EVERY`]: each
/// handoff wakes the writer, which on a busy node takes a core from the run.
const HANDOFF_RECORDS: usize = 4096;

/// Longest records wait in the graph before they go to the writer.
const HANDOFF_EVERY: Duration = Duration::from_millis(50);

/// The I/O thread: ready tries out, results in, liveness of the interchange.
fn io_loop(
    mut client: Client,
    shared: Arc<Shared>,
    cfg: DfkConfig,
    mut incarnation: u64,
    db: Option<crate::monitoring::db::RunDb>,
) {
    let poll_every = cfg.monitoring.as_ref().map(|m| m.poll);
    let mut last_poll: Option<Instant> = None;
    let mut last_handoff = Instant::now();
    let mut asking = hosts::Asking::default();
    let mut last_heard = Instant::now();
    let mut last_ping = Instant::now();
    let ping_every = (cfg.interchange_timeout / 4).max(Duration::from_millis(50));
    // After a refusal, wait for results (or a short pause) before sending more.
    let mut refused_until: Option<Instant> = None;
    while !shared.stop.load(Ordering::Relaxed) {
        shared.waker.clear();
        let mut ended = false;
        while let Some(msg) = client.try_recv() {
            last_heard = Instant::now();
            match msg {
                ToClientMsg::Results(results) => {
                    asking.saw(&shared.hosts, &results);
                    let mut g = shared.graph();
                    for r in results {
                        g.on_result(r);
                    }
                    ended = true;
                    refused_until = None;
                }
                ToClientMsg::Refused { tries, .. } => {
                    shared.graph().requeue(&tries);
                    refused_until = Some(Instant::now() + Duration::from_millis(20));
                }
                ToClientMsg::NotHeld(tries) => {
                    // Sent again this round, each function whole.
                    client.forget_functions();
                    shared.graph().requeue(&tries);
                }
                ToClientMsg::Stopping => {
                    shared.graph().fail_in_flight(Failure::InterchangeLost { silent_ms: 0 });
                    ended = true;
                }
                ToClientMsg::Welcome { incarnation: i, .. } | ToClientMsg::Heartbeat { incarnation: i } => {
                    if i != incarnation {
                        // A restarted interchange holds none of our tries: send them again.
                        incarnation = i;
                        client.forget_functions();
                        shared.graph().resubmit_in_flight();
                    }
                }
                ToClientMsg::Status(report) => {
                    shared.hosts.learn(&report.managers);
                    if let Some(db) = &db {
                        let t_us = crate::monitoring::record::now_us();
                        let (managers, queued) = (report.managers, report.queued);
                        db.send(vec![crate::monitoring::record::Record::Managers { t_us, managers, queued }]);
                    }
                }
                ToClientMsg::Withdrawn(tries) => {
                    shared.graph().withdrawn(&tries);
                    ended = true;
                }
                ToClientMsg::Ack { .. } => {}
                ToClientMsg::Samples(samples) => {
                    if let Some(db) = &db {
                        db.send(vec![crate::monitoring::record::Record::Samples(samples)]);
                    }
                }
            }
        }
        let drops = client.drops();
        if drops.total() > 0 {
            *shared.dropped.lock().unwrap_or_else(|p| p.into_inner()) = drops;
        }
        // Before this round sends anything: what is cancelled here is never sent, and the
        // interchange sees `Withdraw` after every try sent before it.
        if shared.withdraw.swap(false, Ordering::AcqRel) {
            shared.graph().cancel_unsent();
            let _ = client.send(&ClientMsg::Withdraw);
            ended = true;
        }
        if asking.due(Instant::now()) {
            let _ = client.send(&ClientMsg::Status);
        }
        run_joins(&shared);
        start_hashing(&shared);
        if refused_until.is_some_and(|t| Instant::now() >= t) {
            refused_until = None;
        }
        if refused_until.is_none() {
            loop {
                let batch = {
                    let mut g = shared.graph();
                    let room = cfg.window.saturating_sub(g.in_flight());
                    g.take_ready(room.min(cfg.batch))
                };
                if batch.is_empty() {
                    break;
                }
                let unsent = client.submit(batch);
                let mut g = shared.graph();
                let limit = client.max_frame() as u64;
                for t in unsent.too_large {
                    let failure = Failure::TooLarge { what: "the try".into(), bytes: t.bytes as u64, limit };
                    g.on_result(TryResult::new(t.item.id, Outcome::Failed(failure)));
                    ended = true;
                }
                if !unsent.failed.is_empty() {
                    // Taken from the queue as in flight but never sent: they go back, and the
                    // next round sends them again.
                    g.requeue(&unsent.failed);
                    break;
                }
            }
        }
        let now = Instant::now();
        let (in_flight, ready) = {
            let g = shared.graph();
            (g.in_flight(), g.ready_len())
        };
        if in_flight > 0 {
            let silent = now.saturating_duration_since(last_heard);
            if silent > cfg.interchange_timeout {
                shared.graph().fail_in_flight(Failure::InterchangeLost { silent_ms: silent.as_millis() as u64 });
                last_heard = now;
                ended = true;
            } else if now.saturating_duration_since(last_ping) > ping_every {
                let _ = client.send(&ClientMsg::Heartbeat);
                last_ping = now;
            }
        } else {
            last_heard = now;
        }
        if ended {
            shared.progress.notify_all();
        }
        shared.graph().flush_events();
        let mut records_held = false;
        if let Some(db) = &db {
            // Taken under the lock, handed over outside it.
            let due = now.saturating_duration_since(last_handoff) >= HANDOFF_EVERY;
            let records = {
                let mut g = shared.graph();
                let taken = g.take_records_if(HANDOFF_RECORDS, due);
                records_held = g.has_records();
                taken
            };
            if !records.is_empty() {
                db.send(records);
                last_handoff = now;
            }
            if let Some(every) = poll_every {
                if last_poll.is_none_or(|t| now.saturating_duration_since(t) >= every) {
                    let _ = client.send(&ClientMsg::Status);
                    last_poll = Some(now);
                }
            }
        }
        write_checkpoint(&shared, false);
        // Joins and hashing that became due while sending start before we sleep: nothing else
        // would wake us.
        if client.readable() || shared.graph().has_local_work() {
            continue;
        }
        let mut wait = if ready > 0 && refused_until.is_some() { Duration::from_millis(5) } else { ping_every };
        if let Some(every) = poll_every {
            wait = wait.min(every);
        }
        if records_held {
            wait = wait.min(HANDOFF_EVERY);
        }
        let mut fds = vec![shared.waker_fd()];
        if let Some(fd) = client.fd() {
            fds.push(fd);
        }
        wait_readable(&fds, wait);
    }
    shared.graph().flush_events();
    let _ = client.send(&ClientMsg::Bye);
    if let Some(db) = db {
        let records = shared.graph().take_records();
        db.send(records);
        if let Err(e) = db.finish() {
            *shared.monitoring_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
        }
    }
}

/// Write the checkpoint records due now (all with `now`): taken under the graph's lock,
/// written after it is released.
fn write_checkpoint(shared: &Shared, now: bool) {
    let due = shared.graph().checkpoint_due(now);
    if let Some(Err(e)) = due.map(memo::CheckpointWrite::write) {
        shared.graph().checkpoint_errors.push(e.to_string());
    }
}

/// Hash the input files of tasks that asked for it on rayon's pool, outside the graph's lock;
/// each task goes back to the ready queue with its hashes and the I/O loop is woken.
fn start_hashing(shared: &Arc<Shared>) {
    for (id, files) in shared.graph().take_hashing() {
        let shared = Arc::clone(shared);
        rayon::spawn(move || {
            let hashes = files.iter().map(|f| graph::hash_input_file(f)).collect();
            shared.graph().hashed(id, hashes);
            shared.waker.wake();
        });
    }
}

/// Run join bodies that became ready, outside the graph's lock (they submit tasks).
fn run_joins(shared: &Shared) {
    loop {
        let joins = shared.graph().take_joins();
        if joins.is_empty() {
            return;
        }
        for (id, f, inputs) in joins {
            let body = f.lock().unwrap_or_else(|p| p.into_inner()).take();
            let Some(body) = body else { continue };
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(inputs))) {
                Ok(target) => shared.graph().link_join(id, target),
                Err(p) => shared.graph().fail_join(id, crate::text::panic_message(p.as_ref())),
            }
        }
        shared.progress.notify_all();
    }
}

impl Shared {
    fn waker_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.waker.as_raw_fd()
    }
}
