//! Writes the `wire_decode` seeds: one file per message kind, `[channel selector] ++ bincode body`,
//! the shape `fuzz_targets/wire_decode.rs` seals into an authentic frame.
//!
//! `cargo run --manifest-path fuzz/Cargo.toml --example make_seeds -- fuzz/seeds/wire_decode`

use strand::task::*;
use strand::wire::*;

fn spec(program: Program) -> TaskSpec {
    TaskSpec {
        app: App::Command(CommandSpec {
            program,
            env: vec![("A".into(), "1".into())],
            cwd: Some("/tmp".into()),
            stdout: None,
            stderr: Some("err.txt".into()),
        }),
        walltime_ms: Some(1500),
        priority: -2,
        outputs: vec!["out.txt".into()],
        resources: Resources { cores: 2, gpus: 1, ranks: 1 },
    }
}

fn id(task: u64) -> TryId {
    TryId { client: ClientId(9), task: TaskId(task), attempt: 1 }
}

/// The bincode body of `msg` as the codec writes it, behind the selector byte of its channel.
fn seed<M: Message>(msg: &M) -> Vec<u8> {
    let frame = Codec::new(Key([0x5a; 32]), 1).encode(msg, 1);
    let mut out = vec![M::CHANNEL as u8 - 1];
    out.extend_from_slice(&frame[HEADER_LEN..frame.len() - MAC_LEN]);
    out
}

fn main() -> std::io::Result<()> {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "seeds/wire_decode".into()));
    std::fs::create_dir_all(&dir)?;
    let manager = ManagerId(0xfeed);
    let fn_try = Try {
        id: id(2),
        spec: TaskSpec {
            app: App::Function(FunctionCall { name: "echo".into(), args: b"hi".to_vec() }),
            walltime_ms: None,
            priority: 0,
            outputs: vec![],
            resources: Resources::default(),
        },
    };
    let results = vec![
        TryResult::new(id(1), Outcome::Done(b"ok\n".to_vec())),
        TryResult::new(id(2), Outcome::Failed(Failure::ExitCode { code: 3, stderr: "boom".into(), stdout: vec![] })),
        TryResult::new(id(3), Outcome::Failed(Failure::Signal { signal: 11, stderr: String::new(), stdout: vec![] })),
        TryResult::new(id(4), Outcome::Failed(Failure::Timeout { walltime_ms: 100 })),
        TryResult::new(id(5), Outcome::Failed(Failure::ManagerLost { manager, host: "n1".into(), block: BlockId("b".into()) })),
        TryResult::new(id(6), Outcome::Failed(Failure::WorkerLost { manager, rank: 2, host: "n1".into() })),
        TryResult::new(id(7), Outcome::Failed(Failure::MissingOutputs { paths: vec!["x".into()] })),
    ];
    let seeds: Vec<(&str, Vec<u8>)> = vec![
        (
            "client-submit",
            seed(&ClientMsg::Submit(vec![
                Try { id: id(1), spec: spec(Program::Shell("echo hi".into())) },
                fn_try.clone(),
            ])),
        ),
        ("client-setmode", seed(&ClientMsg::SetMode { manager, mode: ManagerMode::Draining })),
        ("to-client-results", seed(&ToClientMsg::Results(results.clone()))),
        (
            "to-client-status",
            seed(&ToClientMsg::Status(StatusReport {
                queued: 5,
                in_flight: 2,
                managers: vec![ManagerStatus {
                    id: manager,
                    host: "n1".into(),
                    block: BlockId("b".into()),
                    slots: 4,
                    in_flight: 2,
                    mode: ManagerMode::Active,
                    idle_ms: 10,
                }],
                dropped: DropCounts { replayed: 1, ..DropCounts::default() },
            })),
        ),
        ("to-client-refused", seed(&ToClientMsg::Refused { tries: vec![id(1)], limit: 10 })),
        (
            "manager-register",
            seed(&ManagerMsg::Register(Registration {
                manager,
                block: BlockId("local-0".into()),
                host: "n1".into(),
                pool_size: 3,
                slots: 2,
                prefetch: 1,
                launcher_version: "0.1.0".into(),
                mpi_version: "Open MPI v4.1.4".into(),
            })),
        ),
        ("manager-results", seed(&ManagerMsg::Results(results))),
        (
            "to-manager-tasks",
            seed(&ToManagerMsg::Tasks(vec![Try { id: id(1), spec: spec(Program::Argv(vec!["true".into()])) }, fn_try])),
        ),
        (
            "to-manager-registered",
            seed(&ToManagerMsg::Registered { heartbeat_period_ms: 100, heartbeat_threshold_ms: 1000 }),
        ),
    ];
    for (name, bytes) in seeds {
        std::fs::write(dir.join(name), bytes)?;
    }
    // One whole frame as a receiver sees it (its first byte is the 'S' of the magic).
    std::fs::write(
        dir.join("frame-heartbeat"),
        Codec::new(Key([0x5a; 32]), 0x0123_4567_89ab_cdef).encode(&ManagerMsg::Heartbeat, 3),
    )?;
    Ok(())
}
