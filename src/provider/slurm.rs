//! Slurm: `sbatch --parsable` to submit, `sacct` (or `squeue` when accounting is off) for states, `scancel`.
//!
//! The parsers follow the formats in the Slurm man pages (sbatch `--parsable`, sacct `-X -n -P
//! --format=JobID,State`, squeue `-h -t all -o "%i %T"`); `tests/fixtures/provider/` holds
//! fixtures written from that documentation and `*_real.txt` outputs captured from Slurm 22.05.
//!
//! State mapping (`JOB STATE CODES` in sacct(1) and squeue(1)): PENDING, REQUEUED, REQUEUE_FED,
//! CONFIGURING -> Pending; RUNNING, COMPLETING, RESIZING, SIGNALING, STAGE_OUT -> Running;
//! COMPLETED -> Completed; FAILED, NODE_FAIL, OUT_OF_MEMORY, BOOT_FAIL, SPECIAL_EXIT -> Failed;
//! CANCELLED (also `CANCELLED by <uid>`, `CANCELLED+`), PREEMPTED, REVOKED -> Cancelled;
//! TIMEOUT, DEADLINE -> Timeout; SUSPENDED, STOPPED, REQUEUE_HOLD, RESV_DEL_HOLD -> Held;
//! anything else -> Unknown. A trailing `+` (sacct's truncation mark) is ignored.
//!
//! Right after `sbatch`, a job may not be in the accounting database yet: `sacct` then omits it
//! and it reads as [`JobState::Missing`]; callers should give fresh blocks a grace period.

use super::{
    display_command, fill_missing, last_line, run_command_full, write_script, BlockRequest, JobId, JobState, Provider,
    ProviderError,
};
use std::collections::HashMap;
use std::time::Duration;

/// Submits blocks to Slurm; the command names can point at fakes for tests.
#[derive(Clone, Debug)]
pub struct SlurmProvider {
    /// The `sbatch` command.
    pub sbatch: String,
    /// The `squeue` command (fallback for states when accounting is disabled).
    pub squeue: String,
    /// The `sacct` command.
    pub sacct: String,
    /// The `scancel` command.
    pub scancel: String,
    /// Longest wait for any one command.
    pub timeout: Duration,
}

impl Default for SlurmProvider {
    fn default() -> Self {
        SlurmProvider::new()
    }
}

impl SlurmProvider {
    /// The real commands from `PATH`, with a 60 s timeout per command.
    pub fn new() -> SlurmProvider {
        SlurmProvider {
            sbatch: "sbatch".into(),
            squeue: "squeue".into(),
            sacct: "sacct".into(),
            scancel: "scancel".into(),
            timeout: Duration::from_secs(60),
        }
    }

    /// States from `squeue -h -t all -o "%i %T" -j ids` (no accounting needed; finished jobs vanish
    /// after MinJobAge). `-t all`: without it, Slurm 22.05 leaves finished jobs out even when asked
    /// for them by id, so a completed or cancelled block would read as missing.
    pub fn status_squeue(&self, jobs: &[JobId]) -> Result<HashMap<JobId, JobState>, ProviderError> {
        let argv = vec![
            self.squeue.clone(),
            "-h".into(),
            "-t".into(),
            "all".into(),
            "-o".into(),
            "%i %T".into(),
            "-j".into(),
            join_ids(jobs),
        ];
        let out = run_command_full(&argv, None, self.timeout, None)?;
        if !out.success() {
            // Older Slurm fails the whole query when an id is no longer known.
            if out.stderr.contains("Invalid job id") {
                return Ok(fill_missing(jobs, HashMap::new()));
            }
            return out.into_stdout().map(|_| HashMap::new());
        }
        Ok(fill_missing(jobs, parse_squeue(&display_command(&argv), &out.stdout)?))
    }

    /// States from `sacct -X -n -P -j ids --format=JobID,State`.
    pub fn status_sacct(&self, jobs: &[JobId]) -> Result<HashMap<JobId, JobState>, ProviderError> {
        let argv = vec![
            self.sacct.clone(),
            "-X".into(),
            "-n".into(),
            "-P".into(),
            "-j".into(),
            join_ids(jobs),
            "--format=JobID,State".into(),
        ];
        let out = run_command_full(&argv, None, self.timeout, None)?.into_stdout()?;
        Ok(fill_missing(jobs, parse_sacct(&display_command(&argv), &out)?))
    }
}

fn join_ids(jobs: &[JobId]) -> String {
    jobs.iter().map(|j| j.0.as_str()).collect::<Vec<_>>().join(",")
}

/// Parses `sbatch --parsable` output: `12345` or `12345;cluster` (the last non-empty line).
pub fn parse_sbatch(command: &str, output: &str) -> Result<JobId, ProviderError> {
    let bad = |message: &str| ProviderError::Parse {
        command: command.to_string(),
        output: output.to_string(),
        message: message.to_string(),
    };
    let line = last_line(output).ok_or_else(|| bad("no job id in the output"))?;
    let id = line.split(';').next().unwrap_or("").trim();
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("expected a numeric job id, optionally followed by ;cluster"));
    }
    Ok(JobId(id.to_string()))
}

/// Maps a Slurm state name (long form, as sacct and `squeue %T` print it) to a [`JobState`].
pub fn map_state(state: &str) -> JobState {
    // "CANCELLED by 1234" -> "CANCELLED"; "CANCELLED+" -> "CANCELLED".
    let word = state.split_whitespace().next().unwrap_or("");
    let word = word.trim_end_matches('+');
    match word {
        "PENDING" | "REQUEUED" | "REQUEUE_FED" | "CONFIGURING" => JobState::Pending,
        "RUNNING" | "COMPLETING" | "RESIZING" | "SIGNALING" | "STAGE_OUT" => JobState::Running,
        "COMPLETED" => JobState::Completed,
        "FAILED" | "NODE_FAIL" | "OUT_OF_MEMORY" | "BOOT_FAIL" | "SPECIAL_EXIT" => JobState::Failed,
        "CANCELLED" | "PREEMPTED" | "REVOKED" => JobState::Cancelled,
        "TIMEOUT" | "DEADLINE" => JobState::Timeout,
        "SUSPENDED" | "STOPPED" | "REQUEUE_HOLD" | "RESV_DEL_HOLD" => JobState::Held,
        _ => JobState::Unknown(state.trim().to_string()),
    }
}

/// Parses `sacct -X -n -P --format=JobID,State` output (`id|STATE` per line); later lines win.
pub fn parse_sacct(command: &str, output: &str) -> Result<HashMap<JobId, JobState>, ProviderError> {
    parse_lines(command, output, '|')
}

/// Parses `squeue -h -o "%i %T"` output (`id STATE` per line).
pub fn parse_squeue(command: &str, output: &str) -> Result<HashMap<JobId, JobState>, ProviderError> {
    parse_lines(command, output, ' ')
}

fn parse_lines(command: &str, output: &str, sep: char) -> Result<HashMap<JobId, JobState>, ProviderError> {
    let mut states = HashMap::new();
    for line in output.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let bad = |message: String| ProviderError::Parse {
            command: command.to_string(),
            output: output.to_string(),
            message,
        };
        let (id, state) = line.split_once(sep).ok_or_else(|| bad(format!("no '{sep}' in line {line:?}")))?;
        let (id, state) = (id.trim(), state.trim());
        // Job ids are numeric, maybe with an array (`_3`, `_[1-4]`) or het-job (`+0`) suffix.
        if id.is_empty() || !id.starts_with(|c: char| c.is_ascii_digit()) || id.contains(char::is_whitespace) {
            return Err(bad(format!("bad job id in line {line:?}")));
        }
        if state.is_empty() || state.contains('|') {
            return Err(bad(format!("bad state in line {line:?}")));
        }
        // Job steps (`123.batch`) are not blocks; -X should have left them out anyway.
        if id.contains('.') {
            continue;
        }
        states.insert(JobId(id.to_string()), map_state(state));
    }
    Ok(states)
}

/// Whether a scancel complaint only says the job is already gone.
fn benign_scancel_line(line: &str) -> bool {
    line.contains("Invalid job id specified")
        || line.contains("already completing or completed")
        || line.contains("Job/step already completing")
}

impl Provider for SlurmProvider {
    fn name(&self) -> &'static str {
        "slurm"
    }

    fn submit(&mut self, req: &BlockRequest) -> Result<JobId, ProviderError> {
        let path = write_script(req, "sbatch")?;
        let argv = vec![self.sbatch.clone(), "--parsable".into(), path.to_string_lossy().into_owned()];
        let out = run_command_full(&argv, None, self.timeout, Some(&req.run_dir))?.into_stdout()?;
        parse_sbatch(&display_command(&argv), &out)
    }

    fn status(&mut self, jobs: &[JobId]) -> Result<HashMap<JobId, JobState>, ProviderError> {
        if jobs.is_empty() {
            return Ok(HashMap::new());
        }
        match self.status_sacct(jobs) {
            Ok(states) => Ok(states),
            // Accounting disabled ("Slurm accounting storage is disabled") or slurmdbd down: ask slurmctld.
            Err(ProviderError::Command { .. }) | Err(ProviderError::Io { .. }) => self.status_squeue(jobs),
            Err(e) => Err(e),
        }
    }

    fn cancel(&mut self, jobs: &[JobId]) -> Result<(), ProviderError> {
        if jobs.is_empty() {
            return Ok(());
        }
        let mut argv = vec![self.scancel.clone()];
        argv.extend(jobs.iter().map(|j| j.0.clone()));
        let out = run_command_full(&argv, None, self.timeout, None)?;
        let all_benign = out.stderr.lines().filter(|l| !l.trim().is_empty()).all(benign_scancel_line);
        if out.success() || all_benign && !out.stderr.trim().is_empty() {
            Ok(())
        } else {
            out.into_stdout().map(|_| ())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::test_util::{fake_command, fake_printing, fixture, ids, recorded_args};

    fn fake_provider(dir: &std::path::Path) -> SlurmProvider {
        SlurmProvider {
            sbatch: fake_printing(dir, "sbatch", "sbatch_parsable.txt", 0),
            squeue: fake_printing(dir, "squeue", "squeue.txt", 0),
            sacct: fake_printing(dir, "sacct", "sacct.txt", 0),
            scancel: fake_command(dir, "scancel", &format!("echo \"$@\" >> '{}/scancel.args'", dir.display())),
            timeout: Duration::from_secs(10),
        }
    }

    #[test]
    fn sbatch_ids() {
        assert_eq!(parse_sbatch("sbatch", &fixture("sbatch_parsable.txt")).unwrap(), JobId("4242".into()));
        assert_eq!(parse_sbatch("sbatch", "12345").unwrap(), JobId("12345".into()));
        assert_eq!(parse_sbatch("sbatch", "12345;cluster\n").unwrap(), JobId("12345".into()));
        assert_eq!(parse_sbatch("sbatch", "note: something\n777\n").unwrap(), JobId("777".into()));
        for garbage in ["", "\n\n", "Submitted batch job", "abc;def", ";cluster", "12a45", "\u{0}\u{1}"] {
            let e = parse_sbatch("sbatch --parsable x", garbage).unwrap_err();
            assert!(matches!(e, ProviderError::Parse { .. }), "{garbage:?}: {e:?}");
            assert!(e.to_string().contains("sbatch --parsable x"), "{e}");
        }
    }

    #[test]
    fn every_sacct_state() {
        let m = parse_sacct("sacct", &fixture("sacct.txt")).unwrap();
        let want = [
            ("1001", JobState::Pending),
            ("1002", JobState::Running),
            ("1003", JobState::Completed),
            ("1004", JobState::Failed),
            ("1005", JobState::Cancelled),
            ("1006", JobState::Timeout),
            ("1007", JobState::Failed),
            ("1008", JobState::Failed),
            ("1009", JobState::Cancelled),
            ("1010", JobState::Pending),
            ("1011", JobState::Held),
            ("1012", JobState::Cancelled),
            ("1014", JobState::Failed),
            ("1015", JobState::Timeout),
            ("1017", JobState::Running),
            ("1018", JobState::Cancelled),
        ];
        for (id, state) in &want {
            assert_eq!(m.get(&JobId(id.to_string())), Some(state), "job {id}");
        }
        assert_eq!(m.len(), want.len());
    }

    #[test]
    fn every_squeue_state() {
        let m = parse_squeue("squeue", &fixture("squeue.txt")).unwrap();
        let want = [
            ("1001", JobState::Pending),
            ("1002", JobState::Running),
            ("1003", JobState::Completed),
            ("1005", JobState::Cancelled),
            ("1006", JobState::Timeout),
            ("1011", JobState::Held),
            ("1013", JobState::Running),
            ("1016", JobState::Held),
            ("1020", JobState::Pending),
            ("1023", JobState::Held),
            ("1024", JobState::Running),
            ("1025", JobState::Running),
            ("1026", JobState::Held),
            ("1027", JobState::Pending),
            ("1028", JobState::Failed),
            ("1029", JobState::Cancelled),
        ];
        for (id, state) in &want {
            assert_eq!(m.get(&JobId(id.to_string())), Some(state), "job {id}");
        }
        assert_eq!(m.len(), want.len());
    }

    #[test]
    fn odd_lines() {
        let m = parse_sacct("sacct", "5|RUNNING\n5.batch|RUNNING\n6_[1-3]|PENDING\n7|WEIRD_NEW_STATE\n\n").unwrap();
        assert_eq!(m[&JobId("5".into())], JobState::Running);
        assert_eq!(m[&JobId("6_[1-3]".into())], JobState::Pending);
        assert_eq!(m[&JobId("7".into())], JobState::Unknown("WEIRD_NEW_STATE".into()));
        assert!(!m.contains_key(&JobId("5.batch".into())));
        assert_eq!(map_state("CANCELLED by 0"), JobState::Cancelled);
        assert_eq!(map_state(""), JobState::Unknown(String::new()));
    }

    #[test]
    fn garbage_is_a_parse_error() {
        for garbage in [
            "sacct: error: Problem talking to the database",
            "JobID|State|Extra|",
            "|RUNNING",
            "abc|RUNNING",
            "12|",
            "12|A|B",
        ] {
            let e = parse_sacct("sacct -X", garbage).unwrap_err();
            assert!(matches!(e, ProviderError::Parse { .. }), "{garbage:?}: {e:?}");
        }
        for garbage in ["JOBID STATE", "12", "<html>", "12 "] {
            let e = parse_squeue("squeue -h", garbage).unwrap_err();
            assert!(matches!(e, ProviderError::Parse { .. }), "{garbage:?}: {e:?}");
        }
        assert!(parse_sacct("sacct", "").unwrap().is_empty());
    }

    #[test]
    fn submit_writes_script_and_parses_id() {
        let bin = tempfile::tempdir().unwrap();
        let run = tempfile::tempdir().unwrap();
        let mut p = fake_provider(bin.path());
        let req = BlockRequest {
            name: "block-7".into(),
            script: "#!/bin/bash\n#SBATCH --nodes=2\nsrun strand-launcher\n".into(),
            nodes: 2,
            walltime_s: 3600,
            run_dir: run.path().to_path_buf(),
        };
        assert_eq!(p.submit(&req).unwrap(), JobId("4242".into()));
        let script = run.path().join("block-7.sbatch");
        assert_eq!(std::fs::read_to_string(&script).unwrap(), req.script);
        assert_eq!(recorded_args(bin.path(), "sbatch"), vec![format!("--parsable {}", script.display())]);
    }

    #[test]
    fn submit_failure_names_command_and_stderr() {
        let bin = tempfile::tempdir().unwrap();
        let run = tempfile::tempdir().unwrap();
        let mut p = fake_provider(bin.path());
        p.sbatch = fake_command(
            bin.path(),
            "sbatch-bad",
            "echo 'sbatch: error: Batch job submission failed: Requested node configuration is not available' >&2; exit 1",
        );
        let req = BlockRequest {
            name: "b".into(),
            script: "#!/bin/sh\n".into(),
            nodes: 1,
            walltime_s: 60,
            run_dir: run.path().to_path_buf(),
        };
        let e = p.submit(&req).unwrap_err();
        assert!(matches!(e, ProviderError::Command { code: Some(1), .. }), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains("sbatch-bad --parsable") && msg.contains("node configuration"), "{msg}");
        // Garbage on stdout with exit 0 is a parse error.
        p.sbatch = fake_command(bin.path(), "sbatch-garbage", "echo 'Submitted batch job'");
        assert!(matches!(p.submit(&req), Err(ProviderError::Parse { .. })));
    }

    #[test]
    fn status_uses_sacct_once_and_marks_missing() {
        let bin = tempfile::tempdir().unwrap();
        let mut p = fake_provider(bin.path());
        let jobs = ids(&["1002", "1005", "99999"]);
        let m = p.status(&jobs).unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m[&jobs[0]], JobState::Running);
        assert_eq!(m[&jobs[1]], JobState::Cancelled);
        assert_eq!(m[&jobs[2]], JobState::Missing);
        assert_eq!(recorded_args(bin.path(), "sacct"), vec!["-X -n -P -j 1002,1005,99999 --format=JobID,State"]);
        assert!(recorded_args(bin.path(), "squeue").is_empty());
        assert!(p.status(&[]).unwrap().is_empty());
    }

    #[test]
    fn status_falls_back_to_squeue_without_accounting() {
        let bin = tempfile::tempdir().unwrap();
        let mut p = fake_provider(bin.path());
        p.sacct = fake_command(bin.path(), "sacct-off", "echo 'Slurm accounting storage is disabled' >&2; exit 1");
        let jobs = ids(&["1002", "1013", "99999"]);
        let m = p.status(&jobs).unwrap();
        assert_eq!(m[&jobs[0]], JobState::Running);
        assert_eq!(m[&jobs[1]], JobState::Running);
        assert_eq!(m[&jobs[2]], JobState::Missing);
        assert_eq!(recorded_args(bin.path(), "squeue"), vec!["-h -t all -o %i %T -j 1002,1013,99999"]);
        // sacct missing altogether: same fallback.
        p.sacct = bin.path().join("no-such-sacct").to_string_lossy().into_owned();
        assert_eq!(p.status(&jobs).unwrap()[&jobs[0]], JobState::Running);
        // squeue that rejects unknown ids: every id is missing.
        p.squeue = fake_command(
            bin.path(),
            "squeue-old",
            "echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1",
        );
        let m = p.status(&jobs).unwrap();
        assert!(m.values().all(|s| *s == JobState::Missing), "{m:?}");
        // squeue failing otherwise: the error names it.
        p.squeue = fake_command(
            bin.path(),
            "squeue-down",
            "echo 'slurm_load_jobs error: Unable to contact slurm controller' >&2; exit 1",
        );
        let e = p.status(&jobs).unwrap_err();
        assert!(e.to_string().contains("squeue-down") && e.to_string().contains("Unable to contact"), "{e}");
    }

    #[test]
    fn sacct_garbage_is_a_parse_error_not_a_fallback() {
        let bin = tempfile::tempdir().unwrap();
        let mut p = fake_provider(bin.path());
        p.sacct = fake_command(bin.path(), "sacct-garbage", "echo 'this is not sacct output'");
        assert!(matches!(p.status(&ids(&["1"])), Err(ProviderError::Parse { .. })));
    }

    #[test]
    fn cancel_calls_scancel_once() {
        let bin = tempfile::tempdir().unwrap();
        let mut p = fake_provider(bin.path());
        p.cancel(&ids(&["1001", "1002"])).unwrap();
        p.cancel(&[]).unwrap();
        assert_eq!(recorded_args(bin.path(), "scancel"), vec!["1001 1002"]);
        // Already gone: not an error.
        p.scancel = fake_command(
            bin.path(),
            "scancel-gone",
            "echo 'scancel: error: Kill job error on job id 1003: Invalid job id specified' >&2; exit 1",
        );
        p.cancel(&ids(&["1003"])).unwrap();
        p.scancel = fake_command(
            bin.path(),
            "scancel-denied",
            "echo 'scancel: error: Kill job error on job id 1003: Access/permission denied' >&2; exit 1",
        );
        let e = p.cancel(&ids(&["1003"])).unwrap_err();
        assert!(e.to_string().contains("permission denied"), "{e}");
    }

    #[test]
    fn status_timeout() {
        let bin = tempfile::tempdir().unwrap();
        let mut p = fake_provider(bin.path());
        p.sacct = fake_command(bin.path(), "sacct-slow", "sleep 5");
        p.timeout = Duration::from_millis(200);
        let start = std::time::Instant::now();
        assert!(matches!(p.status(&ids(&["1"])), Err(ProviderError::Timeout { .. })));
        assert!(start.elapsed() < Duration::from_secs(2));
        assert_eq!(p.name(), "slurm");
    }
}
