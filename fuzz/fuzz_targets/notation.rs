//! The message-notation scanner (`parse_addressing`) against an obviously correct
//! reference that tries every `[` of the body: the same mentions in the same order,
//! the same `[toall]`, never a panic. libFuzzer's `-timeout` catches slow inputs
//! (the scanner must stay linear in the body length).

#![no_main]

use hayabusa_domain::AccountId;
use hayabusa_domain::notation::parse_addressing;
use libfuzzer_sys::fuzz_target;

/// The reference: for each `[`, does `toall]` or `to:DIGITS]` follow (ASCII case
/// ignored)? Quadratic in the worst case, which is fine for fuzz-sized inputs.
fn reference(body: &str) -> (Vec<AccountId>, bool) {
    let bytes = body.as_bytes();
    let mut mentions = Vec::new();
    let mut to_all = false;
    for (i, _) in bytes.iter().enumerate().filter(|(_, b)| **b == b'[') {
        let rest = &bytes[i + 1..];
        if rest.len() >= 6 && rest[..6].eq_ignore_ascii_case(b"toall]") {
            to_all = true;
        }
        if rest.len() >= 3 && rest[..3].eq_ignore_ascii_case(b"to:") {
            let digits: Vec<u8> = rest[3..]
                .iter()
                .copied()
                .take_while(u8::is_ascii_digit)
                .collect();
            let closed = rest.get(3 + digits.len()) == Some(&b']');
            if closed && digits.first().is_some_and(|d| *d != b'0') {
                let id = std::str::from_utf8(&digits)
                    .ok()
                    .and_then(|d| d.parse::<u64>().ok());
                if let Some(id) = id.map(AccountId)
                    && !mentions.contains(&id)
                {
                    mentions.push(id);
                }
            }
        }
    }
    (mentions, to_all)
}

fuzz_target!(|data: &[u8]| {
    let body = String::from_utf8_lossy(data);
    let found = parse_addressing(&body);
    let (mentions, to_all) = reference(&body);
    assert_eq!(found.mentions, mentions, "mentions of {body:?}");
    assert_eq!(found.to_all, to_all, "[toall] in {body:?}");
    // Every mention is written in the body (a subset of the text).
    let lower = body.to_ascii_lowercase();
    for id in &found.mentions {
        assert!(lower.contains(&format!("[to:{id}]")), "{id} in {body:?}");
    }
});
