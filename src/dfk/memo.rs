//! Memoization and checkpoints: results keyed by what produced them, in an append-only file.
//!
//! A task's key is a BLAKE3 hash of its app as it will run (command text or argv,
//! environment, working directory; or function name, version and arguments, with
//! inputs already substituted) and of the keys of the tasks it runs after. Editing a
//! command changes its key and so the keys of everything downstream; Parsl keyed
//! only on the app's name, so an edited app still hit its cache.
//!
//! The checkpoint file (`checkpoint.jsonl` in the run directory) holds one JSON line
//! per completed task, appended and flushed when the task ends. A crash mid-write
//! leaves at worst a torn last line, which loading ignores and reports.

use crate::task::{App, TaskSpec};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;

/// What identifies a task's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MemoKey(pub [u8; 32]);

impl MemoKey {
    /// Key of task `name` running `spec` (inputs substituted) after tasks with keys `after`, at app `version`.
    pub fn of(spec: &TaskSpec, name: Option<&str>, version: Option<&str>, after: &[MemoKey]) -> MemoKey {
        let mut h = blake3::Hasher::new();
        h.update(b"strand-memo-v1\0");
        // The name is part of the app's identity: two tasks that happen to run the same
        // command are still two tasks.
        h.update(name.unwrap_or("").as_bytes());
        h.update(b"\0");
        // Walltime and priority change how a task runs, not what it computes.
        match &spec.app {
            App::Command(c) => {
                h.update(b"command\0");
                h.update(
                    format!("{:?}\0{:?}\0{:?}\0{:?}\0{:?}", c.program, c.env, c.cwd, c.stdout, c.stderr).as_bytes(),
                );
            }
            App::Function(f) => {
                h.update(b"function\0");
                h.update(f.name.as_bytes());
                h.update(b"\0");
                h.update(&(f.args.len() as u64).to_le_bytes());
                h.update(&f.args);
            }
            App::Python(p) => {
                h.update(b"python\0");
                h.update(p.interpreter.as_bytes());
                h.update(b"\0");
                h.update(&(p.function.pickled.len() as u64).to_le_bytes());
                h.update(&p.function.pickled);
                h.update(&p.args);
            }
        }
        h.update(format!("\0outputs\0{:?}", spec.outputs).as_bytes());
        h.update(b"\0version\0");
        h.update(version.unwrap_or("").as_bytes());
        for k in after {
            h.update(&k.0);
        }
        MemoKey(*h.finalize().as_bytes())
    }

    fn to_hex(self) -> String {
        crate::text::hex(&self.0)
    }

    fn from_hex(s: &str) -> Option<MemoKey> {
        crate::wire::Key::from_hex(s).map(|k| MemoKey(k.0))
    }
}

/// One line of the checkpoint file.
#[derive(Serialize, Deserialize)]
struct Record {
    key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    /// The result as text when it is UTF-8 ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    out: Option<String>,
    /// ... else as hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    out_hex: Option<String>,
}

/// When completed results reach the checkpoint file (Parsl's four modes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CheckpointMode {
    /// As each task ends (the default: a crash loses nothing that finished).
    #[default]
    TaskExit,
    /// At most this often, in one write (cheaper with very many short tasks).
    Periodic(std::time::Duration),
    /// When the DFK shuts down.
    AtExit,
    /// Only when the program calls `Dfk::checkpoint`.
    Manual,
}

impl std::str::FromStr for CheckpointMode {
    type Err = String;
    /// `task-exit`, `at-exit`, `manual` or `periodic:SECONDS`.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("unknown checkpoint mode {s:?}; expected task-exit, at-exit, manual or periodic:SECONDS");
        match s {
            "task-exit" => Ok(CheckpointMode::TaskExit),
            "at-exit" => Ok(CheckpointMode::AtExit),
            "manual" => Ok(CheckpointMode::Manual),
            _ => {
                let secs: f64 = s.strip_prefix("periodic:").ok_or_else(bad)?.parse().map_err(|_| bad())?;
                if !(secs.is_finite() && secs > 0.0) {
                    return Err(bad());
                }
                Ok(CheckpointMode::Periodic(std::time::Duration::from_secs_f64(secs)))
            }
        }
    }
}

/// Why a checkpoint could not be opened or written.
#[derive(Debug, Error)]
#[error("{path}: {source}")]
pub struct CheckpointError {
    /// The checkpoint file.
    pub path: PathBuf,
    /// The OS error.
    pub source: std::io::Error,
}

/// Checkpoint records taken from the memo under the DFK's lock and written outside it, so
/// a slow file system never stalls submitters or the I/O loop's bookkeeping.
#[derive(Debug)]
pub struct CheckpointWrite {
    file: Arc<File>,
    path: PathBuf,
    /// Where in the file the records go: given when they were taken, so writes made out of
    /// order by different threads still land where the memo's index says.
    offset: u64,
    bytes: Vec<u8>,
}

impl CheckpointWrite {
    /// Write the records in one positioned write (a crash leaves at worst a torn last line).
    pub fn write(self) -> Result<(), CheckpointError> {
        use std::os::unix::fs::FileExt;
        self.file.write_all_at(&self.bytes, self.offset).map_err(|source| CheckpointError { path: self.path, source })
    }
}

/// Where a memoized result is kept: results of a run with a checkpoint file live only in the
/// file (the memo keeps where), so a long stream's memory does not grow with its outputs.
#[derive(Debug)]
enum Stored {
    /// No file: the bytes themselves.
    Here(Vec<u8>),
    /// The record's line in the checkpoint file (or still in `pending`, past `file_len`).
    InFile {
        /// Byte offset of the line.
        offset: u64,
        /// Its length, without the newline.
        len: u32,
    },
}

/// Results of earlier runs, and the file new results are appended to.
#[derive(Debug)]
pub struct Memo {
    done: HashMap<MemoKey, Stored>,
    file: Option<Arc<File>>,
    path: Option<PathBuf>,
    /// Bytes of the file, counting every record already handed to a [`CheckpointWrite`].
    file_len: u64,
    mode: CheckpointMode,
    /// Records not yet written (all but `TaskExit` buffer).
    pending: Vec<u8>,
    last_flush: std::time::Instant,
    /// Records loaded from the file.
    pub loaded: usize,
    /// Lines that did not parse (a torn last record after a crash, normally).
    pub torn: usize,
    /// Index this run's results too (a task repeated within the run is a hit); off, they
    /// only go to the file, so memory stays flat over a stream of any length.
    index_new: bool,
}

impl Memo {
    /// No earlier results and no file: memoization within this run only.
    pub fn in_memory() -> Memo {
        Memo {
            done: HashMap::new(),
            file: None,
            path: None,
            file_len: 0,
            mode: CheckpointMode::TaskExit,
            pending: Vec::new(),
            last_flush: std::time::Instant::now(),
            loaded: 0,
            torn: 0,
            index_new: true,
        }
    }

    /// Whether results of this run are indexed as well as written (see [`DfkConfig::memo_indexes_new`](super::DfkConfig)).
    pub fn set_index_new(&mut self, on: bool) {
        self.index_new = on;
    }

    /// Load the index of `path` if it exists and append new results to it.
    pub fn open(path: &Path) -> Result<Memo, CheckpointError> {
        use std::os::unix::fs::FileExt;
        let err = |source| CheckpointError { path: path.to_path_buf(), source };
        let mut m = Memo::in_memory();
        let mut offset = 0u64;
        let mut ends_clean = true;
        match File::open(path) {
            Ok(f) => {
                for line in BufReader::new(f).split(b'\n') {
                    let line = line.map_err(err)?;
                    let at = offset;
                    offset += line.len() as u64 + 1;
                    if line.is_empty() {
                        continue;
                    }
                    match (parse_record(&line), u32::try_from(line.len())) {
                        (Some((k, _)), Ok(len)) => {
                            m.done.insert(k, Stored::InFile { offset: at, len });
                            m.loaded += 1;
                        }
                        _ => m.torn += 1,
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(e)),
        }
        // Positioned writes, not O_APPEND (which Linux applies to pwrite too).
        let file = OpenOptions::new().create(true).truncate(false).write(true).read(true).open(path).map_err(err)?;
        m.file_len = file.metadata().map_err(err)?.len();
        if m.file_len > 0 {
            let mut last = [0u8; 1];
            file.read_exact_at(&mut last, m.file_len - 1).map_err(err)?;
            ends_clean = last[0] == b'\n';
        }
        // A torn last line has no newline: end it so the next record starts clean.
        if !ends_clean {
            file.write_all_at(b"\n", m.file_len).map_err(err)?;
            m.file_len += 1;
        }
        m.file = Some(Arc::new(file));
        m.path = Some(path.to_path_buf());
        Ok(m)
    }

    /// Whether a result with this key is known.
    pub fn contains(&self, key: &MemoKey) -> bool {
        self.done.contains_key(key)
    }

    /// The result with this key, from memory or read back from the checkpoint file; a record
    /// that cannot be read back is a miss (the task runs again), never an error.
    pub fn lookup(&self, key: &MemoKey) -> Option<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let (offset, len) = match self.done.get(key)? {
            Stored::Here(b) => return Some(b.clone()),
            Stored::InFile { offset, len } => (*offset, *len as usize),
        };
        let line = if offset >= self.file_len {
            let at = usize::try_from(offset - self.file_len).ok()?;
            self.pending.get(at..at.checked_add(len)?)?.to_vec()
        } else {
            let mut buf = vec![0u8; len];
            self.file.as_ref()?.read_exact_at(&mut buf, offset).ok()?;
            buf
        };
        parse_record(&line).filter(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Set when records reach the file.
    pub fn set_mode(&mut self, mode: CheckpointMode) {
        self.mode = mode;
    }

    /// The records due now, to write outside the DFK's lock: all of them with `now`, else as
    /// the mode says (task-exit: every record so far, so one write per round of the I/O
    /// loop; periodic: once the period has passed; at-exit and manual: none).
    pub fn take_due(&mut self, now: bool) -> Option<CheckpointWrite> {
        let due = now
            || match self.mode {
                CheckpointMode::TaskExit => true,
                CheckpointMode::Periodic(d) => self.last_flush.elapsed() >= d,
                CheckpointMode::AtExit | CheckpointMode::Manual => false,
            };
        if !due {
            return None;
        }
        self.last_flush = std::time::Instant::now();
        if self.pending.is_empty() {
            return None;
        }
        let file = Arc::clone(self.file.as_ref()?);
        let bytes = std::mem::take(&mut self.pending);
        let offset = self.file_len;
        self.file_len += bytes.len() as u64;
        Some(CheckpointWrite { file, path: self.path.clone().unwrap_or_default(), offset, bytes })
    }

    /// Write every buffered record now, on this thread.
    pub fn flush(&mut self) -> Result<(), CheckpointError> {
        self.take_due(true).map_or(Ok(()), CheckpointWrite::write)
    }

    /// Remember a result and queue it for the checkpoint file ([`Memo::take_due`] says when it is written).
    pub fn record(&mut self, key: MemoKey, name: Option<&str>, out: &[u8]) {
        if self.file.is_some() {
            let rec = match std::str::from_utf8(out) {
                Ok(s) => Record { key: key.to_hex(), name: name.map(String::from), out: Some(s.into()), out_hex: None },
                Err(_) => Record {
                    key: key.to_hex(),
                    name: name.map(String::from),
                    out: None,
                    out_hex: Some(crate::text::hex(out)),
                },
            };
            let line = serde_json::to_vec(&rec).unwrap_or_default();
            if let Ok(len) = u32::try_from(line.len()) {
                let offset = self.file_len + self.pending.len() as u64;
                self.pending.extend_from_slice(&line);
                self.pending.push(b'\n');
                if self.index_new {
                    self.done.insert(key, Stored::InFile { offset, len });
                }
                return;
            }
        }
        self.done.insert(key, Stored::Here(out.to_vec()));
    }
}

fn parse_record(line: &[u8]) -> Option<(MemoKey, Vec<u8>)> {
    let r: Record = serde_json::from_slice(line).ok()?;
    let key = MemoKey::from_hex(&r.key)?;
    let out = match (r.out, r.out_hex) {
        (Some(s), _) => s.into_bytes(),
        (None, Some(h)) => {
            if h.len() % 2 != 0 {
                return None;
            }
            (0..h.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(h.get(i..i + 2)?, 16).ok())
                .collect::<Option<Vec<u8>>>()?
        }
        (None, None) => Vec::new(),
    };
    Some((key, out))
}

impl Drop for Memo {
    /// `AtExit` (and anything still buffered) is written when the memo goes away.
    fn drop(&mut self) {
        if self.mode != CheckpointMode::Manual {
            let _ = self.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run_dir::CHECKPOINT_FILE;
    use crate::task::{CommandSpec, FunctionCall, Program};
    use std::io::Write;

    #[test]
    fn checkpoint_modes() {
        let d = tempfile::tempdir().expect("tempdir");
        let lines = |p: &Path| std::fs::read_to_string(p).map(|s| s.lines().count()).unwrap_or(0);
        for (name, mode, after_record, after_drop) in [
            ("task-exit", CheckpointMode::TaskExit, 1, 1),
            ("at-exit", CheckpointMode::AtExit, 0, 1),
            ("manual", CheckpointMode::Manual, 0, 0),
            ("periodic", CheckpointMode::Periodic(std::time::Duration::from_secs(3600)), 0, 1),
        ] {
            let p = d.path().join(format!("{name}.jsonl"));
            let mut m = Memo::open(&p).expect("open");
            m.set_mode(mode);
            m.record(MemoKey([1; 32]), None, b"x");
            if let Some(w) = m.take_due(false) {
                w.write().expect("write");
            }
            assert_eq!(lines(&p), after_record, "{name} after a record and a round of the I/O loop");
            drop(m);
            assert_eq!(lines(&p), after_drop, "{name} after shutdown");
        }
        let p = d.path().join("manual2.jsonl");
        let mut m = Memo::open(&p).expect("open");
        m.set_mode(CheckpointMode::Manual);
        m.record(MemoKey([1; 32]), None, b"x");
        assert!(m.take_due(false).is_none(), "manual writes only on demand");
        m.flush().expect("flush");
        assert_eq!(lines(&p), 1, "manual checkpoint on demand");
        assert_eq!("periodic:2.5".parse(), Ok(CheckpointMode::Periodic(std::time::Duration::from_millis(2500))));
        assert!("sometimes".parse::<CheckpointMode>().unwrap_err().contains("task-exit"));
    }

    #[test]
    fn results_live_in_the_file_and_read_back_from_it_or_from_pending() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join(CHECKPOINT_FILE);
        let mut m = Memo::open(&p).expect("open");
        let keys: Vec<MemoKey> = (0..4u8).map(|i| MemoKey([i; 32])).collect();
        m.record(keys[0], Some("a"), b"first");
        m.record(keys[1], None, &[0xfe, 0xff]);
        assert_eq!(m.lookup(&keys[0]), Some(b"first".to_vec()), "read from the pending buffer");
        let w1 = m.take_due(false).expect("due");
        m.record(keys[2], None, b"third");
        let w2 = m.take_due(false).expect("due");
        // The second write lands first, as two threads may do: each goes to its own offset.
        w2.write().expect("write");
        w1.write().expect("write");
        m.record(keys[3], None, b"");
        for (k, want) in keys.iter().zip([&b"first"[..], &[0xfe, 0xff], b"third", b""]) {
            assert_eq!(m.lookup(k), Some(want.to_vec()));
        }
        assert_eq!(m.lookup(&MemoKey([9; 32])), None);
        drop(m);
        let m = Memo::open(&p).expect("reopen");
        assert_eq!((m.loaded, m.torn), (4, 0));
        assert_eq!(m.lookup(&keys[2]), Some(b"third".to_vec()), "an index of the file, read back on a hit");
    }

    fn cmd(s: &str) -> TaskSpec {
        TaskSpec {
            app: App::Command(CommandSpec {
                program: Program::Shell(s.into()),
                env: vec![],
                cwd: None,
                stdout: None,
                stderr: None,
            }),
            walltime_ms: None,
            priority: 0,
            outputs: vec![],
            resources: Default::default(),
        }
    }

    #[test]
    fn keys_follow_content_version_and_dependencies() {
        let a = MemoKey::of(&cmd("echo a"), None, None, &[]);
        assert_eq!(a, MemoKey::of(&TaskSpec { walltime_ms: Some(5), priority: 3, ..cmd("echo a") }, None, None, &[]));
        assert_ne!(a, MemoKey::of(&cmd("echo b"), None, None, &[]));
        assert_ne!(a, MemoKey::of(&cmd("echo a"), Some("x"), None, &[]), "the name is part of the key");
        assert_ne!(a, MemoKey::of(&cmd("echo a"), None, Some("2"), &[]));
        assert_ne!(a, MemoKey::of(&cmd("echo a"), None, None, &[a]));
        let f = |args: &[u8]| TaskSpec {
            app: App::Function(FunctionCall { name: "f".into(), args: args.to_vec() }),
            walltime_ms: None,
            priority: 0,
            outputs: vec![],
            resources: Default::default(),
        };
        assert_ne!(MemoKey::of(&f(b"1"), None, None, &[]), MemoKey::of(&f(b"2"), None, None, &[]));
    }

    #[test]
    fn checkpoint_round_trip_and_torn_last_record() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join(CHECKPOINT_FILE);
        let (k1, k2) = (MemoKey([1; 32]), MemoKey([2; 32]));
        {
            let mut m = Memo::open(&p).expect("open");
            m.record(k1, Some("a"), b"text\n");
            m.record(k2, None, &[0xff, 0x00]);
        }
        // Simulate a crash in the middle of a third record.
        let mut f = OpenOptions::new().append(true).open(&p).expect("append");
        f.write_all(br#"{"key":"0303"#).expect("torn write");
        drop(f);
        let mut m = Memo::open(&p).expect("reopen");
        assert_eq!((m.loaded, m.torn), (2, 1));
        assert_eq!(m.lookup(&k1), Some(b"text\n".to_vec()));
        assert_eq!(m.lookup(&k2), Some(vec![0xff, 0x00]));
        m.record(MemoKey([3; 32]), None, b"x");
        m.take_due(false).expect("task-exit: due at once").write().expect("write");
        let m = Memo::open(&p).expect("reopen again");
        assert_eq!((m.loaded, m.torn), (3, 1), "the record after the torn one is intact");
    }

    #[test]
    fn without_the_new_index_results_only_go_to_the_file() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join(CHECKPOINT_FILE);
        let mut m = Memo::open(&p).expect("open");
        m.set_index_new(false);
        for i in 0..100u8 {
            m.record(MemoKey([i; 32]), None, b"out");
        }
        assert!(m.done.is_empty() && !m.contains(&MemoKey([1; 32])), "nothing held in memory");
        m.flush().expect("flush");
        let m = Memo::open(&p).expect("reopen");
        assert_eq!(m.loaded, 100);
        assert_eq!(m.lookup(&MemoKey([7; 32])), Some(b"out".to_vec()), "a later run finds them");
    }
}
