//! `strand top` in a real pseudo-terminal, beside a real run: it draws the run's numbers, its
//! keys hold and release a manager at the interchange, and `q` quits.

use crate::common::*;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use strand::wire::ManagerMode;

/// A pseudo-terminal of 40 rows and 120 columns: (master, slave).
fn pty() -> (OwnedFd, OwnedFd) {
    let (mut master, mut slave) = (0, 0);
    let size = libc::winsize { ws_row: 40, ws_col: 120, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: openpty writes two descriptors we then own; the other pointers may be null.
    let rc = unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), &size) };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both were just opened and are owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

/// The screen a terminal shows after `bytes`: a grid of the cells written, following the
/// cursor moves (`ESC [ row ; col H`) that ratatui's redraws use; other sequences (colours,
/// clears of an already blank screen, modes) are skipped. Each row with spaces removed, so
/// that column widths do not matter to the checks.
fn screen_text(bytes: &[u8]) -> String {
    let (rows, cols) = (40usize, 120usize);
    let mut grid = vec![vec![' '; cols]; rows];
    let (mut r, mut c) = (0usize, 0usize);
    let s = String::from_utf8_lossy(bytes);
    let mut chars = s.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '\u{1b}' => {
                if chars.peek() != Some(&'[') {
                    chars.next();
                    continue;
                }
                chars.next();
                let mut params = String::new();
                let mut fin = ' ';
                for d in chars.by_ref() {
                    if d.is_ascii_alphabetic() || d == '~' || d == '@' {
                        fin = d;
                        break;
                    }
                    params.push(d);
                }
                if fin == 'H' {
                    let mut it = params.split(';').map(|p| p.parse::<usize>().unwrap_or(1));
                    r = it.next().unwrap_or(1).saturating_sub(1).min(rows - 1);
                    c = it.next().unwrap_or(1).saturating_sub(1).min(cols - 1);
                } else if fin == 'J' && params == "2" {
                    grid = vec![vec![' '; cols]; rows];
                }
            }
            '\r' => c = 0,
            '\n' => r = (r + 1).min(rows - 1),
            ch if ch.is_control() => {}
            ch => {
                if c < cols {
                    grid[r][c] = ch;
                }
                c += 1;
            }
        }
    }
    grid.iter().map(|row| row.iter().filter(|ch| **ch != ' ').collect::<String>()).collect::<Vec<_>>().join("\n")
}

fn wait_screen(seen: &Mutex<Vec<u8>>, words: &[&str], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let text = screen_text(&seen.lock().expect("screen"));
        if words.iter().all(|w| text.contains(&w.replace(' ', ""))) {
            return;
        }
        assert!(Instant::now() < deadline, "the screen never showed {words:?}; it shows:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn mode(conn: &strand::connection::ConnectionInfo) -> Option<ManagerMode> {
    let mut c = strand::client::Client::connect(conn).expect("client");
    c.status(Duration::from_secs(5)).ok().and_then(|s| s.managers.first().map(|m| m.mode))
}

fn wait_mode(conn: &strand::connection::ConnectionInfo, want: ManagerMode) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while mode(conn) != Some(want) {
        assert!(Instant::now() < deadline, "the manager never became {want:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn top_draws_the_run_and_its_keys_reach_the_interchange() {
    let _file = crate::common::file_group(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let run = dir.path().join("run");
    // Three tries on two slots: two run, one waits at the interchange or the manager.
    let mut map = Guard::spawn(
        "strand map",
        Command::new(bin("strand"))
            .args(["map", "--workers", "2", "--run-dir"])
            .arg(&run)
            .args(["sleep 6; echo {}", ":::", "a", "b", "c"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("map.err")).expect("stderr")),
    );
    let conn_file = run.join(strand::run_dir::CONNECTION_FILE);
    let deadline = Instant::now() + Duration::from_secs(60);
    let conn = loop {
        if let Ok(c) = strand::connection::ConnectionInfo::load(&conn_file) {
            break c;
        }
        assert!(
            Instant::now() < deadline && map.is_running(),
            "no connection file: {}",
            tail(&dir.path().join("map.err"))
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    wait_managers(&conn, 1, Duration::from_secs(60));

    let (master, slave) = pty();
    let slave_io = || std::fs::File::from(slave.try_clone().expect("dup pty"));
    let mut top = Guard::spawn(
        "strand top",
        Command::new(bin("strand"))
            .args(["top", "--interval", "0.2"])
            .arg(&run)
            .env("TERM", "xterm-256color")
            .stdin(slave_io())
            .stdout(slave_io())
            .stderr(slave_io()),
    );
    drop(slave);
    let mut reader = std::fs::File::from(master.try_clone().expect("dup master"));
    let mut writer = std::fs::File::from(master);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().expect("screen").extend_from_slice(&buf[..n]);
        }
    });

    wait_screen(
        &seen,
        &["strand top", "managers 1", "slots 2/2 busy", "local-0", "tasks:", "pending"],
        Duration::from_secs(30),
    );
    writer.write_all(b"h").expect("key h");
    wait_mode(&conn, ManagerMode::Held);
    wait_screen(&seen, &["now Held", "held"], Duration::from_secs(10));
    writer.write_all(b"r").expect("key r");
    wait_mode(&conn, ManagerMode::Active);
    writer.write_all(b"q").expect("key q");
    let status = top.wait(Duration::from_secs(10));
    assert!(status.success(), "strand top exits 0 on q: {status}");

    // The run ends by itself, every task done.
    let status = map.wait(Duration::from_secs(90));
    assert!(status.success(), "{}", tail(&dir.path().join("map.err")));
}

#[test]
fn top_without_a_run_says_what_it_needs() {
    let _file = crate::common::file_group(module_path!());
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(bin("strand")).arg("top").arg(dir.path()).output_within(Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("neither a connection file nor a run database"), "{err}");
}
