//! Rules for the text clients send: names and what error messages may echo.
//!
//! **Names** (room names, file names, account names, organization, department and
//! title) are shown to other people as they are, so a name must not be able to hide
//! or reorder what it displays. [`clean_name`] *strips* (never refuses) every
//! invisible formatting or control character:
//! - control characters (Cc: C0, DEL, C1, including line breaks and tabs),
//! - format characters (Cf), among them the bidi embeddings and overrides
//!   U+202A–U+202E, the isolates U+2066–U+2069, the marks U+200E, U+200F and U+061C,
//!   soft hyphen, zero-width space, word joiner, BOM and the tag characters,
//! - the line and paragraph separators U+2028 and U+2029,
//!
//! but keeps U+200C (ZWNJ) and U+200D (ZWJ), which Persian and Indic scripts and
//! emoji sequences need and which cannot reorder text. `invoice\u{202E}gpj.exe` is
//! kept as `invoicegpj.exe`, which displays as what it is. Stripping rather than
//! refusing keeps right-to-left names typed with a stray mark working; a name that
//! is empty once stripped is refused by the caller's "must not be empty" rule.
//!
//! Message bodies and descriptions are free text and are stored verbatim.
//!
//! **Echoed input** in error messages is capped ([`ellipsize`], [`ellipsize_list`])
//! so that a 1 MB parameter never comes back in a 1 MB error.

use std::fmt::Display;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Characters of client input an error message echoes at most.
pub const MAX_ECHO_CHARS: usize = 100;
/// Items of a list an error message echoes at most.
pub const MAX_ECHO_ITEMS: usize = 10;

/// Whether `c` is an invisible formatting or control character that names must not
/// contain (see the module documentation).
pub fn is_hidden_control(c: char) -> bool {
    if matches!(c, '\u{200C}' | '\u{200D}') {
        return false;
    }
    matches!(
        c.general_category(),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
    )
}

/// A name as stored: without the characters of [`is_hidden_control`] and without
/// leading or trailing white space.
pub fn clean_name(raw: &str) -> String {
    if !raw.chars().any(is_hidden_control) {
        return raw.trim().to_string();
    }
    let stripped: String = raw.chars().filter(|c| !is_hidden_control(*c)).collect();
    stripped.trim().to_string()
}

/// Longest file name kept, in characters.
pub const MAX_FILE_NAME_CHARS: usize = 255;

/// A client's file name as stored: the last path component only, cleaned like every
/// name ([`clean_name`]), at most [`MAX_FILE_NAME_CHARS`] characters, never empty,
/// `.` or `..` (then `file`). It is metadata: no path is ever built from it.
pub fn file_name(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = clean_name(last).chars().take(MAX_FILE_NAME_CHARS).collect();
    let trimmed = cleaned.trim();
    if trimmed.is_empty() || trimmed == "." || trimmed == ".." {
        "file".to_string()
    } else {
        trimmed.to_string()
    }
}

/// Client input for an error message: at most [`MAX_ECHO_CHARS`] characters, then
/// "…" when there was more.
pub fn ellipsize(raw: &str) -> String {
    match raw.char_indices().nth(MAX_ECHO_CHARS) {
        None => raw.to_string(),
        Some((cut, _)) => format!("{}…", &raw[..cut]),
    }
}

/// A comma-separated list for an error message: at most [`MAX_ECHO_ITEMS`] items,
/// then "…" and how many more there are.
pub fn ellipsize_list<T: Display>(items: &[T]) -> String {
    let shown: Vec<String> = items
        .iter()
        .take(MAX_ECHO_ITEMS)
        .map(|item| ellipsize(&item.to_string()))
        .collect();
    let mut list = shown.join(",");
    if items.len() > MAX_ECHO_ITEMS {
        list.push_str(&format!(",… ({} more)", items.len() - MAX_ECHO_ITEMS));
    }
    list
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bidi_controls_and_other_invisible_characters_are_stripped_from_names() {
        assert_eq!(clean_name("invoice\u{202E}gpj.exe"), "invoicegpj.exe");
        for c in [
            '\u{202A}',
            '\u{202B}',
            '\u{202C}',
            '\u{202D}',
            '\u{202E}',
            '\u{2066}',
            '\u{2067}',
            '\u{2068}',
            '\u{2069}',
            '\u{200E}',
            '\u{200F}',
            '\u{061C}',
            '\u{200B}',
            '\u{2060}',
            '\u{FEFF}',
            '\u{00AD}',
            '\u{E0041}',
            '\u{2028}',
            '\u{2029}',
            '\u{0000}',
            '\u{0007}',
            '\u{007F}',
            '\u{0085}',
            '\u{009B}',
            '\n',
            '\r',
            '\t',
        ] {
            assert!(is_hidden_control(c), "U+{:04X}", c as u32);
            assert_eq!(clean_name(&format!("a{c}b")), "ab", "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn visible_text_and_joiners_are_kept() {
        for name in [
            "Project 2026",
            "報告書.pdf",
            "مشروع",
            "नमस्ते",
            "می\u{200C}خواهم",
            "👨\u{200D}👩\u{200D}👧",
            "a b",
        ] {
            assert_eq!(clean_name(name), name);
        }
        assert_eq!(clean_name("  padded \u{200F} "), "padded");
        assert_eq!(clean_name("\u{202E}\u{2066}"), "");
    }

    #[test]
    fn hostile_file_names_become_harmless_metadata() {
        assert_eq!(file_name("../../etc/passwd"), "passwd");
        assert_eq!(file_name("..\\..\\boot.ini"), "boot.ini");
        assert_eq!(file_name("a\0b\r\nc.txt"), "abc.txt");
        assert_eq!(file_name("invoice\u{202E}gpj.exe"), "invoicegpj.exe");
        assert_eq!(file_name(".."), "file");
        assert_eq!(file_name("\u{202E}"), "file");
        assert_eq!(file_name(""), "file");
        assert_eq!(
            file_name(&"x".repeat(1000)).chars().count(),
            MAX_FILE_NAME_CHARS
        );
        assert_eq!(file_name("報告書.pdf"), "報告書.pdf");
    }

    #[test]
    fn echoed_input_is_capped() {
        let long = "x".repeat(1_000_000);
        let echoed = ellipsize(&long);
        assert_eq!(echoed.chars().count(), MAX_ECHO_CHARS + 1);
        assert!(echoed.ends_with('…'));
        assert_eq!(ellipsize("short"), "short");
        let ids: Vec<u64> = (1..=1000).collect();
        assert_eq!(ellipsize_list(&ids), "1,2,3,4,5,6,7,8,9,10,… (990 more)");
        assert_eq!(ellipsize_list(&[1, 2]), "1,2");
    }

    proptest! {
        #[test]
        fn a_clean_name_has_no_hidden_control_and_is_stable(raw in "\\PC*|[\\x00-\\x{3000}\\x{202A}-\\x{202E}\\x{2066}-\\x{2069}]*") {
            let cleaned = clean_name(&raw);
            prop_assert!(!cleaned.chars().any(is_hidden_control));
            prop_assert_eq!(clean_name(&cleaned), cleaned.clone());
        }
    }
}
