//! Reading event times in configurable formats: RFC 3339, RFC 2822, Unix epochs in
//! seconds to nanoseconds, and chrono strftime formats.
//!
//! Formats are tried in order; the first that reads the value wins. Rules:
//! - Format names (`rfc3339`, `rfc2822`, `unix`, `unix_ms`, `unix_us`, `unix_ns`) match
//!   case-insensitively and ignore whitespace around the value; anything else is a strftime
//!   format, checked when the parser is built.
//! - Unix formats read JSON numbers and numeric strings: an optional sign, digits with an
//!   optional fraction and an optional exponent (`1.7e9`). Digits below a nanosecond are
//!   dropped (towards zero). Values outside chrono's range are [`TimestampError::OutOfRange`].
//! - A strftime format with an offset (`%z`, `%:z`, `%#z`, …) or `%s` uses it; one without
//!   reads the time in the configured zone (UTC by default). `%Z` is skipped, not used.
//! - In a time that a DST change makes ambiguous the earlier instant wins. A local time that
//!   DST skips is read with the offsets in force on either side of the gap, and the earlier
//!   of the two instants wins.
//! - A strftime format without a year takes the year of `now` in the zone, or the year
//!   before when that would put the time more than a day after `now` (a Dec 31 line read
//!   on Jan 1). A format without an hour reads as midnight; an hour without minutes as `:00`.

use std::fmt;

use chrono::format::{self, Fixed, Item, Numeric, Parsed, StrftimeItems};
use chrono::{DateTime, Datelike, NaiveDateTime, Offset, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::Value;

use crate::pipeline::path::json_type;

/// Longest piece of an offending value quoted in an error.
const QUOTE_MAX: usize = 64;

/// A time format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeFormat {
    /// `2024-03-01T10:20:30.5+02:00`.
    Rfc3339,
    /// `Fri, 01 Mar 2024 10:20:30 -0500`.
    Rfc2822,
    /// Seconds since the epoch; fractions allowed.
    UnixSeconds,
    /// Milliseconds since the epoch.
    UnixMillis,
    /// Microseconds since the epoch.
    UnixMicros,
    /// Nanoseconds since the epoch.
    UnixNanos,
    /// A chrono strftime format.
    Strftime(String),
}

impl TimeFormat {
    /// The format a configured name stands for.
    fn from_name(name: &str) -> Self {
        const NAMED: [(&str, TimeFormat); 6] = [
            ("rfc3339", TimeFormat::Rfc3339),
            ("rfc2822", TimeFormat::Rfc2822),
            ("unix", TimeFormat::UnixSeconds),
            ("unix_ms", TimeFormat::UnixMillis),
            ("unix_us", TimeFormat::UnixMicros),
            ("unix_ns", TimeFormat::UnixNanos),
        ];
        NAMED
            .into_iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(name))
            .map_or_else(
                || TimeFormat::Strftime(name.to_owned()),
                |(_, format)| format,
            )
    }

    /// For Unix formats, the power of ten that turns one unit into nanoseconds.
    fn unix_scale(&self) -> Option<i64> {
        match self {
            TimeFormat::UnixSeconds => Some(9),
            TimeFormat::UnixMillis => Some(6),
            TimeFormat::UnixMicros => Some(3),
            TimeFormat::UnixNanos => Some(0),
            _ => None,
        }
    }
}

impl fmt::Display for TimeFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeFormat::Rfc3339 => "rfc3339",
            TimeFormat::Rfc2822 => "rfc2822",
            TimeFormat::UnixSeconds => "unix",
            TimeFormat::UnixMillis => "unix_ms",
            TimeFormat::UnixMicros => "unix_us",
            TimeFormat::UnixNanos => "unix_ns",
            TimeFormat::Strftime(format) => format,
        })
    }
}

/// Why a timestamp configuration is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampConfigError {
    #[error("time format `{format}` is not valid: {reason}")]
    BadFormat { format: String, reason: String },
    #[error("unknown time zone `{0}`; use an IANA name such as `Europe/Paris`")]
    UnknownTimezone(String),
    #[error("no time formats given")]
    NoFormats,
}

/// Why a value could not be read as a time. Quoted values are cut to 64 bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    #[error("`{value}` matches none of the time formats: {}", tried.join(", "))]
    NoMatch { value: String, tried: Vec<String> },
    #[error("a time must be {expected}, not {found}")]
    WrongType {
        expected: &'static str,
        found: &'static str,
    },
    #[error("`{value}` read as {format} is outside the supported time range")]
    OutOfRange { value: String, format: String },
}

/// How one format failed to read a value.
enum Miss {
    NoMatch,
    OutOfRange,
}

/// A strftime format, split into items once.
#[derive(Debug, Clone)]
struct Strftime {
    items: Vec<Item<'static>>,
    /// The format has no year: it is inferred from `now`.
    infer_year: bool,
}

/// One configured format, ready to use.
#[derive(Debug, Clone)]
struct Format {
    format: TimeFormat,
    strftime: Option<Strftime>,
}

/// Reads times with a list of formats, tried in order.
#[derive(Debug, Clone)]
pub struct TimestampParser {
    formats: Vec<Format>,
    timezone: Tz,
}

impl TimestampParser {
    /// Builds a parser. Names: "rfc3339", "rfc2822", "unix" (seconds, fractions allowed),
    /// "unix_ms", "unix_us", "unix_ns"; anything else is a chrono strftime format, which must
    /// be valid and able to give a date. `timezone` is an IANA name (default UTC) for times
    /// that carry no offset.
    pub fn new(formats: &[String], timezone: Option<&str>) -> Result<Self, TimestampConfigError> {
        if formats.is_empty() {
            return Err(TimestampConfigError::NoFormats);
        }
        let timezone = match timezone {
            None => Tz::UTC,
            Some(name) => name
                .parse()
                .map_err(|_| TimestampConfigError::UnknownTimezone(name.to_owned()))?,
        };
        let formats = formats
            .iter()
            .map(|name| compile(name))
            .collect::<Result<_, _>>()?;
        Ok(Self { formats, timezone })
    }

    /// Tries the formats in order. Accepts a JSON string, or a JSON number for the unix
    /// formats (which also read numeric strings).
    pub fn parse(
        &self,
        value: &Value,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, TimestampError> {
        match value {
            Value::String(text) => self.parse_str(text, now),
            Value::Number(number) => self.parse_number(&number.to_string()),
            other => Err(self.wrong_type(json_type(other))),
        }
    }

    /// Tries the formats in order on a string.
    pub fn parse_str(
        &self,
        text: &str,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, TimestampError> {
        self.first_match(text, self.formats.iter(), |format| {
            self.read_str(format, text, now)
        })
    }

    /// Tries the unix formats on a JSON number, written out as decimal text.
    fn parse_number(&self, number: &str) -> Result<DateTime<Utc>, TimestampError> {
        let unix = self
            .formats
            .iter()
            .filter(|f| f.format.unix_scale().is_some());
        if unix.clone().next().is_none() {
            return Err(self.wrong_type("a number"));
        }
        self.first_match(number, unix, |format| {
            format
                .format
                .unix_scale()
                .map_or(Err(Miss::NoMatch), |scale| read_epoch(number, scale))
        })
    }

    /// Runs `read` over `formats`, returning the first success or the error to report.
    fn first_match<'a>(
        &self,
        value: &str,
        formats: impl Iterator<Item = &'a Format>,
        read: impl Fn(&Format) -> Result<DateTime<Utc>, Miss>,
    ) -> Result<DateTime<Utc>, TimestampError> {
        let mut tried = Vec::new();
        let mut out_of_range = None;
        for format in formats {
            match read(format) {
                Ok(time) => return Ok(time),
                Err(Miss::OutOfRange) => {
                    out_of_range.get_or_insert_with(|| format.format.to_string());
                }
                Err(Miss::NoMatch) => {}
            }
            tried.push(format.format.to_string());
        }
        Err(match out_of_range {
            Some(format) => TimestampError::OutOfRange {
                value: quote(value),
                format,
            },
            None => TimestampError::NoMatch {
                value: quote(value),
                tried,
            },
        })
    }

    /// The error for a JSON value of the wrong type.
    fn wrong_type(&self, found: &'static str) -> TimestampError {
        let takes_numbers = self.formats.iter().any(|f| f.format.unix_scale().is_some());
        TimestampError::WrongType {
            expected: if takes_numbers {
                "a string or a number"
            } else {
                "a string"
            },
            found,
        }
    }

    /// Reads a string with one format.
    fn read_str(
        &self,
        format: &Format,
        text: &str,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, Miss> {
        let trimmed = text.trim();
        match (&format.format, &format.strftime) {
            (_, Some(strftime)) => self.read_strftime(strftime, text, now),
            (TimeFormat::Rfc3339, None) => DateTime::parse_from_rfc3339(trimmed)
                .map(|time| time.with_timezone(&Utc))
                .map_err(|_| Miss::NoMatch),
            (TimeFormat::Rfc2822, None) => DateTime::parse_from_rfc2822(trimmed)
                .map(|time| time.with_timezone(&Utc))
                .map_err(|_| Miss::NoMatch),
            (other, None) => other
                .unix_scale()
                .map_or(Err(Miss::NoMatch), |scale| read_epoch(trimmed, scale)),
        }
    }

    /// Reads a string with a strftime format, inferring the year when the format has none.
    fn read_strftime(
        &self,
        strftime: &Strftime,
        text: &str,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, Miss> {
        if !strftime.infer_year {
            return self.read_items(&strftime.items, text, None);
        }
        let year = now.with_timezone(&self.timezone).year();
        let limit = now.checked_add_signed(TimeDelta::days(1));
        let mut fallback = None;
        for candidate in [year, year.saturating_sub(1)] {
            let Ok(time) = self.read_items(&strftime.items, text, Some(candidate)) else {
                continue;
            };
            if limit.is_none_or(|limit| time <= limit) {
                return Ok(time);
            }
            fallback.get_or_insert(time);
        }
        fallback.ok_or(Miss::NoMatch)
    }

    /// Reads a string with strftime items, the year given when the format has none.
    fn read_items(
        &self,
        items: &[Item<'static>],
        text: &str,
        year: Option<i32>,
    ) -> Result<DateTime<Utc>, Miss> {
        let mut parsed = Parsed::new();
        if let Some(year) = year {
            parsed
                .set_year(i64::from(year))
                .map_err(|_| Miss::NoMatch)?;
        }
        format::parse(&mut parsed, text, items.iter()).map_err(|_| Miss::NoMatch)?;
        default_time(&mut parsed).map_err(|_| Miss::NoMatch)?;
        if parsed.offset().is_some() || parsed.timestamp().is_some() {
            return parsed
                .to_datetime()
                .map(|time| time.with_timezone(&Utc))
                .map_err(|_| Miss::NoMatch);
        }
        let local = parsed
            .to_naive_datetime_with_offset(0)
            .map_err(|_| Miss::NoMatch)?;
        resolve_local(self.timezone, local).ok_or(Miss::NoMatch)
    }
}

/// Builds one configured format.
fn compile(name: &str) -> Result<Format, TimestampConfigError> {
    let format = TimeFormat::from_name(name);
    let strftime = match &format {
        TimeFormat::Strftime(text) => Some(compile_strftime(text)?),
        _ => None,
    };
    Ok(Format { format, strftime })
}

/// Checks a strftime format and splits it into items.
fn compile_strftime(text: &str) -> Result<Strftime, TimestampConfigError> {
    let bad = |reason: String| TimestampConfigError::BadFormat {
        format: text.to_owned(),
        reason,
    };
    if text.trim().is_empty() {
        return Err(bad("it is empty".to_owned()));
    }
    let items = StrftimeItems::new(text).parse_to_owned().map_err(|_| {
        bad(format!(
            "`{}` is not a valid specifier",
            invalid_specifier(text)
        ))
    })?;
    if !items.iter().any(gives_date) {
        return Err(bad(
            "it has no month, day of the year, week, or epoch, so it never gives a date".to_owned(),
        ));
    }
    let infer_year = !items.iter().any(gives_year);
    Ok(Strftime { items, infer_year })
}

/// The first specifier of `format` that chrono rejects (the whole format if none stands out).
fn invalid_specifier(format: &str) -> &str {
    let mut rest = format;
    while let Some(at) = rest.find('%') {
        let from = rest.get(at..).unwrap_or("");
        let spec = specifier_at(from);
        if spec != "%%" && StrftimeItems::new(spec).any(|item| item == Item::Error) {
            return spec;
        }
        rest = from.get(spec.len()..).unwrap_or("");
    }
    format
}

/// The specifier at the start of `text` (which starts with `%`): flags, then one char.
fn specifier_at(text: &str) -> &str {
    let mut end = 0;
    for (index, c) in text.char_indices() {
        end = index + c.len_utf8();
        let is_flag = matches!(c, '-' | '_' | '.' | ':' | '#' | '0'..='9');
        if index > 0 && !is_flag {
            break;
        }
    }
    text.get(..end).unwrap_or(text)
}

/// Whether an item can pin down a date (with a year, given or inferred).
fn gives_date(item: &Item<'_>) -> bool {
    matches!(
        item,
        Item::Numeric(
            Numeric::Month
                | Numeric::Ordinal
                | Numeric::WeekFromSun
                | Numeric::WeekFromMon
                | Numeric::IsoWeek
                | Numeric::Timestamp,
            _
        ) | Item::Fixed(
            Fixed::ShortMonthName | Fixed::LongMonthName | Fixed::RFC2822 | Fixed::RFC3339
        )
    )
}

/// Whether an item gives the year, so the year need not be inferred.
fn gives_year(item: &Item<'_>) -> bool {
    matches!(
        item,
        Item::Numeric(
            Numeric::Year
                | Numeric::YearDiv100
                | Numeric::YearMod100
                | Numeric::IsoYear
                | Numeric::IsoYearDiv100
                | Numeric::IsoYearMod100
                | Numeric::Timestamp,
            _
        ) | Item::Fixed(Fixed::RFC2822 | Fixed::RFC3339)
    )
}

/// Midnight when no hour was read; `:00` when the minutes are missing.
fn default_time(parsed: &mut Parsed) -> format::ParseResult<()> {
    if parsed.timestamp().is_some() {
        return Ok(());
    }
    if parsed.hour_div_12().is_none() && parsed.hour_mod_12().is_none() {
        parsed.set_hour(0)?;
    }
    if parsed.minute().is_none() {
        parsed.set_minute(0)?;
    }
    Ok(())
}

/// Reads a local time in `tz`: the earlier instant when ambiguous; in a DST gap, the earlier
/// of the readings with the offsets before and after the gap. (Syslog's zoneless times too.)
pub fn resolve_local(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    if let Some(time) = tz.from_local_datetime(&local).earliest() {
        return Some(time.with_timezone(&Utc));
    }
    let day = TimeDelta::days(1);
    [local.checked_sub_signed(day), local.checked_add_signed(day)]
        .into_iter()
        .flatten()
        .filter_map(|probe| local.checked_sub_offset(tz.offset_from_utc_datetime(&probe).fix()))
        .min()
        .map(|utc| utc.and_utc())
}

/// Reads a decimal epoch (`-12.5`, `1.7e9`) in units of 10^-(9 - scale) seconds.
fn read_epoch(text: &str, scale: i64) -> Result<DateTime<Utc>, Miss> {
    let nanos = epoch_nanos(text, scale)?;
    let seconds = i64::try_from(nanos.div_euclid(1_000_000_000)).map_err(|_| Miss::OutOfRange)?;
    let subsec = u32::try_from(nanos.rem_euclid(1_000_000_000)).map_err(|_| Miss::OutOfRange)?;
    DateTime::from_timestamp(seconds, subsec).ok_or(Miss::OutOfRange)
}

/// Converts decimal text to nanoseconds, dropping digits below a nanosecond.
fn epoch_nanos(text: &str, scale: i64) -> Result<i128, Miss> {
    let (negative, body) = match text.as_bytes().first() {
        Some(b'-') => (true, text.get(1..).unwrap_or("")),
        Some(b'+') => (false, text.get(1..).unwrap_or("")),
        _ => (false, text),
    };
    let (mantissa, exponent) = match body.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, parse_exponent(exponent)?),
        None => (body, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !all_digits(int) || !all_digits(frac) {
        return Err(Miss::NoMatch);
    }
    let frac_len = i64::try_from(frac.len()).unwrap_or(i64::MAX);
    let shift = exponent.saturating_add(scale).saturating_sub(frac_len);
    let digits = int.bytes().chain(frac.bytes());
    let magnitude = scale_digits(digits, int.len() + frac.len(), shift)?;
    Ok(if negative { -magnitude } else { magnitude })
}

/// Reads an exponent, clamped far beyond any useful value.
fn parse_exponent(text: &str) -> Result<i64, Miss> {
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, text.get(1..).unwrap_or("")),
        Some(b'+') => (false, text.get(1..).unwrap_or("")),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Miss::NoMatch);
    }
    let magnitude = digits
        .bytes()
        .try_fold(0_i64, |acc, b| {
            acc.checked_mul(10)?.checked_add(i64::from(b - b'0'))
        })
        .unwrap_or(i64::MAX)
        .min(1_000_000);
    Ok(if negative { -magnitude } else { magnitude })
}

/// The integer `digits × 10^shift`, truncated; `count` is the number of digits.
fn scale_digits(digits: impl Iterator<Item = u8>, count: usize, shift: i64) -> Result<i128, Miss> {
    let dropped = usize::try_from(shift.saturating_neg().max(0)).unwrap_or(usize::MAX);
    let kept = count.saturating_sub(dropped);
    let mut value = digits.take(kept).try_fold(0_i128, |acc, b| {
        acc.checked_mul(10)?.checked_add(i128::from(b - b'0'))
    });
    for _ in 0..shift.max(0) {
        match value {
            Some(0) | None => break,
            Some(current) => value = current.checked_mul(10),
        }
    }
    value.ok_or(Miss::OutOfRange)
}

/// Cuts untrusted text for an error message, on a char boundary.
fn quote(text: &str) -> String {
    let mut end = text.len().min(QUOTE_MAX);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or("").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parser(formats: &[&str], timezone: Option<&str>) -> TimestampParser {
        let formats: Vec<String> = formats.iter().map(|f| (*f).to_owned()).collect();
        TimestampParser::new(&formats, timezone).unwrap()
    }

    fn config_error(formats: &[&str], timezone: Option<&str>) -> TimestampConfigError {
        let formats: Vec<String> = formats.iter().map(|f| (*f).to_owned()).collect();
        TimestampParser::new(&formats, timezone).unwrap_err()
    }

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn now() -> DateTime<Utc> {
        utc("2024-06-15T12:00:00Z")
    }

    #[test]
    fn rfc3339() {
        let p = parser(&["rfc3339"], None);
        assert_eq!(
            p.parse_str("2024-03-01T10:20:30.123+02:00", now()).unwrap(),
            utc("2024-03-01T08:20:30.123Z")
        );
        assert_eq!(
            p.parse(&json!(" 2024-03-01T10:20:30Z "), now()).unwrap(),
            utc("2024-03-01T10:20:30Z")
        );
        assert!(p.parse_str("2024-03-01 10:20", now()).is_err());
    }

    #[test]
    fn rfc2822() {
        let p = parser(&["RFC2822"], None);
        assert_eq!(
            p.parse_str("Fri, 01 Mar 2024 10:20:30 -0500", now())
                .unwrap(),
            utc("2024-03-01T15:20:30Z")
        );
    }

    #[test]
    fn unix_seconds_numbers_and_strings() {
        let p = parser(&["unix"], None);
        let expected = utc("2023-11-14T22:13:20Z");
        assert_eq!(p.parse(&json!(1_700_000_000), now()).unwrap(), expected);
        assert_eq!(p.parse(&json!("1700000000"), now()).unwrap(), expected);
        assert_eq!(p.parse(&json!(1.7e9), now()).unwrap(), expected);
        assert_eq!(p.parse(&json!("1.7e9"), now()).unwrap(), expected);
        assert_eq!(
            p.parse(&json!("1700000000.123456789"), now()).unwrap(),
            utc("2023-11-14T22:13:20.123456789Z")
        );
        assert_eq!(
            p.parse(&json!(1_700_000_000.5), now()).unwrap(),
            utc("2023-11-14T22:13:20.5Z")
        );
        assert_eq!(
            p.parse(&json!(-1.5), now()).unwrap(),
            utc("1969-12-31T23:59:58.5Z")
        );
        assert_eq!(
            p.parse_str("0.0000000001", now()).unwrap(),
            utc("1970-01-01T00:00:00Z")
        );
    }

    #[test]
    fn unix_millis_micros_nanos() {
        let expected = utc("2023-11-14T22:13:20.123Z");
        let ms = parser(&["unix_ms"], None);
        let us = parser(&["unix_us"], None);
        let ns = parser(&["unix_ns"], None);
        assert_eq!(
            ms.parse(&json!(1_700_000_000_123_i64), now()).unwrap(),
            expected
        );
        assert_eq!(ms.parse(&json!("1700000000123"), now()).unwrap(), expected);
        assert_eq!(
            us.parse(&json!(1_700_000_000_123_000_i64), now()).unwrap(),
            expected
        );
        assert_eq!(
            ns.parse(&json!(1_700_000_000_123_000_000_i64), now())
                .unwrap(),
            expected
        );
        assert_eq!(
            ns.parse(&json!(u64::MAX), now()).unwrap(),
            utc("2554-07-21T23:34:33.709551615Z")
        );
    }

    #[test]
    fn out_of_range_epochs_do_not_panic() {
        let p = parser(&["unix"], None);
        for value in [
            json!(1e30),
            json!(-1e30),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(f64::MAX),
            json!("1e999999999999"),
            json!("9".repeat(200)),
        ] {
            assert!(
                matches!(
                    p.parse(&value, now()),
                    Err(TimestampError::OutOfRange { .. })
                ),
                "{value}"
            );
        }
        let ns = parser(&["unix_ns"], None);
        assert!(ns.parse(&json!(i64::MIN), now()).is_ok());
        assert_eq!(
            p.parse(&json!("1e-999999999999"), now()).unwrap(),
            utc("1970-01-01T00:00:00Z")
        );
    }

    #[test]
    fn malformed_epochs_do_not_match() {
        let p = parser(&["unix"], None);
        for text in [
            "", ".", "-", "1e", "1e+", "0x10", "1.2.3", "nan", "1_000", "١٢",
        ] {
            assert!(
                matches!(
                    p.parse_str(text, now()),
                    Err(TimestampError::NoMatch { .. })
                ),
                "{text:?}"
            );
        }
        assert_eq!(
            p.parse_str(".5", now()).unwrap(),
            utc("1970-01-01T00:00:00.5Z")
        );
        assert_eq!(
            p.parse_str("+2.", now()).unwrap(),
            utc("1970-01-01T00:00:02Z")
        );
    }

    #[test]
    fn numbers_need_a_unix_format() {
        let p = parser(&["rfc3339", "%Y%m%d"], None);
        assert_eq!(
            p.parse(&json!(20240101), now()),
            Err(TimestampError::WrongType {
                expected: "a string",
                found: "a number"
            })
        );
        let q = parser(&["rfc3339", "unix"], None);
        assert_eq!(
            q.parse(&json!(true), now()),
            Err(TimestampError::WrongType {
                expected: "a string or a number",
                found: "a boolean"
            })
        );
        assert!(matches!(
            q.parse(&json!(null), now()),
            Err(TimestampError::WrongType { found: "null", .. })
        ));
    }

    #[test]
    fn formats_are_tried_in_order_and_listed_on_failure() {
        let p = parser(&["rfc3339", "unix_ms", "%d/%m/%Y"], None);
        assert_eq!(
            p.parse_str("1000", now()).unwrap(),
            utc("1970-01-01T00:00:01Z")
        );
        assert_eq!(
            p.parse_str("02/01/2024", now()).unwrap(),
            utc("2024-01-02T00:00:00Z")
        );
        let error = p.parse_str("soon", now()).unwrap_err();
        assert_eq!(
            error,
            TimestampError::NoMatch {
                value: "soon".to_owned(),
                tried: vec![
                    "rfc3339".to_owned(),
                    "unix_ms".to_owned(),
                    "%d/%m/%Y".to_owned()
                ],
            }
        );
        assert_eq!(
            error.to_string(),
            "`soon` matches none of the time formats: rfc3339, unix_ms, %d/%m/%Y"
        );
    }

    #[test]
    fn strftime_without_zone_uses_utc_by_default() {
        let p = parser(&["%Y-%m-%d %H:%M:%S%.f"], None);
        assert_eq!(
            p.parse_str("2024-03-01 10:20:30.250", now()).unwrap(),
            utc("2024-03-01T10:20:30.250Z")
        );
    }

    #[test]
    fn strftime_without_zone_uses_the_configured_zone() {
        let p = parser(&["%Y-%m-%d %H:%M:%S"], Some("America/New_York"));
        assert_eq!(
            p.parse_str("2024-01-15 10:00:00", now()).unwrap(),
            utc("2024-01-15T15:00:00Z")
        );
        assert_eq!(
            p.parse_str("2024-07-15 10:00:00", now()).unwrap(),
            utc("2024-07-15T14:00:00Z")
        );
    }

    #[test]
    fn strftime_offsets_win_over_the_zone() {
        let p = parser(&["%Y-%m-%dT%H:%M:%S%:z"], Some("Asia/Tokyo"));
        assert_eq!(
            p.parse_str("2024-03-01T10:00:00-01:30", now()).unwrap(),
            utc("2024-03-01T11:30:00Z")
        );
    }

    #[test]
    fn nginx_access_log_time() {
        let p = parser(&["%d/%b/%Y:%H:%M:%S %z"], Some("Europe/Paris"));
        assert_eq!(
            p.parse_str("10/Oct/2023:13:55:36 -0700", now()).unwrap(),
            utc("2023-10-10T20:55:36Z")
        );
    }

    #[test]
    fn epoch_specifier_is_absolute() {
        let p = parser(&["%s"], Some("Asia/Tokyo"));
        assert_eq!(
            p.parse_str("1700000000", now()).unwrap(),
            utc("2023-11-14T22:13:20Z")
        );
    }

    #[test]
    fn date_only_is_midnight_and_missing_minutes_are_zero() {
        let p = parser(&["%Y-%m-%d"], Some("Europe/Berlin"));
        assert_eq!(
            p.parse_str("2024-03-01", now()).unwrap(),
            utc("2024-02-29T23:00:00Z")
        );
        let q = parser(&["%Y-%m-%d %H"], None);
        assert_eq!(
            q.parse_str("2024-03-01 07", now()).unwrap(),
            utc("2024-03-01T07:00:00Z")
        );
    }

    #[test]
    fn syslog_style_time_takes_the_current_year() {
        let p = parser(&["%b %e %H:%M:%S"], None);
        assert_eq!(
            p.parse_str("Mar  5 10:20:30", now()).unwrap(),
            utc("2024-03-05T10:20:30Z")
        );
        // Up to a day ahead of `now` stays in this year (clock skew).
        assert_eq!(
            p.parse_str("Jun 16 11:00:00", now()).unwrap(),
            utc("2024-06-16T11:00:00Z")
        );
        // More than a day ahead is last year.
        assert_eq!(
            p.parse_str("Jun 17 12:00:00", now()).unwrap(),
            utc("2023-06-17T12:00:00Z")
        );
    }

    #[test]
    fn syslog_style_time_rolls_back_over_new_year() {
        let p = parser(&["%b %e %H:%M:%S"], None);
        let new_year = utc("2025-01-01T00:00:10Z");
        assert_eq!(
            p.parse_str("Dec 31 23:59:58", new_year).unwrap(),
            utc("2024-12-31T23:59:58Z")
        );
        assert_eq!(
            p.parse_str("Jan  1 00:00:05", new_year).unwrap(),
            utc("2025-01-01T00:00:05Z")
        );
    }

    #[test]
    fn year_inference_uses_the_zone_calendar() {
        // 23:30 UTC on Dec 31 is already Jan 1 in Tokyo: a "Jan 1" line is this (Tokyo) year.
        let p = parser(&["%b %d %H:%M"], Some("Asia/Tokyo"));
        let now = utc("2024-12-31T23:30:00Z");
        assert_eq!(
            p.parse_str("Jan 01 08:20", now).unwrap(),
            utc("2024-12-31T23:20:00Z")
        );
    }

    #[test]
    fn leap_day_without_year_finds_a_leap_year() {
        let p = parser(&["%m-%d %H:%M"], None);
        let now = utc("2025-01-10T00:00:00Z");
        assert_eq!(
            p.parse_str("02-29 12:00", now).unwrap(),
            utc("2024-02-29T12:00:00Z")
        );
    }

    #[test]
    fn dst_fold_takes_the_earlier_instant() {
        let p = parser(&["%Y-%m-%d %H:%M"], Some("America/New_York"));
        // 01:30 happens twice on 2024-11-03: first in EDT (-4).
        assert_eq!(
            p.parse_str("2024-11-03 01:30", now()).unwrap(),
            utc("2024-11-03T05:30:00Z")
        );
    }

    #[test]
    fn dst_gap_takes_the_earlier_reading() {
        let p = parser(&["%Y-%m-%d %H:%M"], Some("America/New_York"));
        // 02:30 does not exist on 2024-03-10; read with EDT (-4) it is 06:30Z, with EST 07:30Z.
        assert_eq!(
            p.parse_str("2024-03-10 02:30", now()).unwrap(),
            utc("2024-03-10T06:30:00Z")
        );
    }

    #[test]
    fn strftime_mismatches_do_not_match() {
        let p = parser(&["%Y-%m-%d %H:%M:%S"], None);
        for text in [
            "2024-02-30 00:00:00",
            "2024-01-01 25:00:00",
            "2024-01-01",
            "x",
            "",
        ] {
            assert!(
                matches!(
                    p.parse_str(text, now()),
                    Err(TimestampError::NoMatch { .. })
                ),
                "{text:?}"
            );
        }
        assert!(p.parse_str("2024-01-01 00:00:00 trailing", now()).is_err());
    }

    #[test]
    fn bad_formats_are_rejected_naming_the_specifier() {
        assert_eq!(
            config_error(&["rfc3339", "%Y-%m-%d %Q"], None),
            TimestampConfigError::BadFormat {
                format: "%Y-%m-%d %Q".to_owned(),
                reason: "`%Q` is not a valid specifier".to_owned(),
            }
        );
        assert!(matches!(
            config_error(&["%Y %%-%:j"], None),
            TimestampConfigError::BadFormat { reason, .. } if reason.contains("`%:j`")
        ));
        assert!(matches!(
            config_error(&["%Y-%m-%"], None),
            TimestampConfigError::BadFormat { reason, .. } if reason.contains("`%`")
        ));
        assert!(matches!(
            config_error(&["%H:%M"], None),
            TimestampConfigError::BadFormat { reason, .. } if reason.contains("never gives a date")
        ));
        assert!(matches!(
            config_error(&[" "], None),
            TimestampConfigError::BadFormat { reason, .. } if reason == "it is empty"
        ));
    }

    #[test]
    fn unknown_timezone_and_no_formats() {
        assert_eq!(
            config_error(&["rfc3339"], Some("Mars/Olympus_Mons")),
            TimestampConfigError::UnknownTimezone("Mars/Olympus_Mons".to_owned())
        );
        assert_eq!(config_error(&[], None), TimestampConfigError::NoFormats);
    }

    #[test]
    fn long_values_are_cut_in_errors() {
        let p = parser(&["rfc3339"], None);
        let long = "é".repeat(100);
        let Err(TimestampError::NoMatch { value, .. }) = p.parse_str(&long, now()) else {
            panic!("expected no match");
        };
        assert_eq!(value, "é".repeat(32));
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
        let p = parser(
            &[
                "rfc3339",
                "rfc2822",
                "unix",
                "unix_ns",
                "%b %e %H:%M:%S",
                "%d/%b/%Y:%H:%M:%S %z",
                "%s",
                "%Y-%j",
            ],
            Some("America/New_York"),
        );
        let alphabet = b"0123456789-+.eE:/ TZabcJnDMS%\xc3\xa9";
        let mut state = 0xdead_beef_cafe_f00d_u64;
        for _ in 0..20_000 {
            let len = next(&mut state) % 32;
            let bytes: Vec<u8> = (0..len)
                .map(|_| alphabet[next(&mut state) as usize % alphabet.len()])
                .collect();
            let text = String::from_utf8_lossy(&bytes);
            let seconds = (next(&mut state) % 20_000_000_000) as i64 - 10_000_000_000;
            let now = DateTime::from_timestamp(seconds, 0).unwrap();
            let _ = p.parse_str(&text, now);
            let _ = p.parse_str(&format!("Dec 31 23:{text}"), now);
            let _ = p.parse_str(&format!("+2{text}"), now);
        }
        for extreme in [DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC] {
            for text in [
                "Dec 31 23:59:59",
                "Jan  1 00:00:00",
                "262143-365",
                "-262143-001",
            ] {
                let _ = p.parse_str(text, extreme);
            }
        }
    }
}
