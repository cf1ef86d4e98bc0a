//! logfmt lines: `level=info msg="request done" took=12ms cached`.
//!
//! A line is a whitespace-separated run of pairs:
//! - `key=value`: the value runs to the next whitespace (it may contain `=` and `"`);
//! - `key="quoted value"`: `\"`, `\\`, `\n`, `\r` and `\t` are unescaped, any other
//!   backslash sequence is kept as written; the closing quote must end the pair;
//! - `key=`: the value is the empty string;
//! - bare `key`: the value is `true`.
//!
//! Keys are runs of characters other than whitespace, `=` and `"`. Values stay strings:
//! nothing is converted to a number. Pairs are returned in line order and repeated keys
//! are all kept, so the caller decides whether the first or the last one wins.
//!
//! A line must hold at least one `key=…` pair: a line of bare words only (plain text such
//! as `connection reset by peer`) is not logfmt and is an error, as are an unterminated
//! quote, a `=` with no key before it, and a quote where a key should start.

use serde_json::Value;

/// Why a line is not logfmt. Offsets are byte offsets into the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogfmtError {
    #[error("no `key=value` pair in the line")]
    NoPairs,
    #[error("`=` with no key before it at byte {offset}")]
    MissingKey { offset: usize },
    #[error("quoted value of `{key}` starting at byte {offset} has no closing quote")]
    UnterminatedQuote { key: String, offset: usize },
    #[error("unexpected `\"` at byte {offset}; keys cannot contain quotes")]
    UnexpectedQuote { offset: usize },
    #[error("unexpected character after the closing quote at byte {offset}")]
    AfterQuote { offset: usize },
}

/// Parses a logfmt line into its pairs, in order (repeated keys are all kept).
pub fn parse(line: &str) -> Result<Vec<(String, Value)>, LogfmtError> {
    let mut cursor = Cursor { line, pos: 0 };
    let mut pairs = Vec::new();
    let mut has_assignment = false;
    loop {
        cursor.skip_whitespace();
        let Some(first) = cursor.peek() else { break };
        match first {
            '=' => return Err(LogfmtError::MissingKey { offset: cursor.pos }),
            '"' => return Err(LogfmtError::UnexpectedQuote { offset: cursor.pos }),
            _ => {}
        }
        let (key, value, assigned) = parse_pair(&mut cursor)?;
        has_assignment |= assigned;
        pairs.push((key, value));
    }
    if has_assignment {
        Ok(pairs)
    } else {
        Err(LogfmtError::NoPairs)
    }
}

/// A read position in the line; `pos` is always on a char boundary.
struct Cursor<'a> {
    line: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// The rest of the line from the read position.
    fn rest(&self) -> &'a str {
        self.line.get(self.pos..).unwrap_or("")
    }

    /// The next char, if any.
    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    /// Steps over one char (no-op at the end).
    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    /// Takes chars while `keep` holds, returning them as a slice.
    fn take_while(&mut self, keep: impl Fn(char) -> bool) -> &'a str {
        let rest = self.rest();
        let len = rest.find(|c: char| !keep(c)).unwrap_or(rest.len());
        self.pos += len;
        rest.get(..len).unwrap_or("")
    }

    fn skip_whitespace(&mut self) {
        self.take_while(char::is_whitespace);
    }
}

/// Parses one pair starting at a key; the bool tells whether it had a `=`.
fn parse_pair(cursor: &mut Cursor<'_>) -> Result<(String, Value, bool), LogfmtError> {
    let key = cursor.take_while(is_key_char).to_owned();
    match cursor.peek() {
        None => Ok((key, Value::Bool(true), false)),
        Some(c) if c.is_whitespace() => Ok((key, Value::Bool(true), false)),
        Some('"') => Err(LogfmtError::UnexpectedQuote { offset: cursor.pos }),
        Some(_) => {
            // The only other char that ends a key is `=`.
            cursor.bump();
            let value = parse_value(cursor, &key)?;
            Ok((key, Value::String(value), true))
        }
    }
}

/// Whether `c` may appear in a key.
fn is_key_char(c: char) -> bool {
    !c.is_whitespace() && c != '=' && c != '"'
}

/// Parses the value after `=`: quoted, bare, or empty.
fn parse_value(cursor: &mut Cursor<'_>, key: &str) -> Result<String, LogfmtError> {
    if cursor.peek() == Some('"') {
        let value = parse_quoted(cursor, key)?;
        match cursor.peek() {
            Some(c) if !c.is_whitespace() => Err(LogfmtError::AfterQuote { offset: cursor.pos }),
            _ => Ok(value),
        }
    } else {
        Ok(cursor.take_while(|c| !c.is_whitespace()).to_owned())
    }
}

/// Parses a quoted value, the cursor being on the opening quote.
fn parse_quoted(cursor: &mut Cursor<'_>, key: &str) -> Result<String, LogfmtError> {
    let start = cursor.pos;
    cursor.bump();
    let mut value = String::new();
    loop {
        match cursor.bump() {
            None => {
                return Err(LogfmtError::UnterminatedQuote {
                    key: key.to_owned(),
                    offset: start,
                });
            }
            Some('"') => return Ok(value),
            Some('\\') => push_escape(cursor, &mut value),
            Some(c) => value.push(c),
        }
    }
}

/// Unescapes the char after a backslash; unknown escapes are kept as written.
fn push_escape(cursor: &mut Cursor<'_>, value: &mut String) {
    match cursor.peek() {
        Some(c @ ('"' | '\\')) => value.push(c),
        Some('n') => value.push('\n'),
        Some('r') => value.push('\r'),
        Some('t') => value.push('\t'),
        // A lone backslash before the end: the missing quote is reported by the caller.
        None => {
            value.push('\\');
            return;
        }
        Some(other) => {
            value.push('\\');
            value.push(other);
        }
    }
    cursor.bump();
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pairs(line: &str) -> Vec<(String, Value)> {
        parse(line).unwrap()
    }

    fn p(key: &str, value: Value) -> (String, Value) {
        (key.to_owned(), value)
    }

    #[test]
    fn simple_pairs_in_order() {
        assert_eq!(
            pairs("level=info msg=started took=12ms"),
            vec![
                p("level", json!("info")),
                p("msg", json!("started")),
                p("took", json!("12ms")),
            ]
        );
    }

    #[test]
    fn values_stay_strings() {
        assert_eq!(
            pairs("status=200 ratio=0.5 ok=true"),
            vec![
                p("status", json!("200")),
                p("ratio", json!("0.5")),
                p("ok", json!("true"))
            ]
        );
    }

    #[test]
    fn quoted_values_and_escapes() {
        assert_eq!(
            pairs(r#"msg="request \"done\"" path="C:\\tmp" nl="a\nb\tc" odd="\x""#),
            vec![
                p("msg", json!("request \"done\"")),
                p("path", json!("C:\\tmp")),
                p("nl", json!("a\nb\tc")),
                p("odd", json!("\\x")),
            ]
        );
    }

    #[test]
    fn bare_keys_and_empty_values() {
        assert_eq!(
            pairs("cached a= b=\"\" c"),
            vec![
                p("cached", json!(true)),
                p("a", json!("")),
                p("b", json!("")),
                p("c", json!(true)),
            ]
        );
    }

    #[test]
    fn unicode_keys_and_values() {
        assert_eq!(
            pairs("ville=Zürich 名前=\"東京 タワー\" emoji=🦀"),
            vec![
                p("ville", json!("Zürich")),
                p("名前", json!("東京 タワー")),
                p("emoji", json!("🦀")),
            ]
        );
    }

    #[test]
    fn repeated_keys_are_all_kept() {
        assert_eq!(
            pairs("tag=a tag=b tag"),
            vec![
                p("tag", json!("a")),
                p("tag", json!("b")),
                p("tag", json!(true))
            ]
        );
    }

    #[test]
    fn whitespace_of_any_kind_separates() {
        assert_eq!(
            pairs("  a=1\tb=2  \r\n"),
            vec![p("a", json!("1")), p("b", json!("2"))]
        );
    }

    #[test]
    fn bare_values_may_hold_equals_and_quotes() {
        assert_eq!(
            pairs(r#"q=a=b x=it"s"#),
            vec![p("q", json!("a=b")), p("x", json!("it\"s"))]
        );
    }

    #[test]
    fn no_pairs_is_an_error() {
        assert_eq!(parse(""), Err(LogfmtError::NoPairs));
        assert_eq!(parse("   \t "), Err(LogfmtError::NoPairs));
        assert_eq!(parse("connection reset by peer"), Err(LogfmtError::NoPairs));
    }

    #[test]
    fn missing_key_is_an_error() {
        assert_eq!(parse("=value"), Err(LogfmtError::MissingKey { offset: 0 }));
        assert_eq!(parse("a=1 =2"), Err(LogfmtError::MissingKey { offset: 4 }));
    }

    #[test]
    fn unterminated_quote_is_an_error() {
        assert_eq!(
            parse(r#"a=1 msg="never closed"#),
            Err(LogfmtError::UnterminatedQuote {
                key: "msg".to_owned(),
                offset: 8
            })
        );
        assert!(matches!(
            parse(r#"msg="escaped at end\""#),
            Err(LogfmtError::UnterminatedQuote { .. })
        ));
        assert!(matches!(
            parse("msg=\"trailing backslash\\"),
            Err(LogfmtError::UnterminatedQuote { .. })
        ));
    }

    #[test]
    fn stray_quotes_are_errors() {
        assert_eq!(
            parse(r#""quoted key"=1"#),
            Err(LogfmtError::UnexpectedQuote { offset: 0 })
        );
        assert_eq!(
            parse(r#"ke"y=1"#),
            Err(LogfmtError::UnexpectedQuote { offset: 2 })
        );
        assert_eq!(
            parse(r#"a="b"c"#),
            Err(LogfmtError::AfterQuote { offset: 5 })
        );
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
        let alphabet = ['a', '=', '"', '\\', ' ', 'é', '🦀', '\t', 'n', '\u{0}'];
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..50_000 {
            let len = next(&mut state) % 24;
            let line: String = (0..len)
                .map(|_| alphabet[next(&mut state) as usize % alphabet.len()])
                .collect();
            let _ = parse(&line);
        }
    }
}
