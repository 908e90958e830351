use super::*;

fn err(text: &str) -> String {
    Workflow::parse(text, "wf.toml").expect_err("should fail").to_string()
}

#[test]
fn examples_parse() {
    for f in ["hello.toml", "diamond.toml", "sweep.toml"] {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(f);
        let wf = Workflow::from_file(&p).unwrap_or_else(|e| panic!("{e}"));
        assert!(!wf.tasks.is_empty());
        assert_eq!(wf.topological_order().len(), wf.tasks.len());
    }
}

#[test]
fn defaults_merge_and_order() {
    let wf = Workflow::parse(
        r#"
[defaults]
walltime = "1m30s"
retries = 2
env = { A = "1", B = "2" }

[[task]]
name = "b"
argv = ["echo", "b"]
after = ["a"]
env = { B = "3" }
walltime = 5

[[task]]
name = "a"
function = "echo"
args = "hi"
"#,
        "wf.toml",
    )
    .expect("parses");
    let b = &wf.tasks[0];
    assert_eq!(b.spec.walltime_ms, Some(5000));
    assert_eq!(b.retries, 2);
    match &b.spec.app {
        App::Command(c) => assert_eq!(c.env, vec![("A".into(), "1".into()), ("B".into(), "3".into())]),
        o => panic!("{o:?}"),
    }
    assert_eq!(wf.tasks[1].spec.walltime_ms, Some(90_000));
    assert_eq!(wf.topological_order(), vec![1, 0]);
}

#[test]
fn sweeps_expand_and_arrays_depend_on_each_other() {
    let wf = Workflow::parse(
        r#"
[[task]]
name = "prep"
command = "mkdir -p out"

[[task]]
name = "sim"
command = "simulate --seed {i} --T {T} > out/{i}-{T}"
over = { i = "0..3", T = [300, 400] }
after = ["prep"]

[[task]]
name = "post"
argv = ["post", "{i}"]
over = { i = "0..=2" }
after = ["sim[{i},300]", "sim[{i},400]"]

[[task]]
name = "report"
function = "echo"
args = "all"
after = ["post"]
"#,
        "wf.toml",
    )
    .expect("parses");
    let names: Vec<&str> = wf.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names.len(), 1 + 6 + 3 + 1);
    assert!(names.contains(&"sim[2,400]") && names.contains(&"post[1]"), "{names:?}");
    let sim = wf.tasks.iter().find(|t| t.name == "sim[2,400]").expect("sim");
    match &sim.spec.app {
        App::Command(c) => assert_eq!(c.program, Program::Shell("simulate --seed 2 --T 400 > out/2-400".into())),
        o => panic!("{o:?}"),
    }
    assert_eq!(sim.after, vec![0]);
    let post1 = wf.tasks.iter().find(|t| t.name == "post[1]").expect("post");
    let deps: Vec<&str> = post1.after.iter().map(|&j| wf.tasks[j].name.as_str()).collect();
    assert_eq!(deps, ["sim[1,300]", "sim[1,400]"]);
    let report = wf.tasks.last().expect("report");
    assert_eq!(report.after.len(), 3, "a base name means every task of the array");
    assert_eq!(wf.topological_order().len(), 11);

    let e = err("[[task]]\nname = \"a\"\ncommand = \"x\"\nover = { i = \"0..x\" }\n");
    assert!(e.starts_with("wf.toml:4:") && e.contains("range like"), "{e}");
    let e = err("[[task]]\nname = \"a\"\ncommand = \"x\"\nover = { i = [] }\n");
    assert!(e.contains("no values"), "{e}");
    let e = err("[[task]]\nname = \"a\"\ncommand = \"x\"\nover = { i = \"0..100000\", j = \"0..1000\" }\n");
    assert!(e.contains("more than"), "{e}");
    let e = err("[[task]]\nname = \"a\"\ncommand = \"x {i}\"\nover = { i = \"0..2\" }\nafter = [\"a[{i}]\"]\n");
    assert!(e.contains("dependency cycle"), "{e}");
}

#[test]
fn files_make_dependencies() {
    let wf = Workflow::parse(
        r#"
[[task]]
name = "count"
command = "wc -l {in0} > {out0}"
inputs = ["sorted.txt"]
outputs = ["count.txt"]

[[task]]
name = "sort"
command = "sort data.txt > {out0}"
outputs = ["sorted.txt"]
"#,
        "wf.toml",
    )
    .expect("parses");
    assert_eq!(wf.tasks[0].after, vec![1], "count reads what sort writes");
    assert_eq!(wf.tasks[0].spec.outputs, vec!["count.txt".to_string()]);
    match &wf.tasks[0].spec.app {
        App::Command(c) => assert_eq!(c.program, Program::Shell("wc -l sorted.txt > count.txt".into())),
        o => panic!("{o:?}"),
    }
    assert_eq!(wf.topological_order(), vec![1, 0]);
    let e = err("[[task]]\nname = \"a\"\ncommand = \"x\"\noutputs = [\"f\"]\n[[task]]\nname = \"b\"\ncommand = \"y\"\noutputs = [\"f\"]\n");
    assert!(e.contains("both declare output \"f\""), "{e}");
}

#[test]
fn cycles_name_only_their_tasks() {
    // d waits on the cycle but is not part of it, so it must not be named.
    let e = err(concat!(
        "[[task]]\nname = \"a\"\ncommand = \"x\"\nafter = [\"c\"]\n",
        "[[task]]\nname = \"b\"\ncommand = \"x\"\nafter = [\"a\"]\n",
        "[[task]]\nname = \"c\"\ncommand = \"x\"\nafter = [\"b\"]\n",
        "[[task]]\nname = \"d\"\ncommand = \"x\"\nafter = [\"c\"]\n",
    ));
    assert!(e.starts_with("wf.toml:2:8: dependency cycle among tasks a, b, c (a -> b -> c -> a"), "{e}");
    let e = err("[[task]]\nname = \"a\"\ncommand = \"x\"\nafter = [\"a\"]\n");
    assert!(e.starts_with("wf.toml:2:8: ") && e.contains("\"a\" runs after itself"), "{e}");
}

#[test]
fn repeated_dependencies_count_once() {
    let wf = Workflow::parse(
        "[[task]]\nname = \"a\"\ncommand = \"x\"\n[[task]]\nname = \"b\"\ncommand = \"y\"\nafter = [\"a\", \"a\"]\n",
        "wf.toml",
    )
    .expect("parses");
    assert_eq!(wf.tasks[1].after, vec![0]);
}

#[test]
fn resources_merge_with_defaults_key_by_key() {
    let wf = Workflow::parse(
        "[defaults]\nresources = { gpus = 1 }\n[[task]]\nname = \"a\"\ncommand = \"x\"\nresources = { cores = 4, ranks = 2 }\n[[task]]\nname = \"b\"\ncommand = \"y\"\n",
        "wf.toml",
    )
    .expect("parses");
    assert_eq!(wf.tasks[0].spec.resources, crate::task::Resources { cores: 4, gpus: 1, ranks: 2 });
    assert_eq!(wf.tasks[1].spec.resources, crate::task::Resources { cores: 1, gpus: 1, ranks: 1 });
    let e = err("[[task]]\nname = \"a\"\ncommand = \"x\"\nresources = { cores = 0 }\n");
    assert!(e.contains("at least 1") && e.contains("wf.toml:4"), "{e}");
    let e = err("[[task]]\nname = \"a\"\ncommand = \"x\"\nresources = { memory = 3 }\n");
    assert!(e.contains("memory") && e.contains("cores"), "{e}");
}

#[test]
fn walltimes_that_would_be_silently_wrong_are_refused() {
    for (w, phrase) in [
        ("0", "positive"),
        ("-5", "positive"),
        ("0.0001", "at least 1 ms"),
        ("1e30", "at most a year"),
        ("\"0.1ms\"", "at least 1 ms"),
        ("\"99999999999h\"", "at most a year"),
        ("\"-1s\"", "a duration like"),
    ] {
        let e = err(&format!("[[task]]\nname = \"a\"\ncommand = \"x\"\nwalltime = {w}\n"));
        assert!(e.starts_with("wf.toml:4:12: ") && e.contains(phrase), "{w}: {e}");
    }
    let e = err("[defaults]\nwalltime = \"soon\"\n[[task]]\nname = \"a\"\ncommand = \"x\"\n");
    assert!(e.starts_with("wf.toml:2:12: ") && e.contains("\"soon\""), "{e}");
}

#[test]
fn toml_errors_without_a_message_still_say_what_is_wrong() {
    // Found by the workflow_parse fuzz target: a NUL in a comment gave "wf.toml:1:5: ".
    let e = err("# a \0 b\n[[task]]\nname = \"a\"\ncommand = \"x\"\n");
    assert_eq!(e, "wf.toml:1:5: invalid TOML: unexpected character '\\0'");
}

#[test]
fn durations() {
    assert_eq!(parse_duration("90s"), Ok(90_000));
    assert_eq!(parse_duration("1h30m"), Ok(5_400_000));
    assert_eq!(parse_duration("250ms"), Ok(250));
    assert_eq!(parse_duration("2.5"), Ok(2500));
    assert!(parse_duration("soon").is_err());
    assert!(parse_duration("-1").is_err());
    assert!(parse_duration("10").is_ok());
    assert!(parse_duration("10x").is_err());
}

#[test]
fn errors_name_line_and_expectation() {
    let e = err("[[task]]\nname = \"a\"\ncommand = \"x\"\n\n[[task]]\nname = \"b\"\ncomand = \"x\"\n");
    assert!(e.starts_with("wf.toml:7:"), "{e}");
    assert!(e.contains("comand") && e.contains("command"), "{e}");

    let e = err("[[task]]\nname = \"a\"\ncommand = \"x\"\nwalltime = true\n");
    assert!(e.starts_with("wf.toml:4:"), "{e}");
    assert!(e.contains("duration string"), "{e}");

    let e = err("[[task]]\nname = \"a\"\ncommand = \"x\"\nargv = [\"y\"]\n");
    assert_eq!(e, "wf.toml:4:1: task \"a\" has both `command` and `argv`; give exactly one of command, argv, function");
    let e = err("[[task]]\nname = \"a\"\nfunction = \"f\"\n  command = \"x\"\nargv = [\"y\"]\n");
    assert!(e.starts_with("wf.toml:5:1: ") && e.contains("has `command` and `argv` and `function`"), "{e}");
    let e = err("[[task]]\nname = \"a\"\n");
    assert!(e.starts_with("wf.toml:1:1: ") && e.contains("has none of command, argv, function"), "{e}");

    let e = err("[[task]]\nname = \"a\"\ncommand = \"x\"\n[[task]]\nname = \"a\"\ncommand = \"y\"\n");
    assert!(e.starts_with("wf.toml:5:") && e.contains("first on line 2"), "{e}");

    let e = err("[[task]]\nname = \"a\"\ncommand = \"x\"\nafter = [\"zz\"]\n");
    assert!(e.starts_with("wf.toml:4:") && e.contains("\"zz\""), "{e}");

    let e = err("[[task]]\nname = \"a\"\ncommand = \"x\"\nafter = [\"b\"]\n[[task]]\nname = \"b\"\ncommand = \"y\"\nafter = [\"a\"]\n");
    assert!(e.contains("dependency cycle among tasks a, b"), "{e}");

    let e = err("[[task]]\nname = \"a b\"\ncommand = \"x\"\n");
    assert!(e.starts_with("wf.toml:2:") && e.contains("letters, digits"), "{e}");

    let e = err("[[task]]\nname = \"a\"\nargv = []\n");
    assert!(e.starts_with("wf.toml:3:") && e.contains("argv is empty"), "{e}");

    let e = err("[[task]]\nname = \"a\"\ncommand = \"x\"\nargs = \"1\"\n");
    assert!(e.starts_with("wf.toml:4:") && e.contains("only for `function`"), "{e}");

    let e = err("[[task]]\ncommand = \"x\"\n");
    assert!(e.starts_with("wf.toml:1:") && e.contains("without a name"), "{e}");

    let e = err("[[task]\nname = 1\n");
    assert!(e.starts_with("wf.toml:1:7: ") && e.contains("expected"), "{e}");
    assert!(!e.contains('\n'), "one line per error: {e}");

    assert!(err("# nothing\n").contains("no tasks"));
    let e = Workflow::from_file(Path::new("/no/such/wf.toml")).expect_err("missing");
    assert!(e.to_string().starts_with("/no/such/wf.toml:"), "{e}");
}
