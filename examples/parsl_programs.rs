//! The Parsl profiling study's programs through the Rust API, on the local default.
//!
//! ```sh
//! cargo build --release --workspace
//! cargo run --release --example parsl_programs
//! ```
//!
//! Starts an interchange and one local block (`mpirun strand-launcher`), runs `double`
//! over 100 tasks, an `increment` chain of depth 100 and fib(15) through join tasks,
//! prints what each took, and tears everything down.

use std::time::{Duration, Instant};
use strand::dfk::{Dfk, DfkConfig};
use strand::local::{LocalOptions, LocalRun};
use strand::programs::{double, fib, increment};

fn main() -> anyhow::Result<()> {
    let mut opts = LocalOptions::new(std::env::temp_dir().join(format!("strand-example-{}", std::process::id())));
    opts.workers = 2;
    let run = LocalRun::start(&opts)?;
    run.wait_for_managers(1, Duration::from_secs(60));
    let dfk = Dfk::connect(&run.conn, DfkConfig::default())?;
    let h = dfk.handle();

    let t = Instant::now();
    let doubled: Vec<String> = double(&h, 100)
        .iter()
        .map(|f| f.wait().map(|b| String::from_utf8_lossy(&b).trim().to_string()))
        .collect::<Result<_, _>>()?;
    println!("double: 100 tasks in {:?}; last = {}", t.elapsed(), doubled[99]);

    let t = Instant::now();
    let last = increment(&h, 100).wait()?;
    println!("increment: chain of 100 in {:?}; result = {}", t.elapsed(), String::from_utf8_lossy(&last).trim());

    let t = Instant::now();
    let f = fib(&h, 15).wait()?;
    println!(
        "fib(15) = {} in {:?} ({} tasks)",
        String::from_utf8_lossy(&f).trim(),
        t.elapsed(),
        dfk.counts().submitted
    );

    dfk.shutdown();
    run.stop(Duration::from_secs(20));
    Ok(())
}
