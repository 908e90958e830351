//! A real Slurm on this machine for integration tests: `munged`, `slurmctld` and one `slurmd` per
//! simulated node (all on 127.0.0.1, each on its own port), configured in a fresh temp dir and
//! killed, with every job process they started, on drop.
//!
//! `LocalSlurm::start()` fails the test when the Slurm or MUNGE binaries are not installed,
//! saying so (`scripts/setup.sh` installs them; `cargo test -- --skip slurm` leaves the tests
//! out visibly): a test that passes by skipping hides that nothing was checked. Any other
//! failure to start panics with the daemons' logs. Every wait is bounded and polls for an event (a socket, `sinfo` saying
//! idle); nothing sleeps for a fixed time.
//!
//! One instance runs at a time in a test process (`start` waits for the previous one to be
//! dropped): a 2-core machine cannot run several clusters with their blocks side by side
//! reliably. Each instance has fresh ports, its own `FirstJobId` (so the PMIx directories that Slurm keys
//! by job id never collide with another instance's), and an `owner` file naming the test process:
//! an instance whose owner died without dropping it (a crashed or killed test run) is swept at the
//! next start. Processes are found by their environment: the daemons, `slurmstepd`, and every job
//! process (sbatch exports its environment) carry `SLURM_CONF=<this instance>/slurm.conf`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use strand::provider::slurm::SlurmProvider;
use strand::provider::{run_command_full, CommandOutput};
use strand::text::shell_quote;

use super::{tail, Guard};

/// Client commands the wrappers in `bin_dir()` cover.
const CLIENTS: [&str; 7] = ["sbatch", "srun", "squeue", "scancel", "sinfo", "scontrol", "sacct"];
/// Daemons needed besides the clients.
const DAEMONS: [&str; 3] = ["munged", "slurmctld", "slurmd"];
/// Prefix of every instance's temp dir (the stale-instance sweep looks for it).
const DIR_PREFIX: &str = "strand-slurm-";
/// Longest wait for the daemons to come up.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest wait for one client command.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Shape of the test cluster.
#[derive(Clone, Debug)]
pub struct SlurmOptions {
    /// Simulated nodes: one `slurmd` each; the first is this machine's short host name.
    pub nodes: usize,
    /// CPUs each node claims (more than the machine has: `SlurmdParameters=config_overrides`).
    pub cpus_per_node: u32,
}

impl Default for SlurmOptions {
    fn default() -> Self {
        SlurmOptions { nodes: 1, cpus_per_node: 8 }
    }
}

/// A running single-machine Slurm cluster; everything it started is killed on drop.
pub struct LocalSlurm {
    dir: tempfile::TempDir,
    conf: PathBuf,
    nodes: Vec<String>,
    cpus_per_node: u32,
    munged: Option<Guard>,
    slurmctld: Option<Guard>,
    slurmds: Vec<Guard>,
    /// Held for the instance's life; dropped last.
    _serial: std::sync::MutexGuard<'static, ()>,
}

/// One test Slurm at a time per process.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Where `name` is installed (PATH, then the sbin directories a non-root PATH may lack).
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/bin", "/usr/local/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The Slurm or MUNGE programs that are not installed.
pub fn missing_programs() -> Vec<&'static str> {
    CLIENTS.iter().chain(DAEMONS.iter()).copied().filter(|p| find_program(p).is_none()).collect()
}

/// Poll `done` (with a short backoff) until it holds; panic naming `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(10);
    loop {
        if done() {
            return;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(250));
    }
}

impl LocalSlurm {
    /// One node with 8 CPUs; fails the test, saying why, if Slurm is not installed.
    pub fn start() -> LocalSlurm {
        LocalSlurm::start_with(SlurmOptions::default())
    }

    /// A cluster of the given shape; fails the test, saying why, if Slurm is not installed.
    pub fn start_with(opts: SlurmOptions) -> LocalSlurm {
        let missing = missing_programs();
        assert!(
            missing.is_empty(),
            "Slurm is not installed (missing: {}): run scripts/setup.sh, or leave the Slurm tests out \
             with `cargo test -- --skip slurm`",
            missing.join(", ")
        );
        assert!(opts.nodes >= 1 && opts.cpus_per_node >= 1, "a cluster needs a node and a CPU: {opts:?}");
        // A test that panicked while holding it poisoned it; its instance was dropped all the same.
        let serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        sweep_stale_instances();
        let dir = tempfile::Builder::new().prefix(DIR_PREFIX).tempdir().expect("temp dir");
        let root = dir.path().to_path_buf();
        set_mode(&root, 0o755);
        std::fs::write(root.join("owner"), owner_stamp(std::process::id())).expect("owner file");

        let host = short_hostname();
        let nodes: Vec<String> =
            (0..opts.nodes).map(|i| if i == 0 { host.clone() } else { format!("{host}-n{i}") }).collect();
        for n in &nodes {
            std::fs::create_dir_all(root.join("spool").join(n)).expect("spool dir");
        }
        std::fs::create_dir_all(root.join("state")).expect("state dir");
        std::fs::create_dir_all(root.join("bin")).expect("bin dir");
        let conf = root.join("slurm.conf");
        let mut slurm = LocalSlurm {
            dir,
            conf,
            nodes,
            cpus_per_node: opts.cpus_per_node,
            munged: None,
            slurmctld: None,
            slurmds: vec![],
            _serial: serial,
        };
        slurm.write_munge_key();
        let ports = free_ports(1 + opts.nodes);
        std::fs::write(&slurm.conf, slurm.config_text(&host, &ports)).expect("slurm.conf");
        std::fs::write(root.join("plugstack.conf"), "").expect("plugstack.conf");
        slurm.write_wrappers();
        slurm.start_munged();
        slurm.start_slurmctld();
        slurm.start_slurmds();
        slurm.wait_nodes_idle();
        slurm
    }

    /// The instance's directory (config, logs, state, wrappers).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The `slurm.conf` every daemon and client of this instance reads (`SLURM_CONF`).
    pub fn conf(&self) -> &Path {
        &self.conf
    }

    /// Wrappers of the client commands that set this instance's environment (put it first in PATH).
    pub fn bin_dir(&self) -> PathBuf {
        self.dir().join("bin")
    }

    /// Node names, the first being this machine's short host name.
    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// CPUs each node offers to jobs.
    pub fn cpus_per_node(&self) -> u32 {
        self.cpus_per_node
    }

    /// The environment that clients and jobs of this cluster need: `SLURM_CONF`, and Open MPI
    /// settings for this machine (shared memory and loopback only, no CMA).
    pub fn job_env(&self) -> Vec<(String, String)> {
        vec![
            ("SLURM_CONF".into(), self.conf.to_string_lossy().into_owned()),
            ("OMPI_MCA_btl".into(), "self,vader".into()),
            ("OMPI_MCA_btl_vader_single_copy_mechanism".into(), "none".into()),
        ]
    }

    /// `job_env()` plus a PATH whose first entry is `bin_dir()`, for child processes such as `strand`.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = self.job_env();
        let path = std::env::var_os("PATH").unwrap_or_default();
        let joined =
            std::env::join_paths(std::iter::once(self.bin_dir()).chain(std::env::split_paths(&path))).expect("PATH");
        env.push(("PATH".into(), joined.to_string_lossy().into_owned()));
        env
    }

    /// A command for one of the Slurm clients (through its wrapper) or any program, with `env()`.
    pub fn command(&self, program: &str) -> Command {
        let wrapper = self.bin_dir().join(program);
        let mut cmd = Command::new(if wrapper.is_file() { wrapper } else { PathBuf::from(program) });
        cmd.envs(self.env()).stdin(Stdio::null());
        cmd
    }

    /// A `SlurmProvider` whose commands are this instance's wrappers.
    pub fn provider(&self) -> SlurmProvider {
        let w = |c: &str| self.bin_dir().join(c).to_string_lossy().into_owned();
        SlurmProvider {
            sbatch: w("sbatch"),
            squeue: w("squeue"),
            sacct: w("sacct"),
            scancel: w("scancel"),
            timeout: COMMAND_TIMEOUT,
        }
    }

    /// Run a Slurm client with `args` (bounded), whatever its exit code.
    pub fn run(&self, client: &str, args: &[&str]) -> CommandOutput {
        let mut argv = vec![self.bin_dir().join(client).to_string_lossy().into_owned()];
        argv.extend(args.iter().map(|a| a.to_string()));
        run_command_full(&argv, None, COMMAND_TIMEOUT, Some(self.dir()))
            .unwrap_or_else(|e| panic!("{client} {args:?}: {e}\n{}", self.logs()))
    }

    /// Run a Slurm client and return its stdout; panics with its stderr if it fails.
    pub fn ok(&self, client: &str, args: &[&str]) -> String {
        let out = self.run(client, args);
        assert!(out.success(), "{} failed ({:?}): {}", out.command, out.code, out.stderr);
        out.stdout
    }

    /// `sbatch --parsable ARGS...`: the new job's id.
    pub fn sbatch(&self, args: &[&str]) -> String {
        let out = self.ok("sbatch", &[&["--parsable"], args].concat());
        out.trim().split(';').next().unwrap_or("").to_string()
    }

    /// The job's state as `squeue -t all` prints it (`RUNNING`, `CANCELLED` ...), if Slurm knows it.
    pub fn job_state(&self, job: &str) -> Option<String> {
        let out = self.run("squeue", &["-h", "-t", "all", "-o", "%T", "-j", job]);
        out.success().then(|| out.stdout.trim().to_string()).filter(|s| !s.is_empty())
    }

    /// The job's running steps (`123.0`, `123.batch` ...).
    pub fn steps(&self, job: &str) -> Vec<String> {
        let out = self.ok("squeue", &["-h", "-s", "-o", "%i", "-j", job]);
        out.split_whitespace().map(String::from).collect()
    }

    /// Wait until the job is in `state` (as `squeue` prints it).
    pub fn wait_state(&self, job: &str, state: &str, timeout: Duration) {
        wait_until(&format!("job {job} to be {state}"), timeout, || self.job_state(job).as_deref() == Some(state));
    }

    /// The tails of the daemons' logs, for assertion messages.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        let mut files = vec![self.dir().join("slurmctld.log"), self.dir().join("munged.log")];
        files.extend(self.nodes.iter().map(|n| self.dir().join(format!("slurmd-{n}.log"))));
        for f in files {
            s += &format!("--- {}\n{}\n", f.display(), tail(&f));
        }
        s
    }

    fn munge_socket(&self) -> PathBuf {
        self.dir().join("munge").join("munge.socket")
    }

    fn write_munge_key(&self) {
        use std::io::Read;
        let key_dir = self.dir().join("munge-key");
        std::fs::create_dir_all(&key_dir).expect("munge key dir");
        set_mode(&key_dir, 0o700);
        std::fs::create_dir_all(self.dir().join("munge")).expect("munge dir");
        set_mode(&self.dir().join("munge"), 0o755);
        let mut key = [0u8; 1024];
        std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut key)).expect("random key");
        let path = key_dir.join("munge.key");
        std::fs::write(&path, key).expect("munge key");
        set_mode(&path, 0o400);
    }

    fn config_text(&self, host: &str, ports: &[u16]) -> String {
        let d = self.dir().display();
        let user = user_name();
        let mut first_id = [0u8; 4];
        getrandom::getrandom(&mut first_id).expect("random");
        // Below Slurm's MaxJobId (67,043,328) with room for many jobs.
        let first_job_id = 1000 + u32::from_le_bytes(first_id) % 60_000_000;
        let mut s = format!(
            "# Written by tests/it/common/slurm.rs for one test; see that file.\n\
             ClusterName=strand{suffix}\n\
             SlurmctldHost={host}(127.0.0.1)\n\
             SlurmctldPort={ctld}\n\
             SlurmdPort={slurmd}\n\
             SlurmUser={user}\n\
             SlurmdUser={user}\n\
             AuthType=auth/munge\n\
             CredType=cred/munge\n\
             AuthInfo=socket={sock}\n\
             StateSaveLocation={d}/state\n\
             SlurmdSpoolDir={d}/spool/%n\n\
             SlurmctldPidFile={d}/slurmctld.pid\n\
             SlurmdPidFile={d}/slurmd-%n.pid\n\
             SlurmctldLogFile={d}/slurmctld.log\n\
             SlurmdLogFile={d}/slurmd-%n.log\n\
             SlurmctldDebug=info\n\
             SlurmdDebug=info\n\
             PlugStackConfig={d}/plugstack.conf\n\
             FirstJobId={first_job_id}\n\
             ProctrackType=proctrack/linuxproc\n\
             TaskPlugin=task/none\n\
             SelectType=select/cons_tres\n\
             SelectTypeParameters=CR_CPU\n\
             SchedulerType=sched/builtin\n\
             AccountingStorageType=accounting_storage/none\n\
             JobAcctGatherType=jobacct_gather/none\n\
             JobCompType=jobcomp/none\n\
             MpiDefault=none\n\
             ReturnToService=2\n\
             SlurmdParameters=config_overrides\n\
             KillWait=2\n\
             InactiveLimit=0\n\
             MinJobAge=600\n\
             MessageTimeout=10\n\
             MailProg=/bin/true\n",
            suffix = first_job_id,
            ctld = ports[0],
            slurmd = ports[1],
            sock = self.munge_socket().display(),
        );
        for (i, n) in self.nodes.iter().enumerate() {
            s += &format!(
                "NodeName={n} NodeAddr=127.0.0.1 Port={} CPUs={} State=UNKNOWN\n",
                ports[1 + i],
                self.cpus_per_node
            );
        }
        s += "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n";
        s
    }

    fn write_wrappers(&self) {
        let exports: String = self.job_env().iter().map(|(k, v)| format!("export {k}={}\n", shell_quote(v))).collect();
        for c in CLIENTS {
            let real = find_program(c).expect("checked by missing_programs");
            let path = self.bin_dir().join(c);
            let text = format!("#!/bin/sh\n{exports}exec {} \"$@\"\n", shell_quote(&real.to_string_lossy()));
            std::fs::write(&path, text).expect("wrapper");
            set_mode(&path, 0o755);
        }
    }

    fn daemon(&self, name: &str, program: &str, args: &[&str]) -> Guard {
        let out = std::fs::File::create(self.dir().join(format!("{name}.out"))).expect("daemon output file");
        let mut cmd = Command::new(find_program(program).expect("checked by missing_programs"));
        cmd.args(args).envs(self.job_env()).stdin(Stdio::null()).stdout(out.try_clone().expect("dup")).stderr(out);
        Guard::spawn(name, &mut cmd)
    }

    fn start_munged(&mut self) {
        let d = self.dir().to_path_buf();
        let key = format!("--key-file={}", d.join("munge-key/munge.key").display());
        let sock = format!("--socket={}", self.munge_socket().display());
        let pid = format!("--pid-file={}", d.join("munge/munged.pid").display());
        let log = format!("--log-file={}", d.join("munged.log").display());
        let seed = format!("--seed-file={}", d.join("munge/munged.seed").display());
        let g = self.daemon("munged", "munged", &["--foreground", "--force", &key, &sock, &pid, &log, &seed]);
        self.munged = Some(g);
        let sock = self.munge_socket();
        self.wait_alive("munged to accept connections", |_| std::os::unix::net::UnixStream::connect(&sock).is_ok());
    }

    fn start_slurmctld(&mut self) {
        let conf = self.conf.to_string_lossy().into_owned();
        self.slurmctld = Some(self.daemon("slurmctld", "slurmctld", &["-D", "-i", "-f", &conf]));
        self.wait_alive("slurmctld to answer `scontrol ping`", |s| {
            let out = s.run("scontrol", &["ping"]);
            out.success() && out.stdout.contains("UP")
        });
    }

    fn start_slurmds(&mut self) {
        let conf = self.conf.to_string_lossy().into_owned();
        for n in self.nodes.clone() {
            let g = self.daemon(&format!("slurmd-{n}"), "slurmd", &["-D", "-N", &n, "-f", &conf]);
            self.slurmds.push(g);
        }
    }

    fn wait_nodes_idle(&mut self) {
        let want = self.nodes.len();
        self.wait_alive("every node to be idle in `sinfo`", |s| {
            let out = s.run("sinfo", &["-h", "-N", "-o", "%N %T"]);
            out.success() && out.stdout.lines().filter(|l| l.trim_end().ends_with(" idle")).count() == want
        });
    }

    /// Wait for `ready`, failing at once (with the logs) if a daemon exits meanwhile.
    fn wait_alive(&mut self, what: &str, mut ready: impl FnMut(&LocalSlurm) -> bool) {
        let deadline = Instant::now() + START_TIMEOUT;
        let mut pause = Duration::from_millis(10);
        loop {
            if ready(self) {
                return;
            }
            let dead: Vec<String> = self
                .munged
                .iter_mut()
                .chain(self.slurmctld.iter_mut())
                .chain(self.slurmds.iter_mut())
                .filter_map(|g| (!g.is_running()).then(|| g.name.clone()))
                .collect();
            let outs: String =
                dead.iter().map(|n| format!("--- {n}.out\n{}\n", tail(&self.dir().join(format!("{n}.out"))))).collect();
            assert!(dead.is_empty(), "{} exited while waiting for {what}\n{outs}{}", dead.join(", "), self.logs());
            assert!(Instant::now() < deadline, "timed out after {START_TIMEOUT:?} waiting for {what}\n{}", self.logs());
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(250));
        }
    }
}

impl Drop for LocalSlurm {
    fn drop(&mut self) {
        // The daemons first, so nothing new starts; then every process of this instance (job
        // steps, their tasks, slurmstepd, slurmscriptd), found by SLURM_CONF; then munged.
        for g in self.slurmds.iter_mut().chain(self.slurmctld.iter_mut()) {
            g.kill();
        }
        kill_instance_processes(&self.conf);
        if let Some(g) = self.munged.as_mut() {
            g.kill();
        }
        kill_instance_processes(&self.conf);
    }
}

/// SIGKILL every process whose environment has `SLURM_CONF=<conf>`, until none is left (bounded).
fn kill_instance_processes(conf: &Path) {
    let needle = format!("SLURM_CONF={}", conf.display()).into_bytes();
    let me = std::process::id() as i32;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut found = 0;
        for pid in all_pids() {
            if pid == me {
                continue;
            }
            let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else { continue };
            if env.split(|b| *b == 0).any(|kv| kv == needle.as_slice()) {
                found += 1;
                // SAFETY: signalling a process of this test instance (matched by its environment).
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        if found == 0 || Instant::now() >= deadline {
            if found > 0 {
                eprintln!("warning: {found} processes of {} survived SIGKILL for 10 s", conf.display());
            }
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Remove instances whose owning test process is gone (a crashed run), with their processes.
fn sweep_stale_instances() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with(DIR_PREFIX) {
            continue;
        }
        let dir = e.path();
        let Ok(owner) = std::fs::read_to_string(dir.join("owner")) else { continue };
        let pid = owner.split_whitespace().next().and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|p| owner_stamp(p) == owner) {
            continue; // its owner still runs
        }
        eprintln!("removing a stale test Slurm left by a dead test process: {}", dir.display());
        kill_instance_processes(&dir.join("slurm.conf"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// `pid starttime` of a process (empty if it does not exist), so a reused pid is not mistaken for it.
fn owner_stamp(pid: u32) -> String {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return String::new() };
    // Field 22 (starttime) counts from 1; fields after the command name start at field 3.
    let start = stat.rfind(')').and_then(|i| stat[i + 2..].split_whitespace().nth(19)).unwrap_or("");
    format!("{pid} {start}")
}

fn all_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .map(|d| d.flatten().filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok())).collect())
        .unwrap_or_default()
}

/// `n` distinct TCP ports free on every address now, below the usual ephemeral range.
fn free_ports(n: usize) -> Vec<u16> {
    let mut ports: Vec<u16> = vec![];
    for _ in 0..1000 {
        if ports.len() == n {
            break;
        }
        let mut b = [0u8; 2];
        getrandom::getrandom(&mut b).expect("random");
        let port = 20_000 + u16::from_le_bytes(b) % 12_000;
        if !ports.contains(&port) && std::net::TcpListener::bind(("0.0.0.0", port)).is_ok() {
            ports.push(port);
        }
    }
    assert_eq!(ports.len(), n, "no {n} free ports found");
    ports
}

fn short_hostname() -> String {
    let h = strand::host::hostname();
    h.split('.').next().unwrap_or(&h).to_string()
}

fn user_name() -> String {
    // SAFETY: geteuid has no preconditions; getpwuid returns a pointer into static storage or null.
    let pw = unsafe { libc::getpwuid(libc::geteuid()) };
    if pw.is_null() {
        return "root".into();
    }
    // SAFETY: pw_name of a non-null passwd entry is a NUL-terminated string.
    unsafe { std::ffi::CStr::from_ptr((*pw).pw_name) }.to_string_lossy().into_owned()
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}
