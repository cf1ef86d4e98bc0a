//! Syslog lines, RFC 3164 (BSD) and RFC 5424 with structured data, read through
//! `syslog_loose`, with the header turned into ECS `log.syslog.*` fields.
//!
//! What counts as syslog: `syslog_loose` must read the line (RFC 5424 first, then RFC 3164),
//! and the line must carry at least a `<PRI>` or a timestamp. That keeps the common files
//! without PRI (`Oct 11 22:14:15 host app[42]: text`) and rejects plain text. In practice a
//! line fails when it has neither a `<PRI>` nor a timestamp (RFC 3164 `Mmm dd hh:mm:ss`,
//! optionally with a year, or RFC 3339), when the PRI is above 255, when it has a PRI but no
//! valid timestamp or `-` after it, or when the date does not exist (`Feb 30`).
//!
//! Other decisions:
//! - A PRI of 192 to 255 (facility 24 to 31, beyond the RFC) is kept, without a facility name.
//! - Times without a zone are read in the configured zone (UTC when none); an ambiguous local
//!   time takes the earlier instant, and a time skipped by DST the earlier of its readings
//!   with the offsets around the gap. A year-less RFC 3164 time takes the year of `now` in
//!   that zone, or the year before when that would be more than a day after `now`.
//! - Structured data becomes `{sd-id: {param: value}}`; `\"`, `\\` and `\]` are unescaped,
//!   other backslashes kept. A repeated SD-ID merges into one object, a repeated parameter
//!   keeps its last value.
//! - A byte order mark at the start of the message is removed.

use chrono::{DateTime, Datelike, NaiveDate, Offset, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

use super::timestamp::resolve_local;
use serde_json::{Map, Value};
use syslog_loose::{IncompleteDate, Message, ProcId, Protocol, StructuredElement, Variant};

/// Severity names by code.
const SEVERITIES: [&str; 8] = [
    "emergency",
    "alert",
    "critical",
    "error",
    "warning",
    "notice",
    "informational",
    "debug",
];

/// Facility names by code.
const FACILITIES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];

/// A parsed syslog line.
#[derive(Debug, Clone, PartialEq)]
pub struct Syslog {
    /// The header's time, if it has one (RFC 5424 `-` has none).
    pub timestamp: Option<DateTime<Utc>>,
    /// The text after the header, without a leading byte order mark.
    pub message: String,
    /// ECS fields as (dotted path, value): log.syslog.priority, log.syslog.facility.code,
    /// log.syslog.facility.name, log.syslog.severity.code, log.syslog.severity.name,
    /// log.syslog.hostname, log.syslog.appname, log.syslog.procid, log.syslog.msgid,
    /// log.syslog.version, log.syslog.structured_data (object: {sd-id: {param: value}}).
    /// Only the ones present.
    pub fields: Vec<(&'static str, Value)>,
}

/// Why a line is not syslog.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyslogError {
    #[error("line is not an RFC 3164 or RFC 5424 syslog message")]
    NotSyslog,
    #[error("line has neither a syslog <PRI> nor a timestamp")]
    NoHeader,
}

/// Parses a syslog line. `now` and `timezone` (UTC when None) place year-less and
/// zone-less timestamps.
pub fn parse(line: &str, now: DateTime<Utc>, timezone: Option<Tz>) -> Result<Syslog, SyslogError> {
    let tz = timezone.unwrap_or(Tz::UTC);
    let get_year = move |date: IncompleteDate| infer_year(date, now, tz);
    // Times without a zone come back as wall-clock time at UTC+0 and are re-read in `tz`
    // below: given the zone itself, the library reads `Mmm dd yyyy` times as UTC and
    // rejects times in a DST gap.
    let message =
        syslog_loose::parse_message_with_year_exact_tz(line, get_year, Some(Utc), Variant::Either)
            .map_err(|_| SyslogError::NotSyslog)?;
    let pri = leading_pri(line);
    if pri.is_none() && message.timestamp.is_none() {
        return Err(SyslogError::NoHeader);
    }
    let timestamp = match message.timestamp {
        // At UTC+0 the UTC reading is the wall-clock time as written.
        Some(time) if has_zoneless_time(&message, line) => resolve_local(tz, time.naive_utc()),
        Some(time) => Some(time.with_timezone(&Utc)),
        None => None,
    };
    Ok(Syslog {
        timestamp,
        fields: fields(&message, pri),
        message: strip_bom(message.msg).to_owned(),
    })
}

/// The PRI at the start of the line, read as `syslog_loose` does (digits fitting a byte).
fn leading_pri(line: &str) -> Option<u8> {
    let (digits, _) = line.trim().strip_prefix('<')?.split_once('>')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Whether the timestamp was written without a zone: an RFC 3164 time starting with the
/// month name (RFC 3339 times start with a digit and carry their offset).
fn has_zoneless_time(message: &Message<&str>, line: &str) -> bool {
    if message.protocol != Protocol::RFC3164 {
        return false;
    }
    let line = line.trim();
    let after_pri = match leading_pri(line) {
        Some(_) => line.split_once('>').map_or(line, |(_, rest)| rest),
        None => line,
    };
    after_pri
        .trim_start_matches([' ', '\t'])
        .starts_with(|c: char| c.is_ascii_alphabetic())
}

/// Picks the year for a year-less time: `now`'s year in `tz`, or the year before when the
/// time would otherwise be more than a day after `now`.
fn infer_year(
    (month, day, hour, minute, second): IncompleteDate,
    now: DateTime<Utc>,
    tz: Tz,
) -> i32 {
    let now_utc = now.naive_utc();
    let offset = tz.offset_from_utc_datetime(&now_utc).fix();
    let now_local = now_utc.checked_add_offset(offset).unwrap_or(now_utc);
    let limit = now_local.checked_add_signed(TimeDelta::days(1));
    let year = now_local.year();
    let fits = |candidate: i32| {
        NaiveDate::from_ymd_opt(candidate, month, day)
            .and_then(|date| date.and_hms_opt(hour, minute, second))
            .is_some_and(|time| limit.is_none_or(|limit| time <= limit))
    };
    [year, year.saturating_sub(1)]
        .into_iter()
        .find(|&candidate| fits(candidate))
        .unwrap_or(year)
}

/// The ECS fields present in the message.
fn fields(message: &Message<&str>, pri: Option<u8>) -> Vec<(&'static str, Value)> {
    let mut fields = Vec::new();
    if let Some(pri) = pri {
        push_pri(&mut fields, pri);
    }
    let strings = [
        ("log.syslog.hostname", message.hostname),
        ("log.syslog.appname", message.appname),
        ("log.syslog.msgid", message.msgid),
    ];
    for (path, value) in strings {
        if let Some(value) = value {
            fields.push((path, Value::from(value)));
        }
    }
    if let Some(procid) = &message.procid {
        fields.push(("log.syslog.procid", procid_value(procid)));
    }
    if let Protocol::RFC5424(version) = message.protocol {
        fields.push(("log.syslog.version", Value::from(version)));
    }
    if !message.structured_data.is_empty() {
        let data = structured_data(&message.structured_data);
        fields.push(("log.syslog.structured_data", Value::Object(data)));
    }
    fields
}

/// Priority, facility and severity fields.
fn push_pri(fields: &mut Vec<(&'static str, Value)>, pri: u8) {
    let facility = pri >> 3;
    let severity = pri & 7;
    fields.push(("log.syslog.priority", Value::from(pri)));
    fields.push(("log.syslog.facility.code", Value::from(facility)));
    if let Some(name) = FACILITIES.get(usize::from(facility)) {
        fields.push(("log.syslog.facility.name", Value::from(*name)));
    }
    fields.push(("log.syslog.severity.code", Value::from(severity)));
    if let Some(name) = SEVERITIES.get(usize::from(severity)) {
        fields.push(("log.syslog.severity.name", Value::from(*name)));
    }
}

/// A numeric procid as a number, anything else as a string.
fn procid_value(procid: &ProcId<&str>) -> Value {
    match procid {
        ProcId::PID(pid) => Value::from(*pid),
        ProcId::Name(name) => Value::from(*name),
    }
}

/// `{sd-id: {param: value}}`, values unescaped.
fn structured_data(elements: &[StructuredElement<&str>]) -> Map<String, Value> {
    let mut data = Map::new();
    for element in elements {
        let entry = data
            .entry(element.id)
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(params) = entry {
            for (name, value) in &element.params {
                params.insert((*name).to_owned(), Value::from(unescape_param(value)));
            }
        }
    }
    data
}

/// Unescapes an SD-PARAM value: `\"`, `\\` and `\]`; other backslashes stay.
fn unescape_param(raw: &str) -> String {
    let mut value = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(&next @ ('"' | '\\' | ']')) = chars.peek() {
                value.push(next);
                chars.next();
                continue;
            }
        }
        value.push(c);
    }
    value
}

/// The message without a leading byte order mark.
fn strip_bom(message: &str) -> &str {
    message.strip_prefix('\u{feff}').unwrap_or(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn now() -> DateTime<Utc> {
        utc("2024-06-15T12:00:00Z")
    }

    fn field<'a>(parsed: &'a Syslog, path: &str) -> Option<&'a Value> {
        parsed
            .fields
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(_, v)| v)
    }

    #[test]
    fn rfc3164_line() {
        let parsed = parse(
            "<34>Oct 11 22:14:15 mymachine su[230]: 'su root' failed for lonvick on /dev/pts/8",
            now(),
            None,
        )
        .unwrap();
        assert_eq!(parsed.timestamp, Some(utc("2023-10-11T22:14:15Z")));
        assert_eq!(parsed.message, "'su root' failed for lonvick on /dev/pts/8");
        assert_eq!(
            parsed.fields,
            vec![
                ("log.syslog.priority", json!(34)),
                ("log.syslog.facility.code", json!(4)),
                ("log.syslog.facility.name", json!("auth")),
                ("log.syslog.severity.code", json!(2)),
                ("log.syslog.severity.name", json!("critical")),
                ("log.syslog.hostname", json!("mymachine")),
                ("log.syslog.appname", json!("su")),
                ("log.syslog.procid", json!(230)),
            ]
        );
    }

    #[test]
    fn rfc3164_without_pri_as_in_var_log_messages() {
        let parsed = parse("Jun  3 08:00:01 web1 CRON[123]: job done", now(), None).unwrap();
        assert_eq!(parsed.timestamp, Some(utc("2024-06-03T08:00:01Z")));
        assert_eq!(parsed.message, "job done");
        assert_eq!(field(&parsed, "log.syslog.priority"), None);
        assert_eq!(field(&parsed, "log.syslog.hostname"), Some(&json!("web1")));
        assert_eq!(field(&parsed, "log.syslog.appname"), Some(&json!("CRON")));
    }

    #[test]
    fn rfc3164_with_year_and_text_procid() {
        let parsed = parse("<13>Feb  5 2020 17:32:18 host app[main]: hi", now(), None).unwrap();
        assert_eq!(parsed.timestamp, Some(utc("2020-02-05T17:32:18Z")));
        assert_eq!(field(&parsed, "log.syslog.procid"), Some(&json!("main")));
        assert_eq!(
            field(&parsed, "log.syslog.facility.name"),
            Some(&json!("user"))
        );
        assert_eq!(
            field(&parsed, "log.syslog.severity.name"),
            Some(&json!("notice"))
        );
    }

    #[test]
    fn rfc5424_with_structured_data() {
        let line = r#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 1234 ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high" path="C:\\x [y\]" say="\"hi\"" raw="\n"] An application event"#;
        let parsed = parse(line, now(), None).unwrap();
        assert_eq!(parsed.timestamp, Some(utc("2003-10-11T22:14:15.003Z")));
        assert_eq!(parsed.message, "An application event");
        assert_eq!(
            parsed.fields,
            vec![
                ("log.syslog.priority", json!(165)),
                ("log.syslog.facility.code", json!(20)),
                ("log.syslog.facility.name", json!("local4")),
                ("log.syslog.severity.code", json!(5)),
                ("log.syslog.severity.name", json!("notice")),
                ("log.syslog.hostname", json!("mymachine.example.com")),
                ("log.syslog.appname", json!("evntslog")),
                ("log.syslog.msgid", json!("ID47")),
                ("log.syslog.procid", json!(1234)),
                ("log.syslog.version", json!(1)),
                (
                    "log.syslog.structured_data",
                    json!({
                        "exampleSDID@32473": {"iut": "3", "eventSource": "Application", "eventID": "1011"},
                        "examplePriority@32473": {
                            "class": "high",
                            "path": "C:\\x [y]",
                            "say": "\"hi\"",
                            "raw": "\\n",
                        },
                    })
                ),
            ]
        );
    }

    #[test]
    fn rfc5424_nil_values() {
        let parsed = parse("<14>1 - - - - - - just text", now(), None).unwrap();
        assert_eq!(parsed.timestamp, None);
        assert_eq!(parsed.message, "just text");
        assert_eq!(
            parsed.fields,
            vec![
                ("log.syslog.priority", json!(14)),
                ("log.syslog.facility.code", json!(1)),
                ("log.syslog.facility.name", json!("user")),
                ("log.syslog.severity.code", json!(6)),
                ("log.syslog.severity.name", json!("informational")),
                ("log.syslog.version", json!(1)),
            ]
        );
    }

    #[test]
    fn rfc5424_bom_before_message_and_offset() {
        let line = "<86>1 2024-01-02T03:04:05.5+02:00 host sshd 77 - - \u{feff}Accepted key";
        let parsed = parse(line, now(), Some(chrono_tz::Asia::Tokyo)).unwrap();
        assert_eq!(parsed.message, "Accepted key");
        // An explicit offset wins over the configured zone.
        assert_eq!(parsed.timestamp, Some(utc("2024-01-02T01:04:05.5Z")));
        assert_eq!(
            field(&parsed, "log.syslog.facility.name"),
            Some(&json!("authpriv"))
        );
        assert_eq!(field(&parsed, "log.syslog.msgid"), None);
    }

    #[test]
    fn repeated_sd_ids_merge() {
        let line = r#"<14>1 - h a - - [a x="1" y="2"][a y="3"] m"#;
        let parsed = parse(line, now(), None).unwrap();
        assert_eq!(
            field(&parsed, "log.syslog.structured_data"),
            Some(&json!({"a": {"x": "1", "y": "3"}}))
        );
    }

    #[test]
    fn year_rolls_back_on_new_year() {
        let new_year = utc("2025-01-01T00:00:30Z");
        let old = parse("<13>Dec 31 23:59:59 host app: late", new_year, None).unwrap();
        assert_eq!(old.timestamp, Some(utc("2024-12-31T23:59:59Z")));
        let fresh = parse("<13>Jan  1 00:00:10 host app: early", new_year, None).unwrap();
        assert_eq!(fresh.timestamp, Some(utc("2025-01-01T00:00:10Z")));
        // Less than a day ahead (a fast clock) stays in this year.
        let ahead = parse("<13>Jan  1 20:00:00 host app: skew", new_year, None).unwrap();
        assert_eq!(ahead.timestamp, Some(utc("2025-01-01T20:00:00Z")));
    }

    #[test]
    fn zoneless_times_use_the_time_zone() {
        let tz = Some(chrono_tz::America::New_York);
        let winter = parse("<13>Jan 15 10:00:00 host app: m", now(), tz).unwrap();
        assert_eq!(winter.timestamp, Some(utc("2024-01-15T15:00:00Z")));
        let summer = parse("<13>Jun 15 07:00:00 host app: m", now(), tz).unwrap();
        assert_eq!(summer.timestamp, Some(utc("2024-06-15T11:00:00Z")));
        let with_year = parse("<13>Jul  4 2019 12:00:00 host app: m", now(), tz).unwrap();
        assert_eq!(with_year.timestamp, Some(utc("2019-07-04T16:00:00Z")));
        let gap = parse("<13>Mar 10 02:30:00 host app: m", now(), tz).unwrap();
        assert_eq!(gap.timestamp, Some(utc("2024-03-10T06:30:00Z")));
        let rfc3339 = parse("<13>2024-01-15T10:00:00Z host app: m", now(), tz).unwrap();
        assert_eq!(rfc3339.timestamp, Some(utc("2024-01-15T10:00:00Z")));
    }

    #[test]
    fn year_uses_the_time_zone_calendar() {
        // 20:00 UTC on Dec 31 is already Jan 1 in Auckland.
        let now = utc("2024-12-31T20:00:00Z");
        let tz = Some(chrono_tz::Pacific::Auckland);
        let parsed = parse("<13>Jan  1 08:00:00 host app: m", now, tz).unwrap();
        assert_eq!(parsed.timestamp, Some(utc("2024-12-31T19:00:00Z")));
    }

    #[test]
    fn pri_beyond_the_rfc_keeps_codes_only() {
        let parsed = parse("<201>Oct 11 22:14:15 host app: m", now(), None).unwrap();
        assert_eq!(field(&parsed, "log.syslog.facility.code"), Some(&json!(25)));
        assert_eq!(field(&parsed, "log.syslog.facility.name"), None);
        assert_eq!(
            field(&parsed, "log.syslog.severity.name"),
            Some(&json!("alert"))
        );
    }

    #[test]
    fn garbage_is_rejected() {
        for line in [
            "",
            "   ",
            "hello world",
            "connection reset by peer",
            "- just a dash",
            "{\"json\": true}",
            "<34>",
            "<34>garbage",
            "<999>Oct 11 22:14:15 host app: m",
            "<13>Feb 30 10:00:00 host app: m",
            "1 - - - - - - no pri nor time",
        ] {
            assert!(parse(line, now(), None).is_err(), "{line:?}");
        }
        assert_eq!(parse("hello", now(), None), Err(SyslogError::NotSyslog));
        assert_eq!(parse("- hello", now(), None), Err(SyslogError::NoHeader));
    }

    #[test]
    fn pri_with_nil_time_is_syslog() {
        let parsed = parse("<13>- host app: text", now(), None).unwrap();
        assert_eq!(parsed.timestamp, None);
        assert_eq!(field(&parsed, "log.syslog.priority"), Some(&json!(13)));
    }

    #[test]
    fn unescape_keeps_unknown_escapes() {
        assert_eq!(unescape_param(r#"a\"b\\c\]d\ne\"#), "a\"b\\c]d\\ne\\");
    }

    /// A tiny xorshift generator, so the test needs no extra crate.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn never_panics_on_scrambled_input() {
        let seeds = [
            "<34>Oct 11 22:14:15 mymachine su[230]: 'su root' failed",
            r#"<165>1 2003-10-11T22:14:15.003Z host app 12 ID [a b="c\]" d="é"] msg"#,
            "Dec 31 2024 23:59:59 host: m",
        ];
        let noise = "<>[]=\" :\\-1\u{feff}é9";
        let noise: Vec<char> = noise.chars().collect();
        let mut state = 0x0123_4567_89ab_cdef_u64;
        let tz = Some(chrono_tz::Europe::London);
        for _ in 0..10_000 {
            for seed in seeds {
                let mut chars: Vec<char> = seed.chars().collect();
                for _ in 0..1 + next(&mut state) % 4 {
                    let at = next(&mut state) as usize % (chars.len() + 1);
                    let c = noise[next(&mut state) as usize % noise.len()];
                    match next(&mut state) % 3 {
                        0 => chars.insert(at, c),
                        1 if at < chars.len() => chars[at] = c,
                        _ => chars.truncate(at),
                    }
                }
                let line: String = chars.into_iter().collect();
                let seconds = (next(&mut state) % 8_000_000_000) as i64 - 4_000_000_000;
                let now = DateTime::from_timestamp(seconds, 0).unwrap();
                let _ = parse(&line, now, tz);
            }
        }
        for extreme in [DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC] {
            let _ = parse("<13>Dec 31 23:59:59 host app: m", extreme, tz);
            let _ = parse("<13>Jan  1 00:00:00 host app: m", extreme, tz);
        }
    }
}
