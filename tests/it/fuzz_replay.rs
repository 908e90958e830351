//! The fuzz targets' checks over every known input: the seeds in `fuzz/seeds/` and, where a
//! developer has fuzzed locally, the corpus in `fuzz/corpus/`. A regression on an input that
//! once crashed a decoder (e.g. `regress-huge-string-length`) fails CI without nightly Rust.

#[path = "../../fuzz/checks/wire_decode.rs"]
mod wire_decode;
#[path = "../../fuzz/checks/workflow_parse.rs"]
mod workflow_parse;

use std::path::{Path, PathBuf};

/// Every file under `fuzz/seeds/TARGET` and `fuzz/corpus/TARGET` (which may not exist).
fn inputs(target: &str) -> Vec<PathBuf> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut files = Vec::new();
    for dir in [fuzz.join("seeds").join(target), fuzz.join("corpus").join(target)] {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if e.path().is_file() {
                files.push(e.path());
            }
        }
    }
    files.sort();
    files
}

/// Run `check` on each input, naming the input that fails.
fn replay(target: &str, at_least: usize, check: fn(&[u8])) {
    let files = inputs(target);
    assert!(files.len() >= at_least, "{target}: {} inputs, expected the {at_least} seeds at least", files.len());
    for f in &files {
        let data = std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        if std::panic::catch_unwind(|| check(&data)).is_err() {
            panic!("{target}: the fuzz checks fail on {}", f.display());
        }
    }
}

#[test]
fn wire_decoder_seeds_and_corpus() {
    let _file = crate::common::file_group(module_path!());
    replay("wire_decode", 11, wire_decode::one_input);
}

#[test]
fn workflow_parser_seeds_and_corpus() {
    let _file = crate::common::file_group(module_path!());
    replay("workflow_parse", 5, workflow_parse::one_input);
}
