//! Command templates with GNU parallel's replacement strings, parsed once and filled per job.
//!
//! The rules follow GNU parallel 20221122 (Debian 12's), checked side by side in
//! `tests/it/gnu_parallel.rs`: `{.}` removes `\.[^/.]*$`, `{/}` removes `.*/`, `{//}` is the
//! shell's `dirname`, and every value is quoted the way GNU parallel quotes it.

use thiserror::Error;

/// A template that cannot be used, with the reason.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TemplateError {
    /// `{= ... =}` needs a Perl interpreter in every worker's command line.
    #[error(
        "{0:?}: Perl replacement strings ({{= ... =}}) are not supported; use the shell inside the \
         command instead, e.g. \"$(basename {{}} .gz)\""
    )]
    Perl(String),
    /// A positional replacement string `{0}`: positions count from 1.
    #[error("{0:?}: input positions count from 1 ({{1}} is the first input source or column)")]
    PositionZero(String),
}

/// Which inputs a replacement string takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pick {
    /// `{}`: all of them, one quoted word each.
    All,
    /// `{n}`: the n-th, 1-based.
    Nth(usize),
    /// `{-n}`: the n-th from the end, 1-based.
    FromEnd(usize),
}

/// What a replacement string does to each input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Edit {
    /// `{}` as it is.
    Whole,
    /// `{.}`: without its extension.
    NoExt,
    /// `{/}`: the base name.
    Base,
    /// `{//}`: the directory.
    Dir,
    /// `{/.}`: the base name without its extension.
    BaseNoExt,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    Input(Pick, Edit),
    /// `{#}`: the job's sequence number.
    Seq,
    /// `{%}`: the job slot.
    Slot,
}

/// One job's values: its inputs (one per source or column), sequence number and slot text.
#[derive(Clone, Copy, Debug)]
pub struct Job<'a> {
    /// The inputs, in source (or column) order.
    pub inputs: &'a [String],
    /// 1-based position in the input, as GNU parallel's `{#}`.
    pub seq: u64,
}

/// A parsed command template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
    /// No replacement string at all: the inputs are appended, as GNU parallel does.
    append: bool,
}

/// What `{%}` becomes: the worker's slot number, which only the worker knows (see docs/map.md).
pub const SLOT_VARIABLE: &str = "\"$STRAND_SLOT\"";

impl Template {
    /// Parse `text`; an empty template runs each job's inputs as the command.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            lit.push_str(&rest[..open]);
            let after = &rest[open..];
            if after.starts_with("{=") {
                let end = after.find("=}").map_or(after.len(), |e| e + 2);
                return Err(TemplateError::Perl(after[..end].to_string()));
            }
            match after.find('}').and_then(|close| Some((close, replacement(&after[1..close])?))) {
                Some((close, part)) => {
                    if let Part::Input(Pick::Nth(0), _) = part {
                        return Err(TemplateError::PositionZero(after[..=close].to_string()));
                    }
                    if !lit.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut lit)));
                    }
                    parts.push(part);
                    rest = &after[close + 1..];
                }
                // Not a replacement string: the brace is text, as in GNU parallel.
                None => {
                    lit.push('{');
                    rest = &after[1..];
                }
            }
        }
        lit.push_str(rest);
        // `{#}` and `{%}` count as replacement strings here too, as in GNU parallel.
        let append = parts.iter().all(|p| matches!(p, Part::Text(_)));
        if !lit.is_empty() {
            parts.push(Part::Text(lit));
        }
        Ok(Template { parts, append })
    }

    /// Whether the template is empty, so that the inputs themselves are the command.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// The command line for one job.
    pub fn fill(&self, job: Job<'_>) -> String {
        if self.is_empty() {
            // GNU parallel runs the inputs as the command, unquoted.
            return job.inputs.join(" ");
        }
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Seq => out.push_str(&job.seq.to_string()),
                Part::Slot => out.push_str(SLOT_VARIABLE),
                Part::Input(pick, edit) => push_inputs(&mut out, job.inputs, *pick, *edit),
            }
        }
        if self.append {
            out.push(' ');
            push_inputs(&mut out, job.inputs, Pick::All, Edit::Whole);
        }
        out
    }
}

/// The replacement string inside `{...}`, or `None` if it is not one.
fn replacement(inner: &str) -> Option<Part> {
    match inner {
        "#" => return Some(Part::Seq),
        "%" => return Some(Part::Slot),
        _ => {}
    }
    let digits_end = inner
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_digit() || (*i == 0 && *c == '-')))
        .map_or(inner.len(), |(i, _)| i);
    let (number, edit) = inner.split_at(digits_end);
    let edit = match edit {
        "" => Edit::Whole,
        "." => Edit::NoExt,
        "/" => Edit::Base,
        "//" => Edit::Dir,
        "/." => Edit::BaseNoExt,
        _ => return None,
    };
    let pick = match number {
        "" => Pick::All,
        "-" => return None,
        n if n.starts_with('-') => Pick::FromEnd(n[1..].parse().ok().filter(|n| *n > 0)?),
        n => Pick::Nth(n.parse().ok()?),
    };
    Some(Part::Input(pick, edit))
}

fn push_inputs(out: &mut String, inputs: &[String], pick: Pick, edit: Edit) {
    let one = |out: &mut String, s: &str| out.push_str(&quote(&apply(edit, s)));
    match pick {
        Pick::All => {
            for (i, s) in inputs.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                one(out, s);
            }
        }
        // A position past the inputs (a short last group of `-N`) is nothing, not `''`.
        Pick::Nth(n) => {
            if let Some(s) = inputs.get(n - 1) {
                one(out, s)
            }
        }
        Pick::FromEnd(n) => {
            if let Some(s) = inputs.len().checked_sub(n).and_then(|i| inputs.get(i)) {
                one(out, s)
            }
        }
    }
}

fn apply(edit: Edit, s: &str) -> std::borrow::Cow<'_, str> {
    match edit {
        Edit::Whole => s.into(),
        Edit::NoExt => no_ext(s).into(),
        Edit::Base => base(s).into(),
        Edit::Dir => dir(s).into(),
        Edit::BaseNoExt => no_ext(base(s)).into(),
    }
}

/// GNU parallel's `{.}`: remove a final `.` and what follows it, if no `/` or `.` follows.
fn no_ext(s: &str) -> &str {
    match s.rfind(['.', '/']) {
        Some(i) if s.as_bytes()[i] == b'.' => &s[..i],
        _ => s,
    }
}

/// GNU parallel's `{/}`: everything after the last `/` (empty for `dir/`).
fn base(s: &str) -> &str {
    s.rfind('/').map_or(s, |i| &s[i + 1..])
}

/// GNU parallel's `{//}`: the shell's `dirname` (`a/b/` → `a`, `a` → `.`, `/a` → `/`).
fn dir(s: &str) -> String {
    let trimmed = s.trim_end_matches('/');
    if trimmed.is_empty() {
        return if s.is_empty() { ".".into() } else { "/".into() };
    }
    match trimmed.rfind('/') {
        None => ".".into(),
        Some(i) => {
            let d = trimmed[..i].trim_end_matches('/');
            if d.is_empty() {
                "/".into()
            } else {
                d.into()
            }
        }
    }
}

/// Shell builtins and keywords: a command line starting with one of these needs the shell
/// even when it has no shell syntax (`exit 3`, `cd dir`, `true`).
const SHELL_WORDS: &[&str] = &[
    "!",
    ".",
    ":",
    "[",
    "[[",
    "]]",
    "{",
    "}",
    "alias",
    "bg",
    "bind",
    "break",
    "builtin",
    "caller",
    "case",
    "cd",
    "command",
    "compgen",
    "complete",
    "compopt",
    "continue",
    "coproc",
    "declare",
    "dirs",
    "disown",
    "do",
    "done",
    "echo",
    "elif",
    "else",
    "enable",
    "esac",
    "eval",
    "exec",
    "exit",
    "export",
    "false",
    "fc",
    "fg",
    "fi",
    "for",
    "function",
    "getopts",
    "hash",
    "help",
    "history",
    "if",
    "in",
    "jobs",
    "kill",
    "let",
    "local",
    "logout",
    "mapfile",
    "popd",
    "printf",
    "pushd",
    "pwd",
    "read",
    "readarray",
    "readonly",
    "return",
    "select",
    "set",
    "shift",
    "shopt",
    "source",
    "suspend",
    "test",
    "then",
    "time",
    "times",
    "trap",
    "true",
    "type",
    "typeset",
    "ulimit",
    "umask",
    "unalias",
    "unset",
    "until",
    "wait",
    "while",
];

/// The program and arguments of a command line that the shell would only split into words
/// (no quotes, variables, globs, redirections, assignments or builtins), so that it can be
/// started without a shell: one process less per job, which is most of a short job's cost.
pub fn as_argv(command: &str) -> Option<Vec<String>> {
    let plain =
        |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'+' | b'/' | b',' | b'@' | b'%' | b':');
    if !command.bytes().all(|b| plain(b) || b == b' ' || b == b'=') {
        return None;
    }
    let words: Vec<String> = command.split(' ').filter(|w| !w.is_empty()).map(str::to_string).collect();
    let first = words.first()?;
    // `A=1 cmd` is an assignment; a builtin or keyword is not a program.
    if first.contains('=') || SHELL_WORDS.contains(&first.as_str()) {
        return None;
    }
    Some(words)
}

/// Quote one value for the shell exactly as GNU parallel does: bare if it holds only
/// `[-_.+a-zA-Z0-9/]`, else in single quotes with `'` written `'"'"'` (so `--dry-run`
/// prints the same line as GNU parallel's).
pub fn quote(s: &str) -> String {
    if s.is_empty() {
        return "''".into();
    }
    if s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'+' | b'/')) {
        return s.to_string();
    }
    let q = format!("'{}'", s.replace('\'', "'\"'\"'"));
    // `'` at either end leaves an empty `''` there, which GNU parallel drops.
    let q = q.strip_prefix("''").unwrap_or(&q);
    q.strip_suffix("''").unwrap_or(q).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(t: &str, inputs: &[&str]) -> String {
        let inputs: Vec<String> = inputs.iter().map(|s| s.to_string()).collect();
        Template::parse(t).expect("parses").fill(Job { inputs: &inputs, seq: 7 })
    }

    #[test]
    fn edits_match_gnu_parallel() {
        // (input, {.}, {/}, {//}, {/.}) as GNU parallel 20221122 prints them.
        for (s, dot, slash, dirname, slash_dot) in [
            ("a.b.c", "a.b", "a.b.c", ".", "a.b"),
            ("dir/x.tar.gz", "dir/x.tar", "x.tar.gz", "dir", "x.tar"),
            ("dir/", "dir/", "", ".", ""),
            (".bashrc", "", ".bashrc", ".", ""),
            ("d/.hidden", "d/", ".hidden", "d", ""),
            ("/abs", "/abs", "abs", "/", "abs"),
            ("x.", "x", "x.", ".", "x"),
            ("a.b/c", "a.b/c", "c", "a.b", "c"),
            ("..", ".", "..", ".", "."),
            ("/", "/", "", "/", ""),
            ("dir//f.e", "dir//f", "f.e", "dir", "f"),
            ("", "", "", ".", ""),
        ] {
            assert_eq!(no_ext(s), dot, "{{.}} of {s:?}");
            assert_eq!(base(s), slash, "{{/}} of {s:?}");
            assert_eq!(dir(s), dirname, "{{//}} of {s:?}");
            assert_eq!(no_ext(base(s)), slash_dot, "{{/.}} of {s:?}");
        }
    }

    #[test]
    fn quoting_matches_gnu_parallel() {
        for (s, q) in [
            ("a-b_c+d/e.f", "a-b_c+d/e.f"),
            ("", "''"),
            ("a b", "'a b'"),
            ("it's", "'it'\"'\"'s'"),
            ("'a", "\"'\"'a'"),
            ("a'", "'a'\"'\""),
            ("'", "\"'\""),
            ("$HOME", "'$HOME'"),
            ("naïve", "'naïve'"),
            ("=", "'='"),
        ] {
            assert_eq!(quote(s), q, "{s:?}");
        }
    }

    #[test]
    fn replacement_strings() {
        assert_eq!(fill("gzip {}", &["a b.txt"]), "gzip 'a b.txt'");
        assert_eq!(fill("convert {} {.}.png", &["dir/x.jpg"]), "convert dir/x.jpg dir/x.png");
        assert_eq!(fill("echo {/} {//} {#} {/.}", &["dir/x.jpg"]), "echo x.jpg dir 7 x");
        assert_eq!(fill("echo {1}-{2} {-1} {2.} {1/}", &["a/b", "c.d"]), "echo a/b-c.d c.d c b");
        assert_eq!(fill("echo {}", &["a", "b c"]), "echo a 'b c'");
        assert_eq!(fill("echo {2}{1}", &["e"]), "echo e", "a missing position is nothing");
        assert_eq!(fill("echo {%}", &["x"]), format!("echo {SLOT_VARIABLE}"), "{{%}} is a replacement string");
        assert_eq!(fill("echo {#}", &["x"]), "echo 7");
    }

    #[test]
    fn no_replacement_string_appends_and_empty_runs_the_inputs() {
        assert_eq!(fill("echo", &["it's"]), "echo 'it'\"'\"'s'");
        assert_eq!(fill("echo", &["a", "1"]), "echo a 1");
        assert_eq!(fill("", &["echo a", "b"]), "echo a b");
    }

    #[test]
    fn braces_that_are_not_replacement_strings_stay() {
        assert_eq!(fill("awk '{print $1}' {}", &["f"]), "awk '{print $1}' f");
        assert_eq!(fill("echo {x} {-} {1x} {", &["f"]), "echo {x} {-} {1x} { f");
    }

    #[test]
    fn only_plain_command_lines_skip_the_shell() {
        let argv = |s: &str| as_argv(s).map(|v| v.join("|"));
        assert_eq!(argv("/bin/true 1").as_deref(), Some("/bin/true|1"));
        assert_eq!(argv("gzip  -9 dir/a.b,c=d@e%f:g").as_deref(), Some("gzip|-9|dir/a.b,c=d@e%f:g"));
        for shell in [
            "exit 3",
            "true",
            "echo a",
            "cd /tmp",
            "A=1 env",
            "ls *.txt",
            "cat 'a b'",
            "echo $HOME",
            "a > f",
            "a; b",
            "a && b",
            "ls ~",
            "x # y",
            "",
            "  ",
        ] {
            assert_eq!(as_argv(shell), None, "{shell:?} needs the shell");
        }
    }

    #[test]
    fn refused_templates_say_why() {
        let e = Template::parse("echo {= s/a/b/ =}").expect_err("perl");
        assert!(e.to_string().contains("Perl") && e.to_string().contains("{= s/a/b/ =}"), "{e}");
        let e = Template::parse("echo {0}").expect_err("zero");
        assert!(e.to_string().contains("count from 1"), "{e}");
    }
}
