//! Rank placement: which processing units (PUs) each launcher rank of a node is bound to.
//!
//! The plan ([`plan`]) is a pure function of a [`NodeTopology`] summary, the rank's place
//! among the launcher's ranks on its node, the process's current binding and a
//! [`BindPolicy`], so every policy is unit-tested without hwloc. Only [`read_node`] and
//! [`place`] touch hwloc: they read the topology, bind the whole process (every thread,
//! including MPI's own) and log one line. Children (task processes) inherit the binding.
//! Placement never aborts the launcher: anything hwloc cannot do is a warning, and the rank
//! runs unbound.

use hwlocality::cpu::binding::{CpuBindingError, CpuBindingFlags};
use hwlocality::cpu::cpuset::CpuSet;
use hwlocality::errors::HybridError;
use hwlocality::object::attributes::ObjectAttributes;
use hwlocality::object::types::{OSDeviceType, ObjectType};
use hwlocality::topology::builder::TypeFilter;
use hwlocality::Topology;
use slog::{info, warn, Logger};
use std::collections::BTreeSet;
use thiserror::Error;

/// How `--bind` places a rank (an option of the launcher, so it lives in the root crate).
pub use strand::launcher_options::BindPolicy;

/// One core: the OS indices of its PUs (hardware threads).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Core {
    /// OS indices of the core's PUs that this process may use.
    pub pus: Vec<u32>,
}

/// One NUMA domain that holds cores (memory-only domains such as HBM or CXL are left out).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NumaDomain {
    /// The domain's OS index (as in `numactl --hardware`).
    pub os_index: u32,
    /// Its cores, in topology order.
    pub cores: Vec<Core>,
}

/// A GPU (or co-processor) and the NUMA domains of its locality.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gpu {
    /// hwloc's name for it (`card0`, `cuda0`, `rsmi0`, ...).
    pub name: String,
    /// OS indices of the NUMA domains nearest to it (empty when hwloc does not know).
    pub numa: Vec<u32>,
}

/// What placement needs to know about a node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeTopology {
    /// NUMA domains with cores, in topology order.
    pub domains: Vec<NumaDomain>,
    /// GPUs and co-processors hwloc found.
    pub gpus: Vec<Gpu>,
}

/// This rank's place among the launcher's ranks on its node (from `MPI_Comm_split_type(SHARED)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeRank {
    /// Node-local rank, 0-based.
    pub index: u32,
    /// Launcher ranks on this node.
    pub count: u32,
}

/// Why a rank is left with the binding it has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaveReason {
    /// `--bind none`.
    PolicyNone,
    /// The process's cpuset is narrower than the node's: the MPI runtime (or `srun
    /// --cpu-bind`) already bound it, and it knows the allocation better than we do.
    AlreadyBound,
    /// More ranks than cores on the node under `auto`.
    Oversubscribed,
    /// The topology has no cores we may use (nothing to bind to).
    NoCores,
}

/// What placement decided for one rank.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Bind the process to these PU OS indices (sorted, not empty).
    Bind(Vec<u32>),
    /// Leave the binding as it is.
    Leave(LeaveReason),
}

/// The cores of the node in topology order, each with the position of its NUMA domain.
fn flat_cores(topo: &NodeTopology) -> Vec<(usize, &Core)> {
    topo.domains
        .iter()
        .enumerate()
        .flat_map(|(d, dom)| dom.cores.iter().filter(|c| !c.pus.is_empty()).map(move |c| (d, c)))
        .collect()
}

/// Every PU of the node that this process may use.
pub fn all_pus(topo: &NodeTopology) -> BTreeSet<u32> {
    flat_cores(topo).into_iter().flat_map(|(_, c)| c.pus.iter().copied()).collect()
}

/// Decide the cpuset of node-local rank `rank` under `policy`, given the PUs the process is
/// bound to now (`current`). Never fails: odd inputs (an index past the count, a count of 0)
/// are folded into range, and ranks beyond the cores share them round-robin.
pub fn plan(topo: &NodeTopology, current: &BTreeSet<u32>, rank: NodeRank, policy: BindPolicy) -> Plan {
    let cores = flat_cores(topo);
    let count = rank.count.max(1) as usize;
    let index = rank.index as usize % count;
    if policy == BindPolicy::None {
        return Plan::Leave(LeaveReason::PolicyNone);
    }
    if cores.is_empty() {
        return Plan::Leave(LeaveReason::NoCores);
    }
    let pick = |chosen: &[usize]| {
        let set: BTreeSet<u32> = chosen.iter().flat_map(|&i| cores[i].1.pus.iter().copied()).collect();
        Plan::Bind(set.into_iter().collect())
    };
    match policy {
        BindPolicy::None => Plan::Leave(LeaveReason::PolicyNone),
        BindPolicy::Core => pick(&[index % cores.len()]),
        BindPolicy::Numa => {
            let domains = domains_with_cores(&cores);
            let chosen: Vec<usize> = spread(domains.len(), count, index).flat_map(|d| domains[d].clone()).collect();
            pick(&chosen)
        }
        BindPolicy::Auto => {
            // Anything the process may not use, among the node's PUs, means someone bound it.
            if !all_pus(topo).is_subset(current) {
                return Plan::Leave(LeaveReason::AlreadyBound);
            }
            if count > cores.len() {
                return Plan::Leave(LeaveReason::Oversubscribed);
            }
            pick(&even_shares(&cores, count)[index])
        }
    }
}

/// Core positions (into the flat list) of each NUMA domain that has cores, in order.
fn domains_with_cores(cores: &[(usize, &Core)]) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = vec![];
    let mut last = None;
    for (i, (d, _)) in cores.iter().enumerate() {
        if last != Some(*d) {
            out.push(vec![]);
            last = Some(*d);
        }
        if let Some(v) = out.last_mut() {
            v.push(i);
        }
    }
    out
}

/// The items of `n` that part `index` of `parts` gets: a contiguous range; every item goes to
/// some part when parts <= n, and when parts > n, part i gets item i * n / parts (each item
/// shared by consecutive parts, so neighbouring ranks stay together).
fn spread(n: usize, parts: usize, index: usize) -> std::ops::Range<usize> {
    let lo = index * n / parts;
    let hi = ((index + 1) * n / parts).max(lo + 1).min(n.max(1));
    lo..hi
}

/// Core positions of each of `count` ranks (count <= cores): an even, contiguous split,
/// replaced by a NUMA-aligned one when that is just as even.
fn even_shares(cores: &[(usize, &Core)], count: usize) -> Vec<Vec<usize>> {
    let flat: Vec<Vec<usize>> = (0..count).map(|i| spread(cores.len(), count, i).collect()).collect();
    let domains = domains_with_cores(cores);
    if domains.len() <= 1 {
        return flat;
    }
    let aligned = if count >= domains.len() {
        aligned_within_domains(&domains, count)
    } else {
        // Fewer ranks than domains: each rank takes whole domains.
        Some((0..count).map(|i| spread(domains.len(), count, i).flat_map(|d| domains[d].clone()).collect()).collect())
    };
    match aligned {
        Some(a) if unevenness(&a) <= unevenness(&flat) => a,
        _ => flat,
    }
}

/// Ranks given to domains in proportion to their cores (largest remainder), each domain's
/// cores split evenly among its ranks; `None` when some domain would get no rank (its cores
/// would sit idle) or more ranks than cores.
fn aligned_within_domains(domains: &[Vec<usize>], count: usize) -> Option<Vec<Vec<usize>>> {
    let total: usize = domains.iter().map(Vec::len).sum();
    let mut ranks: Vec<usize> = domains.iter().map(|d| count * d.len() / total).collect();
    let mut by_remainder: Vec<usize> = (0..domains.len()).collect();
    // Largest fractional part first; ties to the earlier domain, so the result is deterministic.
    by_remainder.sort_by_key(|&d| (std::cmp::Reverse(count * domains[d].len() % total), d));
    let mut left = count - ranks.iter().sum::<usize>();
    for &d in by_remainder.iter().cycle().take(domains.len() * 2) {
        if left == 0 {
            break;
        }
        ranks[d] += 1;
        left -= 1;
    }
    if left != 0 || ranks.iter().zip(domains).any(|(&r, d)| r == 0 || r > d.len()) {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    for (d, &r) in domains.iter().zip(&ranks) {
        for j in 0..r {
            out.push(spread(d.len(), r, j).map(|k| d[k]).collect());
        }
    }
    Some(out)
}

/// Largest share minus smallest.
fn unevenness(shares: &[Vec<usize>]) -> usize {
    let max = shares.iter().map(Vec::len).max().unwrap_or(0);
    let min = shares.iter().map(Vec::len).min().unwrap_or(0);
    max - min
}

/// OS indices of the NUMA domains holding any of `pus`.
pub fn numa_of(topo: &NodeTopology, pus: &BTreeSet<u32>) -> Vec<u32> {
    topo.domains
        .iter()
        .filter(|d| d.cores.iter().any(|c| c.pus.iter().any(|p| pus.contains(p))))
        .map(|d| d.os_index)
        .collect()
}

/// Names of the GPUs near any of the NUMA domains `numa`.
pub fn gpus_near<'a>(topo: &'a NodeTopology, numa: &[u32]) -> Vec<&'a str> {
    topo.gpus.iter().filter(|g| g.numa.iter().any(|n| numa.contains(n))).map(|g| g.name.as_str()).collect()
}

/// A PU list in the kernel's `Cpus_allowed_list` form (`0-3,8,10-11`).
pub fn list_string<'a>(pus: impl IntoIterator<Item = &'a u32>) -> String {
    let sorted: BTreeSet<u32> = pus.into_iter().copied().collect();
    let mut out: Vec<String> = vec![];
    let mut run: Option<(u32, u32)> = None;
    for p in sorted {
        run = match run {
            Some((lo, hi)) if p == hi + 1 => Some((lo, p)),
            Some(r) => {
                out.push(range_string(r));
                Some((p, p))
            }
            None => Some((p, p)),
        };
    }
    if let Some(r) = run {
        out.push(range_string(r));
    }
    out.join(",")
}

/// Highest CPU index [`parse_list`] accepts: past any kernel's `NR_CPUS` (8192 today), so a
/// larger one is a typo, and a range like `0-4000000000` must not allocate gigabytes.
pub const MAX_CPU: u32 = (1 << 16) - 1;

/// Parse a kernel CPU list (`0-3,8,10-11`, the form [`list_string`] writes; spaces around
/// items are tolerated, an empty list is the empty set). `None` for anything else: a reversed
/// range, a stride (`0-7:2`), an index past [`MAX_CPU`].
pub fn parse_list(s: &str) -> Option<BTreeSet<u32>> {
    let mut out = BTreeSet::new();
    let s = s.trim();
    if s.is_empty() {
        return Some(out);
    }
    for part in s.split(',').map(str::trim) {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        // u32's parser alone would accept "+3"; the kernel never writes a sign.
        let num = |t: &str| t.bytes().all(|b| b.is_ascii_digit()).then(|| t.parse::<u32>().ok()).flatten();
        let (lo, hi) = (num(lo.trim())?, num(hi.trim())?);
        if lo > hi || hi > MAX_CPU {
            return None;
        }
        out.extend(lo..=hi);
    }
    Some(out)
}

/// Bits per word of a kernel CPU mask (an array of unsigned longs, the layout
/// `sched_setaffinity`/`sched_getaffinity` use whatever glibc's `cpu_set_t` size).
pub const MASK_WORD: usize = 8 * std::mem::size_of::<libc::c_ulong>();

/// `cpus` as a kernel CPU mask sized to the highest CPU rather than to glibc's fixed
/// 1024-CPU `cpu_set_t`; `None` for the empty set.
pub fn cpu_mask(cpus: &BTreeSet<u32>) -> Option<Vec<libc::c_ulong>> {
    let top = *cpus.last()? as usize;
    let mut mask: Vec<libc::c_ulong> = vec![0; top / MASK_WORD + 1];
    for &c in cpus {
        let c = c as usize;
        mask[c / MASK_WORD] |= 1 << (c % MASK_WORD);
    }
    Some(mask)
}

/// The CPUs set in a kernel CPU mask.
fn mask_cpus(mask: &[libc::c_ulong]) -> BTreeSet<u32> {
    (0..mask.len() * MASK_WORD)
        .filter(|&i| mask[i / MASK_WORD] & (1 << (i % MASK_WORD)) != 0)
        .filter_map(|i| u32::try_from(i).ok())
        .collect()
}

/// The CPUs this thread may run on (`sched_getaffinity`): the rank's binding when [`place`]
/// did not report one (`--bind none`, hwloc unusable). `None` if the kernel will not say.
pub fn current_cpus() -> Option<BTreeSet<u32>> {
    // Start at glibc's cpu_set_t size; a kernel built for more CPUs answers EINVAL, so grow.
    let mut words = 1024 / MASK_WORD;
    while words * MASK_WORD <= 1 << 20 {
        let mut mask: Vec<libc::c_ulong> = vec![0; words];
        let bytes = std::mem::size_of_val(mask.as_slice());
        // SAFETY: `mask` is a writable buffer of `bytes` bytes; glibc and the kernel treat the
        // pointer as an array of unsigned longs of that size, whatever cpu_set_t's own size.
        let rc = unsafe { libc::sched_getaffinity(0, bytes, mask.as_mut_ptr().cast::<libc::cpu_set_t>()) };
        if rc == 0 {
            let set = mask_cpus(&mask);
            return (!set.is_empty()).then_some(set);
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
            return None;
        }
        words *= 2;
    }
    None
}

fn range_string((lo, hi): (u32, u32)) -> String {
    if lo == hi {
        lo.to_string()
    } else {
        format!("{lo}-{hi}")
    }
}

/// Why hwloc could not read or bind.
#[derive(Debug, Error)]
pub enum PlacementError {
    /// hwloc could not load the node's topology.
    #[error("hwloc cannot load the topology: {0}")]
    Topology(#[from] hwlocality::errors::RawHwlocError),
    /// hwloc could not tell the process's current binding.
    #[error("hwloc cannot read the process's CPU binding: {0}")]
    GetBinding(#[source] HybridError<CpuBindingError>),
    /// hwloc could not bind the process.
    #[error("hwloc cannot bind the process to {cpuset}: {source}")]
    SetBinding {
        /// The planned cpuset, as a kernel CPU list.
        cpuset: String,
        /// hwloc's error.
        source: HybridError<CpuBindingError>,
    },
    /// A PU index hwloc itself cannot represent (never from a real topology).
    #[error("PU index {0} is out of hwloc's range")]
    BadIndex(u32),
}

/// Load the topology, with I/O devices when hwloc can find them (for GPU locality).
fn load_topology() -> Result<Topology, PlacementError> {
    let with_io = Topology::builder().with_io_type_filter(TypeFilter::KeepImportant).ok().map(|b| b.build());
    match with_io {
        Some(Ok(t)) => Ok(t),
        // I/O discovery can fail where PCI is hidden (some containers); cores matter more.
        _ => Ok(Topology::new()?),
    }
}

/// The OS indices set in a cpuset or nodeset, as u32 (indices past u32 cannot occur in hwloc).
fn indices(set: impl IntoIterator<Item = hwlocality::ffi::PositiveInt>) -> Vec<u32> {
    set.into_iter().filter_map(|i| u32::try_from(usize::from(i)).ok()).collect()
}

/// Summarize `topology` for [`plan`]: cores grouped by NUMA domain (only PUs this process may
/// use), and GPUs with the domains of their locality.
pub fn summarize(topology: &Topology) -> NodeTopology {
    let allowed = topology.allowed_cpuset().clone_target();
    let numa: Vec<(u32, CpuSet)> = topology
        .objects_with_type(ObjectType::NUMANode)
        .filter_map(|n| Some((u32::try_from(n.os_index()?).ok()?, n.cpuset()?.clone_target())))
        .collect();
    let mut domains: Vec<NumaDomain> = numa.iter().map(|(i, _)| NumaDomain { os_index: *i, cores: vec![] }).collect();
    let mut orphans: Vec<Core> = vec![];
    let mut units: Vec<CpuSet> =
        topology.objects_with_type(ObjectType::Core).filter_map(|c| Some(c.cpuset()?.clone_target())).collect();
    if units.is_empty() {
        // Some platforms report PUs without cores: each PU is then a core of its own.
        units = topology.objects_with_type(ObjectType::PU).filter_map(|p| Some(p.cpuset()?.clone_target())).collect();
    }
    for set in units {
        let usable = &set & &allowed;
        let core = Core { pus: indices(usable.iter_set()) };
        if core.pus.is_empty() {
            continue;
        }
        // The first domain (in OS order) whose locality covers the core: on nodes with DDR and
        // HBM domains of the same locality the cores go to the first, the other holds memory only.
        match numa.iter().position(|(_, ns)| ns.includes(&set)) {
            Some(d) => domains[d].cores.push(core),
            None => orphans.push(core),
        }
    }
    domains.retain(|d| !d.cores.is_empty());
    if !orphans.is_empty() {
        domains.push(NumaDomain { os_index: u32::MAX, cores: orphans });
    }
    let gpus = topology
        .objects_with_type(ObjectType::OSDevice)
        .filter(|o| {
            matches!(o.attributes(), Some(ObjectAttributes::OSDevice(a))
                if matches!(a.device_type(), OSDeviceType::GPU | OSDeviceType::CoProcessor))
        })
        .map(|o| Gpu {
            name: o.name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "?".into()),
            numa: o
                .first_non_io_ancestor()
                .and_then(|a| a.nodeset())
                .map(|ns| indices(ns.iter_set()))
                .unwrap_or_default(),
        })
        .collect();
    NodeTopology { domains, gpus }
}

/// The topology summary and the process's current binding, read from hwloc.
pub fn read_node() -> Result<(Topology, NodeTopology, BTreeSet<u32>), PlacementError> {
    let topology = load_topology()?;
    let node = summarize(&topology);
    let current = topology.cpu_binding(CpuBindingFlags::PROCESS).map_err(PlacementError::GetBinding)?;
    let current = indices(current.iter_set()).into_iter().collect();
    Ok((topology, node, current))
}

/// Bind every thread of this process to `pus`.
fn bind(topology: &Topology, pus: &[u32]) -> Result<(), PlacementError> {
    let mut set = CpuSet::new();
    for &p in pus {
        let i = hwlocality::ffi::PositiveInt::try_from(p as usize).map_err(|_| PlacementError::BadIndex(p))?;
        set.set(i);
    }
    topology
        .bind_cpu(&set, CpuBindingFlags::PROCESS)
        .map_err(|source| PlacementError::SetBinding { cpuset: list_string(pus), source })
}

/// What [`place`] did: the log line, and the cpuset a worker reports to its manager.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placed {
    /// The PUs this rank runs on now.
    pub pus: BTreeSet<u32>,
    /// Whether `place` changed the binding.
    pub bound: bool,
}

/// Read the node, plan this rank's cpuset under `policy`, bind the process, and log one line:
/// node-local rank, cpuset, NUMA domains, GPUs near it. `None` when hwloc could not be used
/// (warned; the rank runs as it was started).
pub fn place(policy: BindPolicy, rank: NodeRank, log: &Logger) -> Option<Placed> {
    if policy == BindPolicy::None {
        // Not even loading the topology: `none` must cost nothing and touch nothing.
        info!(log, "placement: left as started"; "why" => "--bind none", "node_ranks" => rank.count, "node_rank" => rank.index);
        return None;
    }
    let (topology, node, current) = match read_node() {
        Ok(r) => r,
        Err(e) => {
            warn!(log, "placement: running unbound"; "error" => %e);
            return None;
        }
    };
    let (pus, bound, why) = match plan(&node, &current, rank, policy) {
        Plan::Bind(pus) => match bind(&topology, &pus) {
            Ok(()) => (pus.into_iter().collect(), true, None),
            Err(e) => {
                warn!(log, "placement: running with the binding it had"; "error" => %e);
                (current, false, None)
            }
        },
        Plan::Leave(reason) => (current, false, Some(reason)),
    };
    let numa = numa_of(&node, &pus);
    let gpus = gpus_near(&node, &numa);
    let gpus = if gpus.is_empty() { "none".to_string() } else { gpus.join(",") };
    let (cpuset, numa) = (list_string(&pus), list_string(&numa));
    match why {
        None if bound => info!(log, "placement: bound";
            "gpus_near" => gpus, "numa" => numa, "cpuset" => cpuset,
            "bind" => ?policy, "node_ranks" => rank.count, "node_rank" => rank.index),
        _ => info!(log, "placement: left as started";
            "gpus_near" => gpus, "numa" => numa, "cpuset" => cpuset,
            "why" => why.map(|w| format!("{w:?}")).unwrap_or_else(|| "binding failed".into()),
            "bind" => ?policy, "node_ranks" => rank.count, "node_rank" => rank.index),
    }
    Some(Placed { pus, bound })
}

#[cfg(test)]
mod tests;
