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

use std::time::Instant;
use strand::bench::programs::{double, fib, increment};
use strand::dfk::{Dfk, DfkConfig};
use strand::executor::local_block::LocalBlockOptions;
use strand::executor::Executor;
use strand::run_dir::RunDir;

fn main() -> anyhow::Result<()> {
    let run_dir = RunDir::create(Some(&std::env::temp_dir().join(format!("strand-example-{}", std::process::id()))))?;
    let exe = Executor::local(run_dir, &LocalBlockOptions { workers: 2, ..LocalBlockOptions::default() })?;
    let dfk = Dfk::connect(exe.connection(), DfkConfig::default())?;
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
    exe.stop();
    Ok(())
}
