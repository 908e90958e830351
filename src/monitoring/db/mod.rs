//! The run database: `RUN_DIR/monitoring.db`, SQLite in WAL mode, written by one thread.
//!
//! The DFK hands [`Record`]s over a bounded channel in batches (4,096, or every 50 ms: each
//! handoff wakes the writer); the writer gathers them for up to [`COMMIT_EVERY`] and writes them
//! in one transaction, so the hot path pays a vector push per transition and SQLite pays one
//! commit per half second. A task that is submitted and
//! ends within one commit is written as one row. Another process may read the file while the run
//! goes (`strand report`). If writing fails (a full disk), the writer keeps draining the channel
//! so that the run never waits on it, and [`RunDb::finish`] returns the error.

use super::record::Record;
use crossbeam_channel::{bounded, Sender};
use rusqlite::{params, Connection};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Duration;
use writer::Writer;

mod writer;

/// The schema this build writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 2;
/// The oldest schema this build reads, and upgrades when it writes a run into it: version 1 had
/// no resource samples (`try_samples`, `node_samples`), which version 2 only adds.
pub const OLDEST_SCHEMA: i64 = 1;

/// Longest records wait before they are written.
pub const COMMIT_EVERY: Duration = Duration::from_millis(500);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    run INTEGER PRIMARY KEY, started_us INTEGER NOT NULL, ended_us INTEGER,
    command TEXT NOT NULL, version TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    run INTEGER NOT NULL, task INTEGER NOT NULL, name TEXT, app TEXT NOT NULL,
    submitted_us INTEGER NOT NULL, ended_us INTEGER, state TEXT NOT NULL,
    tries INTEGER NOT NULL, reason TEXT,
    PRIMARY KEY (run, task)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tries (
    run INTEGER NOT NULL, task INTEGER NOT NULL, attempt INTEGER NOT NULL,
    launched_us INTEGER, ended_us INTEGER NOT NULL, started_us INTEGER, run_us INTEGER,
    manager INTEGER, rank INTEGER, slot INTEGER,
    outcome TEXT NOT NULL, exit_code INTEGER, signal INTEGER, reason TEXT,
    cpu_us INTEGER, max_rss_kib INTEGER,
    PRIMARY KEY (run, task, attempt)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS managers (
    run INTEGER NOT NULL, manager INTEGER NOT NULL, host TEXT NOT NULL, block TEXT NOT NULL,
    slots INTEGER NOT NULL, registered_us INTEGER NOT NULL, last_seen_us INTEGER NOT NULL,
    drained_us INTEGER, lost_us INTEGER, gone_us INTEGER,
    PRIMARY KEY (run, manager)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blocks (
    block TEXT PRIMARY KEY, job TEXT NOT NULL, submitted_us INTEGER, connected_us INTEGER,
    ended_us INTEGER, state TEXT NOT NULL, detail TEXT);
CREATE TABLE IF NOT EXISTS samples (
    run INTEGER NOT NULL, t_us INTEGER NOT NULL, queued INTEGER NOT NULL,
    managers INTEGER NOT NULL, slots INTEGER NOT NULL, busy INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS try_samples (
    run INTEGER NOT NULL, task INTEGER NOT NULL, attempt INTEGER NOT NULL, t_us INTEGER NOT NULL,
    cpu_us INTEGER NOT NULL, rss_kib INTEGER NOT NULL, processes INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS node_samples (
    run INTEGER NOT NULL, host TEXT NOT NULL, t_us INTEGER NOT NULL, load1 REAL NOT NULL,
    cpus INTEGER NOT NULL, mem_total_kib INTEGER NOT NULL, mem_available_kib INTEGER NOT NULL);
";

/// Why the run database could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite refused (cannot create the file, disk full, not a database ...).
    #[error("run database {path}: {source}")]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The file was written by another version of Strand.
    #[error(
        "run database {path} has schema version {found}, this strand reads versions {OLDEST_SCHEMA} to {SCHEMA_VERSION}; \
         use the strand that wrote it, or move the file away to start a new one"
    )]
    Schema {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: i64,
    },
    /// The file holds no run database yet (a run is creating it, or it is not one).
    #[error("{path} holds no run database yet (a run is starting, or the file is not one)")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The writer thread could not be started.
    #[error("run database {path}: cannot start its writer thread: {source}")]
    Thread {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The writer thread died (a bug): records after that point were not written.
    #[error("run database writer stopped unexpectedly")]
    WriterDied,
}

/// Open (or create) a database file to write a run into: a new file gets this build's schema,
/// created in one transaction with its version, so a reader never sees half of it.
pub fn open(path: &Path) -> Result<Connection, DbError> {
    let err = |source| DbError::Sqlite { path: path.to_path_buf(), source };
    let mut conn = Connection::open(path).map_err(err)?;
    conn.busy_timeout(Duration::from_secs(10)).map_err(err)?;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(err)?;
    let found: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(err)?;
    let tables: i64 =
        tx.query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table'", [], |r| r.get(0)).map_err(err)?;
    let fresh = found == 0 && tables == 0;
    if fresh || (OLDEST_SCHEMA..SCHEMA_VERSION).contains(&found) {
        // Every statement is CREATE ... IF NOT EXISTS: an older file gets only the new tables.
        tx.execute_batch(SCHEMA).map_err(err)?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(err)?;
    } else if found != SCHEMA_VERSION {
        return Err(DbError::Schema { path: path.to_path_buf(), found });
    }
    tx.commit().map_err(err)?;
    Ok(conn)
}

/// Open an existing database file to read, never changing it.
pub fn open_to_read(path: &Path) -> Result<Connection, DbError> {
    let err = |source| DbError::Sqlite { path: path.to_path_buf(), source };
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(err)?;
    conn.busy_timeout(Duration::from_secs(10)).map_err(err)?;
    match conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0)).map_err(err)? {
        found if (OLDEST_SCHEMA..=SCHEMA_VERSION).contains(&found) => Ok(conn),
        0 => Err(DbError::Empty { path: path.to_path_buf() }),
        found => Err(DbError::Schema { path: path.to_path_buf(), found }),
    }
}

/// What the handle sends its writer.
enum Msg {
    /// Records to write.
    Records(Vec<Record>),
    /// Write what is left and stop.
    Finish,
}

/// What the writer wrote, when it finished.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Records received.
    pub records: u64,
    /// Transactions committed.
    pub commits: u64,
}

/// The run database of one DFK: a writer thread and the channel to it.
pub struct RunDb {
    tx: Sender<Msg>,
    thread: Option<JoinHandle<Result<WriterStats, DbError>>>,
}

impl RunDb {
    /// Open (or create) the database at `path` and start a new run in it; `blocks` is the
    /// block log to mirror into the `blocks` table; `command` says what started the run.
    pub fn start(path: &Path, blocks: Option<PathBuf>, command: &str) -> Result<RunDb, DbError> {
        let conn = open(path)?;
        let err = |source| DbError::Sqlite { path: path.to_path_buf(), source };
        conn.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
        // No fsync: a process that dies leaves the database whole (SQLite's WAL guarantees it);
        // only a crash of the node's OS could lose the last commits, and this is a record of the
        // run, not its results (those are in the checkpoint file).
        conn.pragma_update(None, "synchronous", "OFF").map_err(err)?;
        // 8 MiB of page cache: the writer appends and updates recent rows, so more only holds
        // memory (a monitored 1,000,000-task stream peaked 14 MiB lower than with 32 MiB).
        conn.pragma_update(None, "cache_size", -8192).map_err(err)?;
        conn.execute(
            "INSERT INTO runs (started_us, command, version) VALUES (?1, ?2, ?3)",
            params![super::record::now_us() as i64, command, env!("CARGO_PKG_VERSION")],
        )
        .map_err(err)?;
        let run = conn.last_insert_rowid();
        // Deep enough for seconds of rounds; a full channel makes the DFK wait (nothing is dropped).
        let (tx, rx) = bounded(1024);
        let writer = Writer::new(conn, path.to_path_buf(), run, blocks);
        let thread = std::thread::Builder::new()
            .name("strand-run-db".into())
            .spawn(move || writer.run(rx))
            .map_err(|source| DbError::Thread { path: path.to_path_buf(), source })?;
        Ok(RunDb { tx, thread: Some(thread) })
    }

    /// Hand records to the writer (waits only if it is seconds behind).
    pub fn send(&self, records: Vec<Record>) {
        if !records.is_empty() {
            let _ = self.tx.send(Msg::Records(records));
        }
    }

    /// Write what is left, mark the run ended, and stop the writer.
    pub fn finish(mut self) -> Result<WriterStats, DbError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<WriterStats, DbError> {
        let _ = self.tx.send(Msg::Finish);
        match self.thread.take() {
            Some(t) => t.join().unwrap_or(Err(DbError::WriterDied)),
            None => Ok(WriterStats::default()),
        }
    }
}

impl Drop for RunDb {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Bring the `blocks` table of the database at `db` up to date from the block log at `blocks`
/// (after the executor stopped, when the blocks' last events are written).
pub fn mirror_blocks(db: &Path, blocks: &Path) -> Result<(), DbError> {
    let err = |source| DbError::Sqlite { path: db.to_path_buf(), source };
    let mut conn = open(db)?;
    let tx = conn.transaction().map_err(err)?;
    Writer::blocks(&tx, blocks).map_err(err)?;
    tx.commit().map_err(err)
}

/// The name a task state is stored under.
pub fn state_name(s: super::events::State) -> &'static str {
    use super::events::State;
    match s {
        State::Submitted | State::Launched | State::Retrying => "pending",
        State::Done => "done",
        State::MemoHit => "memo_hit",
        State::Failed => "failed",
        State::DepFailed => "dep_failed",
        State::Cancelled => "cancelled",
    }
}

/// The latest run in a database, if any.
pub fn latest_run(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    // max() of no rows is one NULL row.
    conn.query_row("SELECT max(run) FROM runs", [], |r| r.get(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitoring::events::State;
    use crate::monitoring::record::TryEnd;
    use crate::task::{Failure, Outcome, Ran};
    use std::time::Instant;

    fn task(task: u64, t_us: u64) -> Record {
        Record::Task { task, name: Some(format!("t{task}")), app: "noop".into(), t_us }
    }

    fn ended(task: u64, attempt: u32, outcome: &Outcome, t_us: u64) -> Record {
        let ran = Ran {
            started_us: t_us - 50,
            run_us: 40,
            manager: crate::task::ManagerId(7),
            rank: 1,
            slot: 1,
            ..Ran::default()
        };
        Record::TryEnded { task, attempt, launched_us: t_us - 100, t_us, end: TryEnd::of(outcome), ran }
    }

    fn q(c: &Connection, sql: &str) -> i64 {
        c.query_row(sql, [], |r| r.get(0)).expect(sql)
    }

    /// One row per task whether it ends in the commit it was submitted in, later, or never;
    /// a done try ends its task; a failure's kind and exit code are kept.
    #[test]
    fn rows_follow_the_records() {
        let d = tempfile::tempdir().expect("tempdir");
        let path = d.path().join("m.db");
        let db = RunDb::start(&path, None, "test").expect("start");
        let ok = Outcome::Done(b"x".to_vec());
        let bad = Outcome::Failed(Failure::ExitCode { code: 3, stderr: String::new(), stdout: vec![] });
        db.send(vec![task(0, 1_000), task(1, 1_000), task(2, 1_000), ended(0, 0, &ok, 2_000)]);
        std::thread::sleep(COMMIT_EVERY + Duration::from_millis(200));
        // Task 1 ends after its first commit; task 2 never ends.
        db.send(vec![
            ended(1, 0, &bad, 3_000),
            ended(1, 1, &bad, 4_000),
            Record::TaskEnded {
                task: 1,
                state: State::Failed,
                tries: 2,
                t_us: 4_000,
                reason: Some("exit code 3".into()),
            },
        ]);
        let stats = db.finish().expect("finish");
        assert_eq!(stats.records, 7);
        let c = open(&path).expect("reopen");
        assert_eq!(q(&c, "SELECT count(*) FROM tasks"), 3);
        assert_eq!(
            q(&c, "SELECT count(*) FROM tasks WHERE task = 0 AND state = 'done' AND tries = 1 AND ended_us = 2000"),
            1
        );
        assert_eq!(q(&c, "SELECT count(*) FROM tasks WHERE task = 1 AND state = 'failed' AND tries = 2"), 1);
        assert_eq!(q(&c, "SELECT count(*) FROM tasks WHERE task = 2 AND state = 'pending' AND ended_us IS NULL"), 1);
        assert_eq!(q(&c, "SELECT count(*) FROM tries WHERE outcome = 'ExitCode' AND exit_code = 3"), 2);
        assert_eq!(q(&c, "SELECT count(*) FROM tries WHERE manager = 7 AND launched_us < started_us"), 3);
        assert_eq!(q(&c, "SELECT count(*) FROM runs WHERE ended_us IS NOT NULL"), 1);
    }

    /// A block's `connected` event sets its connected time; a block with none (one that Parsl's
    /// strategy submitted) is connected from its first manager's registration, or not at all.
    #[test]
    fn blocks_connect_by_their_event_or_their_first_manager() {
        let d = tempfile::tempdir().expect("tempdir");
        let (path, log) = (d.path().join("m.db"), d.path().join("blocks.jsonl"));
        RunDb::start(&path, None, "test").expect("start").finish().expect("finish");
        let lines = [
            r#"{"t":1.0,"block":"own-1","job":"7","event":"submitted"}"#,
            r#"{"t":2.0,"block":"own-1","job":"7","event":"connected"}"#,
            r#"{"t":1.5,"block":"parsl-0","job":"8","event":"submitted"}"#,
            r#"{"t":9.0,"block":"parsl-0","job":"8","event":"ended","detail":"SCALED_IN"}"#,
            r#"{"t":3.0,"block":"never-2","job":"9","event":"submitted"}"#,
        ];
        std::fs::write(&log, lines.join("\n")).expect("block log");
        let c = open(&path).expect("open");
        for (manager, registered) in [(1, 2_500_000), (2, 2_000_000)] {
            c.execute(
                "INSERT INTO managers (run, manager, host, block, slots, registered_us, last_seen_us) \
                 VALUES (1, ?1, 'h', 'parsl-0', 2, ?2, ?2)",
                params![manager, registered],
            )
            .expect("manager row");
        }
        mirror_blocks(&path, &log).expect("mirror");
        let connected = |block: &str| -> Option<i64> {
            c.query_row("SELECT connected_us FROM blocks WHERE block = ?1", [block], |r| r.get(0)).expect(block)
        };
        assert_eq!(connected("own-1"), Some(2_000_000));
        assert_eq!(connected("parsl-0"), Some(2_000_000), "its first manager's registration");
        assert_eq!(connected("never-2"), None);
    }

    /// A file of schema 1 (no sample tables) is read as it is, gets the tables when a run is
    /// written into it, and then holds samples; a newer schema is refused by name.
    #[test]
    fn an_older_schema_is_read_and_upgraded_and_a_newer_one_refused() {
        use crate::monitoring::report::Report;
        use crate::sample::{NodeSample, Samples, TreeUsage, TrySample};
        let d = tempfile::tempdir().expect("tempdir");
        let path = d.path().join("m.db");
        RunDb::start(&path, None, "v1").expect("start").finish().expect("finish");
        let c = Connection::open(&path).expect("open");
        c.execute_batch("DROP TABLE try_samples; DROP TABLE node_samples; PRAGMA user_version = 1;").expect("v1");
        drop(c);
        let old = Report::load(&path, None).expect("a version 1 file is read");
        assert_eq!(old.sampled, None);
        let db = RunDb::start(&path, None, "v2").expect("written into");
        let id = crate::task::TryId { client: crate::task::ClientId(1), task: crate::task::TaskId(0), attempt: 0 };
        let usage = TreeUsage { cpu_us: 5, rss_kib: 6, processes: 1 };
        let node =
            NodeSample { host: "n".into(), t_us: 9, load1: 0.5, cpus: 2, mem_total_kib: 8, mem_available_kib: 4 };
        db.send(vec![
            task(0, 1_000),
            Record::Samples(Samples { tries: vec![TrySample { id, t_us: 1_500, usage }], nodes: vec![node] }),
        ]);
        db.finish().expect("finish");
        let c = open_to_read(&path).expect("read");
        assert_eq!(q(&c, "PRAGMA user_version"), SCHEMA_VERSION);
        assert_eq!(q(&c, "SELECT count(*) FROM try_samples WHERE task = 0 AND rss_kib = 6 AND cpu_us = 5"), 1);
        assert_eq!(q(&c, "SELECT count(*) FROM node_samples WHERE host = 'n' AND load1 = 0.5"), 1);
        drop(c);
        let c = Connection::open(&path).expect("open");
        c.execute_batch("PRAGMA user_version = 3;").expect("v3");
        drop(c);
        let e = open(&path).expect_err("a newer schema");
        assert!(e.to_string().contains("schema version 3") && e.to_string().contains("m.db"), "{e}");
    }

    /// How fast the writer takes records (not a timing assertion: `strand bench monitoring`
    /// measures the cost side by side). `cargo test --release writer_rate -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn writer_rate() {
        let d = tempfile::tempdir().expect("tempdir");
        let path = d.path().join("m.db");
        let n = 200_000u64;
        let ok = Outcome::Done(Vec::new());
        let records: Vec<Vec<Record>> = (0..n)
            .collect::<Vec<_>>()
            .chunks(4096)
            .map(|c| c.iter().flat_map(|&i| [task(i, 10_000 + i), ended(i, 0, &ok, 20_000 + i)]).collect())
            .collect();
        let t = Instant::now();
        let db = RunDb::start(&path, None, "test").expect("start");
        for r in records {
            db.send(r);
        }
        db.finish().expect("finish");
        let s = t.elapsed().as_secs_f64();
        eprintln!("{n} tasks in {s:.3} s: {:.0} tasks/s", n as f64 / s);
    }
}
