//! Input sources of `strand map`, combined as GNU parallel combines them: every combination
//! of the sources (the last varies fastest), `:::+`/`::::+` linking a source with the one
//! before it, `-N` grouping, `--colsep` columns.
//!
//! The first source streams (a million-line file is never held in memory); the others are
//! read whole, since each of their values is used once per value of the sources before them.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Where one input source's values come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Values given on the command line after `:::`.
    Args(Vec<String>),
    /// One value a line of a file (`::::`, `-a`), `-` for stdin.
    File(PathBuf),
}

/// One input source and whether it is linked (`:::+`, `::::+`) to the one before it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// Its values.
    pub origin: Origin,
    /// Zipped with the previous source instead of combined with it.
    pub linked: bool,
}

/// A bad input, named.
#[derive(Debug, Error)]
pub enum InputError {
    /// A file could not be opened or read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file (`-`: stdin).
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A line that is not UTF-8 (commands are text).
    #[error("{path} line {line}: not UTF-8 text")]
    NotText {
        /// The file.
        path: String,
        /// 1-based line.
        line: u64,
    },
    /// `:::+` or `::::+` before any source.
    #[error("{0} links a source to the one before it, but it comes first")]
    LinkFirst(String),
    /// A separator with nothing after it.
    #[error("{0} is followed by no {1}")]
    Empty(String, &'static str),
    /// `-N` with several sources.
    #[error("-N groups the values of one input source; {0} sources were given")]
    GroupSeveral(usize),
    /// A `--colsep` that matches the empty string.
    #[error("--colsep {0:?} is empty; give the text that separates columns (e.g. --colsep ',')")]
    EmptyColsep(String),
}

/// Split the words after the template into sources: `:::` values, `::::` files, each with
/// a `+` form. Returns the template words (before the first separator) and the sources.
pub fn split_words(words: &[String]) -> Result<(Vec<String>, Vec<Source>), InputError> {
    let is_sep = |w: &str| matches!(w, ":::" | ":::+" | "::::" | "::::+");
    let first = words.iter().position(|w| is_sep(w)).unwrap_or(words.len());
    let mut sources = Vec::new();
    let mut i = first;
    while i < words.len() {
        let sep = words[i].as_str();
        let end = words[i + 1..].iter().position(|w| is_sep(w)).map_or(words.len(), |e| i + 1 + e);
        let values = &words[i + 1..end];
        let linked = sep.ends_with('+');
        if linked && sources.is_empty() {
            return Err(InputError::LinkFirst(sep.to_string()));
        }
        if sep.starts_with("::::") {
            if values.is_empty() {
                return Err(InputError::Empty(sep.to_string(), "file"));
            }
            // Each file is a source of its own; `+` links the first of them.
            for (k, f) in values.iter().enumerate() {
                sources.push(Source { origin: Origin::File(f.into()), linked: linked && k == 0 });
            }
        } else {
            sources.push(Source { origin: Origin::Args(values.to_vec()), linked });
        }
        i = end;
    }
    Ok((words[..first].to_vec(), sources))
}

/// Values of one source, one at a time.
type Values = Box<dyn Iterator<Item = Result<String, InputError>>>;

fn open(origin: &Origin) -> Result<Values, InputError> {
    match origin {
        Origin::Args(v) => Ok(Box::new(v.clone().into_iter().map(Ok))),
        Origin::File(path) => {
            let name = path.display().to_string();
            let reader: Box<dyn BufRead> = if path == Path::new("-") {
                Box::new(std::io::BufReader::new(std::io::stdin()))
            } else {
                let f = std::fs::File::open(path).map_err(|source| InputError::Read { path: name.clone(), source })?;
                Box::new(std::io::BufReader::with_capacity(1 << 16, f))
            };
            Ok(Box::new(Lines { reader, path: name, line: 0, done: false }))
        }
    }
}

/// Lines of a reader without their `\n`; an empty line is an empty value, as in GNU parallel.
struct Lines {
    reader: Box<dyn BufRead>,
    path: String,
    line: u64,
    done: bool,
}

impl Iterator for Lines {
    type Item = Result<String, InputError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let mut buf = Vec::new();
        match self.reader.read_until(b'\n', &mut buf) {
            Ok(0) => None,
            Ok(_) => {
                self.line += 1;
                if buf.last() == Some(&b'\n') {
                    buf.pop();
                }
                Some(
                    String::from_utf8(buf)
                        .map_err(|_| InputError::NotText { path: self.path.clone(), line: self.line }),
                )
            }
            Err(source) => {
                self.done = true;
                Some(Err(InputError::Read { path: self.path.clone(), source }))
            }
        }
    }
}

/// How values become a job's inputs.
#[derive(Clone, Debug, Default)]
pub struct Shape {
    /// `-N n`: n values of the one source per job.
    pub group: Option<usize>,
    /// `--colsep`: each value split into columns at this text.
    pub colsep: Option<String>,
}

/// Jobs' inputs, in GNU parallel's order.
pub struct Jobs {
    /// The first group of linked sources, streamed.
    head: Vec<Values>,
    /// The other groups, read whole: rows of each.
    rest: Vec<Vec<Vec<String>>>,
    /// The current head row and where the odometer over `rest` stands.
    row: Option<Vec<String>>,
    odometer: Vec<usize>,
    shape: Shape,
    failed: bool,
}

/// Combine `sources` into jobs; no source at all reads stdin, one value a line.
pub fn jobs(sources: &[Source], shape: Shape) -> Result<Jobs, InputError> {
    if matches!(&shape.colsep, Some(c) if c.is_empty()) {
        return Err(InputError::EmptyColsep(String::new()));
    }
    let stdin = [Source { origin: Origin::File("-".into()), linked: false }];
    let sources = if sources.is_empty() { &stdin[..] } else { sources };
    if shape.group.is_some() && sources.len() > 1 {
        return Err(InputError::GroupSeveral(sources.len()));
    }
    let mut groups: Vec<Vec<Values>> = Vec::new();
    for s in sources {
        let values = open(&s.origin)?;
        match groups.last_mut() {
            Some(g) if s.linked => g.push(values),
            _ => groups.push(vec![values]),
        }
    }
    let mut groups = groups.into_iter();
    let head = groups.next().unwrap_or_default();
    let mut rest = Vec::new();
    for g in groups {
        let mut rows = Vec::new();
        let mut g = g;
        while let Some(row) = zip_next(&mut g) {
            rows.push(row?);
        }
        rest.push(rows);
    }
    let odometer = vec![0; rest.len()];
    Ok(Jobs { head, rest, row: None, odometer, shape, failed: false })
}

/// The next row of a group of linked sources; ends with the shortest source.
fn zip_next(group: &mut [Values]) -> Option<Result<Vec<String>, InputError>> {
    let mut row = Vec::with_capacity(group.len());
    for v in group.iter_mut() {
        match v.next()? {
            Ok(s) => row.push(s),
            Err(e) => return Some(Err(e)),
        }
    }
    Some(Ok(row))
}

impl Jobs {
    fn next_head(&mut self) -> Option<Result<Vec<String>, InputError>> {
        let Some(n) = self.shape.group else { return zip_next(&mut self.head) };
        let mut row = Vec::with_capacity(n);
        while row.len() < n {
            match zip_next(&mut self.head) {
                Some(Ok(mut r)) => row.append(&mut r),
                Some(Err(e)) => return Some(Err(e)),
                None => break,
            }
        }
        (!row.is_empty()).then_some(Ok(row))
    }

    fn split_columns(&self, row: Vec<String>) -> Vec<String> {
        match &self.shape.colsep {
            None => row,
            // `\t` as GNU parallel users write it (a regex there) is a tab.
            Some(sep) => {
                let sep = if sep == "\\t" { "\t" } else { sep.as_str() };
                row.iter().flat_map(|v| v.split(sep).map(str::to_string)).collect()
            }
        }
    }
}

impl Iterator for Jobs {
    type Item = Result<Vec<String>, InputError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.iter().any(|r| r.is_empty()) {
            return None;
        }
        // Advance the odometer over the read-whole groups, last fastest; a new head row
        // when it wraps (or at the start).
        let wrapped = match self.row {
            None => true,
            Some(_) => {
                let mut k = self.odometer.len();
                loop {
                    if k == 0 {
                        break true;
                    }
                    k -= 1;
                    self.odometer[k] += 1;
                    if self.odometer[k] < self.rest[k].len() {
                        break false;
                    }
                    self.odometer[k] = 0;
                }
            }
        };
        if wrapped {
            match self.next_head()? {
                Ok(r) => self.row = Some(r),
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
        let mut job = self.row.clone().unwrap_or_default();
        for (k, &i) in self.odometer.iter().enumerate() {
            job.extend(self.rest[k][i].iter().cloned());
        }
        Some(Ok(self.split_columns(job)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_string).collect()
    }

    fn all(s: &str, shape: Shape) -> Vec<String> {
        let (_, sources) = split_words(&words(s)).expect("splits");
        jobs(&sources, shape).expect("opens").map(|j| j.expect("reads").join(" ")).collect()
    }

    #[test]
    fn combinations_in_gnu_parallel_order() {
        assert_eq!(all("echo ::: a b ::: 1 2", Shape::default()), ["a 1", "a 2", "b 1", "b 2"]);
        assert_eq!(all("echo ::: a b ::: 1 2 3 :::+ x y", Shape::default()), ["a 1 x", "a 2 y", "b 1 x", "b 2 y"]);
        assert_eq!(all("echo ::: a b c :::+ 1 2", Shape::default()), ["a 1", "b 2"]);
        assert_eq!(all("echo ::: a :::", Shape::default()), Vec::<String>::new(), "an empty source: no jobs");
    }

    #[test]
    fn groups_and_columns() {
        let g = Shape { group: Some(2), colsep: None };
        assert_eq!(all("echo ::: a b c d e", g), ["a b", "c d", "e"]);
        let c = Shape { group: None, colsep: Some(",".into()) };
        assert_eq!(all("echo ::: a,b c", c), ["a b", "c"]);
        let tab = Shape { group: None, colsep: Some("\\t".into()) };
        assert_eq!(all("echo ::: a\tb", tab), ["a b"]);
        let (_, two) = split_words(&words("x ::: a ::: b")).expect("splits");
        assert!(matches!(jobs(&two, Shape { group: Some(2), colsep: None }), Err(InputError::GroupSeveral(2))));
    }

    #[test]
    fn files_stream_lines_and_empty_lines_are_values() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("in");
        std::fs::write(&f, "a\n\nb c\nd").expect("write");
        let sources = [Source { origin: Origin::File(f.clone()), linked: false }];
        let got: Vec<Vec<String>> = jobs(&sources, Shape::default()).expect("opens").map(|j| j.expect("ok")).collect();
        assert_eq!(got, [vec!["a"], vec![""], vec!["b c"], vec!["d"]]);
        std::fs::write(&f, b"ok\n\xff\n").expect("write");
        let e = jobs(&sources, Shape::default()).expect("opens").nth(1).expect("second").expect_err("not text");
        assert!(e.to_string().ends_with("line 2: not UTF-8 text"), "{e}");
        let missing = [Source { origin: Origin::File(dir.path().join("nope")), linked: false }];
        let e = jobs(&missing, Shape::default()).err().expect("missing file");
        assert!(e.to_string().contains("nope"), "{e}");
    }

    #[test]
    fn separators_are_checked() {
        let (t, s) = split_words(&words("echo {} :::: f1 f2 ::: x")).expect("splits");
        assert_eq!(t, ["echo", "{}"]);
        assert_eq!(s.len(), 3);
        assert!(matches!(split_words(&words("echo :::+ a")), Err(InputError::LinkFirst(_))));
        assert!(matches!(split_words(&words("echo ::::")), Err(InputError::Empty(..))));
    }
}
