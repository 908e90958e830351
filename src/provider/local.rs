//! The local provider: a block is its batch script run by `bash` on this machine (the script
//! starts `mpirun ... strand-launcher`), so elasticity works on a laptop or a login node
//! exactly as on a cluster, with the same scripts and the same strategy.
//!
//! Job ids are `local-PID`. The script runs in its own process group, which `cancel` signals
//! (SIGTERM, then SIGKILL after a grace period) so mpirun and every rank go with it. A block
//! past its walltime is killed the same way and reported as `Timeout`, as a scheduler would.

use super::{write_script, BlockRequest, JobId, JobState, Provider, ProviderError};
use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a cancelled or timed-out block gets between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(10);

struct LocalJob {
    child: Child,
    deadline: Option<Instant>,
    /// Why we signalled it, and when (SIGKILL follows after the grace period).
    signalled: Option<(JobState, Instant)>,
    ended: Option<JobState>,
}

/// Runs blocks as child processes of this one.
#[derive(Default)]
pub struct LocalProvider {
    jobs: HashMap<JobId, LocalJob>,
}

impl LocalProvider {
    /// A provider with no blocks.
    pub fn new() -> LocalProvider {
        LocalProvider::default()
    }

    fn signal(job: &LocalJob, sig: i32) {
        // SAFETY: signalling the process group of a child we started (its pid is the group id).
        unsafe { libc::kill(-(job.child.id() as i32), sig) };
    }

    fn poll(job: &mut LocalJob, now: Instant) -> JobState {
        if let Some(s) = &job.ended {
            return s.clone();
        }
        match job.child.try_wait() {
            Ok(Some(status)) => {
                let state = match (&job.signalled, status.success()) {
                    (Some((why, _)), _) => why.clone(),
                    (None, true) => JobState::Completed,
                    (None, false) => JobState::Failed,
                };
                job.ended = Some(state.clone());
                state
            }
            Ok(None) => {
                match &job.signalled {
                    Some((_, at)) if now.saturating_duration_since(*at) > GRACE => Self::signal(job, libc::SIGKILL),
                    Some(_) => {}
                    None if job.deadline.is_some_and(|d| now >= d) => {
                        Self::signal(job, libc::SIGTERM);
                        job.signalled = Some((JobState::Timeout, now));
                    }
                    None => {}
                }
                JobState::Running
            }
            Err(e) => JobState::Unknown(format!("wait failed: {e}")),
        }
    }
}

impl Provider for LocalProvider {
    fn name(&self) -> &'static str {
        "local"
    }

    fn submit(&mut self, req: &BlockRequest) -> Result<JobId, ProviderError> {
        let script = write_script(req, "sh")?;
        let out_path = req.run_dir.join(format!("{}.out", super::safe_file_stem(&req.name)));
        let out = std::fs::File::create(&out_path)
            .map_err(|source| ProviderError::Io { command: format!("create {}", out_path.display()), source })?;
        let err = out
            .try_clone()
            .map_err(|source| ProviderError::Io { command: format!("dup {}", out_path.display()), source })?;
        let mut cmd = Command::new("bash");
        cmd.arg(&script).current_dir(&req.run_dir).stdin(Stdio::null()).stdout(out).stderr(err);
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        crate::process::die_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .map_err(|source| ProviderError::Io { command: format!("bash {}", display(&script)), source })?;
        let id = JobId(format!("local-{}", child.id()));
        let deadline = (req.walltime_s > 0).then(|| Instant::now() + Duration::from_secs(req.walltime_s));
        self.jobs.insert(id.clone(), LocalJob { child, deadline, signalled: None, ended: None });
        Ok(id)
    }

    fn status(&mut self, jobs: &[JobId]) -> Result<HashMap<JobId, JobState>, ProviderError> {
        let now = Instant::now();
        Ok(jobs
            .iter()
            .map(|j| {
                let state = self.jobs.get_mut(j).map(|job| Self::poll(job, now)).unwrap_or(JobState::Missing);
                (j.clone(), state)
            })
            .collect())
    }

    fn cancel(&mut self, jobs: &[JobId]) -> Result<(), ProviderError> {
        let now = Instant::now();
        for j in jobs {
            if let Some(job) = self.jobs.get_mut(j) {
                if job.ended.is_none() && job.signalled.is_none() {
                    Self::signal(job, libc::SIGTERM);
                    job.signalled = Some((JobState::Cancelled, now));
                }
            }
        }
        Ok(())
    }
}

impl Drop for LocalProvider {
    /// Blocks never outlive the provider that started them.
    fn drop(&mut self) {
        for job in self.jobs.values_mut() {
            if job.ended.is_none() && matches!(job.child.try_wait(), Ok(None)) {
                Self::signal(job, libc::SIGKILL);
                let _ = job.child.wait();
            }
        }
    }
}

fn display(p: &Path) -> String {
    p.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(dir: &Path, name: &str, script: &str, walltime_s: u64) -> BlockRequest {
        BlockRequest { name: name.into(), script: script.into(), nodes: 1, walltime_s, run_dir: dir.to_path_buf() }
    }

    fn wait_for(p: &mut LocalProvider, j: &JobId, want: &JobState) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = p.status(std::slice::from_ref(j)).expect("status")[j].clone();
            if &s == want {
                return;
            }
            assert!(Instant::now() < deadline, "{j} is {s}, expected {want}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn runs_cancels_and_times_out_blocks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut p = LocalProvider::new();
        let ok = p.submit(&req(dir.path(), "ok", "echo hello", 0)).expect("submit");
        let bad = p.submit(&req(dir.path(), "bad", "exit 3", 0)).expect("submit");
        let long = p.submit(&req(dir.path(), "long", "sleep 600 & wait", 0)).expect("submit");
        let late = p.submit(&req(dir.path(), "late", "sleep 600", 1)).expect("submit");
        wait_for(&mut p, &ok, &JobState::Completed);
        wait_for(&mut p, &bad, &JobState::Failed);
        assert_eq!(std::fs::read_to_string(dir.path().join("ok.out")).expect("output"), "hello\n");
        assert_eq!(p.status(std::slice::from_ref(&long)).expect("status")[&long], JobState::Running);
        p.cancel(std::slice::from_ref(&long)).expect("cancel");
        wait_for(&mut p, &long, &JobState::Cancelled);
        wait_for(&mut p, &late, &JobState::Timeout);
        let unknown = JobId("local-1".into());
        assert_eq!(p.status(std::slice::from_ref(&unknown)).expect("status")[&unknown], JobState::Missing);
    }
}
