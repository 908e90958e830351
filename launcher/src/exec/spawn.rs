//! Starting a command's process: `posix_spawn` with an environment made once per slot.
//!
//! `std::process::Command` copies the whole environment into a map and back into C strings for
//! every spawn once any variable is changed, and every task's is (`STRAND_SLOT`, the launcher
//! rank's MPI variables taken out): on a worker rank under `mpirun` that was a third of the
//! slot thread's CPU per `/bin/true`. Here the C strings of the task environment are made once
//! per slot thread and again only when a task brings other variables of its own. Commands that
//! need what `posix_spawn` cannot do (a CPU affinity set before exec, a `PATH` of their own to
//! search) still start through `Command`.

use std::cell::RefCell;
use std::ffi::{CStr, CString, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::process::Child;
use std::sync::OnceLock;

/// A started command: its pid (also its process group id) and our ends of its output pipes.
pub struct Process {
    /// The child's pid.
    pub pid: i32,
    /// Read end of its stdout pipe (`None`: it writes to a file).
    pub stdout: Option<OwnedFd>,
    /// Read end of its stderr pipe (`None`: it writes to a file).
    pub stderr: Option<OwnedFd>,
}

impl From<Child> for Process {
    fn from(mut c: Child) -> Process {
        // Dropping a Child neither waits for nor kills it: the pid is reaped by the caller.
        Process {
            pid: c.id() as i32,
            stdout: c.stdout.take().map(OwnedFd::from),
            stderr: c.stderr.take().map(OwnedFd::from),
        }
    }
}

/// Where a child's stdout or stderr goes.
pub enum Output {
    /// A new pipe, read by the supervisor.
    Pipe,
    /// An open file.
    File(OwnedFd),
}

/// What to start: the words of its command line, its directory, the variables it adds to the
/// task environment, its outputs. All names are checked by the caller.
pub struct Spawn<'a> {
    /// The program (a path, or a name searched on `PATH`) and its arguments.
    pub argv: &'a [String],
    /// Its working directory (`None`: the launcher's).
    pub cwd: Option<&'a str>,
    /// Variables set on top of the task environment, in order (a later one wins).
    pub env: &'a [(String, String)],
    /// Its stdout.
    pub stdout: Output,
    /// Its stderr.
    pub stderr: Output,
}

/// The environment every task starts from: this process's, without the launcher rank's MPI
/// runtime variables, with the one-rank MPI variables; read at the first spawn (the launcher
/// sets the one-rank variables before it runs any task, and never changes its environment).
fn base_env() -> &'static [(OsString, OsString)] {
    static BASE: OnceLock<Vec<(OsString, OsString)>> = OnceLock::new();
    BASE.get_or_init(|| {
        let runtime = crate::task_mpi::runtime_vars();
        let one_rank = crate::task_mpi::one_rank_env();
        let mut vars: Vec<(OsString, OsString)> = std::env::vars_os()
            .filter(|(k, _)| !runtime.contains(k) && !one_rank.iter().any(|(n, _)| k.as_os_str() == n.as_str()))
            .collect();
        vars.extend(one_rank.iter().map(|(k, v)| (OsString::from(k), OsString::from(v))));
        vars
    })
}

/// An environment as `execve` takes it: `NAME=value` strings and the null-terminated array of
/// pointers into them.
struct Envp {
    /// The task's own variables this was made with (the cache key).
    extra: Vec<(String, String)>,
    /// Owned here for `pointers`, which point into them.
    _strings: Vec<CString>,
    pointers: Vec<*mut libc::c_char>,
}

impl Envp {
    fn new(extra: &[(String, String)]) -> io::Result<Envp> {
        let mut strings = Vec::with_capacity(base_env().len() + extra.len());
        for (k, v) in base_env() {
            // A later task variable of the same name replaces this one.
            if extra.iter().any(|(n, _)| k.as_os_str() == n.as_str()) {
                continue;
            }
            let mut kv = k.clone().into_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_encoded_bytes());
            strings.push(c_string(kv)?);
        }
        for (i, (k, v)) in extra.iter().enumerate() {
            if extra[i + 1..].iter().any(|(n, _)| n == k) {
                continue;
            }
            strings.push(c_string(format!("{k}={v}").into_bytes())?);
        }
        let mut pointers: Vec<*mut libc::c_char> = strings.iter().map(|s| s.as_ptr().cast_mut()).collect();
        pointers.push(std::ptr::null_mut());
        Ok(Envp { extra: extra.to_vec(), _strings: strings, pointers })
    }
}

thread_local! {
    /// This slot thread's last environment: its tries usually add the same variables (its
    /// `STRAND_SLOT`), so it is made once.
    static LAST_ENVP: RefCell<Option<Envp>> = const { RefCell::new(None) };
}

fn c_string(bytes: Vec<u8>) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "nul byte found in provided data"))
}

/// `rc` (a posix_spawn return value, 0 or an errno) as a result.
fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

/// A pipe whose both ends close on exec (the child's copy is made by dup2, which clears it).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: a valid array of two ints for the kernel to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just opened and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The posix_spawn attributes and file actions of one spawn, destroyed on drop.
struct Plan {
    attr: libc::posix_spawnattr_t,
    actions: libc::posix_spawn_file_actions_t,
}

impl Plan {
    fn new() -> io::Result<Box<Plan>> {
        // SAFETY: both are plain C structs that their init functions fill; they are boxed so
        // that they never move after init (glibc keeps no pointers into them, but POSIX
        // does not promise that).
        let mut p: Box<Plan> = Box::new(unsafe { std::mem::zeroed() });
        check(unsafe { libc::posix_spawnattr_init(&mut p.attr) })?;
        if let Err(e) = check(unsafe { libc::posix_spawn_file_actions_init(&mut p.actions) }) {
            unsafe { libc::posix_spawnattr_destroy(&mut p.attr) };
            return Err(e);
        }
        Ok(p)
    }
}

impl Drop for Plan {
    fn drop(&mut self) {
        // SAFETY: both were initialised in Plan::new.
        unsafe {
            libc::posix_spawn_file_actions_destroy(&mut self.actions);
            libc::posix_spawnattr_destroy(&mut self.attr);
        }
    }
}

type AddChdir = unsafe extern "C" fn(*mut libc::posix_spawn_file_actions_t, *const libc::c_char) -> libc::c_int;

/// glibc's `posix_spawn_file_actions_addchdir_np` (2.29 and later), looked up when first needed
/// rather than linked, so that the launcher still builds and runs with an older C library.
fn addchdir() -> Option<AddChdir> {
    static ADDCHDIR: OnceLock<Option<AddChdir>> = OnceLock::new();
    *ADDCHDIR.get_or_init(|| {
        // SAFETY: dlsym with RTLD_DEFAULT and a C string; a non-null result is that function,
        // whose C signature AddChdir is.
        let f = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"posix_spawn_file_actions_addchdir_np".as_ptr()) };
        (!f.is_null()).then(|| unsafe { std::mem::transmute::<*mut libc::c_void, AddChdir>(f) })
    })
}

/// Whether [`spawn`] can start a command in a directory of its own here.
pub fn sets_directories() -> bool {
    addchdir().is_some()
}

/// Start `s`: its own process group, stdin from /dev/null, default signal handling and an
/// empty signal mask, the task environment plus its variables. Errors are the spawn's own
/// (a missing program is ENOENT, a missing directory too; the caller says which).
pub fn spawn(s: &Spawn) -> io::Result<Process> {
    if s.argv.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty argv"));
    }
    let argv: Vec<CString> = s.argv.iter().map(|a| c_string(a.clone().into_bytes())).collect::<io::Result<_>>()?;
    let mut argv_ptrs: Vec<*mut libc::c_char> = argv.iter().map(|a| a.as_ptr().cast_mut()).collect();
    argv_ptrs.push(std::ptr::null_mut());
    let cwd = s.cwd.map(|d| c_string(d.as_bytes().to_vec())).transpose()?;
    let devnull = c"/dev/null";
    let mut plan = Plan::new()?;
    let attr: *mut libc::posix_spawnattr_t = &mut plan.attr;
    let actions: *mut libc::posix_spawn_file_actions_t = &mut plan.actions;
    let (out_read, out_write) = ends(&s.stdout)?;
    let (err_read, err_write) = ends(&s.stderr)?;
    // SAFETY: `attr` and `actions` are initialised and outlive the spawn; every pointer
    // handed over points into a live CString or descriptor owned above.
    unsafe {
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        let mut pipe_default: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut pipe_default);
        // Rust ignores SIGPIPE in this process, and an ignored signal stays ignored across exec.
        libc::sigaddset(&mut pipe_default, libc::SIGPIPE);
        check(libc::posix_spawnattr_setsigmask(attr, &none))?;
        check(libc::posix_spawnattr_setsigdefault(attr, &pipe_default))?;
        check(libc::posix_spawnattr_setpgroup(attr, 0))?;
        let flags = libc::POSIX_SPAWN_SETPGROUP | libc::POSIX_SPAWN_SETSIGMASK | libc::POSIX_SPAWN_SETSIGDEF;
        check(libc::posix_spawnattr_setflags(attr, flags as libc::c_short))?;
        check(libc::posix_spawn_file_actions_addopen(actions, 0, devnull.as_ptr(), libc::O_RDONLY, 0))?;
        check(libc::posix_spawn_file_actions_adddup2(actions, out_write.as_raw_fd(), 1))?;
        check(libc::posix_spawn_file_actions_adddup2(actions, err_write.as_raw_fd(), 2))?;
        if let Some(d) = &cwd {
            let Some(addchdir) = addchdir() else {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "this C library cannot set a spawn's directory",
                ));
            };
            check(addchdir(actions, d.as_ptr()))?;
        }
    }
    let mut pid: libc::pid_t = 0;
    let rc = LAST_ENVP.with(|last| -> io::Result<libc::c_int> {
        let mut last = last.borrow_mut();
        if last.as_ref().is_none_or(|e| e.extra != s.env) {
            *last = Some(Envp::new(s.env)?);
        }
        let envp = last.as_ref().map_or(std::ptr::null(), |e| e.pointers.as_ptr());
        let program: &CStr = &argv[0];
        // SAFETY: as above; `envp` and `argv_ptrs` are null-terminated arrays of pointers
        // into live CStrings. posix_spawnp searches PATH only for a name without a slash.
        Ok(unsafe { libc::posix_spawnp(&mut pid, program.as_ptr(), actions, attr, argv_ptrs.as_ptr(), envp) })
    })?;
    check(rc)?;
    // Our copies of the child's ends close here (dropped), so end of file means it closed them.
    drop((out_write, err_write));
    Ok(Process { pid, stdout: out_read, stderr: err_read })
}

/// Our end (for a pipe) and the child's end of one output.
fn ends(o: &Output) -> io::Result<(Option<OwnedFd>, OwnedFd)> {
    match o {
        Output::Pipe => pipe().map(|(r, w)| (Some(r), w)),
        Output::File(f) => Ok((None, f.try_clone()?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Run `script` under /bin/sh through [`spawn`] with `env`; its stdout, once it exited 0.
    fn run(script: &str, env: &[(&str, &str)]) -> String {
        run_argv(&["/bin/sh", "-c", script], env)
    }

    fn run_argv(argv: &[&str], env: &[(&str, &str)]) -> String {
        let argv: Vec<String> = argv.iter().map(|a| a.to_string()).collect();
        let script = argv.join(" ");
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let s = Spawn { argv: &argv, cwd: None, env: &env, stdout: Output::Pipe, stderr: Output::Pipe };
        let mut p = spawn(&s).expect("spawn");
        let mut out = String::new();
        std::fs::File::from(p.stdout.take().expect("a stdout pipe")).read_to_string(&mut out).expect("read");
        let mut status = 0;
        // SAFETY: our child, not reaped yet.
        assert_eq!(unsafe { libc::waitpid(p.pid, &mut status, 0) }, p.pid);
        assert_eq!(status, 0, "{script}: {out}");
        out
    }

    #[test]
    fn children_get_their_own_group_no_stdin_and_default_signals() {
        let out = run("echo $$; cut -d' ' -f5 /proc/$$/stat; wc -c", &[]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], lines[1], "its own process group: {out}");
        assert_eq!(lines[2].trim(), "0", "stdin is /dev/null: {out}");
        // The program's own signal state, with no shell between (a shell changes its mask).
        let out = run_argv(&["/bin/grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"], &[]);
        let lines: Vec<&str> = out.lines().collect();
        let mask = |name: &str| {
            let l = lines.iter().find(|l| l.starts_with(name)).expect(name);
            u64::from_str_radix(l.split_whitespace().nth(1).expect("mask"), 16).expect("hex")
        };
        assert_eq!(mask("SigBlk:"), 0, "nothing blocked: {out}");
        // The test harness, like every Rust program, ignores SIGPIPE; the child must not.
        assert_eq!(mask("SigIgn:") & (1 << (libc::SIGPIPE - 1)), 0, "SIGPIPE back to default: {out}");
    }

    #[test]
    fn task_variables_override_the_environment_and_the_last_one_wins() {
        let home = std::env::var("HOME").unwrap_or_default();
        assert_eq!(run("echo $HOME", &[]).trim(), home);
        assert_eq!(run("echo $HOME", &[("HOME", "/elsewhere")]).trim(), "/elsewhere");
        let out = run("echo $A; env | grep -c '^A='", &[("A", "1"), ("B", "2"), ("A", "3")]);
        assert_eq!(out, "3\n1\n", "one A, the last");
        // The cached environment is not reused for other variables, nor kept after them.
        assert_eq!(run("echo ${B:-none}", &[("A", "1")]).trim(), "none");
        assert_eq!(run("echo ${A:-none}", &[]).trim(), "none");
    }

    #[test]
    fn bad_input_is_an_error_not_a_spawn() {
        let argv = ["/bin/ec\0ho".to_string()];
        let s = Spawn { argv: &argv, cwd: None, env: &[], stdout: Output::Pipe, stderr: Output::Pipe };
        assert_eq!(spawn(&s).err().map(|e| e.kind()), Some(io::ErrorKind::InvalidInput));
        let s = Spawn { argv: &[], cwd: None, env: &[], stdout: Output::Pipe, stderr: Output::Pipe };
        assert_eq!(spawn(&s).err().map(|e| e.kind()), Some(io::ErrorKind::InvalidInput));
        let argv = ["/no/such/program".to_string()];
        let s = Spawn { argv: &argv, cwd: None, env: &[], stdout: Output::Pipe, stderr: Output::Pipe };
        assert_eq!(spawn(&s).err().map(|e| e.kind()), Some(io::ErrorKind::NotFound));
    }
}
