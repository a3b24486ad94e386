//! Quoting what a caller sent in a message meant for people, without echoing it whole.

/// Characters of a value that an error message quotes; the rest is summarised.
pub const QUOTED_CHARS: usize = 64;

/// `value` as a quoted string (Rust debug syntax, so control characters are escaped), cut
/// after [`QUOTED_CHARS`] characters with a note of its full length, so an error never
/// echoes a caller's input at unbounded length.
pub fn quoted(value: &str) -> String {
    match value.char_indices().nth(QUOTED_CHARS) {
        None => format!("{value:?}"),
        Some((end, _)) => format!("{:?}… ({} bytes)", &value[..end], value.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_are_quoted_whole_and_long_ones_cut() {
        assert_eq!(quoted("a\"b"), r#""a\"b""#);
        let long = "é".repeat(100_000);
        let q = quoted(&long);
        assert!(q.len() < 200, "{q}");
        assert!(q.ends_with("… (200000 bytes)"), "{q}");
    }
}
