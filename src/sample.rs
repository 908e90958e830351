//! Resource samples: what running tries and their nodes use, read from `/proc` at an interval
//! by the ranks that run them and carried to the run database in batches.
//!
//! A try's sample covers its process and every live descendant (found through
//! `/proc/PID/task/TID/children`), plus the CPU time of descendants already reaped: what a
//! command's whole process tree has used so far. A node's sample is its load and memory.

use crate::task::TryId;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// Most processes walked in one try's tree: a fork bomb must not make a sample unbounded.
const MAX_PROCESSES: usize = 4096;

/// What one running try used at one moment.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrySample {
    /// The try.
    pub id: TryId,
    /// When, in microseconds since the Unix epoch.
    pub t_us: u64,
    /// What its process tree used.
    pub usage: TreeUsage,
}

/// The use of one process tree at one moment.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TreeUsage {
    /// User plus system CPU time so far, in microseconds: the live processes' own and that of
    /// the descendants they have reaped.
    pub cpu_us: u64,
    /// Resident memory summed over the live processes, in KiB (shared pages count once per
    /// process, as `ps` shows them).
    pub rss_kib: u64,
    /// How many live processes (the root included).
    pub processes: u32,
}

/// A node's load and memory at one moment.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct NodeSample {
    /// The node, as its batch system names it ([`crate::host::node_name`]).
    pub host: String,
    /// When, in microseconds since the Unix epoch.
    pub t_us: u64,
    /// The one-minute load average.
    pub load1: f32,
    /// CPUs online.
    pub cpus: u32,
    /// Memory in all, in KiB.
    pub mem_total_kib: u64,
    /// Memory available to new work without swapping (`MemAvailable`), in KiB.
    pub mem_available_kib: u64,
}

/// A batch of samples, as a worker sends it to its manager and a manager to the interchange.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Samples {
    /// Running tries.
    pub tries: Vec<TrySample>,
    /// Nodes, at most one per host (the latest).
    pub nodes: Vec<NodeSample>,
}

impl Samples {
    /// Whether there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.tries.is_empty() && self.nodes.is_empty()
    }

    /// Add `other`'s samples; a node seen again keeps only its later sample, since the ranks of
    /// one node all report it.
    pub fn merge(&mut self, other: Samples) {
        self.tries.extend(other.tries);
        for n in other.nodes {
            match self.nodes.iter_mut().find(|m| m.host == n.host) {
                Some(m) if m.t_us <= n.t_us => *m = n,
                Some(_) => {}
                None => self.nodes.push(n),
            }
        }
    }
}

/// The use of `pid`'s process tree now; `None` when `pid` is gone (or `/proc` is unreadable).
pub fn process_tree(pid: i32) -> Option<TreeUsage> {
    let ticks = Ticks::of_system();
    let root = read_stat(pid, &ticks)?;
    let mut total = TreeUsage { cpu_us: root.cpu_us, rss_kib: root.rss_kib, processes: 1 };
    let mut seen: HashSet<i32> = HashSet::from([pid]);
    let mut next = children(pid);
    while let Some(child) = next.pop() {
        if seen.len() >= MAX_PROCESSES || !seen.insert(child) {
            continue;
        }
        // A child that exited since its parent's list was read is simply not counted.
        if let Some(u) = read_stat(child, &ticks) {
            total.cpu_us += u.cpu_us;
            total.rss_kib += u.rss_kib;
            total.processes += 1;
            next.extend(children(child));
        }
    }
    Some(total)
}

/// This node's sample now, named `host`; `None` where `/proc` does not say.
pub fn node(host: &str, t_us: u64) -> Option<NodeSample> {
    let loadavg = std::fs::read_to_string("/proc/loadavg").ok()?;
    let load1 = loadavg.split_whitespace().next()?.parse().ok()?;
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |name: &str| {
        meminfo.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':')?.split_whitespace().next()?.parse().ok())
    };
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get() as u32);
    Some(NodeSample {
        host: host.to_string(),
        t_us,
        load1,
        cpus,
        mem_total_kib: field("MemTotal")?,
        mem_available_kib: field("MemAvailable")?,
    })
}

/// The kernel's units: clock ticks per second and page size.
struct Ticks {
    per_second: u64,
    page_kib: u64,
}

impl Ticks {
    fn of_system() -> Ticks {
        // SAFETY: sysconf takes no pointers.
        let (hz, page) = unsafe { (libc::sysconf(libc::_SC_CLK_TCK), libc::sysconf(libc::_SC_PAGESIZE)) };
        Ticks {
            per_second: u64::try_from(hz).unwrap_or(100).max(1),
            page_kib: (u64::try_from(page).unwrap_or(4096) / 1024).max(1),
        }
    }
}

/// One process's own CPU time (with its reaped children's) and resident memory.
fn read_stat(pid: i32, ticks: &Ticks) -> Option<TreeUsage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat, ticks)
}

/// Parse `/proc/PID/stat`. The command name (field 2) may hold spaces and parentheses, so the
/// fields are counted from the last `)`: utime, stime, cutime, cstime are fields 14-17 and rss
/// (in pages) field 24.
fn parse_stat(stat: &str, ticks: &Ticks) -> Option<TreeUsage> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|s| s.parse::<u64>().ok());
    // Field n is at index n - 3 here (the pid and the name are before the `)`).
    let cpu_ticks = num(11)? + num(12)? + num(13)? + num(14)?;
    let rss_pages = f.get(21)?.parse::<i64>().ok()?.max(0) as u64;
    Some(TreeUsage {
        cpu_us: cpu_ticks.saturating_mul(1_000_000) / ticks.per_second,
        rss_kib: rss_pages * ticks.page_kib,
        processes: 1,
    })
}

/// The live children of every thread of `pid` (empty where the kernel lacks the `children`
/// files, `CONFIG_PROC_CHILDREN`: the tree is then the root alone).
fn children(pid: i32) -> Vec<i32> {
    let Ok(threads) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return vec![] };
    let mut out = vec![];
    for t in threads.flatten() {
        if let Ok(list) = std::fs::read_to_string(t.path().join("children")) {
            out.extend(list.split_whitespace().filter_map(|p| p.parse::<i32>().ok()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{ClientId, TaskId};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    #[test]
    fn stat_fields_count_from_the_last_parenthesis() {
        let ticks = Ticks { per_second: 100, page_kib: 4 };
        // A command name with a space and a `)` in it; utime 150, stime 50, cutime 20,
        // cstime 30 ticks, rss 256 pages.
        let stat = "42 (a) b) S 1 42 42 0 -1 4194560 100 0 0 0 150 50 20 30 20 0 1 0 123 10000 256 rest";
        let u = parse_stat(stat, &ticks).expect("parsed");
        assert_eq!(u, TreeUsage { cpu_us: 2_500_000, rss_kib: 1024, processes: 1 });
        assert_eq!(parse_stat("42 (truncated", &ticks), None);
    }

    #[test]
    fn a_tree_counts_its_live_descendants() {
        // sh, and two sleeps it waits for: three live processes.
        let mut child = Command::new("sh")
            .args(["-c", "sleep 30 & sleep 30 & echo started; wait"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn sh");
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().expect("stdout")), &mut line)
            .expect("read");
        let pid = child.id() as i32;
        // Both sleeps are forked before the echo; exec'ing `sleep` may lag its fork.
        let t = Instant::now();
        let usage = loop {
            let u = process_tree(pid).expect("sh is alive");
            if u.processes == 3 || t.elapsed() > Duration::from_secs(10) {
                break u;
            }
            std::thread::yield_now();
        };
        // SAFETY: kill(2) on our own child's group-less processes, by pid.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let _ = child.wait();
        assert_eq!(usage.processes, 3, "{usage:?}");
        assert!(usage.rss_kib > 0, "{usage:?}");
        assert_eq!(process_tree(pid), None, "a reaped process has no sample");
    }

    #[test]
    fn a_node_sample_reads_load_and_memory() {
        let n = node("here", 7).expect("/proc/loadavg and /proc/meminfo");
        assert_eq!((n.host.as_str(), n.t_us), ("here", 7));
        assert!(n.mem_total_kib > 0 && n.mem_available_kib <= n.mem_total_kib, "{n:?}");
        assert!(n.cpus > 0 && n.load1 >= 0.0, "{n:?}");
    }

    #[test]
    fn a_node_seen_again_keeps_its_latest_sample() {
        let node = |host: &str, t_us| NodeSample {
            host: host.into(),
            t_us,
            load1: t_us as f32,
            cpus: 1,
            mem_total_kib: 1,
            mem_available_kib: 1,
        };
        let id = TryId { client: ClientId(1), task: TaskId(2), attempt: 0 };
        let one = TrySample { id, t_us: 1, usage: TreeUsage::default() };
        let mut s = Samples { tries: vec![one], nodes: vec![node("a", 5), node("b", 5)] };
        s.merge(Samples { tries: vec![one], nodes: vec![node("a", 9), node("b", 3), node("c", 1)] });
        assert_eq!(s.tries.len(), 2);
        let seen: Vec<(&str, u64)> = s.nodes.iter().map(|n| (n.host.as_str(), n.t_us)).collect();
        assert_eq!(seen, [("a", 9), ("b", 5), ("c", 1)]);
        assert!(!s.is_empty() && Samples::default().is_empty());
    }
}
