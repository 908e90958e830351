//! PBS Professional / OpenPBS: `qsub` to submit, `qstat -f -F json -x` for states, `qdel` to cancel.
//!
//! The parsers follow the PBS Professional Reference Guide (qsub prints the job id,
//! `qstat -f -F json` prints `{"Jobs": {"<id>": {"job_state": "R", "Exit_status": 0, ...}}}`,
//! `-x` includes finished jobs kept in the job history) and the Administrator's Guide (job exit
//! status codes). The fixtures in `tests/fixtures/provider/` were written from that
//! documentation, not captured from a live PBS server.
//!
//! State mapping: Q, T, W, S, U -> Pending; R, E, B -> Running; H -> Held; F and X by
//! `Exit_status`: 0 -> Completed, 271 (256 + SIGTERM: `qdel`) -> Cancelled,
//! -29 (`JOB_EXEC_KILL_WALLTIME`) -> Timeout, none (deleted before it ran) -> Cancelled, any
//! other value (non-zero exit, other signals, other `JOB_EXEC_*` codes such as -27 memory) ->
//! Failed; any other letter -> Unknown. PBS may also send SIGTERM at the walltime on some
//! sites, so 271 can hide a walltime kill; the Altair codes are what this module trusts.
//!
//! Torque's `qstat` has no `-F json`; this provider is for PBS Pro and OpenPBS only.

use super::{
    display_command, fill_missing, last_line, run_command_full, write_script, BlockRequest, JobId, JobState, Provider,
    ProviderError,
};
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

/// `Exit_status` of a job killed by SIGTERM (256 + 15), which is what `qdel` sends.
pub const EXIT_SIGTERM: i64 = 271;
/// `Exit_status` `JOB_EXEC_KILL_WALLTIME`: killed for exceeding its walltime.
pub const JOB_EXEC_KILL_WALLTIME: i64 = -29;

/// Submits blocks to PBS Pro / OpenPBS; the command names can point at fakes for tests.
#[derive(Clone, Debug)]
pub struct PbsProvider {
    /// The `qsub` command.
    pub qsub: String,
    /// The `qstat` command.
    pub qstat: String,
    /// The `qdel` command.
    pub qdel: String,
    /// Longest wait for any one command.
    pub timeout: Duration,
}

impl Default for PbsProvider {
    fn default() -> Self {
        PbsProvider::new()
    }
}

impl PbsProvider {
    /// The real commands from `PATH`, with a 60 s timeout per command.
    pub fn new() -> PbsProvider {
        PbsProvider {
            qsub: "qsub".into(),
            qstat: "qstat".into(),
            qdel: "qdel".into(),
            timeout: Duration::from_secs(60),
        }
    }
}

/// Parses `qsub` output: the job id (`1234.server.domain`) on the last non-empty line.
pub fn parse_qsub(command: &str, output: &str) -> Result<JobId, ProviderError> {
    let bad = |message: &str| ProviderError::Parse {
        command: command.to_string(),
        output: output.to_string(),
        message: message.to_string(),
    };
    let id = last_line(output).ok_or_else(|| bad("no job id in the output"))?;
    let ok_chars = id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '[' | ']'));
    if !id.starts_with(|c: char| c.is_ascii_digit()) || !ok_chars {
        return Err(bad("expected a job id such as 1234.server"));
    }
    Ok(JobId(id.to_string()))
}

/// Maps a PBS `job_state` letter (and, for finished jobs, `Exit_status`) to a [`JobState`].
pub fn map_state(job_state: &str, exit_status: Option<i64>) -> JobState {
    match job_state {
        "Q" | "T" | "W" | "S" | "U" => JobState::Pending,
        "R" | "E" | "B" => JobState::Running,
        "H" => JobState::Held,
        "F" | "X" => match exit_status {
            Some(0) => JobState::Completed,
            Some(EXIT_SIGTERM) | None => JobState::Cancelled,
            Some(JOB_EXEC_KILL_WALLTIME) => JobState::Timeout,
            Some(_) => JobState::Failed,
        },
        other => JobState::Unknown(other.to_string()),
    }
}

/// The sequence number of a PBS id: `1234` of `1234.server.domain`.
fn sequence(id: &str) -> &str {
    id.split('.').next().unwrap_or(id)
}

/// Parses `qstat -f -F json [-x]` output into states keyed by the ids as qstat prints them.
pub fn parse_qstat_json(command: &str, output: &str) -> Result<HashMap<JobId, JobState>, ProviderError> {
    let bad =
        |message: String| ProviderError::Parse { command: command.to_string(), output: output.to_string(), message };
    let doc: Value = serde_json::from_str(output).map_err(|e| bad(format!("invalid JSON: {e}")))?;
    let top = doc.as_object().ok_or_else(|| bad("expected a JSON object".into()))?;
    let jobs = match top.get("Jobs") {
        // No job matched (qstat leaves the key out).
        None | Some(Value::Null) => return Ok(HashMap::new()),
        Some(Value::Object(jobs)) => jobs,
        Some(_) => return Err(bad("\"Jobs\" is not an object".into())),
    };
    let mut states = HashMap::with_capacity(jobs.len());
    for (id, job) in jobs {
        let state = job
            .get("job_state")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(format!("job {id} has no job_state string")))?;
        let exit = match job.get("Exit_status") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => n.as_i64(),
            // Older servers print some numbers as strings.
            Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
            Some(_) => None,
        };
        if job.get("Exit_status").is_some_and(|v| !v.is_null()) && exit.is_none() {
            return Err(bad(format!("job {id} has a non-integer Exit_status")));
        }
        states.insert(JobId(id.clone()), map_state(state.trim(), exit));
    }
    Ok(states)
}

/// States of `jobs` from parsed qstat states: exact ids first, else a unique match on the
/// sequence number (qsub may print `1234.server` while qstat prints `1234.server.domain`);
/// ids not found are [`JobState::Missing`].
pub fn match_states(jobs: &[JobId], found: HashMap<JobId, JobState>) -> HashMap<JobId, JobState> {
    let mut by_seq: HashMap<String, Vec<JobState>> = HashMap::new();
    for (id, state) in &found {
        by_seq.entry(sequence(&id.0).to_string()).or_default().push(state.clone());
    }
    let mut exact = HashMap::new();
    for j in jobs {
        if let Some(s) = found.get(j) {
            exact.insert(j.clone(), s.clone());
        } else if let Some([only]) = by_seq.get(sequence(&j.0)).map(Vec::as_slice) {
            exact.insert(j.clone(), only.clone());
        }
    }
    fill_missing(jobs, exact)
}

/// Whether a qstat/qdel complaint only says the job is unknown or already finished.
fn benign_line(line: &str) -> bool {
    line.contains("Unknown Job Id") || line.contains("Job has finished") || line.contains("job has finished")
}

fn all_benign(stderr: &str) -> bool {
    let mut lines = stderr.lines().map(str::trim).filter(|l| !l.is_empty()).peekable();
    lines.peek().is_some() && lines.all(benign_line)
}

impl Provider for PbsProvider {
    fn name(&self) -> &'static str {
        "pbs"
    }

    fn submit(&mut self, req: &BlockRequest) -> Result<JobId, ProviderError> {
        let path = write_script(req, "pbs")?;
        let argv = vec![self.qsub.clone(), path.to_string_lossy().into_owned()];
        let out = run_command_full(&argv, None, self.timeout, Some(&req.run_dir))?.into_stdout()?;
        parse_qsub(&display_command(&argv), &out)
    }

    fn status(&mut self, jobs: &[JobId]) -> Result<HashMap<JobId, JobState>, ProviderError> {
        if jobs.is_empty() {
            return Ok(HashMap::new());
        }
        let mut argv = vec![self.qstat.clone(), "-f".into(), "-F".into(), "json".into(), "-x".into()];
        argv.extend(jobs.iter().map(|j| j.0.clone()));
        let out = run_command_full(&argv, None, self.timeout, None)?;
        // qstat exits non-zero when any id is unknown ("qstat: Unknown Job Id ...") but still
        // prints the others; only such complaints are tolerated.
        if !out.success() && !all_benign(&out.stderr) {
            return out.into_stdout().map(|_| HashMap::new());
        }
        if out.stdout.trim().is_empty() {
            return Ok(fill_missing(jobs, HashMap::new()));
        }
        let found = parse_qstat_json(&out.command, &out.stdout)?;
        Ok(match_states(jobs, found))
    }

    fn cancel(&mut self, jobs: &[JobId]) -> Result<(), ProviderError> {
        if jobs.is_empty() {
            return Ok(());
        }
        let mut argv = vec![self.qdel.clone()];
        argv.extend(jobs.iter().map(|j| j.0.clone()));
        let out = run_command_full(&argv, None, self.timeout, None)?;
        if out.success() || all_benign(&out.stderr) {
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

    fn fake_provider(dir: &std::path::Path) -> PbsProvider {
        PbsProvider {
            qsub: fake_printing(dir, "qsub", "qsub.txt", 0),
            qstat: fake_printing(dir, "qstat", "qstat_f_F_json.json", 0),
            qdel: fake_command(dir, "qdel", &format!("echo \"$@\" >> '{}/qdel.args'", dir.display())),
            timeout: Duration::from_secs(10),
        }
    }

    #[test]
    fn qsub_ids() {
        assert_eq!(parse_qsub("qsub", &fixture("qsub.txt")).unwrap(), JobId("1234.pbs01.example.org".into()));
        assert_eq!(parse_qsub("qsub", "1234.server").unwrap(), JobId("1234.server".into()));
        assert_eq!(parse_qsub("qsub", "56[].server\n").unwrap(), JobId("56[].server".into()));
        for garbage in ["", "  \n", "qsub: Unknown queue", "1234 server", "server.1234", "12;rm -rf", "{}"] {
            let e = parse_qsub("qsub x.pbs", garbage).unwrap_err();
            assert!(matches!(e, ProviderError::Parse { .. }), "{garbage:?}: {e:?}");
            assert!(e.to_string().contains("qsub x.pbs"), "{e}");
        }
    }

    #[test]
    fn every_qstat_state() {
        let m = parse_qstat_json("qstat", &fixture("qstat_f_F_json.json")).unwrap();
        let want = [
            ("1234.pbs01", JobState::Running),
            ("1235.pbs01", JobState::Pending),
            ("1236.pbs01", JobState::Held),
            ("1237.pbs01", JobState::Running),
            ("1238.pbs01", JobState::Completed),
            ("1239.pbs01", JobState::Failed),
            ("1240.pbs01", JobState::Cancelled),
            ("1241.pbs01", JobState::Timeout),
            ("1242.pbs01", JobState::Pending),
            ("1243.pbs01", JobState::Pending),
            ("1244.pbs01", JobState::Cancelled),
            ("1245.pbs01", JobState::Failed),
            ("1246.pbs01", JobState::Pending),
            ("1247.pbs01", JobState::Failed),
            ("1248.pbs01", JobState::Unknown("M".into())),
        ];
        for (id, state) in &want {
            assert_eq!(m.get(&JobId(id.to_string())), Some(state), "job {id}");
        }
        assert_eq!(m.len(), want.len());
    }

    #[test]
    fn letters_and_exit_codes() {
        assert_eq!(map_state("B", None), JobState::Running);
        assert_eq!(map_state("U", None), JobState::Pending);
        assert_eq!(map_state("X", Some(0)), JobState::Completed);
        assert_eq!(map_state("F", Some(-1)), JobState::Failed);
        assert_eq!(map_state("Z", None), JobState::Unknown("Z".into()));
        let m = parse_qstat_json("qstat", r#"{"Jobs":{"9.s":{"job_state":"F","Exit_status":"271"}}}"#).unwrap();
        assert_eq!(m[&JobId("9.s".into())], JobState::Cancelled);
        // No job matched: qstat leaves "Jobs" out.
        let m = parse_qstat_json("qstat", r#"{"timestamp":1,"pbs_version":"2022.1.1","pbs_server":"s"}"#).unwrap();
        assert!(m.is_empty());
    }

    #[test]
    fn garbage_is_a_parse_error() {
        for garbage in [
            "",
            "qstat: Unknown Job Id 1.s",
            "[1,2]",
            "{\"Jobs\":[]}",
            "{\"Jobs\":{\"1.s\":{}}}",
            "{\"Jobs\":{\"1.s\":{\"job_state\":7}}}",
            "{\"Jobs\":{\"1.s\":{\"job_state\":\"F\",\"Exit_status\":\"zero\"}}}",
            "{\"Jobs\":{\"1.s\":\"R\"}}",
            "{\"Jobs\":{",
        ] {
            let e = parse_qstat_json("qstat -f -F json", garbage).unwrap_err();
            assert!(matches!(e, ProviderError::Parse { .. }), "{garbage:?}: {e:?}");
            assert!(e.to_string().contains("qstat -f -F json"), "{e}");
        }
    }

    #[test]
    fn id_matching_by_sequence_number() {
        let found = HashMap::from([
            (JobId("1234.pbs01".into()), JobState::Running),
            (JobId("77.a".into()), JobState::Pending),
            (JobId("77.b".into()), JobState::Held),
        ]);
        let jobs = ids(&["1234.pbs01.example.org", "1234.pbs01", "77.c", "5.pbs01"]);
        let m = match_states(&jobs, found);
        assert_eq!(m[&jobs[0]], JobState::Running);
        assert_eq!(m[&jobs[1]], JobState::Running);
        assert_eq!(m[&jobs[2]], JobState::Missing, "ambiguous sequence number");
        assert_eq!(m[&jobs[3]], JobState::Missing);
    }

    #[test]
    fn submit_writes_script_and_parses_id() {
        let bin = tempfile::tempdir().unwrap();
        let run = tempfile::tempdir().unwrap();
        let mut p = fake_provider(bin.path());
        let req = BlockRequest {
            name: "block-3".into(),
            script: "#!/bin/bash\n#PBS -l select=2:ncpus=128:mpiprocs=128\nmpiexec strand-launcher\n".into(),
            nodes: 2,
            walltime_s: 3600,
            run_dir: run.path().to_path_buf(),
        };
        assert_eq!(p.submit(&req).unwrap(), JobId("1234.pbs01.example.org".into()));
        let script = run.path().join("block-3.pbs");
        assert_eq!(std::fs::read_to_string(&script).unwrap(), req.script);
        assert_eq!(recorded_args(bin.path(), "qsub"), vec![script.display().to_string()]);
        p.qsub = fake_command(bin.path(), "qsub-bad", "echo 'qsub: Job exceeds queue resource limits' >&2; exit 188");
        let e = p.submit(&req).unwrap_err();
        assert!(matches!(e, ProviderError::Command { code: Some(188), .. }), "{e:?}");
        assert!(e.to_string().contains("qsub-bad") && e.to_string().contains("queue resource limits"), "{e}");
    }

    #[test]
    fn status_one_call_and_missing_ids() {
        let bin = tempfile::tempdir().unwrap();
        let mut p = fake_provider(bin.path());
        let jobs = ids(&["1234.pbs01", "1241.pbs01", "9999.pbs01"]);
        let m = p.status(&jobs).unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m[&jobs[0]], JobState::Running);
        assert_eq!(m[&jobs[1]], JobState::Timeout);
        assert_eq!(m[&jobs[2]], JobState::Missing);
        assert_eq!(recorded_args(bin.path(), "qstat"), vec!["-f -F json -x 1234.pbs01 1241.pbs01 9999.pbs01"]);
        assert!(p.status(&[]).unwrap().is_empty());
    }

    #[test]
    fn status_tolerates_unknown_job_complaints_only() {
        let bin = tempfile::tempdir().unwrap();
        let mut p = fake_provider(bin.path());
        let json = crate::provider::test_util::fixture_path("qstat_f_F_json.json");
        p.qstat = fake_command(
            bin.path(),
            "qstat-partial",
            &format!("cat '{}'; echo 'qstat: Unknown Job Id 9999.pbs01' >&2; exit 153", json.display()),
        );
        let jobs = ids(&["1238.pbs01", "9999.pbs01"]);
        let m = p.status(&jobs).unwrap();
        assert_eq!(m[&jobs[0]], JobState::Completed);
        assert_eq!(m[&jobs[1]], JobState::Missing);
        // Nothing known at all: empty stdout, every id missing.
        p.qstat = fake_command(bin.path(), "qstat-none", "echo 'qstat: Unknown Job Id 9999.pbs01' >&2; exit 153");
        assert_eq!(p.status(&jobs).unwrap()[&jobs[0]], JobState::Missing);
        // Server down: an error naming qstat and its stderr.
        p.qstat = fake_command(
            bin.path(),
            "qstat-down",
            "echo 'Connection refused' >&2; echo 'qstat: cannot connect to server pbs01 (errno=15010)' >&2; exit 2",
        );
        let e = p.status(&jobs).unwrap_err();
        assert!(matches!(e, ProviderError::Command { code: Some(2), .. }), "{e:?}");
        assert!(e.to_string().contains("qstat-down") && e.to_string().contains("cannot connect"), "{e}");
        // Garbage with exit 0: a parse error.
        p.qstat = fake_command(bin.path(), "qstat-garbage", "echo 'Job id  Name  User'");
        assert!(matches!(p.status(&jobs), Err(ProviderError::Parse { .. })));
    }

    #[test]
    fn cancel_calls_qdel_once() {
        let bin = tempfile::tempdir().unwrap();
        let mut p = fake_provider(bin.path());
        p.cancel(&ids(&["1234.pbs01", "1235.pbs01"])).unwrap();
        p.cancel(&[]).unwrap();
        assert_eq!(recorded_args(bin.path(), "qdel"), vec!["1234.pbs01 1235.pbs01"]);
        p.qdel = fake_command(bin.path(), "qdel-gone", "echo 'qdel: Job has finished 1238.pbs01' >&2; exit 35");
        p.cancel(&ids(&["1238.pbs01"])).unwrap();
        p.qdel = fake_command(bin.path(), "qdel-denied", "echo 'qdel: Unauthorized Request  1234.pbs01' >&2; exit 159");
        let e = p.cancel(&ids(&["1234.pbs01"])).unwrap_err();
        assert!(e.to_string().contains("Unauthorized Request"), "{e}");
        assert_eq!(p.name(), "pbs");
    }
}
