//! The parsed TOML document with spans: strict deserialization of one section at a time, and
//! mapping a key path or byte offset back to a line, so every error names the key and the line.
//!
//! It knows the shape of no particular section; `mod.rs` decides what goes where.

use std::ops::Range;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::ConfigError;
use crate::pipeline::steps::Load;

/// A value inside the document, kept with its span until it is deserialized.
pub type Node<'i> = Spanned<DeValue<'i>>;

/// The configuration text, parsed with spans.
pub struct Document<'i> {
    text: &'i str,
}

impl<'i> Document<'i> {
    pub fn new(text: &'i str) -> Self {
        Self { text }
    }

    /// Parses the text into its root table, or a syntax error with its line.
    pub fn root(&self) -> Result<DeTable<'i>, ConfigError> {
        DeTable::parse(self.text)
            .map(Spanned::into_inner)
            .map_err(|e| ConfigError::invalid("", self.line_of_span(e.span()), e.message()))
    }

    /// Deserializes `node` into `T` with unknown keys rejected by `T`'s own serde attributes.
    /// Errors carry the full key path (`prefix` joined with the path inside the node).
    pub fn deserialize<T: DeserializeOwned>(
        &self,
        node: Node<'i>,
        prefix: &str,
    ) -> Result<T, ConfigError> {
        let de = ValueDeserializer::from(node);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let inner_path = match e.path().to_string() {
                p if p == "." => String::new(),
                p => p,
            };
            let inner = e.into_inner();
            let (path, reason) = refine(join(prefix, &inner_path), inner.message());
            // A missing key has no span of its own: point at its table's header, never at the
            // span of the whole document (line 1).
            let line = if reason == MISSING {
                self.line_of_key(&path)
            } else {
                self.line_of_span(inner.span())
                    .or_else(|| self.line_of_key(&path))
            };
            ConfigError::invalid(&path, line, &reason)
        })
    }

    /// An error about the value at `path`, with its line when the path exists in the text.
    pub fn error_at(&self, path: &str, reason: impl std::fmt::Display) -> ConfigError {
        ConfigError::invalid(path, self.line_of_key(path), &reason.to_string())
    }

    /// The line (1-based) of the key at `path`, for example `sources.app.include[1]`.
    pub fn line_of_key(&self, path: &str) -> Option<usize> {
        let root = DeTable::parse(self.text).ok()?.into_inner();
        let span = span_of_path(&root, path)?;
        self.line_of_span(Some(span))
    }

    /// The dotted key path whose value contains byte `offset`, the innermost one. When the text
    /// is not valid TOML (an unquoted `${VAR}` makes it so), the key is read off the line: the
    /// name before `=`, under the nearest `[table]` header above it.
    pub fn key_at_offset(&self, offset: usize) -> Option<String> {
        if let Ok(root) = DeTable::parse(self.text) {
            return key_containing(root.get_ref(), offset, "");
        }
        let before = &self.text[..offset.min(self.text.len())];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let key = before[line_start..]
            .split_once('=')?
            .0
            .trim()
            .trim_matches('"');
        let table = before[..line_start].lines().rev().find_map(|l| {
            let l = l.trim();
            l.strip_prefix('[')?
                .strip_suffix(']')
                .map(|t| t.trim_matches(['[', ']']).trim())
        });
        Some(join(table.unwrap_or(""), key))
    }

    /// The line (1-based) that holds byte `offset`.
    pub fn line_of_offset(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }

    fn line_of_span(&self, span: Option<Range<usize>>) -> Option<usize> {
        span.map(|s| self.line_of_offset(s.start))
    }
}

/// One node, deserialized into the type a dispatcher on its `type` key asks for (a step, a
/// source), with the document's strict, path-keeping deserializer.
pub struct Loader<'a, 'i> {
    doc: &'a Document<'i>,
    node: Option<Node<'i>>,
    prefix: &'a str,
}

impl<'a, 'i> Loader<'a, 'i> {
    pub fn new(doc: &'a Document<'i>, node: Node<'i>, prefix: &'a str) -> Self {
        Self {
            doc,
            node: Some(node),
            prefix,
        }
    }
}

impl Load for Loader<'_, '_> {
    type Error = ConfigError;

    fn load<T: DeserializeOwned>(&mut self) -> Result<T, ConfigError> {
        let node = self
            .node
            .take()
            .ok_or_else(|| self.doc.error_at(self.prefix, "loaded twice"))?;
        self.doc.deserialize(node, self.prefix)
    }
}

/// Joins a key path prefix and a suffix that may start with an index (`[0]`).
pub fn join(prefix: &str, suffix: &str) -> String {
    match (prefix.is_empty(), suffix.is_empty()) {
        (true, _) => suffix.to_owned(),
        (_, true) => prefix.to_owned(),
        _ if suffix.starts_with('[') => format!("{prefix}{suffix}"),
        _ => format!("{prefix}.{suffix}"),
    }
}

const MISSING: &str = "required key is missing";

/// serde reports a missing or unknown field at the path of its table; point at the key itself.
fn refine(path: String, message: &str) -> (String, String) {
    for marker in ["missing field `", "unknown field `"] {
        if let Some(rest) = message.strip_prefix(marker)
            && let Some((field, tail)) = rest.split_once('`')
        {
            let names_field = path == field || path.ends_with(&format!(".{field}"));
            let path = if names_field {
                path
            } else {
                join(&path, field)
            };
            let reason = match marker {
                "missing field `" => MISSING.to_owned(),
                _ => format!("unknown key{}", tail.trim_end_matches('.')),
            };
            return (path, reason);
        }
    }
    (path, message.to_owned())
}

/// One step of a key path: a table key or an array index.
enum Step<'p> {
    Key(&'p str),
    Index(usize),
}

fn parse_path(path: &str) -> Option<Vec<Step<'_>>> {
    let mut steps = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, mut indexes) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            steps.push(Step::Key(key));
        }
        while let Some(rest) = indexes.strip_prefix('[') {
            let (n, tail) = rest.split_once(']')?;
            steps.push(Step::Index(n.parse().ok()?));
            indexes = tail;
        }
    }
    Some(steps)
}

fn span_of_path(root: &DeTable<'_>, path: &str) -> Option<Range<usize>> {
    let steps = parse_path(path)?;
    let mut table = root;
    let mut current: Option<&Node<'_>> = None;
    let mut span = None;
    for step in steps {
        match step {
            Step::Key(key) => {
                if let Some(node) = current {
                    table = match node.get_ref() {
                        DeValue::Table(t) => t,
                        _ => return span,
                    };
                }
                let Some((k, v)) = table.get_key_value(key) else {
                    return span;
                };
                span = Some(k.span());
                current = Some(v);
            }
            Step::Index(i) => {
                let DeValue::Array(items) = current?.get_ref() else {
                    return span;
                };
                let item = items.get(i)?;
                span = Some(item.span());
                current = Some(item);
            }
        }
    }
    span
}

fn key_containing(table: &DeTable<'_>, offset: usize, prefix: &str) -> Option<String> {
    for (key, value) in table {
        let path = join(prefix, key.get_ref());
        // A `[table]` header's span covers only the header, so look inside every table.
        if let DeValue::Table(inner) = value.get_ref()
            && let Some(found) = key_containing(inner, offset, &path)
        {
            return Some(found);
        }
        if value.span().contains(&offset) || key.span().contains(&offset) {
            return Some(path);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "a = 1\n[kafka]\nbrokers = [\"x\", \"y\"]\n[sources.app]\ninclude = []\n";

    #[test]
    fn finds_the_line_of_nested_keys_and_items() {
        let doc = Document::new(TEXT);
        assert_eq!(doc.line_of_key("a"), Some(1));
        assert_eq!(doc.line_of_key("kafka.brokers"), Some(3));
        assert_eq!(doc.line_of_key("kafka.brokers[1]"), Some(3));
        assert_eq!(doc.line_of_key("sources.app.include"), Some(5));
        assert_eq!(doc.line_of_key("sources.app"), Some(4));
    }

    #[test]
    fn finds_the_key_around_an_offset() {
        let doc = Document::new(TEXT);
        let offset = TEXT.find("\"y\"").unwrap();
        assert_eq!(doc.key_at_offset(offset).as_deref(), Some("kafka.brokers"));
    }

    #[test]
    fn finds_the_key_of_an_unquoted_reference_in_invalid_toml() {
        let text = "a = 1\n[kafka]\nlinger_ms = ${LINGER}\n";
        let doc = Document::new(text);
        let offset = text.find("${").unwrap();
        assert_eq!(
            doc.key_at_offset(offset).as_deref(),
            Some("kafka.linger_ms")
        );
    }

    #[test]
    fn refine_keeps_a_path_that_only_ends_like_the_field() {
        let (path, _) = refine("sources.web-include".into(), "missing field `include`");
        assert_eq!(path, "sources.web-include.include");
    }

    #[test]
    fn refine_points_at_missing_and_unknown_keys() {
        assert_eq!(
            refine("kafka".into(), "missing field `brokers`"),
            ("kafka.brokers".into(), "required key is missing".into())
        );
        let (path, reason) = refine("kafka".into(), "unknown field `brokerz`, expected `topic`");
        assert_eq!(path, "kafka.brokerz");
        assert_eq!(reason, "unknown key, expected `topic`");
    }
}
