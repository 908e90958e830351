//! Small text helpers shared by the script writers, the parsers' error messages and the
//! places that turn a caught panic into a failure.

/// `s` quoted for `/bin/sh` and bash: as is when it holds only safe characters, else in
/// single quotes, so an argument with spaces or quotes stays one word.
pub fn shell_quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | ':' | '=' | ',' | '+' | '@' | '%')
        });
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// 1-based line and column (in characters) of a byte offset, for error messages.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    // Spans come from the TOML parser and should sit on character boundaries; flooring keeps a
    // stray one from panicking while reporting an error.
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The message of a panic payload: `panic!` gives a `&str` or a `String`.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".into()
    }
}

/// Lower-case hex of `bytes`, two digits a byte (memo keys, run keys, binary outputs).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0xf) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_safe_words_and_wraps_the_rest() {
        assert_eq!(shell_quote("a/b.c-d_e=1,2+x@y%z:w"), "a/b.c-d_e=1,2+x@y%z:w");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn positions_count_characters_and_never_split_one() {
        let text = "ab\nçd\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 3), (2, 1));
        // Inside the two bytes of 'ç': floored to its start.
        assert_eq!(line_col(text, 4), (2, 1));
        assert_eq!(line_col(text, 5), (2, 2));
        assert_eq!(line_col(text, 99), (3, 1));
        assert_eq!(line_col("é\nx", 1), (1, 1));
        assert_eq!(line_col("é\nx", 3), (2, 1));
        assert_eq!(line_col("ab", 99), (1, 3));
    }

    #[test]
    fn hex_is_two_lower_case_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn panic_payloads_of_both_kinds_give_their_message() {
        let a = std::panic::catch_unwind(|| panic!("plain")).expect_err("panics");
        let b = std::panic::catch_unwind(|| panic!("{}", 7)).expect_err("panics");
        assert_eq!((panic_message(a.as_ref()), panic_message(b.as_ref())), ("plain".into(), "7".into()));
    }
}
