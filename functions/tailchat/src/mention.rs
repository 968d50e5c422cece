//! `stripMentionTag` of `tailchat-client-sdk` 1.0.9, reproduced with JavaScript's exact notion
//! of white space (PLATFORMS.md §1.5).

use std::sync::LazyLock;

use regex::Regex;

/// JavaScript's `WhiteSpace` + `LineTerminator` (what `trim()` and `\s` use). Differs from
/// Rust's `char::is_whitespace`: includes U+FEFF, excludes U+0085.
const JS_SPACE: &str = r"\t\n\x0B\x0C\r \x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}\x{FEFF}";

/// `^\[at=.*?\[\/at\]` (JS `.` does not cross line terminators), then `^@\S*\s?`.
static LEADING_TAG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\[at=[^\n\r\x{2028}\x{2029}]*?\[/at\]")
        .unwrap_or_else(|e| panic!("static regex: {e}"))
});
static LEADING_AT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!("^@[^{JS_SPACE}]*[{JS_SPACE}]?"))
        .unwrap_or_else(|e| panic!("static regex: {e}"))
});

fn is_js_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{0B}' | '\u{0C}' | '\r' | ' ' | '\u{A0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200A}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202F}'
                | '\u{205F}'
                | '\u{3000}'
                | '\u{FEFF}'
    )
}

/// Removes one leading `[at=…]…[/at]` tag and one leading `@word `, like the official SDK.
pub fn strip_mention_tag(message: &str) -> String {
    let trimmed = message.trim_matches(is_js_space);
    let without_tag = LEADING_TAG.replace(trimmed, "");
    let without_at = LEADING_AT.replace(&without_tag, "");
    without_at.trim_start_matches(is_js_space).to_owned()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Every row of the PLATFORMS.md §1.5 table.
    #[test]
    fn matches_every_row_of_the_sdk_table() {
        let rows = [
            ("[at=6448e822834c12425646f473]Robot[/at] Hello", "Hello"),
            (
                "[at=6448e822834c12425646f473]Robot[/at] Hello [at=6448e822834c12425646f4732]Robot[/at]",
                "Hello [at=6448e822834c12425646f4732]Robot[/at]",
            ),
            ("@Robot Hello", "Hello"),
            ("  [at=abc]Bot[/at]   hi there  ", "hi there"),
            ("[at=abc]Bot[/at]@other hi", "hi"),
            ("Hello [at=abc]Bot[/at]", "Hello [at=abc]Bot[/at]"),
            ("[at=abc][/at] reply text", "reply text"),
            ("[at=a]A[/at][at=b]B[/at] x", "[at=b]B[/at] x"),
            ("@Robot", ""),
            ("plain text", "plain text"),
        ];
        for (input, expected) in rows {
            assert_eq!(strip_mention_tag(input), expected, "input: {input:?}");
        }
    }

    #[test]
    fn uses_javascripts_white_space() {
        // trim() strips U+FEFF but not U+0085 (NEL), unlike Rust's str::trim.
        assert_eq!(strip_mention_tag("\u{FEFF}[at=a]A[/at] hi\u{FEFF}"), "hi");
        assert_eq!(strip_mention_tag("\u{85}hi"), "\u{85}hi");
        // A tag does not span lines.
        assert_eq!(strip_mention_tag("[at=a]A\n[/at] hi"), "[at=a]A\n[/at] hi");
        // \s? eats one ideographic space, then trimStart eats the rest.
        assert_eq!(strip_mention_tag("@机器人\u{3000}\u{3000}你好"), "你好");
    }

    proptest! {
        #[test]
        fn never_panics_and_returns_a_suffix_of_the_trimmed_input(s in "\\PC{0,64}") {
            let out = strip_mention_tag(&s);
            prop_assert!(s.trim_matches(is_js_space).ends_with(out.as_str()));
        }
    }
}
