//! The keys an example configuration shows, in the reference's terms (`recorder::KeyId`): every
//! key it sets (read with the TOML parser), every key of a commented-out line (`# key = value`
//! with at most one space after the `#`, under the `[table]` or `# [table]` above it), and the
//! step keys its prose table of step types names (`#   parse_json       field [...], target`,
//! continued on lines indented further).
//!
//! The code's keys say how to read the text: a name where the code has `<>` is any name
//! (`[sources.app]`), a table the code has no keys inside (`librdkafka_options`, a test's
//! `outputs`) holds entries rather than keys, and a table with a `type` the code knows
//! (`[sources.app]`, a step) holds that type's keys.

use std::collections::BTreeSet;

use toml::{Table, Value};

use super::recorder::{KeyId, Keys, join};

/// Every key `text` shows.
pub fn shown(text: &str, code: &Keys, step_types: &[&str]) -> BTreeSet<KeyId> {
    let parsed: Table = toml::from_str(text).unwrap_or_else(|e| panic!("not TOML: {e}"));
    let mut shown = BTreeSet::new();
    set_keys(&parsed, "", None, code, &mut shown);
    commented_keys(text, &parsed, code, &mut shown);
    prose_step_keys(text, code, step_types, &mut shown);
    shown
}

fn set_keys(
    table: &Table,
    path: &str,
    variant: Option<&str>,
    code: &Keys,
    shown: &mut BTreeSet<KeyId>,
) {
    let variant = own_variant(table, path, code).or(variant);
    for (name, value) in table {
        let key = resolve(code, path, name);
        if key.ends_with("<>") {
            if let Value::Table(inner) = value {
                set_keys(inner, &key, variant, code, shown);
            }
            continue;
        }
        shown.insert(id(code, variant, &key));
        match value {
            Value::Table(inner) if has_keys_below(code, &format!("{key}.")) => {
                set_keys(inner, &key, variant, code, shown);
            }
            Value::Array(items) if has_keys_below(code, &format!("{key}[].")) => {
                for item in items {
                    if let Value::Table(inner) = item {
                        set_keys(inner, &format!("{key}[]"), variant, code, shown);
                    }
                }
            }
            _ => {}
        }
    }
}

fn commented_keys(text: &str, parsed: &Table, code: &Keys, shown: &mut BTreeSet<KeyId>) {
    // The table the lines below a header are in, as the code names it, and its type.
    let mut table = String::new();
    let mut variant: Option<String> = None;
    for line in text.lines() {
        if let Some((name, array)) = header(line) {
            let (path, key, found) = resolve_header(name, array, parsed, code);
            if let Some(key) = key {
                shown.insert(id(code, found.as_deref(), &key));
            }
            table = path;
            variant = found;
            continue;
        }
        let Some(name) = commented_assignment(line) else {
            continue;
        };
        let holds_keys = table.is_empty() || has_keys_below(code, &format!("{table}."));
        if holds_keys {
            shown.insert(id(code, variant.as_deref(), &join(&table, name)));
        }
    }
}

/// `[a.b]`, `[[a.b]]`, `# [a.b]`: the table's name, and whether it is an array's item.
fn header(line: &str) -> Option<(&str, bool)> {
    let line = line.trim();
    let line = match line.strip_prefix('#') {
        Some(rest) => rest.strip_prefix(' ').unwrap_or(rest),
        None => line,
    };
    let (inner, array) = match line.strip_prefix("[[") {
        Some(rest) => (rest.strip_suffix("]]")?, true),
        None => (line.strip_prefix('[')?.strip_suffix(']')?, false),
    };
    let valid = !inner.is_empty()
        && inner
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    valid.then_some((inner, array))
}

/// `# key = value`, with at most one space after the `#`: prose indents further.
fn commented_assignment(line: &str) -> Option<&str> {
    let rest = line.strip_prefix('#')?;
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    let (name, _) = rest.split_once(" = ")?;
    let valid = name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    valid.then_some(name)
}

/// A header's table as the code names it (`tests[].inputs[]`), the key it shows, when it is one
/// (`kafka.tls`; `[sources.app]` is no key), and the type its keys are of.
fn resolve_header(
    name: &str,
    array: bool,
    parsed: &Table,
    code: &Keys,
) -> (String, Option<String>, Option<String>) {
    let mut path = String::new();
    let mut key = String::new();
    let mut node = Some(parsed);
    let mut variant = None;
    let segments: Vec<&str> = name.split('.').collect();
    for (i, segment) in segments.iter().enumerate() {
        key = resolve(code, &path, segment);
        let last = i + 1 == segments.len();
        let item = has_keys_below(code, &format!("{key}[].")) || (last && array);
        path = if item {
            format!("{key}[]")
        } else {
            key.clone()
        };
        // The concrete table, for its `type`: the last item of an array of tables.
        node = node.and_then(|t| match t.get(*segment) {
            Some(Value::Table(inner)) => Some(inner),
            Some(Value::Array(items)) => items.last().and_then(Value::as_table),
            _ => None,
        });
        if let Some(table) = node
            && let Some(found) = own_variant(table, &path, code)
        {
            variant = Some(found.to_owned());
        }
    }
    let shows_key = !key.ends_with("<>");
    (path, shows_key.then_some(key), variant)
}

/// The step keys named in the prose table of step types: for each type, its line and the lines
/// below it indented further. A key counts as shown when its name is a word of its type's entry.
fn prose_step_keys(text: &str, code: &Keys, step_types: &[&str], shown: &mut BTreeSet<KeyId>) {
    let mut entries: Vec<(&str, String)> = Vec::new();
    let mut open = false;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("#   ")
            && let Some((kind, tail)) = rest.split_once(' ')
            && step_types.contains(&kind)
        {
            entries.push((kind, tail.to_owned()));
            open = true;
        } else if open && line.starts_with("#     ") {
            if let Some((_, text)) = entries.last_mut() {
                text.push(' ');
                text.push_str(line);
            }
        } else {
            open = false;
        }
    }
    for (kind, entry) in entries {
        let words: BTreeSet<&str> = entry
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .collect();
        for key in code.keys() {
            if key.variant.as_deref() != Some(kind) {
                continue;
            }
            let leaf = key.path.rsplit('.').next().unwrap_or("");
            if words.contains(leaf.trim_end_matches("[]")) {
                shown.insert(key.clone());
            }
        }
    }
}

/// The child `name` of `path` as the code names it: itself, or `<>` where the code takes any
/// name.
fn resolve(code: &Keys, path: &str, name: &str) -> String {
    let direct = join(path, name);
    if code.keys().any(|k| k.path == direct) {
        return direct;
    }
    let any = join(path, "<>");
    if has_keys_below(code, &format!("{any}.")) {
        any
    } else {
        direct
    }
}

fn has_keys_below(code: &Keys, prefix: &str) -> bool {
    code.keys().any(|k| k.path.starts_with(prefix))
}

/// The type a table's keys are of, when its `type` is a key the code knows.
fn own_variant<'t>(table: &'t Table, path: &str, code: &Keys) -> Option<&'t str> {
    let key = KeyId::new(None, join(path, "type"));
    match table.get("type") {
        Some(Value::String(kind)) if code.contains_key(&key) => Some(kind),
        _ => None,
    }
}

/// A key of a typed table is that type's, unless it is a key every type takes (`type`, `when`).
fn id(code: &Keys, variant: Option<&str>, path: &str) -> KeyId {
    let own = KeyId::new(variant, path);
    let shared = KeyId::new(None, path);
    if !code.contains_key(&own) && code.contains_key(&shared) {
        shared
    } else {
        own
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::reference::recorder::KeyInfo;

    fn code() -> Keys {
        [
            (None, "kafka"),
            (None, "sources"),
            (None, "pipelines"),
            (None, "sources.<>.type"),
            (Some("file"), "sources.<>.include"),
            (Some("file"), "sources.<>.multiline"),
            (Some("file"), "sources.<>.multiline.mode"),
            (None, "kafka.tls"),
            (None, "kafka.tls.ca_file"),
            (None, "kafka.librdkafka_options"),
            (None, "pipelines.<>.steps"),
            (None, "pipelines.<>.steps[].type"),
            (Some("route"), "pipelines.<>.steps[].routes"),
            (Some("route"), "pipelines.<>.steps[].routes[].when"),
            (Some("route"), "pipelines.<>.steps[].default"),
            (None, "tests"),
            (None, "tests[].inputs"),
            (None, "tests[].inputs[].host"),
        ]
        .into_iter()
        .map(|(variant, path)| (KeyId::new(variant, path), KeyInfo::default()))
        .collect()
    }

    #[test]
    fn set_commented_and_prose_keys_are_shown() {
        let text = "\
[sources.app]
type = \"file\"
include = []
[sources.app.multiline]
# mode = \"halt_with\"
# [kafka.tls]
# ca_file = \"x\"
[kafka.librdkafka_options]
# not.a.key = 1
#   route  routes = [{ when, topic }], default [the kafka topic]
#   when = 'not a commented key'
[pipelines.p]
steps = [{ type = \"route\", routes = [{ when = \"true\", topic = \"t\" }] }]
[[tests]]
[[tests.inputs]]
# host = \"h\"
";
        let shown: Vec<String> = shown(text, &code(), &["route"])
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            shown,
            [
                "`kafka`",
                "`kafka.librdkafka_options`",
                "`kafka.tls`",
                "`kafka.tls.ca_file`",
                "`pipelines`",
                "`pipelines.<>.steps`",
                "`pipelines.<>.steps[].type`",
                "`sources`",
                "`sources.<>.type`",
                "`tests`",
                "`tests[].inputs`",
                "`tests[].inputs[].host`",
                "`sources.<>.include` (type = \"file\")",
                "`sources.<>.multiline` (type = \"file\")",
                "`sources.<>.multiline.mode` (type = \"file\")",
                "`pipelines.<>.steps[].default` (type = \"route\")",
                "`pipelines.<>.steps[].routes` (type = \"route\")",
                // Set in the text but not a key of the code: the caller reports it.
                "`pipelines.<>.steps[].routes[].topic` (type = \"route\")",
                "`pipelines.<>.steps[].routes[].when` (type = \"route\")",
            ]
        );
    }
}
