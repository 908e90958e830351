use super::*;

fn done(t: &Try, out: &str) -> TryResult {
    TryResult::new(t.id, Outcome::Done(out.as_bytes().to_vec()))
}
fn fail(t: &Try) -> TryResult {
    TryResult::new(t.id, Outcome::Failed(Failure::ExitCode { code: 3, stderr: String::new(), stdout: vec![] }))
}

#[test]
fn dependencies_order_and_inputs_substitute() {
    let mut g = Graph::new(ClientId(1));
    let a = g.add(Call::shell("echo 21"));
    let b = g.add(Call::shell("echo $(({0} * 2))").input(&a));
    let first = g.take_ready(10);
    assert_eq!(first.len(), 1, "b waits for a");
    g.on_result(done(&first[0], "21\n"));
    let second = g.take_ready(10);
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].id.task, b.id());
    match &second[0].spec.app {
        App::Command(c) => assert_eq!(c.program, Program::Shell("echo $((21 * 2))".into())),
        other => panic!("{other:?}"),
    }
    g.on_result(done(&second[0], "42"));
    assert_eq!(b.peek(), Some(Ok(b"42".to_vec())));
    assert_eq!(g.pending(), 0);
}

#[test]
fn retries_then_failure_propagates_to_dependents() {
    let mut g = Graph::new(ClientId(1));
    let a = g.add(Call::shell("false").retries(1));
    let b = g.add(Call::shell("x").after(&a));
    let c = g.add(Call::shell("y").after(&b));
    let t0 = g.take_ready(10);
    g.on_result(fail(&t0[0]));
    let t1 = g.take_ready(10);
    assert_eq!(t1[0].id.attempt, 1, "retried as a new try");
    // A late result of the old try is stale.
    g.on_result(done(&t0[0], ""));
    assert_eq!(g.counts().stale, 1);
    g.on_result(fail(&t1[0]));
    assert!(matches!(a.peek(), Some(Err(TaskError::Failed { tries: 2, .. }))));
    for f in [&b, &c] {
        match f.peek() {
            Some(Err(TaskError::DependencyFailed { root, .. })) => assert_eq!(root, a.id()),
            o => panic!("{o:?}"),
        }
    }
    assert_eq!(g.pending(), 0);
    assert_eq!(g.in_flight(), 0);
}

#[test]
fn submitting_after_a_failed_future_fails_at_once() {
    let mut g = Graph::new(ClientId(1));
    let a = g.add(Call::shell("false"));
    let t = g.take_ready(1);
    g.on_result(fail(&t[0]));
    let b = g.add(Call::shell("x").after(&a));
    assert!(matches!(b.peek(), Some(Err(TaskError::DependencyFailed { .. }))));
    assert!(g.take_ready(10).is_empty());
}

#[test]
fn retry_handler_decides_what_is_retried() {
    let mut g = Graph::new(ClientId(1));
    let a = g.add(Call::shell("x").retries(3).retry_handler(retry_on(&[75])));
    let t = g.take_ready(1);
    let temp = |t: &Try, code| {
        TryResult::new(t.id, Outcome::Failed(Failure::ExitCode { code, stderr: String::new(), stdout: vec![] }))
    };
    g.on_result(temp(&t[0], 75));
    let t = g.take_ready(1);
    assert_eq!(t[0].id.attempt, 1, "exit 75 is retried");
    g.on_result(temp(&t[0], 1));
    assert!(matches!(a.peek(), Some(Err(TaskError::Failed { tries: 2, .. }))), "exit 1 is not");
}

#[test]
fn memoized_results_are_reused_and_edits_invalidate_downstream() {
    let run = |memo: Memo, b_cmd: &str| {
        let mut g = Graph::with_memo(ClientId(1), memo);
        g.memoize_by_default(true);
        let a = g.add(Call::shell("echo a"));
        let b = g.add(Call::shell(b_cmd).after(&a));
        let c = g.add(Call::shell("echo c").input(&b));
        let mut sent = vec![];
        loop {
            let t = g.take_ready(10);
            if t.is_empty() {
                break;
            }
            for x in t {
                sent.push(x.id.task);
                g.on_result(done(&x, "out"));
            }
        }
        assert!(c.is_done());
        (sent, g.counts().memo_hits, g.memo)
    };
    let (sent, hits, memo) = run(Memo::in_memory(), "echo b");
    assert_eq!((sent.len(), hits), (3, 0));
    let (sent, hits, memo) = run(memo, "echo b");
    assert_eq!((sent.len(), hits), (0, 3), "an identical graph runs nothing");
    let (sent, hits, _) = run(memo, "echo B");
    assert_eq!(sent, vec![TaskId(1), TaskId(2)], "the edited task and its dependent run again");
    assert_eq!(hits, 1);
}

#[test]
fn files_order_tasks_and_fill_placeholders() {
    let mut g = Graph::new(ClientId(1));
    let w = g.add(Call::shell("sort in.txt > {out0}").output_file("sorted.txt"));
    let r = g.add(Call::shell("wc -l {in0}").input_file("sorted.txt"));
    let unrelated = g.add(Call::shell("wc -l {in0}").input_file("other.txt"));
    let t = g.take_ready(10);
    let ids: Vec<TaskId> = t.iter().map(|x| x.id.task).collect();
    assert_eq!(ids, vec![w.id(), unrelated.id()], "the reader waits for the writer");
    match &t[0].spec.app {
        App::Command(c) => assert_eq!(c.program, Program::Shell("sort in.txt > sorted.txt".into())),
        o => panic!("{o:?}"),
    }
    assert_eq!(t[0].spec.outputs, vec!["sorted.txt".to_string()]);
    g.on_result(done(&t[0], ""));
    let t = g.take_ready(10);
    assert_eq!(t[0].id.task, r.id());
    match &t[0].spec.app {
        App::Command(c) => assert_eq!(c.program, Program::Shell("wc -l sorted.txt".into())),
        o => panic!("{o:?}"),
    }
}

#[test]
fn cancel_cancels_dependents_and_drops_the_late_result() {
    let mut g = Graph::new(ClientId(1));
    let a = g.add(Call::shell("sleep 10"));
    let b = g.add(Call::shell("x").after(&a));
    let c = g.add(Call::shell("y").input(&b));
    let other = g.add(Call::shell("z"));
    let sent = g.take_ready(10);
    assert_eq!(sent.len(), 2);
    assert_eq!(g.cancel(a.id()), 3);
    for f in [&a, &b, &c] {
        assert_eq!(f.peek(), Some(Err(TaskError::Cancelled)));
    }
    assert_eq!(g.in_flight(), 1, "only the unrelated try is still out");
    g.on_result(done(&sent[0], "late"));
    assert_eq!(g.counts().stale, 1, "the cancelled try's result is dropped");
    assert!(!other.is_done());
    assert_eq!(g.cancel(a.id()), 0, "cancelling twice does nothing");
}

/// `--halt soon`: what was never sent is cancelled at once, what the interchange gives back is
/// cancelled when it says so, and what a manager holds runs on and ends as usual.
#[test]
fn withdrawing_cancels_the_unsent_and_the_given_back_but_not_what_runs() {
    let mut g = Graph::new(ClientId(1));
    let running = g.add(Call::shell("sleep 1"));
    let queued = g.add(Call::shell("sleep 2"));
    let after = g.add(Call::shell("x").after(&running));
    let sent = g.take_ready(2);
    let unsent = g.add(Call::shell("never sent"));
    assert_eq!(g.cancel_unsent(), 2, "the unsent task and the one waiting on its input");
    for f in [&unsent, &after] {
        assert_eq!(f.peek(), Some(Err(TaskError::Cancelled)));
    }
    assert!(g.take_ready(10).is_empty(), "nothing left to send");
    let stale = TryId { attempt: 7, ..sent[1].id };
    let other_client = TryId { client: ClientId(2), ..sent[1].id };
    assert_eq!(g.withdrawn(&[stale, other_client]), 0, "another attempt's or client's try changes nothing");
    assert_eq!(g.withdrawn(&[sent[1].id]), 1);
    assert_eq!(queued.peek(), Some(Err(TaskError::Cancelled)));
    assert_eq!(g.withdrawn(&[sent[1].id]), 0, "given back twice");
    g.on_result(done(&sent[0], "ran"));
    assert_eq!(running.peek(), Some(Ok(b"ran".to_vec())));
    assert_eq!((g.pending(), g.in_flight(), g.counts().cancelled), (0, 0, 3));
}

#[test]
fn input_content_is_part_of_the_key_when_asked() {
    let d = tempfile::tempdir().expect("tempdir");
    let f = d.path().join("in.txt");
    let path = f.display().to_string();
    let run = |memo: Memo| {
        let mut g = Graph::with_memo(ClientId(1), memo);
        g.memoize_by_default(true);
        g.add(Call::shell("wc -l {in0}").input_file(path.clone()).hash_inputs(true));
        assert!(g.take_ready(1).is_empty(), "it waits for its inputs' hashes");
        for (id, files) in g.take_hashing() {
            g.hashed(id, files.iter().map(|f| hash_input_file(f)).collect());
        }
        let t = g.take_ready(1);
        for x in &t {
            g.on_result(done(x, "1"));
        }
        (t.len(), g.memo)
    };
    std::fs::write(&f, "a\n").expect("write");
    let (sent, memo) = run(Memo::in_memory());
    assert_eq!(sent, 1);
    let (sent, memo) = run(memo);
    assert_eq!(sent, 0, "same content: memoized");
    std::fs::write(&f, "a\nb\n").expect("write");
    let (sent, _) = run(memo);
    assert_eq!(sent, 1, "changed content: runs again");
}

#[test]
fn refused_tries_are_resent() {
    let mut g = Graph::new(ClientId(1));
    g.add(Call::function("noop", vec![]));
    let t = g.take_ready(1);
    g.requeue(&[t[0].id]);
    assert_eq!(g.in_flight(), 0);
    assert_eq!(g.take_ready(1)[0].id, t[0].id);
}

#[test]
fn function_inputs_are_appended_to_args() {
    let mut g = Graph::new(ClientId(1));
    let a = g.add(Call::function("echo", b"x".to_vec()));
    g.add(Call::function("echo", b"<".to_vec()).input(&a).input(&a));
    let t = g.take_ready(1);
    g.on_result(done(&t[0], "ab"));
    let t = g.take_ready(1);
    match &t[0].spec.app {
        App::Function(f) => assert_eq!(f.args, b"<abab".to_vec()),
        other => panic!("{other:?}"),
    }
}

/// Records wait in the graph until a batch is full or the handoff is due, and none are lost.
#[test]
fn records_are_handed_over_by_the_batch_or_when_due() {
    let mut g = Graph::new(ClientId(1));
    g.keep_records();
    assert!(!g.has_records() && g.take_records_if(1, true).is_empty());
    g.add(Call::shell("a"));
    g.add(Call::shell("b"));
    assert!(g.take_records_if(3, false).is_empty(), "two records: not a batch of three, not due");
    assert!(g.has_records());
    assert_eq!(g.take_records_if(2, false).len(), 2, "a full batch goes");
    g.add(Call::shell("c"));
    assert_eq!(g.take_records_if(100, true).len(), 1, "a due one goes alone");
    assert!(!g.has_records());
}
