use super::*;

#[test]
fn cpu_masks_have_the_kernels_layout() {
    assert_eq!(cpu_mask(&[0, 2, 3].into()), Some(vec![0b1101]));
    let wide = cpu_mask(&[1, MASK_WORD as u32 + 1, 3000].into()).expect("a mask");
    assert_eq!(wide.len(), 3000 / MASK_WORD + 1);
    assert_eq!((wide[0], wide[1]), (0b10, 0b10));
    assert_eq!(wide[3000 / MASK_WORD], 1 << (3000 % MASK_WORD));
    assert_eq!(mask_cpus(&wide), [1, MASK_WORD as u32 + 1, 3000].into());
    assert_eq!(cpu_mask(&Default::default()), None);
}

#[test]
fn this_process_has_an_affinity() {
    let mine = current_cpus().expect("sched_getaffinity works here");
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    let line = status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).expect("line");
    // This thread's mask; the test harness does not bind threads, so it is the process's.
    assert_eq!(Some(mine), parse_list(line));
}

/// `domains` NUMA domains of `cores` cores each, `smt` PUs per core, numbered like Linux
/// numbers them on x86 (first PU of every core, then the siblings).
fn node(domains: u32, cores: u32, smt: u32) -> NodeTopology {
    let total = domains * cores;
    NodeTopology {
        domains: (0..domains)
            .map(|d| NumaDomain {
                os_index: d,
                cores: (0..cores)
                    .map(|c| Core { pus: (0..smt).map(|t| t * total + d * cores + c).collect() })
                    .collect(),
            })
            .collect(),
        gpus: vec![],
    }
}

fn plan_all(topo: &NodeTopology, count: u32, policy: BindPolicy) -> Vec<Plan> {
    let current = all_pus(topo);
    (0..count).map(|index| plan(topo, &current, NodeRank { index, count }, policy)).collect()
}

fn bound(pus: &[u32]) -> Plan {
    Plan::Bind(pus.to_vec())
}

#[test]
fn even_shares_are_contiguous_and_cover_the_node() {
    let topo = node(1, 8, 1);
    assert_eq!(
        plan_all(&topo, 4, BindPolicy::Auto),
        vec![bound(&[0, 1]), bound(&[2, 3]), bound(&[4, 5]), bound(&[6, 7])]
    );
    assert_eq!(plan_all(&topo, 1, BindPolicy::Auto), vec![bound(&[0, 1, 2, 3, 4, 5, 6, 7])]);
}

#[test]
fn uneven_shares_differ_by_at_most_one_core() {
    let topo = node(1, 8, 1);
    let plans = plan_all(&topo, 3, BindPolicy::Auto);
    assert_eq!(plans, vec![bound(&[0, 1]), bound(&[2, 3, 4]), bound(&[5, 6, 7])]);
}

#[test]
fn hyperthreads_stay_with_their_core() {
    // 4 cores, 2 PUs each: PUs 0-3 and their siblings 4-7.
    let topo = node(1, 4, 2);
    assert_eq!(plan_all(&topo, 2, BindPolicy::Auto), vec![bound(&[0, 1, 4, 5]), bound(&[2, 3, 6, 7])]);
    assert_eq!(plan_all(&topo, 2, BindPolicy::Core), vec![bound(&[0, 4]), bound(&[1, 5])]);
}

#[test]
fn oversubscribed_core_binding_shares_cores_round_robin() {
    // The test machine: 3 ranks on 2 cores.
    let topo = node(1, 2, 1);
    assert_eq!(plan_all(&topo, 3, BindPolicy::Core), vec![bound(&[0]), bound(&[1]), bound(&[0])]);
    assert_eq!(plan_all(&topo, 5, BindPolicy::Core)[4], bound(&[0]));
}

#[test]
fn oversubscribed_auto_leaves_the_kernel_to_balance() {
    let topo = node(1, 2, 1);
    assert_eq!(plan_all(&topo, 3, BindPolicy::Auto), vec![Plan::Leave(LeaveReason::Oversubscribed); 3]);
    // Exactly one rank per core is not oversubscribed.
    assert_eq!(plan_all(&topo, 2, BindPolicy::Auto), vec![bound(&[0]), bound(&[1])]);
}

#[test]
fn shares_are_numa_aligned_when_that_keeps_them_even() {
    // 2 domains of 4 cores: 2 ranks get a domain each, 4 ranks two per domain.
    let topo = node(2, 4, 1);
    assert_eq!(plan_all(&topo, 2, BindPolicy::Auto), vec![bound(&[0, 1, 2, 3]), bound(&[4, 5, 6, 7])]);
    assert_eq!(plan_all(&topo, 4, BindPolicy::Auto)[2], bound(&[4, 5]));
    // 4 domains, 2 ranks: two whole domains each.
    let topo = node(4, 2, 1);
    assert_eq!(plan_all(&topo, 2, BindPolicy::Auto), vec![bound(&[0, 1, 2, 3]), bound(&[4, 5, 6, 7])]);
}

#[test]
fn unequal_domains_get_ranks_in_proportion() {
    // Cores taken away from domain 0 (core specialization): 3 + 5 cores, 3 ranks. The flat
    // split (PUs 0-1, 2+5-6, 7-9) would straddle; one rank on domain 0 and two on domain 1
    // is just as even (3, 2, 3 cores) and aligned.
    let mut topo = node(2, 5, 1);
    topo.domains[0].cores.truncate(3);
    assert_eq!(plan_all(&topo, 3, BindPolicy::Auto), vec![bound(&[0, 1, 2]), bound(&[5, 6]), bound(&[7, 8, 9])]);
}

#[test]
fn alignment_that_would_make_shares_uneven_is_refused() {
    // 2 domains of 4 cores, 3 ranks: aligned would be 2, 2, 4 cores; flat gives 2, 3, 3.
    let topo = node(2, 4, 1);
    assert_eq!(plan_all(&topo, 3, BindPolicy::Auto), vec![bound(&[0, 1]), bound(&[2, 3, 4]), bound(&[5, 6, 7])]);
}

#[test]
fn numa_policy_gives_whole_domains() {
    let topo = node(2, 2, 1);
    assert_eq!(plan_all(&topo, 2, BindPolicy::Numa), vec![bound(&[0, 1]), bound(&[2, 3])]);
    // More ranks than domains: consecutive ranks share a domain.
    assert_eq!(
        plan_all(&topo, 4, BindPolicy::Numa),
        vec![bound(&[0, 1]), bound(&[0, 1]), bound(&[2, 3]), bound(&[2, 3])]
    );
    // Fewer: a rank takes several.
    assert_eq!(plan_all(&topo, 1, BindPolicy::Numa), vec![bound(&[0, 1, 2, 3])]);
}

#[test]
fn auto_leaves_a_rank_the_runtime_already_bound() {
    let topo = node(1, 4, 1);
    let current: BTreeSet<u32> = [2].into();
    let rank = NodeRank { index: 0, count: 2 };
    assert_eq!(plan(&topo, &current, rank, BindPolicy::Auto), Plan::Leave(LeaveReason::AlreadyBound));
    // An explicit policy is what the user asked for: it binds anyway.
    assert_eq!(plan(&topo, &current, rank, BindPolicy::Core), bound(&[0]));
    // A cpuset wider than the usable cores (PUs of other cgroups) is not a binding.
    let wide: BTreeSet<u32> = (0..64).collect();
    assert_eq!(plan(&topo, &wide, rank, BindPolicy::Auto), bound(&[0, 1]));
}

#[test]
fn none_and_odd_inputs_never_fail() {
    let topo = node(1, 2, 1);
    let current = all_pus(&topo);
    assert_eq!(
        plan(&topo, &current, NodeRank { index: 0, count: 1 }, BindPolicy::None),
        Plan::Leave(LeaveReason::PolicyNone)
    );
    assert_eq!(plan(&topo, &current, NodeRank { index: 7, count: 0 }, BindPolicy::Core), bound(&[0]));
    assert_eq!(plan(&topo, &current, NodeRank { index: 3, count: 2 }, BindPolicy::Core), bound(&[1]));
    let empty = NodeTopology::default();
    assert_eq!(
        plan(&empty, &BTreeSet::new(), NodeRank { index: 0, count: 1 }, BindPolicy::Auto),
        Plan::Leave(LeaveReason::NoCores)
    );
}

#[test]
fn numa_and_gpus_near_a_cpuset() {
    let mut topo = node(2, 2, 1);
    topo.gpus = vec![
        Gpu { name: "cuda0".into(), numa: vec![0] },
        Gpu { name: "cuda1".into(), numa: vec![1] },
        Gpu { name: "card9".into(), numa: vec![] },
    ];
    let pus: BTreeSet<u32> = [2, 3].into();
    let numa = numa_of(&topo, &pus);
    assert_eq!(numa, vec![1]);
    assert_eq!(gpus_near(&topo, &numa), vec!["cuda1"]);
}

#[test]
fn lists_read_like_the_kernel_writes_them() {
    assert_eq!(list_string(&[0, 1, 2, 3, 8, 10, 11]), "0-3,8,10-11");
    assert_eq!(list_string(&[5]), "5");
    assert_eq!(list_string(&[]), "");
}

#[test]
fn lists_parse_back_into_sets() {
    let set = |v: &[u32]| Some(v.iter().copied().collect::<BTreeSet<u32>>());
    assert_eq!(parse_list("0-3,8,10-11"), set(&[0, 1, 2, 3, 8, 10, 11]));
    assert_eq!(parse_list(" 5 , 1-2 \n"), set(&[1, 2, 5]));
    assert_eq!(parse_list(""), set(&[]));
    assert_eq!(parse_list(&list_string(&[4, 5, 6, 9])), set(&[4, 5, 6, 9]));
    for bad in ["3-1", "0-7:2", "a", "1,,2", "-1", "1-", "+3", "0-70000", "4294967296", "0x1"] {
        assert_eq!(parse_list(bad), None, "{bad:?}");
    }
}

#[test]
fn this_machine_has_a_topology_hwloc_can_read() {
    // Placement must work wherever the tests run; it is fine if there are no GPUs here.
    let (_, node, current) = read_node().expect("hwloc reads this machine");
    println!("this machine: {node:?}, process bound to {}", list_string(&current));
    assert!(!all_pus(&node).is_empty(), "no cores in {node:?}");
    assert!(!current.is_empty());
}

#[test]
fn hwloc_topologies_are_summarized_by_numa_domain() {
    // A synthetic 2-package node, a NUMA domain per package, 4 cores of 2 PUs each: the
    // summary must group PUs by core and cores by domain, as plan() expects.
    let topology = Topology::builder()
        .from_synthetic("pack:2 [numa] core:4 pu:2")
        .expect("synthetic description")
        .build()
        .expect("synthetic topology");
    let node = summarize(&topology);
    assert_eq!(node.domains.len(), 2, "{node:?}");
    assert_eq!(node.domains[1].os_index, 1);
    assert_eq!(node.domains[1].cores.len(), 4);
    assert_eq!(node.domains[1].cores[0].pus, vec![8, 9]);
    let rank = NodeRank { index: 1, count: 2 };
    assert_eq!(plan(&node, &all_pus(&node), rank, BindPolicy::Auto), Plan::Bind((8..16).collect()));
}
