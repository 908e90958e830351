//! `strand map` beside GNU parallel itself (Debian's `parallel`, installed by scripts/setup.sh):
//! the same command lines and inputs, compared by output (in order with `-k`), exit status,
//! job log columns and `--results` files. Differences on purpose are in docs/map.md and
//! are not compared here (stderr, Starttime/JobRuntime values, `{%}`).

use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);

/// Arguments that GNU parallel's rules treat specially: several dots, trailing slashes, dot
/// files, spaces, quotes, `$`, globs, non-ASCII, the empty string.
const TRICKY: &[&str] = &[
    "a.b.c",
    "dir/x.tar.gz",
    "dir/",
    ".bashrc",
    "d/.hidden",
    "/abs",
    "a b",
    "it's",
    "say \"hi\"",
    "$HOME",
    "back\\slash",
    "semi;colon",
    "*",
    "naïve.txt",
    "",
    "x.",
    "..",
    "/",
    "dir//f.e",
];

/// What one program did.
#[derive(Debug)]
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

struct Side {
    dir: tempfile::TempDir,
    runs: std::cell::Cell<u32>,
}

impl Side {
    fn new() -> Side {
        let missing = std::process::Command::new("parallel").arg("--version").output().map(|o| !o.status.success());
        assert!(
            !missing.unwrap_or(true),
            "GNU parallel is not installed: run scripts/setup.sh (or apt-get install parallel); \
             to leave these tests out visibly: cargo test -- --skip gnu_parallel"
        );
        Side { dir: tempfile::tempdir().expect("tempdir"), runs: std::cell::Cell::new(0) }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// GNU parallel with `args`, in the test's directory.
    fn gnu(&self, args: &[&str]) -> Ran {
        let mut cmd = Command::new("parallel");
        cmd.arg("--will-cite").args(args).current_dir(self.dir.path());
        ran(cmd.output_within(LIMIT))
    }

    /// `strand map -j 2` with `args`, its own run directory each time.
    fn strand(&self, args: &[&str]) -> Ran {
        self.runs.set(self.runs.get() + 1);
        let mut cmd = Command::new(bin("strand"));
        cmd.args(["map", "-j", "2", "--run-dir"])
            .arg(self.path(&format!("run{}", self.runs.get())))
            .args(args)
            .current_dir(self.dir.path());
        ran(cmd.output_within(LIMIT))
    }

    /// Both, asserting the same exit status and the same output (sorted unless `-k`).
    fn same(&self, args: &[&str]) -> (Ran, Ran) {
        let (g, s) = (self.gnu(args), self.strand(args));
        assert_eq!(s.code, g.code, "exit status of {args:?}\nstrand: {s:?}\nGNU parallel: {g:?}");
        let ordered = args.contains(&"-k");
        let lines = |r: &Ran| {
            let mut l: Vec<String> = r.stdout.split_inclusive('\n').map(str::to_string).collect();
            if !ordered {
                l.sort();
            }
            l
        };
        assert_eq!(lines(&s), lines(&g), "output of {args:?}\nstrand stderr: {}", s.stderr);
        (g, s)
    }
}

fn ran(out: std::process::Output) -> Ran {
    Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn with_inputs<'a>(head: &[&'a str], inputs: &[&'a str]) -> Vec<&'a str> {
    head.iter().chain([":::"].iter()).chain(inputs.iter()).copied().collect()
}

#[test]
fn replacement_strings_and_quoting_match() {
    let _file = crate::common::file_group(module_path!());
    let s = Side::new();
    let t = r#"printf '%s|%s|%s|%s|%s|%s\n' {} {.} {/} {//} {/.} {#}"#;
    let (g, _) = s.same(&with_inputs(&["-k", t], TRICKY));
    assert_eq!(g.stdout.lines().count(), TRICKY.len(), "GNU parallel ran every input: {g:?}");
    // The command lines themselves, byte for byte.
    s.same(&with_inputs(&["-k", "--dry-run", t], TRICKY));
    // No replacement string: the input is appended, quoted.
    s.same(&with_inputs(&["-k", "printf '<%s>\\n'"], TRICKY));
    // Positional forms over two sources, and from the end.
    s.same(&["-k", "echo {1} {2.} {1/} {2//} {1/.} {-1} {-2.}", ":::", "a/b.c", "d e/f.g", ":::", "x.y/z.w", "q"]);
    // Braces that are no replacement string are text, as in GNU parallel.
    s.same(&["-k", "echo {x} {1x} '{print}' {", ":::", "v"]);
}

#[test]
fn input_sources_combine_the_same_way() {
    let _file = crate::common::file_group(module_path!());
    let s = Side::new();
    s.same(&["-k", "echo {1}-{2}", ":::", "a", "b", ":::", "1", "2"]);
    s.same(&["-k", "echo", ":::", "a", "b", ":::", "1", "2", "3", ":::+", "x", "y"]);
    s.same(&["-k", "echo", ":::", "a", "b", "c", ":::+", "1", "2"]);
    std::fs::write(s.path("f1"), "one\ntwo words\n\nlast").expect("write");
    std::fs::write(s.path("f2"), "x,1\ny,2\n").expect("write");
    s.same(&["-k", "echo {1}:{2}", "::::", "f1", ":::", "p", "q"]);
    s.same(&["-k", "-a", "f1", "-a", "f2", "echo"]);
    s.same(&["-k", "echo {1}", "::::", "f1", "::::+", "f2"]);
    s.same(&["-k", "--colsep", ",", "echo {2}{1}", "::::", "f2"]);
    s.same(&["-k", "-N", "2", "echo {2}{1}", ":::", "a", "b", "c", "d", "e"]);
    // No template: the inputs are the commands.
    s.same(&["-k", ":::", "echo a", "echo 'b c'"]);
    // No source: stdin, one value a line.
    for side in [
        "parallel --will-cite",
        &format!("{} map -j 2 --run-dir {}", bin("strand").display(), s.path("stdin-run").display()),
    ] {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("{side} -k echo x{{}} < f1"))
            .current_dir(s.dir.path())
            .output_within(LIMIT);
        assert!(out.status.success(), "{side}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout), "xone\nxtwo words\nx\nxlast\n", "{side}");
    }
}

#[test]
fn output_options_and_exit_status_match() {
    let _file = crate::common::file_group(module_path!());
    let s = Side::new();
    s.same(&["-k", "--tag", "printf 'l1\\nl2\\n'; echo {}", ":::", "a", "b c", ":::", "1"]);
    // {%}: the job slot, 1 .. -j, as GNU parallel's (which slot runs which job differs).
    for r in
        [s.gnu(&["-j", "2", "echo {%}", ":::", "a", "b", "c", "d"]), s.strand(&["echo {%}", ":::", "a", "b", "c", "d"])]
    {
        let mut seen: Vec<&str> = r.stdout.lines().collect();
        assert_eq!(seen.len(), 4, "{r:?}");
        seen.sort();
        seen.dedup();
        assert!(seen.iter().all(|s| ["1", "2"].contains(s)), "slots {seen:?}");
    }
    // Exit status: the number of failed jobs; a failed job's output is printed too.
    let (_, st) = s.same(&["echo {}; exit {}", ":::", "0", "1", "2", "3"]);
    assert_eq!(st.code, Some(3));
    let many: Vec<String> = (0..102).map(|i| i.to_string()).collect();
    let mut args = vec!["exit 1", ":::"];
    args.extend(many.iter().map(String::as_str));
    let (_, st) = s.same(&args);
    assert_eq!(st.code, Some(101), "more than 100 failed");
    // --halt now,fail=1 exits with the failing job's status.
    let g = s.gnu(&["-j1", "--halt", "now,fail=1", "sleep 0.2; exit {}", ":::", "0", "4", "0", "5"]);
    let st = s.strand(&["--halt", "now,fail=1", "sleep 0.2; exit {}", ":::", "0", "4", "0", "5", "0", "0"]);
    assert_eq!((g.code, st.code), (Some(4), Some(4)), "strand: {st:?}");
    assert!(st.stderr.contains("halting (--halt): job 2"), "{}", st.stderr);
    // --halt soon,fail=1: the jobs running when job 1 fails end and are printed, and nothing
    // else starts. GNU parallel -j 2 runs two jobs. Strand's pool also runs what its manager
    // holds for its two slots (one prefetched per worker and a backlog as deep as the slots:
    // 4), refilled once as jobs 1 and 2 end before the withdrawal reaches the interchange; so
    // at most 2 + 4 + 2 = 8, never all 40.
    let mut args = vec!["--halt", "soon,fail=1", "sleep 0.5; echo {}; exit {}", ":::", "1"];
    args.extend(["0"; 39]);
    let g = s.gnu(&[&["-j", "2"], &args[..]].concat());
    assert_eq!((g.code, g.stdout.lines().count()), (Some(1), 2), "GNU parallel: {g:?}");
    let st = s.strand(&args);
    let printed = st.stdout.lines().count();
    assert_eq!(st.code, Some(1), "strand: {st:?}");
    assert!((2..=8).contains(&printed), "jobs run after --halt soon: {printed}\n{st:?}");
}

/// The job log's columns other than the times, by Seq; times checked for form and range.
fn joblog_rows(path: &Path, before: f64) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).expect("joblog");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand"));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs_f64();
    let mut rows: Vec<Vec<String>> = lines
        .map(|l| {
            let cols: Vec<String> = l.splitn(9, '\t').map(str::to_string).collect();
            assert_eq!(cols.len(), 9, "{l:?}");
            let start: f64 = cols[2].parse().expect("Starttime");
            assert!(start >= before - 1.0 && start <= now + 1.0, "Starttime {start} not in this run: {l:?}");
            let runtime: f64 = cols[3].trim().parse().expect("JobRuntime");
            assert!((0.0..60.0).contains(&runtime) && cols[3].len() >= 10, "JobRuntime {:?}", cols[3]);
            [&cols[..2], &cols[4..]].concat()
        })
        .collect();
    rows.sort_by_key(|r| r[0].parse::<u64>().unwrap_or(0));
    rows
}

#[test]
fn joblog_and_resume_match() {
    let _file = crate::common::file_group(module_path!());
    let s = Side::new();
    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs_f64();
    let job = "printf {}; test {} != b && test {} != 'd e'";
    let inputs = ["a", "b", "c", "d e", "f"];
    let first = |log: &'static str| with_inputs(&["--joblog", log, job], &inputs[..3]);
    let (g1, s1) = (s.gnu(&first("gnu.log")), s.strand(&first("strand.log")));
    assert_eq!((g1.code, s1.code), (Some(1), Some(1)), "{s1:?}");
    assert_eq!(joblog_rows(&s.path("strand.log"), before), joblog_rows(&s.path("gnu.log"), before));
    // --resume-failed: b again, d e and f for the first time; a and c skipped.
    let again = |log: &'static str| with_inputs(&["-k", "--joblog", log, "--resume-failed", job], &inputs);
    let (g2, s2) = (s.gnu(&again("gnu.log")), s.strand(&again("strand.log")));
    assert_eq!((g2.code, g2.stdout.as_str()), (Some(2), "bd ef"), "GNU parallel: {g2:?}");
    assert_eq!((s2.code, s2.stdout.as_str()), (g2.code, g2.stdout.as_str()), "{}", s2.stderr);
    assert!(s2.stderr.contains("skipped 2 job(s)"), "the skip is said: {}", s2.stderr);
    let rows = joblog_rows(&s.path("strand.log"), before);
    assert_eq!(rows, joblog_rows(&s.path("gnu.log"), before));
    assert_eq!(rows.len(), 6, "3 + 3 entries, one header: {rows:?}");
    // --resume: every job is in the log now, nothing runs.
    let done = |log: &'static str| with_inputs(&["--joblog", log, "--resume", job], &inputs);
    let (g3, s3) = (s.gnu(&done("gnu.log")), s.strand(&done("strand.log")));
    assert_eq!((s3.code, s3.stdout.as_str()), (g3.code, ""), "{s3:?}");
}

#[test]
fn results_dirs_match() {
    let _file = crate::common::file_group(module_path!());
    let s = Side::new();
    let args = |dir: &'static str| {
        with_inputs(&["--results", dir, "echo {1}; echo err >&2; exit {2}"], &["a/b", "x y", "it's", ":::", "0", "3"])
    };
    let g = s.gnu(&args("gnu"));
    let st = s.strand(&args("strand"));
    assert_eq!((st.code, st.stdout.as_str()), (g.code, ""), "--results prints nothing: {st:?}");
    let tree = |root: &str| {
        let mut files = Vec::new();
        let mut stack = vec![s.path(root)];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).expect("read_dir").map(|e| e.expect("entry")) {
                if e.path().is_dir() {
                    stack.push(e.path());
                } else {
                    let rel = e.path().strip_prefix(s.path(root)).expect("under root").display().to_string();
                    let name = e.file_name().to_string_lossy().into_owned();
                    // Strand keeps stderr only of failed jobs (docs/map.md): compare stdout and seq.
                    let body =
                        if name == "stderr" { String::new() } else { std::fs::read_to_string(e.path()).expect("read") };
                    files.push((rel, body));
                }
            }
        }
        files.sort();
        files
    };
    let gnu = tree("gnu");
    assert_eq!(gnu.len(), 18, "3 x 2 jobs, 3 files each: {gnu:?}");
    assert_eq!(tree("strand"), gnu);
}

#[test]
fn refusals_name_the_input_and_what_was_expected() {
    let _file = crate::common::file_group(module_path!());
    let s = Side::new();
    for (args, phrase) in [
        (vec!["echo {= s/a/b/ =}", ":::", "a"], "Perl replacement strings"),
        (vec!["--retries", "0", "echo", ":::", "a"], "retry forever"),
        (vec!["--timeout", "200%", "echo", ":::", "a"], "percentage"),
        (vec!["--halt", "later", "echo", ":::", "a"], "expected never"),
        (vec!["echo", ":::+", "a"], "comes first"),
        (vec!["-N", "2", "echo", ":::", "a", ":::", "b"], "one input source"),
        (vec!["echo", "::::", "no-such-file"], "no-such-file"),
    ] {
        let r = s.strand(&args);
        assert_eq!(r.code, Some(2), "{args:?}: {r:?}");
        assert!(r.stderr.contains(phrase) && !r.stderr.contains("panicked"), "{args:?}: {}", r.stderr);
    }
}

#[test]
fn the_readme_and_docs_map_examples_run() {
    let _file = crate::common::file_group(module_path!());
    let s = Side::new();
    let mut text = String::new();
    for doc in ["README.md", "docs/map.md"] {
        text += &std::fs::read_to_string(repo().join(doc)).expect(doc);
    }
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("strand map") || l.contains("| strand map"))
        .map(|l| l.split(" # ").next().unwrap_or(l).trim())
        .collect();
    assert!(lines.len() >= 9, "the strand map blocks of README.md and docs/map.md: {lines:?}");
    for f in ["a.txt", "b.txt", "c.dat", "d.dat"] {
        std::fs::write(s.path(f), "one\ntwo\n").expect("write");
    }
    std::fs::write(s.path("files.list"), "c.dat\nd.dat\n").expect("write");
    std::fs::write(s.path("commands.list"), "echo one\necho two\n").expect("write");
    std::fs::write(s.path("make_tasks.py"), "for i in range(3):\n    print('{\"command\": \"echo %d\"}' % i)\n")
        .expect("write");
    let path =
        format!("{}:{}", bin("strand").parent().expect("dir").display(), std::env::var("PATH").unwrap_or_default());
    for line in lines {
        // The shell expands *.txt in the test's directory, as it would in the user's.
        let out =
            Command::new("sh").arg("-c").arg(line).env("PATH", &path).current_dir(s.dir.path()).output_within(LIMIT);
        assert!(out.status.success(), "{line}: {}", String::from_utf8_lossy(&out.stderr));
    }
    assert_eq!(std::fs::read_to_string(s.path("c.lines")).expect("c.lines").trim(), "2");
    assert!(s.path("a.txt.gz").exists() && s.path("jobs.log").exists() && s.path("c.gz").exists());
}
