//! The strategy against real blocks of the local provider: 500 queued `sleep 0.5` tasks
//! scale 0 -> 3 blocks (never more), and the blocks go away within max_idletime + one
//! period after the queue empties, each stopped cleanly without losing a task.

use crate::common::*;
use std::collections::HashSet;
use std::time::{Duration, Instant};
use strand::dfk::{Call, Dfk, DfkConfig, TaskFuture};
use strand::executor::local_block::mpirun_args;
use strand::executor::scaler::ScalerConfig;
use strand::executor::strategy::StrategyParams;
use strand::executor::Executor;
use strand::provider::local::LocalProvider;
use strand::run_dir::{RunDir, BLOCKS_FILE};

const PERIOD: Duration = Duration::from_millis(500);
const IDLE: Duration = Duration::from_secs(2);

#[test]
fn scales_out_to_max_blocks_and_back_to_min_blocks() {
    let _file = crate::common::file_group(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let (_ix, conn) = interchange(dir.path(), &["--heartbeat-period", "1", "--heartbeat-threshold", "10"]);
    let conn_file = dir.path().join("connection.json");
    let launcher = bin("strand-launcher");
    let mpirun = mpirun_args(1).join(" ");
    // A block is one rank running 8 sleeps at once: 3 blocks bring 24 slots.
    let script = move |id: &strand::block::BlockId| {
        format!(
            "exec mpirun {mpirun} {} --connection {} --block-id {} --pool-size 1 --local-slots 8 --prefetch 0\n",
            launcher.display(),
            conn_file.display(),
            id.0
        )
    };
    let params = StrategyParams {
        init_blocks: 0,
        min_blocks: 0,
        max_blocks: 3,
        parallelism: 1.0,
        max_idletime: IDLE,
        block_connect_timeout: Duration::from_secs(60),
        period: PERIOD,
    };
    let run_dir = RunDir::create(Some(dir.path())).expect("run dir");
    let exe = Executor::attach_scaled(
        run_dir.clone(),
        &conn,
        Box::new(LocalProvider::new()),
        ScalerConfig {
            label: "t".into(),
            slots_per_block: 8,
            params,
            nodes_per_block: 1,
            walltime_s: 0,
            run_dir,
            script: Box::new(script),
        },
    );
    let scaler = exe.scaler().expect("a scaled executor has a scaler");
    let dfk = Dfk::connect(&conn, DfkConfig::default()).expect("dfk");
    let tasks: Vec<TaskFuture> = (0..500).map(|_| dfk.submit(Call::shell("sleep 0.5").memoize(false))).collect();

    let mut client = strand::client::Client::connect(&conn).expect("client");
    let mut blocks_seen = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(240);
    while dfk.monitor().snapshot().pending > 0 {
        assert!(Instant::now() < deadline, "500 tasks did not finish; see {}", dir.path().display());
        assert!(scaler.state().error.is_none(), "{:?}", scaler.state().error);
        if let Ok(s) = client.status(Duration::from_secs(5)) {
            blocks_seen.extend(s.managers.iter().map(|m| m.block.0.clone()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let emptied = Instant::now();
    for f in &tasks {
        assert!(matches!(f.peek(), Some(Ok(_))), "a task failed: {:?}", f.peek());
    }
    assert_eq!(blocks_seen.len(), 3, "blocks that registered: {blocks_seen:?}");
    assert_eq!(scaler.state().submitted, 3, "never more than max_blocks");

    // Scale-in: the strategy drops them within max_idletime + one period (plus a round trip).
    while scaler.state().active_blocks > 0 {
        assert!(emptied.elapsed() < IDLE + PERIOD + SCALE_IN_SLACK, "still {:?}", scaler.state());
        std::thread::sleep(Duration::from_millis(10));
    }
    let held_after = emptied.elapsed();
    // And the blocks' managers leave the interchange cleanly soon after.
    loop {
        let left = client.status(Duration::from_secs(5)).map(|s| s.managers.len()).unwrap_or(usize::MAX);
        if left == 0 {
            break;
        }
        assert!(emptied.elapsed() < Duration::from_secs(30), "{left} managers still registered");
        std::thread::sleep(Duration::from_millis(20));
    }
    while scaler.state().live_blocks > 0 {
        assert!(emptied.elapsed() < Duration::from_secs(30), "blocks still live: {:?}", scaler.state());
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("scaled in {held_after:?} after the queue emptied; jobs ended after {:?}", emptied.elapsed());
    dfk.shutdown();
    exe.stop();
    let log = std::fs::read_to_string(dir.path().join(BLOCKS_FILE)).expect("blocks.jsonl");
    for event in ["submitted", "connected", "hold", "stop", "ended"] {
        assert_eq!(log.matches(&format!("\"event\":\"{event}\"")).count(), 3, "{event} x3 in\n{log}");
    }
    assert!(!log.contains("\"event\":\"cancel\""), "blocks ended by themselves, no cancel needed:\n{log}");
    use strand::block::BlockEventKind::*;
    assert_block_event_order(&dir.path().join(BLOCKS_FILE), &[Submitted, Connected, Hold, Stop, Ended]);
}
