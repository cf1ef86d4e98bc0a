//! The JSON writer behind `Event::to_json`: the envelope's fixed shape written directly, strings
//! escaped run by run, and `@timestamp` formatted from a per-second prefix.
//!
//! This is the agent's hottest code after librdkafka: every event passes through it once. serde's
//! generic path cost a tenth of the agent's CPU (a table lookup per byte of every line, nested
//! map serializers for `host` and `log`, an allocated string per timestamp), so the envelope is
//! written here. The output is the same JSON serde_json writes (a unit test compares them); values
//! of parsed fields are written the same way, numbers by serde_json itself.

use std::cell::RefCell;

use chrono::{DateTime, SecondsFormat, Timelike, Utc};
use serde_json::{Map, Value};

/// Bytes a JSON string cannot hold as they are: `"`, `\` and control characters.
fn special(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

/// Index of the first byte at or after `from` that needs escaping. Sixteen bytes are tested
/// at a time without an early exit, which the compiler turns into vector instructions; most
/// lines have no such byte, or a few far apart.
fn next_special(bytes: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while let Some(chunk) = bytes.get(at..at + 16) {
        if chunk.iter().fold(false, |hit, &b| hit | special(b)) {
            return chunk.iter().position(|&b| special(b)).map(|i| at + i);
        }
        at += 16;
    }
    bytes[at..].iter().position(|&b| special(b)).map(|i| at + i)
}

/// Appends `text` as a JSON string, escaped as serde_json escapes it: the two-character forms
/// for `"`, `\`, `\b`, `\f`, `\n`, `\r`, `\t`, and `\u00XX` for other control characters.
pub fn write_str(out: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    while let Some(at) = next_special(bytes, start) {
        out.extend_from_slice(&bytes[start..at]);
        let byte = bytes[at];
        match byte {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0xf)],
            ]),
        }
        start = at + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Appends a JSON value; strings go through `write_str`, numbers through serde_json.
pub fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(number) => {
            serde_json::to_writer(&mut *out, number).expect("a number writes into a Vec")
        }
        Value::String(text) => write_str(out, text),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            out.push(b'{');
            write_entries(out, map, false);
            out.push(b'}');
        }
    }
}

/// Appends `"key":value` for each entry, separated by commas, with a leading comma when the
/// object already holds entries.
pub fn write_entries(out: &mut Vec<u8>, map: &Map<String, Value>, mut comma: bool) {
    for (key, value) in map {
        if std::mem::replace(&mut comma, true) {
            out.push(b',');
        }
        write_str(out, key);
        out.push(b':');
        write_value(out, value);
    }
}

thread_local! {
    /// The second last formatted on this thread and its text up to the fraction
    /// (`2026-11-22T08:00:00`): the events of one read share their time.
    static SECOND: RefCell<(i64, String)> = const { RefCell::new((i64::MIN, String::new())) };
}

/// Appends `at` as `@timestamp` text, RFC 3339 in UTC with nanoseconds, unquoted; the same text
/// as `chrono`'s `to_rfc3339_opts(SecondsFormat::Nanos, true)`.
pub fn write_timestamp(out: &mut Vec<u8>, at: DateTime<Utc>) {
    let nanos = at.nanosecond();
    if nanos >= 1_000_000_000 {
        // A leap second: rare enough for chrono's own formatting.
        out.extend_from_slice(at.to_rfc3339_opts(SecondsFormat::Nanos, true).as_bytes());
        return;
    }
    let second = at.timestamp();
    SECOND.with_borrow_mut(|(cached, text)| {
        if *cached != second {
            let whole = at.with_nanosecond(0).unwrap_or(at);
            *text = whole.to_rfc3339_opts(SecondsFormat::Secs, true);
            text.pop(); // the `Z`
            *cached = second;
        }
        out.extend_from_slice(text.as_bytes());
    });
    let mut digits = *b".000000000Z";
    let mut rest = nanos;
    for digit in digits[1..10].iter_mut().rev() {
        *digit = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    out.extend_from_slice(&digits);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn escaped(text: &str) -> String {
        let mut out = Vec::new();
        write_str(&mut out, text);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn escapes_match_serde_json() {
        for text in [
            "",
            "plain",
            "a \"quoted\" word",
            "back\\slash",
            "tab\tnew\nline\rcr",
            "\u{0}\u{1}\u{8}\u{b}\u{c}\u{1f}\u{7f}",
            "é ü 日本 😀",
            "exactly sixteen!",
            "sixteen bytes + \"quote at 17",
        ] {
            assert_eq!(
                escaped(text),
                serde_json::to_string(text).unwrap(),
                "{text:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn any_string_escapes_as_serde_json_does(text in ".{0,80}", ctl in proptest::collection::vec(0u8..0x20, 0..4)) {
            let mut text = text;
            for byte in ctl {
                text.push(char::from(byte));
                text.push('"');
            }
            prop_assert_eq!(escaped(&text), serde_json::to_string(&text).unwrap());
        }

        #[test]
        fn timestamps_match_chrono(secs in -62_135_596_800i64..253_402_300_799, nanos in 0u32..1_000_000_000) {
            let at = DateTime::from_timestamp(secs, nanos).unwrap();
            let mut out = Vec::new();
            write_timestamp(&mut out, at);
            prop_assert_eq!(String::from_utf8(out).unwrap(), at.to_rfc3339_opts(SecondsFormat::Nanos, true));
        }
    }

    #[test]
    fn values_match_serde_json() {
        let value = serde_json::json!({
            "s": "x\"y", "n": -1.5, "i": 42, "u": u64::MAX, "b": true, "z": null,
            "a": [1, "two", {"three": [false]}], "o": {}, "e": []
        });
        let mut out = Vec::new();
        write_value(&mut out, &value);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            serde_json::to_string(&value).unwrap()
        );
    }

    #[test]
    fn consecutive_times_of_one_second_reuse_its_prefix() {
        let mut out = Vec::new();
        for nanos in [5, 999_999_999, 0] {
            write_timestamp(
                &mut out,
                DateTime::from_timestamp(1_700_000_000, nanos).unwrap(),
            );
            out.push(b' ');
        }
        write_timestamp(
            &mut out,
            DateTime::from_timestamp(1_700_000_001, 7).unwrap(),
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2023-11-14T22:13:20.000000005Z 2023-11-14T22:13:20.999999999Z \
             2023-11-14T22:13:20.000000000Z 2023-11-14T22:13:21.000000007Z"
        );
    }
}
