//! The scaler: runs the [`Strategy`] every period against a real provider and interchange.
//!
//! Each round it asks the interchange for its status (outstanding tries, managers by block)
//! and the provider for its blocks' job states, lets the strategy decide, and carries the
//! decisions out: submit blocks, hold managers (through the interchange), cancel jobs. Every
//! block event is appended to `blocks.jsonl` in the run directory, for `strand status` and for
//! utilization figures. Stopping it cancels every block it started.

use super::strategy::{BlockPhase, Decision, Observation, Strategy, StrategyParams};
use crate::block::{BlockEventKind, BlockId, BlockLog, JobId};
use crate::client::Client;
use crate::connection::ConnectionInfo;
use crate::provider::{BlockRequest, JobState, Provider};
use crate::run_dir::{RunDir, BLOCKS_FILE};
use crate::wire::ManagerMode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Writes the batch script of one block, given its id.
pub type ScriptFn = Box<dyn Fn(&BlockId) -> String + Send>;

/// What the scaler needs besides the strategy's numbers.
pub struct ScalerConfig {
    /// The executor's label: block ids are `LABEL-N`.
    pub label: String,
    /// Task slots a block brings, before its managers say so themselves.
    pub slots_per_block: u32,
    /// The strategy's numbers.
    pub params: StrategyParams,
    /// Nodes per block (bookkeeping for the provider).
    pub nodes_per_block: u32,
    /// Walltime per block, in seconds (the local provider enforces it).
    pub walltime_s: u64,
    /// Where scripts, block output and `blocks.jsonl` go.
    pub run_dir: RunDir,
    /// The batch script of a block.
    pub script: ScriptFn,
}

/// What the scaler reports while it runs.
#[derive(Clone, Debug, Default)]
pub struct ScalerState {
    /// Blocks counted as capacity now.
    pub active_blocks: usize,
    /// Blocks submitted so far.
    pub submitted: usize,
    /// Blocks whose jobs have not been seen to end (active, held or stopping).
    pub live_blocks: usize,
    /// Set when the strategy gave up (every block failed) or the provider cannot submit at all.
    pub error: Option<String>,
}

/// A running scaler thread.
pub struct Scaler {
    stop: Arc<AtomicBool>,
    limits: Arc<Mutex<Option<(u32, u32)>>>,
    state: Arc<Mutex<ScalerState>>,
    thread: Option<JoinHandle<()>>,
}

impl Scaler {
    /// Start scaling blocks of `provider` for the interchange at `conn`.
    pub fn start(conn: &ConnectionInfo, provider: Box<dyn Provider>, cfg: ScalerConfig) -> Scaler {
        let stop = Arc::new(AtomicBool::new(false));
        let state = Arc::new(Mutex::new(ScalerState::default()));
        let limits = Arc::new(Mutex::new(None));
        let (s2, st2, l2, conn) = (Arc::clone(&stop), Arc::clone(&state), Arc::clone(&limits), conn.clone());
        let thread = std::thread::Builder::new()
            .name("strand-scaler".into())
            .spawn(move || run(conn, provider, cfg, &s2, &st2, &l2))
            .ok();
        if thread.is_none() {
            lock(&state).error = Some("cannot start the scaler thread".into());
        }
        Scaler { stop, limits, state, thread }
    }

    /// Change `min_blocks` and `max_blocks` from the next round on (e.g. let a warm allocation shrink).
    pub fn set_limits(&self, min_blocks: u32, max_blocks: u32) {
        *self.limits.lock().unwrap_or_else(|e| e.into_inner()) = Some((min_blocks, max_blocks.max(min_blocks)));
    }

    /// What it reports now.
    pub fn state(&self) -> ScalerState {
        lock(&self.state).clone()
    }

    /// Stop scaling and cancel every block (waits for the thread, which waits for the cancels).
    pub fn stop(mut self) -> ScalerState {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.state()
    }
}

impl Drop for Scaler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn lock(s: &Mutex<ScalerState>) -> std::sync::MutexGuard<'_, ScalerState> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

/// How long a block asked to stop gets before its job is cancelled.
const CANCEL_GRACE: Duration = Duration::from_secs(10);

struct Runner {
    provider: Box<dyn Provider>,
    cfg: ScalerConfig,
    strategy: Strategy,
    log: BlockLog,
    /// Blocks asked to stop, cancelled if still live at the deadline.
    backstop: Vec<(BlockId, JobId, Instant)>,
}

impl Runner {
    /// Cancel the blocks asked to stop that have not ended within the grace period.
    fn run_backstop(&mut self) {
        if self.backstop.is_empty() {
            return;
        }
        let live = self.strategy.live_jobs();
        let now = Instant::now();
        self.backstop.retain(|(b, _, _)| live.iter().any(|(l, _)| l == b));
        let (due, wait): (Vec<_>, Vec<_>) = std::mem::take(&mut self.backstop).into_iter().partition(|x| x.2 <= now);
        self.backstop = wait;
        if !due.is_empty() {
            let blocks: Vec<(BlockId, JobId)> = due.into_iter().map(|(b, j, _)| (b, j)).collect();
            self.cancel(&blocks);
        }
    }

    fn event(&mut self, block: &BlockId, job: &JobId, event: BlockEventKind, detail: Option<String>) {
        self.log.record(block, job, event, detail);
    }

    fn submit(&mut self, n: u32) {
        for _ in 0..n {
            let id = self.strategy.next_block_id();
            let req = BlockRequest {
                name: id.0.clone(),
                script: (self.cfg.script)(&id),
                nodes: self.cfg.nodes_per_block,
                walltime_s: self.cfg.walltime_s,
                run_dir: self.cfg.run_dir.path().to_path_buf(),
            };
            match self.provider.submit(&req) {
                Ok(job) => {
                    self.event(&id, &job, BlockEventKind::Submitted, None);
                    self.strategy.submitted(id, job, Instant::now());
                }
                Err(e) => {
                    let msg = format!("submitting block {id} to {}: {e}", self.provider.name());
                    self.event(&id, &JobId::default(), BlockEventKind::SubmitFailed, Some(msg.clone()));
                    self.strategy.submit_failed(msg);
                }
            }
        }
    }

    fn cancel(&mut self, blocks: &[(BlockId, JobId)]) {
        let jobs: Vec<JobId> = blocks.iter().map(|(_, j)| j.clone()).collect();
        let result = self.provider.cancel(&jobs);
        let detail = result.err().map(|e| e.to_string());
        for (b, j) in blocks {
            self.event(b, j, BlockEventKind::Cancel, detail.clone());
        }
    }

    /// Connections, holds and ends seen this round, logged once each.
    fn log_changes(&mut self, before: &[(BlockId, Flags)]) {
        let now: Vec<(BlockId, JobId, Flags, String)> =
            self.strategy.blocks().map(|b| (b.id.clone(), b.job.clone(), Flags::of(b), phase_text(&b.phase))).collect();
        for (id, job, f, phase) in now {
            let was = before.iter().find(|(b, _)| *b == id).map(|(_, f)| *f).unwrap_or_default();
            if f.connected && !was.connected {
                self.event(&id, &job, BlockEventKind::Connected, None);
            }
            if f.holding && !was.holding {
                self.event(&id, &job, BlockEventKind::Hold, None);
            }
            if f.ended && !was.ended {
                self.event(&id, &job, BlockEventKind::Ended, Some(phase));
            }
        }
    }

    fn snapshot(&self) -> Vec<(BlockId, Flags)> {
        self.strategy.blocks().map(|b| (b.id.clone(), Flags::of(b))).collect()
    }
}

/// The transitions of a block worth a line in `blocks.jsonl`.
#[derive(Clone, Copy, Default)]
struct Flags {
    connected: bool,
    holding: bool,
    ended: bool,
}

impl Flags {
    fn of(b: &super::strategy::Block) -> Flags {
        Flags {
            connected: b.connected_at.is_some(),
            holding: b.phase == BlockPhase::Holding,
            ended: matches!(b.phase, BlockPhase::Ended(_)),
        }
    }
}

fn phase_text(p: &BlockPhase) -> String {
    match p {
        BlockPhase::Ended(s) => s.to_string(),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// Put a manager in `mode` through the interchange (an unknown manager is not an error: it left).
fn set_mode(client: &mut Client, manager: crate::task::ManagerId, mode: ManagerMode) {
    let _ = client.set_mode(manager, mode, Duration::from_secs(10));
}

fn run(
    conn: ConnectionInfo,
    provider: Box<dyn Provider>,
    cfg: ScalerConfig,
    stop: &AtomicBool,
    state: &Mutex<ScalerState>,
    limits: &Mutex<Option<(u32, u32)>>,
) {
    let log = BlockLog::open(&cfg.run_dir.file(BLOCKS_FILE));
    let strategy = Strategy::new(&cfg.label, cfg.slots_per_block, cfg.params.clone());
    let mut r = Runner { provider, cfg, strategy, log, backstop: vec![] };
    let mut client = match Client::connect(&conn) {
        Ok(c) => c,
        Err(e) => {
            lock(state).error = Some(format!("the scaler cannot reach the interchange: {e}"));
            return;
        }
    };
    let mut next = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        if now < next {
            std::thread::sleep((next - now).min(Duration::from_millis(50)));
            continue;
        }
        next = now + r.cfg.params.period;
        if let Some((min, max)) = limits.lock().unwrap_or_else(|e| e.into_inner()).take() {
            r.strategy.set_limits(min, max);
        }
        // Without the interchange's view there is nothing sound to decide: skip the round.
        let Ok(report) = client.status(Duration::from_secs(10)) else { continue };
        let live: Vec<JobId> = r.strategy.live_jobs().into_iter().map(|(_, j)| j).collect();
        let jobs = match r.provider.status(&live) {
            Ok(j) => j,
            Err(_) if live.is_empty() => Default::default(),
            // A scheduler hiccup (slurmctld busy): try again next round rather than guess states.
            Err(_) => continue,
        };
        let before = r.snapshot();
        let obs = Observation {
            now: Instant::now(),
            outstanding: report.queued + report.in_flight,
            managers: &report.managers,
            jobs: &jobs,
        };
        let decisions = r.strategy.step(&obs);
        for d in decisions {
            match d {
                Decision::Submit(n) => r.submit(n),
                Decision::Hold(managers) => {
                    for m in managers {
                        set_mode(&mut client, m, ManagerMode::Held);
                    }
                }
                Decision::Cancel(blocks) => {
                    // Blocks with managers are asked to stop through the interchange (they hold
                    // nothing): the job then ends cleanly and at once, where a scheduler's cancel
                    // signal takes mpirun seconds to pass on. The cancel follows as a backstop
                    // if the job has not ended within the grace period.
                    let mut now_cancel = vec![];
                    for (b, j) in blocks {
                        let ms: Vec<_> = report.managers.iter().filter(|m| m.block == b).map(|m| m.id).collect();
                        if ms.is_empty() {
                            now_cancel.push((b, j));
                            continue;
                        }
                        for m in ms {
                            set_mode(&mut client, m, ManagerMode::Draining);
                        }
                        r.event(&b, &j, BlockEventKind::Stop, None);
                        r.backstop.push((b, j, Instant::now() + CANCEL_GRACE));
                    }
                    if !now_cancel.is_empty() {
                        r.cancel(&now_cancel);
                    }
                }
                Decision::Fail(why) => lock(state).error = Some(why),
            }
        }
        r.log_changes(&before);
        r.run_backstop();
        let mut s = lock(state);
        s.active_blocks = r.strategy.active();
        s.submitted = r.strategy.blocks().count();
        s.live_blocks = r.strategy.live_jobs().len();
    }
    // Cancel what is left and wait (bounded) for the jobs to end, so none outlives the run.
    // Each end is logged, so `strand status RUN_DIR` does not show them live afterwards.
    let mut live = r.strategy.live_jobs();
    if !live.is_empty() {
        r.cancel(&live);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !live.is_empty() && Instant::now() < deadline {
            let jobs: Vec<JobId> = live.iter().map(|(_, j)| j.clone()).collect();
            let states = r.provider.status(&jobs).unwrap_or_default();
            let (gone, still): (Vec<_>, Vec<_>) = live
                .into_iter()
                .partition(|(_, j)| states.get(j).is_none_or(|s| s.is_terminal() || *s == JobState::Missing));
            for (b, j) in gone {
                let how = states.get(&j).map_or_else(|| "gone".to_string(), |s| s.to_string());
                r.event(&b, &j, BlockEventKind::Ended, Some(how));
            }
            live = still;
            if !live.is_empty() {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        for (b, j) in &live {
            r.event(b, j, BlockEventKind::StillLive, Some("did not end within 30 s of its cancel".into()));
        }
    }
}
