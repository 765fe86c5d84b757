//! Subjects: where each event stream's messages live in the JetStream stream.
//!
//! The port's stream names (`room-42`, `contact-1-2`, `org-…`) become subjects
//! `{prefix}.ev.{category}.{rest}` when the name is `{category}-{rest}` with a category
//! of lowercase letters and digits (`room-42` → `hb.ev.room.42`), so a category can be
//! followed with a wildcard (`hb.ev.room.>`); any other name becomes
//! `{prefix}.ev._.{name}`. Characters that are not safe in a subject token (anything
//! but ASCII letters, digits, `-` and `_`) are escaped as `~XX` (hex). The mapping is
//! injective (the category `_` is never produced by the first form, and escapes are
//! unambiguous because `~` itself is escaped), and the stream name is also stored in
//! every message, so nothing depends on reversing it.

/// Escapes `raw` into one subject token (never empty: an empty name becomes `~`).
fn token(raw: &str) -> String {
    if raw.is_empty() {
        return "~".to_owned();
    }
    let mut out = String::with_capacity(raw.len());
    for byte in raw.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("~{byte:02X}"));
        }
    }
    out
}

/// The subject of event stream `stream` under `prefix`.
pub fn of_stream(prefix: &str, stream: &str) -> String {
    if let Some((category, rest)) = stream.split_once('-')
        && !category.is_empty()
        && !rest.is_empty()
        && category
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit())
    {
        return format!("{prefix}.ev.{category}.{}", token(rest));
    }
    format!("{prefix}.ev._.{}", token(stream))
}

/// The subjects holding every event stream.
pub fn all_events(prefix: &str) -> String {
    format!("{prefix}.ev.>")
}

/// The subject of idempotency records of appends without events (and of key probes).
pub fn keys(prefix: &str) -> String {
    format!("{prefix}.key")
}

/// The core-NATS subject on which processes announce that the head moved (a wake-up
/// only: receivers read the head from the stream).
pub fn head_announcements(prefix: &str) -> String {
    format!("{prefix}.head")
}

/// The core-NATS subject of the projector's commit notices
/// ([`hayabusa_store::Committed`]).
pub fn commit_notices(prefix: &str) -> String {
    format!("{prefix}.committed")
}

/// Whether `prefix` is usable: dot-separated tokens of ASCII letters, digits, `-`, `_`.
pub fn valid_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn the_applications_streams_map_to_readable_subjects() {
        assert_eq!(of_stream("hb", "room-42"), "hb.ev.room.42");
        assert_eq!(of_stream("hb", "account-7"), "hb.ev.account.7");
        assert_eq!(of_stream("hb", "contact-1-2"), "hb.ev.contact.1-2");
        assert_eq!(of_stream("hb", "org-ab12"), "hb.ev.org.ab12");
        assert_eq!(of_stream("hb", "link-Xy_z"), "hb.ev.link.Xy_z");
    }

    #[test]
    fn other_names_are_escaped_into_one_token() {
        assert_eq!(of_stream("hb", "s"), "hb.ev._.s");
        assert_eq!(of_stream("hb", "a.b c>*"), "hb.ev._.a~2Eb~20c~3E~2A");
        assert_eq!(of_stream("hb", ""), "hb.ev._.~");
        assert_eq!(of_stream("hb", "Room-1"), "hb.ev._.Room-1");
        assert_eq!(of_stream("hb", "room-"), "hb.ev._.room-");
        assert_eq!(of_stream("hb", "room-a.b"), "hb.ev.room.a~2Eb");
        assert_eq!(of_stream("hb", "ü-1"), "hb.ev._.~C3~BC-1");
    }

    #[test]
    fn distinct_names_get_distinct_subjects() {
        let names = [
            "x", "_-x", "room-1", "room.1", "room~2E1", "room-~", "room-", "_", "~", "", "-x",
            "a-b-c", "a-b~2Dc", "a_b", "a~5Fb",
        ];
        let subjects: HashSet<String> = names.iter().map(|n| of_stream("hb", n)).collect();
        assert_eq!(subjects.len(), names.len(), "{subjects:?}");
    }

    #[test]
    fn subjects_are_valid_nats_subjects() {
        for name in ["room-1", "a b", "x\ty", "a..b", ">", "*"] {
            let subject = of_stream("hb", name);
            assert!(
                subject
                    .split('.')
                    .all(|token| !token.is_empty() && !token.contains([' ', '\t', '*', '>'])),
                "{name:?} -> {subject:?}"
            );
        }
    }

    #[test]
    fn prefixes_are_checked() {
        assert!(valid_prefix("hb"));
        assert!(valid_prefix("tenant-1.hb"));
        assert!(!valid_prefix(""));
        assert!(!valid_prefix("a..b"));
        assert!(!valid_prefix("a.>"));
        assert!(!valid_prefix("a b"));
    }
}
