//! `redact`: hides secrets and personal data in string fields (the line, by default): named
//! patterns (`email`, `ipv4`, `credit_card` with a Luhn check, `bearer_token`) and regexes of
//! your own, replaced by a fixed text or by a SHA-256 digest (so equal values stay joinable).

use regex::{Captures, Regex};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{BuildError, Flow, Read, Step, StepConfig, StepFailure, field_paths, list_reads};
use crate::event::Event;
use crate::pipeline::path::{FieldPath, Fields};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "default_fields")]
    fields: Vec<String>,
    /// Named patterns: "email", "ipv4", "credit_card", "bearer_token".
    #[serde(default)]
    patterns: Vec<String>,
    /// Regexes of your own; each whole match is redacted.
    #[serde(default)]
    regexes: Vec<String>,
    #[serde(default)]
    method: Method,
    /// What `replace` writes.
    #[serde(default = "default_replacement")]
    replacement: String,
}

fn default_fields() -> Vec<String> {
    vec!["message".into()]
}
fn default_replacement() -> String {
    "[REDACTED]".into()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    #[default]
    Replace,
    /// `sha256:` and the first 16 hex digits of the match's SHA-256.
    Hash,
}

/// The named patterns.
const NAMED: &[(&str, &str)] = &[
    ("email", r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"),
    (
        "ipv4",
        r"\b(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\b",
    ),
    ("credit_card", r"\b(?:\d[ -]?){12,18}\d\b"),
    ("bearer_token", r"(?i)\bbearer\s+[A-Za-z0-9\-._~+/]+=*"),
];

impl StepConfig for Config {
    fn build(self) -> Result<Step, BuildError> {
        let mut alternatives = Vec::new();
        let mut luhn_group = None;
        for (i, name) in self.patterns.iter().enumerate() {
            let Some((_, pattern)) = NAMED.iter().find(|(n, _)| n == name) else {
                let known: Vec<&str> = NAMED.iter().map(|(n, _)| *n).collect();
                return Err(BuildError::new(
                    format!("patterns[{i}]"),
                    format!(
                        "unknown pattern `{name}`, expected one of: {}",
                        known.join(", ")
                    ),
                ));
            };
            if *name == "credit_card" {
                luhn_group = Some(alternatives.len());
            }
            alternatives.push(pattern.to_string());
        }
        for (i, regex) in self.regexes.iter().enumerate() {
            Regex::new(regex).map_err(|e| BuildError::new(format!("regexes[{i}]"), e))?;
            alternatives.push(regex.clone());
        }
        if alternatives.is_empty() {
            return Err(BuildError::new(
                "patterns",
                "set `patterns` or `regexes`: nothing to redact",
            ));
        }
        // One pass over the text: each alternative is a named group, so the match tells which.
        let combined = alternatives
            .iter()
            .enumerate()
            .map(|(i, p)| format!("(?P<r{i}>{p})"))
            .collect::<Vec<_>>()
            .join("|");
        let regex = Regex::new(&combined).map_err(|e| BuildError::new("regexes", e))?;
        let fields = field_paths("fields", &self.fields)?;
        Ok(Step::Redact(Redact {
            fields,
            regex,
            luhn_group: luhn_group.map(|i| format!("r{i}")),
            method: self.method,
            replacement: self.replacement,
        }))
    }
}

#[derive(Debug, Clone)]
pub struct Redact {
    fields: Vec<FieldPath>,
    regex: Regex,
    /// The group of `credit_card`, whose matches must pass the Luhn check.
    luhn_group: Option<String>,
    method: Method,
    replacement: String,
}

impl Redact {
    pub fn apply(&self, event: &mut Event) -> Result<Flow, StepFailure> {
        for field in &self.fields {
            let Some(text) = event.field(field).and_then(|f| f.as_str()) else {
                continue;
            };
            let redacted = self
                .regex
                .replace_all(text, |caps: &Captures<'_>| self.replace(caps));
            if let std::borrow::Cow::Owned(redacted) = redacted {
                super::set(event, field, Value::String(redacted))?;
            }
        }
        Ok(Flow::Next)
    }

    fn replace(&self, caps: &Captures<'_>) -> String {
        let whole = caps.get(0).map_or("", |m| m.as_str());
        if let Some(group) = &self.luhn_group
            && caps.name(group).is_some()
            && !luhn_valid(whole)
        {
            return whole.to_owned();
        }
        match self.method {
            Method::Replace => self.replacement.clone(),
            Method::Hash => {
                let digest = Sha256::digest(whole.as_bytes());
                let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
                format!("sha256:{hex}")
            }
        }
    }

    pub fn reads(&self) -> Vec<Read<'_>> {
        list_reads("fields", &self.fields)
    }
}

/// The Luhn checksum of the digits in `text` (card numbers; spaces and dashes ignored).
fn luhn_valid(text: &str) -> bool {
    let digits: Vec<u32> = text.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
            } else {
                d
            }
        })
        .sum();
    sum % 10 == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_accepts_real_card_numbers_only() {
        assert!(luhn_valid("4111 1111 1111 1111"));
        assert!(luhn_valid("5500-0000-0000-0004"));
        assert!(!luhn_valid("4111 1111 1111 1112"));
        assert!(!luhn_valid("1234"));
    }
}
