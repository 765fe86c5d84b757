//! ChatWork message notation: what the server needs to know about a body.
//!
//! Bodies are stored verbatim; the server only extracts `[To:ACCOUNT_ID]` mentions and
//! `[toall]`, which drive mention counts and mention ops. The scanner makes one pass
//! over the bytes and never backtracks, so its cost is linear in the body length
//! whatever a client sends (it is fuzzed with proptest below).

use crate::ids::AccountId;

/// What a message body says about who it addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Addressing {
    /// Accounts named by `[To:ID]`, in first-appearance order, without duplicates.
    pub mentions: Vec<AccountId>,
    /// Whether the body contains `[toall]` (case-insensitive, as ChatWork accepts it).
    pub to_all: bool,
}

/// Longest digit run accepted in `[To:…]`: u64::MAX has 20 digits.
const MAX_ID_DIGITS: usize = 20;

/// Scans a body for `[To:ID]` and `[toall]` in one linear pass.
pub fn parse_addressing(body: &str) -> Addressing {
    let bytes = body.as_bytes();
    let mut result = Addressing::default();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'[' {
            i += 1;
            continue;
        }
        let rest = &bytes[i + 1..];
        if starts_with_ignore_case(rest, b"toall]") {
            result.to_all = true;
            i += 1 + b"toall]".len();
        } else if starts_with_ignore_case(rest, b"to:") {
            let digits_start = i + 1 + b"to:".len();
            let mut j = digits_start;
            while j < bytes.len() && bytes[j].is_ascii_digit() && j - digits_start <= MAX_ID_DIGITS
            {
                j += 1;
            }
            let digits = &bytes[digits_start..j];
            // Only canonical ids count: no leading zero (ids start at 1).
            let canonical = !digits.is_empty() && digits[0] != b'0';
            if canonical && j < bytes.len() && bytes[j] == b']' {
                if let Some(id) = std::str::from_utf8(digits)
                    .ok()
                    .and_then(|d| d.parse::<u64>().ok())
                {
                    let id = AccountId(id);
                    if !result.mentions.contains(&id) {
                        result.mentions.push(id);
                    }
                }
                i = j + 1;
            } else {
                // Not a mention: continue right after the '[' we looked at. Positions
                // between i and j hold no '[' (only "to:" and digits), so skipping to j
                // keeps the scan linear without missing a tag.
                i = j.max(i + 1);
            }
        } else {
            i += 1;
        }
    }
    result
}

fn starts_with_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.len() >= needle.len() && haystack[..needle.len()].eq_ignore_ascii_case(needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn finds_mentions_in_order_without_duplicates() {
        let a = parse_addressing("[To:12] Alice [To:7]\n[to:12] again [To:x] [To:] [To:99");
        assert_eq!(a.mentions, vec![AccountId(12), AccountId(7)]);
        assert!(!a.to_all);
    }

    #[test]
    fn ids_with_leading_zeros_or_zero_are_not_mentions() {
        assert!(parse_addressing("[To:0] [To:007]").mentions.is_empty());
    }

    #[test]
    fn finds_toall_in_any_case() {
        assert!(parse_addressing("hi [toall] everyone").to_all);
        assert!(parse_addressing("[TOALL]").to_all);
        assert!(!parse_addressing("[toal]").to_all);
    }

    #[test]
    fn a_tag_directly_after_a_broken_one_is_still_found() {
        let a = parse_addressing("[To:[To:5]");
        assert_eq!(a.mentions, vec![AccountId(5)]);
    }

    #[test]
    fn ids_too_long_for_u64_are_ignored() {
        let a = parse_addressing("[To:99999999999999999999999] [To:18446744073709551615]");
        assert_eq!(a.mentions, vec![AccountId(u64::MAX)]);
    }

    #[test]
    fn hostile_repetition_is_handled_in_linear_time() {
        let body = "[To:1".repeat(20_000) + &"[".repeat(50_000) + &"[To:".repeat(20_000);
        let started = std::time::Instant::now();
        let a = parse_addressing(&body);
        assert!(a.mentions.is_empty());
        // Generous bound: a quadratic scan of ~230k bytes would take seconds.
        assert!(started.elapsed() < std::time::Duration::from_millis(500));
    }

    proptest! {
        #[test]
        fn never_panics_and_every_mention_appears_in_the_body(body in "(\\[|To:|to:|\\]|[0-9]|toall|[a-z ]|\u{3042}){0,200}") {
            let a = parse_addressing(&body);
            for id in &a.mentions {
                let tag = format!(":{id}]");
                prop_assert!(body.contains(&tag));
            }
        }

        #[test]
        fn a_planted_mention_is_always_found(prefix in "[a-z \\[\\]]{0,50}", id in 1u64..u64::MAX, suffix in "[a-z \\[\\]]{0,50}") {
            let body = format!("{prefix} [To:{id}]{suffix}");
            prop_assert!(parse_addressing(&body).mentions.contains(&AccountId(id)));
        }
    }
}
