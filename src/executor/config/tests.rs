use super::check::local_cores;
use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, "config.toml")
}

fn one(text: &str) -> ExecutorConfig {
    match parse(text) {
        Ok(mut c) => c.executors.remove(0),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn defaults_follow_the_provider() {
    let e = one("[[executor]]\nlabel = \"laptop\"\nprovider = \"local\"\n");
    assert_eq!(e.launch, LaunchKind::Mpirun);
    assert_eq!(e.ranks_per_node, local_cores() + 1);
    assert_eq!((e.strategy.init_blocks, e.strategy.min_blocks, e.strategy.max_blocks), (1, 0, 1));
    assert_eq!(e.walltime_s, 0);
    assert_eq!(e.address, "127.0.0.1");
    assert!(e.launcher_path.ends_with("strand-launcher"));
    let e = one("[[executor]]\nlabel = \"c\"\nprovider = \"slurm\"\n");
    assert_eq!((e.launch, e.ranks_per_node, e.walltime_s, e.drain_margin_s), (LaunchKind::Srun, 1, 3600, 300));
    assert_eq!(e.scheduler.mpi, "pmix");
    assert_eq!(e.launcher_path, "strand-launcher");
    assert_eq!(e.address, crate::host::hostname());
    let e = one("[[executor]]\nlabel = \"p\"\nprovider = \"pbs\"\nwalltime = \"00:02:00\"\n");
    assert_eq!((e.launch, e.walltime_s, e.drain_margin_s), (LaunchKind::Mpiexec, 120, 30));
    // Unquoted, a walltime is a TOML time; it means the same.
    let e = one("[[executor]]\nlabel = \"p\"\nprovider = \"pbs\"\nwalltime = 02:30:00\n");
    assert_eq!(e.walltime_s, 9000);
    let e = parse("[[executor]]\nlabel = \"p\"\nprovider = \"pbs\"\nwalltime = 2024-01-01\n").unwrap_err();
    assert_eq!(e.key(), Some("walltime"), "{e}");
}

#[test]
fn local_srun_blocks_are_job_steps_shaped_and_addressed_as_remote_blocks() {
    let e = one("[[executor]]\nlabel = \"s\"\nprovider = \"local\"\nlaunch = \"srun\"\nnodes_per_block = 4\n");
    assert!(e.blocks_are_job_steps() && !e.blocks_on_this_machine());
    assert_eq!((e.nodes_per_block, e.ranks_per_node, e.walltime_s), (4, 1, 0));
    assert_eq!(e.address, crate::host::hostname());
    assert_eq!(e.strategy.block_connect_timeout, Duration::from_secs(600));
    let e = one("[[executor]]\nlabel = \"l\"\nprovider = \"local\"\n");
    assert!(!e.blocks_are_job_steps() && e.blocks_on_this_machine());
    let e = parse("[[executor]]\nlabel = \"l\"\nprovider = \"local\"\nnodes_per_block = 2\n").unwrap_err();
    assert!(e.to_string().contains("or launch = \"srun\""), "{e}");
}

#[test]
fn errors_name_file_executor_key_and_accepted_values() {
    let e = parse("[[executor]]\nlabel = \"frontier\"\nprovider = \"sge\"\n").unwrap_err();
    assert_eq!(e.to_string(), "config.toml: executor \"frontier\": provider = \"sge\" is not one of local, slurm, pbs");
    assert_eq!(e.key(), Some("provider"));
    let e = parse("[[executor]]\nlabel = \"a\"\nprovider = \"slurm\"\nnodes_per_blok = 2\n").unwrap_err();
    let m = e.to_string();
    assert!(m.contains("unknown key nodes_per_blok") && m.contains("nodes_per_block"), "{m}");
    let e = parse("[[executor]]\nlabel = \"a\"\nprovider = \"slurm\"\nnodes_per_block = \"two\"\n").unwrap_err();
    assert_eq!(e.key(), Some("nodes_per_block"), "{e}");
    assert!(e.to_string().contains("expected a whole number"), "{e}");
    // Without a label the executor is named by its place.
    let e =
        parse("[[executor]]\nlabel = \"a\"\nprovider = \"local\"\n[[executor]]\nprovider = \"local\"\n").unwrap_err();
    assert!(e.to_string().starts_with("config.toml: executor #2: label is missing"), "{e}");
    let e = parse("[[executors]]\nlabel = \"a\"\n").unwrap_err();
    assert!(e.to_string().contains("unknown field `executors`"), "{e}");
    let e = parse("[[executor]\n").unwrap_err();
    assert!(e.to_string().starts_with("config.toml: 1:"), "{e}");
}

#[test]
fn walltimes() {
    assert_eq!(parse_walltime("01:00:00"), Some(3600));
    assert_eq!(parse_walltime("48:30:05"), Some(48 * 3600 + 30 * 60 + 5));
    assert_eq!(parse_walltime("90"), Some(90));
    assert_eq!(parse_walltime("1:60:00"), None);
    assert_eq!(parse_walltime("1h"), None);
    assert_eq!(parse_walltime("::"), None);
    assert_eq!(format_walltime(3600 * 30 + 61), "30:01:01");
    assert_eq!(format_walltime(59), "00:00:59");
}

#[test]
fn slots_are_estimated_from_the_block_shape() {
    let base = "[[executor]]\nlabel = \"a\"\nprovider = \"slurm\"\n";
    // 2 nodes x 8 ranks, one pool per node: 14 workers.
    assert_eq!(one(&format!("{base}nodes_per_block = 2\nranks_per_node = 8\n")).slots_per_block(), 14);
    // One rank per node runs its own slots.
    let e = one(&format!("{base}nodes_per_block = 4\n[executor.launcher]\nlocal_slots = 64\n"));
    assert_eq!(e.slots_per_block(), 256);
    let e = one(&format!("{base}nodes_per_block = 1\nranks_per_node = 9\npool_size = 3\n"));
    assert_eq!(e.slots_per_block(), 6);
    let run = tempfile::tempdir().expect("tempdir");
    let s = e.scaler_config(&crate::run_dir::RunDir::create(Some(run.path())).expect("run dir"));
    assert_eq!((s.label.as_str(), s.slots_per_block, s.params.max_blocks), ("a", 6, 1));
}

#[test]
fn executor_key_list_matches_the_struct() {
    // Every listed key is accepted (an unknown one would fail with "unknown key").
    for key in EXECUTOR_KEYS {
        let text = format!("[[executor]]\nlabel = \"a\"\nprovider = \"slurm\"\n{key} = []\n");
        if let Err(e) = parse(&text) {
            assert!(!e.to_string().contains("unknown key"), "{key}: {e}");
        }
    }
}

#[test]
fn launcher_key_list_matches_the_struct() {
    // The listed keys and the three the executor sets are exactly the struct's fields.
    let mut fields: Vec<String> = match toml::Table::try_from(crate::launcher_options::tests::every_option_set()) {
        Ok(t) => t.keys().cloned().collect(),
        Err(e) => panic!("{e}"),
    };
    fields.sort();
    let mut listed: Vec<String> =
        LAUNCHER_KEYS.iter().chain(&["pool_size", "walltime", "drain_margin"]).map(|k| k.to_string()).collect();
    listed.sort();
    assert_eq!(fields, listed);
    for key in LAUNCHER_KEYS {
        let value = match key {
            "bind" => "\"core\"",
            "task_launch" => "\"srun\"",
            _ => "2",
        };
        let text = format!("[[executor]]\nlabel = \"a\"\nprovider = \"slurm\"\n[executor.launcher]\n{key} = {value}\n");
        if let Err(e) = parse(&text) {
            panic!("{key}: {e}");
        }
    }
}
