//! Bad peers on the manager port: wrong key, truncated frames, random bytes; and a bad
//! interchange, whose bad frames its client counts and `strand map` reports.

use crate::common::*;
use std::time::Duration;
use strand::connection::ConnectionInfo;
use strand::dfk::{Call, Dfk, DfkConfig};
use strand::task::{Outcome, TryResult};
use strand::wire::{ClientMsg, Key, ManagerMsg, ToClientMsg, PROTOCOL_VERSION};

#[test]
fn bad_frames_are_dropped_and_the_good_launcher_keeps_serving() {
    let _file = crate::common::file_group(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut ix, conn) = interchange(dir.path(), &[]);
    let conn_file = dir.path().join("connection.json");
    let _good = launcher(dir.path(), "good", 2, &conn_file, &[]);
    wait_managers(&conn, 1, Duration::from_secs(60));

    // A launcher with the wrong key: its registration is unauthenticated, so it never
    // hears back and gives up after its connect timeout.
    let mut bad = conn.clone();
    bad.key = Key([0x55; 32]).to_hex();
    let bad_file = dir.path().join("wrong-key.json");
    bad.write(&bad_file).expect("write bad connection file");
    let mut wrong = launcher(dir.path(), "wrong-key", 2, &bad_file, &["--connect-timeout", "2"]);

    // Raw garbage straight onto the manager port.
    let ctx = zmq::Context::new();
    let s = ctx.socket(zmq::DEALER).expect("socket");
    s.set_identity(&7u64.to_le_bytes()).expect("identity");
    s.connect(&conn.manager_endpoint()).expect("connect");
    let good_frame = conn.codec().encode(&ManagerMsg::Heartbeat, 1);
    s.send(&good_frame[..good_frame.len() / 2], 0).expect("send truncated");
    s.send(&good_frame[..10], 0).expect("send short");
    let mut noise = vec![0u8; 4096];
    for (i, b) in noise.iter_mut().enumerate() {
        *b = (i * 7919 % 251) as u8;
    }
    s.send(&noise, 0).expect("send noise");
    // Multi-part garbage too: a ROUTER sees three frames from one peer.
    s.send_multipart([&b"a"[..], &b"b"[..]], 0).expect("send multipart");
    // A correctly signed heartbeat captured and sent again from its own identity: the first
    // copy counts as "unexpected" (peer 7 never registered), the second as a replay.
    let hb = conn.codec().encode(&ManagerMsg::Heartbeat, 5);
    s.send(&hb[..], 0).expect("send heartbeat");
    s.send(&hb[..], 0).expect("replay heartbeat");

    // The good launcher still serves.
    let dfk = Dfk::connect(&conn, DfkConfig::default()).expect("dfk");
    let fs: Vec<_> = (0..200).map(|i| dfk.submit(Call::function("echo", vec![i as u8]))).collect();
    assert_eq!(dfk.wait_all(Some(Duration::from_secs(60))), 0);
    for (i, f) in fs.iter().enumerate() {
        assert_eq!(f.peek(), Some(Ok(vec![i as u8])));
    }
    dfk.shutdown();

    let st = wrong.wait(Duration::from_secs(30));
    assert!(st.success(), "the wrong-key launcher gives up cleanly: {st}\n{}", tail(&dir.path().join("wrong-key.log")));
    assert!(ix.is_running(), "the interchange survived");

    let mut c = strand::client::Client::connect(&conn).expect("client");
    let report = c.status(Duration::from_secs(10)).expect("status");
    assert_eq!(report.managers.len(), 1, "only the good manager is registered");
    let d = report.dropped;
    assert!(d.unauthenticated >= 1, "wrong-key registration counted: {d:?}");
    assert!(d.truncated >= 1, "short frame counted: {d:?}");
    assert!(d.malformed >= 2, "noise and multipart counted: {d:?}");
    assert_eq!(d.replayed, 1, "the replayed frame is dropped and counted: {d:?}");

    // A client with the wrong key gets nothing back either.
    let mut bad_client_conn: ConnectionInfo = conn.clone();
    bad_client_conn.key = Key([0x66; 32]).to_hex();
    let mut bc = strand::client::Client::connect(&bad_client_conn).expect("client");
    assert!(bc.hello(Duration::from_millis(500)).is_err(), "an unauthenticated client is ignored");
}

/// An interchange that sends its client a truncated frame and a replay beside its real answers:
/// the client drops and counts both, the run still ends, and `strand map` says what it dropped
/// (the interchange's `strand status` cannot: it never saw them).
#[test]
fn a_client_counts_the_bad_frames_of_its_interchange_and_strand_map_says_so() {
    let _file = crate::common::file_group(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let ctx = zmq::Context::new();
    let router = ctx.socket(zmq::ROUTER).expect("router");
    router.set_rcvtimeo(100).expect("timeout");
    router.bind("tcp://127.0.0.1:*").expect("bind");
    let endpoint = router.get_last_endpoint().expect("endpoint").expect("utf-8");
    let port: u16 = endpoint.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
    let conn = ConnectionInfo {
        protocol_version: PROTOCOL_VERSION,
        run_id: 42,
        address: "127.0.0.1".into(),
        client_port: port,
        manager_port: port,
        key: Key([0x42; 32]).to_hex(),
        max_frame: 64 << 20,
    };
    let conn_file = dir.path().join("connection.json");
    conn.write(&conn_file).expect("connection file");
    let codec = conn.codec();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let fake = {
        let stop = std::sync::Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut seq = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok(parts) = router.recv_multipart(0) else { continue };
                let [peer, frame] = &parts[..] else { continue };
                let Ok((_, msg)) = codec.decode::<ClientMsg>(frame) else { continue };
                let mut send = |m: &ToClientMsg| {
                    seq += 1;
                    let f = codec.encode(m, seq);
                    router.send_multipart([&peer[..], &f[..]], 0).expect("send");
                    f
                };
                match msg {
                    ClientMsg::Hello => {
                        let welcome = send(&ToClientMsg::Welcome { managers: 1, incarnation: 9 });
                        router.send_multipart([&peer[..], &welcome[..welcome.len() / 2]], 0).expect("truncated");
                        router.send_multipart([&peer[..], &welcome[..]], 0).expect("replay");
                    }
                    ClientMsg::Submit(tries) => {
                        let done =
                            tries.iter().map(|t| TryResult::new(t.id, Outcome::Done(b"ok\n".to_vec()))).collect();
                        send(&ToClientMsg::Results(done));
                    }
                    ClientMsg::Heartbeat => {
                        send(&ToClientMsg::Heartbeat { incarnation: 9 });
                    }
                    _ => {}
                }
            }
        })
    };
    let out = std::process::Command::new(bin("strand"))
        .args(["map", "--no-monitoring", "--connection"])
        .arg(&conn_file)
        .arg("--run-dir")
        .arg(dir.path().join("run"))
        .args(["true", ":::", "a", "b", "c"])
        .output_within(Duration::from_secs(60));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    fake.join().expect("fake interchange");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3, "every job answered: {stderr}");
    assert!(
        stderr.contains("2 frame(s) from the interchange were dropped: truncated 1, replayed 1"),
        "the drops are said: {stderr}"
    );
}
