//! The run database's writer thread: it gathers records into rounds, holds new task rows back
//! for a while so that most tasks are written once, complete, and commits each round in one
//! transaction.

use super::{state_name, DbError, Msg, WriterStats, COMMIT_EVERY};
use crate::block::{read_events, BlockEventKind};
use crate::monitoring::record::{self, Record};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use rusqlite::{params, Connection};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often the block table is brought up to date from `blocks.jsonl`.
const BLOCKS_EVERY: Duration = Duration::from_secs(2);

/// How long a new task's row waits for the task's end, so that most tasks are written once,
/// complete; one still going after this is written as pending (and updated when it ends).
const PENDING_AFTER: Duration = Duration::from_secs(2);

/// A task row not yet written.
struct NewTask {
    name: Option<String>,
    app: String,
    submitted_us: u64,
    end: Option<TaskEnd>,
}

/// Task rows not yet written, by task id. Ids are dense and in submission order, so a deque
/// from the oldest unwritten id serves as both the index and the aging queue (a hash map here
/// was a tenth of the writer's time).
#[derive(Default)]
struct Unwritten {
    /// The task id of `rows[0]`.
    base: u64,
    rows: std::collections::VecDeque<Option<NewTask>>,
}

impl Unwritten {
    fn insert(&mut self, task: u64, row: NewTask) {
        if self.rows.is_empty() {
            self.base = task;
        }
        // Ids come in order; one that does not still gets its row (never dropped).
        while task < self.base {
            self.rows.push_front(None);
            self.base -= 1;
        }
        let i = (task - self.base) as usize;
        if i >= self.rows.len() {
            self.rows.resize_with(i + 1, || None);
        }
        self.rows[i] = Some(row);
    }

    fn get_mut(&mut self, task: u64) -> Option<&mut NewTask> {
        let i = task.checked_sub(self.base)? as usize;
        self.rows.get_mut(i)?.as_mut()
    }

    fn take(&mut self, task: u64) -> Option<NewTask> {
        let i = task.checked_sub(self.base)? as usize;
        self.rows.get_mut(i)?.take()
    }

    /// Move rows submitted at or before `old` (and the written gaps before them) into `due`.
    fn take_aged(&mut self, old: u64, due: &mut Vec<(u64, NewTask)>) {
        while let Some(front) = self.rows.front_mut() {
            match front {
                Some(t) if t.submitted_us > old => return,
                Some(_) => {
                    if let Some(t) = front.take() {
                        due.push((self.base, t));
                    }
                }
                None => {}
            }
            self.rows.pop_front();
            self.base += 1;
        }
    }
}

/// A task's end: when, its state's name, its tries, why.
type TaskEnd = (u64, &'static str, u32, Option<String>);

/// The writer thread's state: the connection, this run's id, and the rows it holds back.
pub(super) struct Writer {
    conn: Connection,
    path: PathBuf,
    run: i64,
    blocks: Option<PathBuf>,
    /// Managers seen in the last status poll, and whether they were seen draining.
    seen: HashMap<u64, bool>,
    /// Task rows not yet written, and their ids in order of submission (for aging).
    unwritten: Unwritten,
}

impl Writer {
    /// A writer of run `run` into `conn` (the file at `path`), mirroring the block log `blocks`.
    pub(super) fn new(conn: Connection, path: PathBuf, run: i64, blocks: Option<PathBuf>) -> Writer {
        Writer { conn, path, run, blocks, seen: HashMap::new(), unwritten: Unwritten::default() }
    }

    /// Take records from `rx` until told to finish; commit them in rounds of [`COMMIT_EVERY`].
    pub(super) fn run(mut self, rx: Receiver<Msg>) -> Result<WriterStats, DbError> {
        let mut stats = WriterStats::default();
        let mut pending: Vec<Record> = Vec::new();
        let mut failed: Option<DbError> = None;
        let mut last_commit = Instant::now();
        let mut last_blocks = Instant::now();
        loop {
            let wait = COMMIT_EVERY.saturating_sub(last_commit.elapsed());
            let finish = match rx.recv_timeout(wait) {
                Ok(Msg::Records(mut r)) => {
                    stats.records += r.len() as u64;
                    pending.append(&mut r);
                    false
                }
                Ok(Msg::Finish) | Err(RecvTimeoutError::Disconnected) => true,
                Err(RecvTimeoutError::Timeout) => false,
            };
            if finish || last_commit.elapsed() >= COMMIT_EVERY || pending.len() >= 200_000 {
                if failed.is_none() {
                    let blocks_due = finish || last_blocks.elapsed() >= BLOCKS_EVERY;
                    match self.commit(&mut pending, blocks_due, finish) {
                        Ok(()) => stats.commits += 1,
                        Err(e) => failed = Some(e),
                    }
                    if blocks_due {
                        last_blocks = Instant::now();
                    }
                }
                // After a failure records are dropped here, so the run never waits on us.
                pending.clear();
                last_commit = Instant::now();
            }
            if finish {
                return failed.map_or(Ok(stats), Err);
            }
        }
    }

    fn commit(&mut self, records: &mut Vec<Record>, blocks: bool, finish: bool) -> Result<(), DbError> {
        let path = self.path.clone();
        let err = move |source| DbError::Sqlite { path: path.clone(), source };
        let tx = self.conn.transaction().map_err(&err)?;
        let run = self.run;
        // Tasks that ended in this commit and whose row is not written yet.
        let mut complete: Vec<u64> = Vec::new();
        {
            let mut end_task = tx
                .prepare_cached(
                    "UPDATE tasks SET ended_us = ?3, state = ?4, tries = ?5, reason = ?6 WHERE run = ?1 AND task = ?2",
                )
                .map_err(&err)?;
            // Each row is bound straight from its record, with no gathered rows or parameter
            // arrays: simpler, and no slower (the writer's CPU time was the same within noise).
            let mut put_try = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO tries (run, task, attempt, launched_us, ended_us, started_us, run_us, \
                     manager, rank, slot, outcome, exit_code, signal, reason, cpu_us, max_rss_kib) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
                )
                .map_err(&err)?;
            let mut lost = tx
                .prepare_cached("UPDATE managers SET lost_us = ?3 WHERE run = ?1 AND manager = ?2 AND lost_us IS NULL")
                .map_err(&err)?;
            for r in records.drain(..) {
                match r {
                    Record::Task { task, name, app, t_us } => {
                        self.unwritten.insert(task, NewTask { name, app, submitted_us: t_us, end: None });
                    }
                    Record::TryEnded { task, attempt, launched_us, t_us, end, ran } => {
                        let launched = (launched_us != 0).then_some(launched_us as i64);
                        let worker = ran.is_known();
                        // Usage is measured for commands only (a command always has a resident set).
                        let usage = ran.usage.max_rss_kib > 0;
                        put_try
                            .execute(params![
                                run,
                                task as i64,
                                attempt,
                                launched,
                                t_us as i64,
                                worker.then_some(ran.started_us as i64),
                                worker.then_some(ran.run_us as i64),
                                (ran.manager.0 != 0).then_some(ran.manager.0).or(end.held_by).map(|m| m as i64),
                                worker.then_some(ran.rank),
                                worker.then_some(ran.slot),
                                end.outcome,
                                end.exit_code,
                                end.signal,
                                end.reason,
                                usage.then_some(ran.usage.cpu_us as i64),
                                usage.then_some(ran.usage.max_rss_kib as i64),
                            ])
                            .map_err(&err)?;
                        if let Some(m) = end.lost_manager {
                            lost.execute(params![run, m as i64, t_us as i64]).map_err(&err)?;
                        }
                        if end.outcome == "done" {
                            Self::task_ended(
                                &mut self.unwritten,
                                &mut complete,
                                &mut end_task,
                                run,
                                task,
                                (t_us, "done", attempt + 1, None),
                            )
                            .map_err(&err)?;
                        }
                    }
                    Record::TaskEnded { task, state, tries, t_us, reason } => {
                        let end = (t_us, state_name(state), tries, reason);
                        Self::task_ended(&mut self.unwritten, &mut complete, &mut end_task, run, task, end)
                            .map_err(&err)?;
                    }
                    Record::Managers { t_us, managers, queued } => {
                        Self::managers(&tx, run, &mut self.seen, t_us, &managers, queued).map_err(&err)?;
                    }
                    Record::Samples(samples) => Self::samples(&tx, run, &samples).map_err(&err)?,
                }
            }
            // Complete rows, then rows that waited long enough for an end (all of them at the finish).
            let mut due: Vec<(u64, NewTask)> =
                complete.iter().filter_map(|&id| self.unwritten.take(id).map(|t| (id, t))).collect();
            let old = record::now_us().saturating_sub(PENDING_AFTER.as_micros() as u64);
            self.unwritten.take_aged(if finish { u64::MAX } else { old }, &mut due);
            let mut put_task = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO tasks (run, task, name, app, submitted_us, ended_us, state, tries, reason) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .map_err(&err)?;
            for (task, t) in due {
                let (ended, state, tries, reason) = match t.end {
                    Some((e, s, n, r)) => (Some(e as i64), s, n, r),
                    None => (None, "pending", 0, None),
                };
                put_task
                    .execute(params![
                        run,
                        task as i64,
                        t.name,
                        t.app,
                        t.submitted_us as i64,
                        ended,
                        state,
                        tries,
                        reason
                    ])
                    .map_err(&err)?;
            }
        }
        if blocks {
            if let Some(p) = &self.blocks {
                Self::blocks(&tx, p).map_err(&err)?;
            }
        }
        if finish {
            let now = record::now_us() as i64;
            tx.execute("UPDATE runs SET ended_us = ?2 WHERE run = ?1", params![run, now]).map_err(&err)?;
            // Managers connected at the last poll were there until the run ended.
            tx.execute(
                "UPDATE managers SET last_seen_us = ?2 WHERE run = ?1 AND gone_us IS NULL AND lost_us IS NULL",
                params![run, now],
            )
            .map_err(&err)?;
        }
        tx.commit().map_err(&err)
    }

    /// A task ended: complete its row if not written yet, else update it.
    fn task_ended(
        unwritten: &mut Unwritten,
        complete: &mut Vec<u64>,
        update: &mut rusqlite::CachedStatement<'_>,
        run: i64,
        task: u64,
        end: TaskEnd,
    ) -> rusqlite::Result<()> {
        match unwritten.get_mut(task) {
            Some(t) => {
                t.end = Some(end);
                complete.push(task);
            }
            None => {
                let (t_us, state, tries, reason) = end;
                update.execute(params![run, task as i64, t_us as i64, state, tries, reason])?;
            }
        }
        Ok(())
    }

    /// One status poll: new managers registered, known ones seen, missing ones gone.
    fn managers(
        tx: &rusqlite::Transaction<'_>,
        run: i64,
        seen: &mut HashMap<u64, bool>,
        t_us: u64,
        managers: &[crate::wire::ManagerStatus],
        queued: u64,
    ) -> rusqlite::Result<()> {
        use crate::wire::ManagerMode;
        let t = t_us as i64;
        let mut upsert = tx.prepare_cached(
            "INSERT INTO managers (run, manager, host, block, slots, registered_us, last_seen_us) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6) \
             ON CONFLICT (run, manager) DO UPDATE SET last_seen_us = ?6, slots = ?5, gone_us = NULL",
        )?;
        let mut drained = tx.prepare_cached(
            "UPDATE managers SET drained_us = ?3 WHERE run = ?1 AND manager = ?2 AND drained_us IS NULL",
        )?;
        let mut now: HashMap<u64, bool> = HashMap::with_capacity(managers.len());
        let (mut slots, mut busy) = (0u64, 0u64);
        for m in managers {
            upsert.execute(params![run, m.id.0 as i64, m.host, m.block.0, m.slots, t])?;
            let draining = m.mode == ManagerMode::Draining;
            if draining && !seen.get(&m.id.0).copied().unwrap_or(false) {
                drained.execute(params![run, m.id.0 as i64, t])?;
            }
            now.insert(m.id.0, draining);
            slots += u64::from(m.slots);
            busy += u64::from(m.in_flight.min(m.slots));
        }
        let mut gone = tx.prepare_cached("UPDATE managers SET gone_us = ?3 WHERE run = ?1 AND manager = ?2")?;
        for id in seen.keys().filter(|id| !now.contains_key(id)) {
            gone.execute(params![run, *id as i64, t])?;
        }
        *seen = now;
        tx.prepare_cached(
            "INSERT INTO samples (run, t_us, queued, managers, slots, busy) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![run, t, queued as i64, managers.len() as i64, slots as i64, busy as i64])?;
        Ok(())
    }

    /// Resource samples of tries and nodes, a row each.
    fn samples(tx: &rusqlite::Transaction<'_>, run: i64, samples: &crate::sample::Samples) -> rusqlite::Result<()> {
        let mut put_try = tx.prepare_cached(
            "INSERT INTO try_samples (run, task, attempt, t_us, cpu_us, rss_kib, processes) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for t in &samples.tries {
            let u = &t.usage;
            put_try.execute(params![
                run,
                t.id.task.0 as i64,
                t.id.attempt,
                t.t_us as i64,
                u.cpu_us as i64,
                u.rss_kib as i64,
                u.processes
            ])?;
        }
        let mut put_node = tx.prepare_cached(
            "INSERT INTO node_samples (run, host, t_us, load1, cpus, mem_total_kib, mem_available_kib) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for n in &samples.nodes {
            put_node.execute(params![
                run,
                n.host,
                n.t_us as i64,
                f64::from(n.load1),
                n.cpus,
                n.mem_total_kib as i64,
                n.mem_available_kib as i64
            ])?;
        }
        Ok(())
    }

    /// The block table, rebuilt from the block log (a few rows per block: cheap to redo).
    pub(super) fn blocks(tx: &rusqlite::Transaction<'_>, path: &Path) -> rusqlite::Result<()> {
        let Ok(events) = read_events(path) else { return Ok(()) };
        struct Row {
            job: String,
            submitted: Option<i64>,
            connected: Option<i64>,
            ended: Option<i64>,
            state: &'static str,
            detail: Option<String>,
        }
        let mut rows: std::collections::BTreeMap<String, Row> = Default::default();
        for e in events {
            let t = Some((e.t * 1e6) as i64);
            let row = rows.entry(e.block.0.clone()).or_insert(Row {
                job: String::new(),
                submitted: None,
                connected: None,
                ended: None,
                state: "submitted",
                detail: None,
            });
            if !e.job.0.is_empty() {
                row.job = e.job.0.clone();
            }
            match e.event {
                BlockEventKind::Submitted => row.submitted = row.submitted.or(t),
                BlockEventKind::Connected => row.connected = row.connected.or(t),
                BlockEventKind::Ended | BlockEventKind::SubmitFailed => row.ended = t,
                _ => {}
            }
            row.state = e.event.name();
            if e.detail.is_some() {
                row.detail = e.detail;
            }
        }
        let mut put = tx.prepare_cached(
            "INSERT OR REPLACE INTO blocks (block, job, submitted_us, connected_us, ended_us, state, detail) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        // A block another system submits (Parsl's) has no `connected` event: it connected when
        // its first manager registered, as the managers table says.
        let mut first_manager = tx.prepare_cached("SELECT min(registered_us) FROM managers WHERE block = ?1")?;
        for (block, mut r) in rows {
            if r.connected.is_none() {
                r.connected = first_manager.query_row([&block], |q| q.get::<_, Option<i64>>(0))?;
            }
            put.execute(params![block, r.job, r.submitted, r.connected, r.ended, r.state, r.detail])?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows wait by id; ended ones are taken out of the middle, aged ones from the front, and an
    /// id out of order still gets its row.
    #[test]
    fn unwritten_rows_by_id() {
        let row = |t| NewTask { name: None, app: "a".into(), submitted_us: t, end: None };
        let mut u = Unwritten::default();
        for id in 10..15 {
            u.insert(id, row(id));
        }
        assert!(u.take(12).is_some() && u.take(12).is_none());
        u.insert(8, row(8));
        assert!(u.get_mut(8).is_some() && u.get_mut(9).is_none());
        let mut due = Vec::new();
        u.take_aged(11, &mut due);
        assert_eq!(due.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [8, 10, 11]);
        due.clear();
        u.take_aged(u64::MAX, &mut due);
        assert_eq!(due.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [13, 14]);
        assert!(u.rows.is_empty());
    }
}
