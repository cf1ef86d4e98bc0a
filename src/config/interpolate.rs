//! `${VAR}` and `${VAR:-default}` substitution in the configuration text, before TOML parsing.
//!
//! Substitution happens on the raw text so that numbers and booleans can come from the
//! environment too. Comments (from a `#` outside a string to the end of the line) are left alone,
//! so a commented example in a config file never demands a variable. `$${` writes a literal `${`.
//! This module knows nothing of TOML; the caller maps an error's byte offset to a key.

/// A variable that could not be substituted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterpolationError {
    /// `${NAME}` where NAME is not set.
    #[error("environment variable `{name}` is not set (use ${{{name}:-default}} for a default)")]
    Unset { name: String, offset: usize },
    /// `${` without a closing brace or with a name that is not `[A-Za-z_][A-Za-z0-9_]*`.
    #[error("malformed variable reference `{text}`")]
    Malformed { text: String, offset: usize },
}

impl InterpolationError {
    /// Byte offset of the reference in the original text.
    pub fn offset(&self) -> usize {
        match self {
            Self::Unset { offset, .. } | Self::Malformed { offset, .. } => *offset,
        }
    }
}

/// Substitutes every reference in `text`, looking names up with `lookup`.
///
/// `${NAME:-default}` uses the default when NAME is unset or empty, as a POSIX shell does.
pub fn interpolate(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, InterpolationError> {
    let mut out = String::with_capacity(text.len());
    let mut line_start = 0;
    for line in text.split_inclusive('\n') {
        let (code, comment) = line.split_at(comment_start(line));
        interpolate_line(code, line_start, lookup, &mut out)?;
        out.push_str(comment);
        line_start += line.len();
    }
    Ok(out)
}

fn interpolate_line(
    line: &str,
    line_start: usize,
    lookup: &dyn Fn(&str) -> Option<String>,
    out: &mut String,
) -> Result<(), InterpolationError> {
    let mut rest = line;
    while let Some(at) = rest.find("${") {
        let offset = line_start + (line.len() - rest.len()) + at;
        if at > 0 && rest.as_bytes()[at - 1] == b'$' {
            // `$${` is an escaped literal `${`.
            out.push_str(&rest[..at - 1]);
            out.push_str("${");
            rest = &rest[at + 2..];
            continue;
        }
        out.push_str(&rest[..at]);
        let body_start = at + 2;
        let Some(close) = rest[body_start..].find('}') else {
            return Err(InterpolationError::Malformed {
                text: rest[at..].trim_end().to_owned(),
                offset,
            });
        };
        let body = &rest[body_start..body_start + close];
        let (name, default) = match body.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (body, None),
        };
        if !is_variable_name(name) {
            return Err(InterpolationError::Malformed {
                text: format!("${{{body}}}"),
                offset,
            });
        }
        match (lookup(name), default) {
            (Some(value), Some(default)) if value.is_empty() => out.push_str(default),
            (Some(value), _) => out.push_str(&value),
            (None, Some(default)) => out.push_str(default),
            (None, None) => {
                return Err(InterpolationError::Unset {
                    name: name.to_owned(),
                    offset,
                });
            }
        }
        rest = &rest[body_start + close + 1..];
    }
    out.push_str(rest);
    Ok(())
}

/// Byte index where the line's comment starts (its length when it has none). Tracks TOML's
/// one-line basic (`"…"`, with escapes) and literal (`'…'`) strings.
fn comment_start(line: &str) -> usize {
    let mut quote = None;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (Some('"'), _) if escaped => escaped = false,
            (Some('"'), '\\') => escaped = true,
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '#') => return i,
            (None, _) => {}
        }
    }
    line.len()
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("kafka-1".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn substitutes_set_variables_and_defaults() {
        let text = "a = \"${HOST}:9092\"\nb = ${PORT:-19092}\nc = \"${EMPTY:-x}\"\n";
        assert_eq!(
            interpolate(text, &env).unwrap(),
            "a = \"kafka-1:9092\"\nb = 19092\nc = \"x\"\n"
        );
    }

    #[test]
    fn unset_variable_reports_its_offset() {
        let text = "a = 1\nb = \"${NOPE}\"\n";
        let err = interpolate(text, &env).unwrap_err();
        assert_eq!(
            err,
            InterpolationError::Unset {
                name: "NOPE".into(),
                offset: 11
            }
        );
    }

    #[test]
    fn comments_and_escapes_are_left_alone() {
        let text = "# uses ${NOPE}\n  # ${ALSO_NOPE}\na = \"$${HOST}\"\n";
        assert_eq!(
            interpolate(text, &env).unwrap(),
            "# uses ${NOPE}\n  # ${ALSO_NOPE}\na = \"${HOST}\"\n"
        );
    }

    #[test]
    fn trailing_comments_are_left_alone_but_hashes_in_strings_are_not_comments() {
        let text =
            "a = \"${HOST}\" # or ${NOPE}\nb = \"#${HOST}\" # ${NOPE}\nc = '#' # '${NOPE}'\n";
        assert_eq!(
            interpolate(text, &env).unwrap(),
            "a = \"kafka-1\" # or ${NOPE}\nb = \"#kafka-1\" # ${NOPE}\nc = '#' # '${NOPE}'\n"
        );
    }

    #[test]
    fn malformed_references_are_errors() {
        assert!(matches!(
            interpolate("a = \"${HOST\"", &env),
            Err(InterpolationError::Malformed { .. })
        ));
        assert!(matches!(
            interpolate("a = \"${1X}\"", &env),
            Err(InterpolationError::Malformed { .. })
        ));
    }
}
