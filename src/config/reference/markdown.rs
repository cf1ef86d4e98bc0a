//! The key tables of `docs/configuration.md`. A key table is a Markdown table whose header's
//! first cell is `key`; each row's first cell starts with the key's full path in backticks
//! (`` `sources.<id>.include` ``; a name in angle brackets is any name the user chooses), and its
//! second cell is the key's type (`integer`, `string`, `array of strings`, ...). Where a row
//! belongs comes from the headings above it:
//!
//! - a level-2 heading that names `logship-sink` starts the sinks' part; any other level-2
//!   heading, the agent's;
//! - a heading with `` `type = "X"` `` holds the keys of source or step type X, down to the next
//!   heading of its level or above.
//!
//! Lines in fenced code blocks are not headings or tables.

use std::collections::BTreeMap;

use super::recorder::KeyId;

/// One key's row: where it is, the first word of its type, and the whole line.
#[derive(Debug)]
pub struct Row {
    pub line: usize,
    pub kind: String,
    pub text: String,
}

pub type Rows = BTreeMap<KeyId, Row>;

/// The agent's rows and the sinks' rows.
#[derive(Debug, Default)]
pub struct Reference {
    pub agent: Rows,
    pub sinks: Rows,
}

/// Reads every key row; a row without a key, or a key with two rows, is an error.
pub fn rows(text: &str) -> Result<Reference, String> {
    let mut reference = Reference::default();
    let mut sinks = false;
    // Open headings: level, and the type they hold the keys of.
    let mut headings: Vec<(usize, Option<String>)> = Vec::new();
    let mut fenced = false;
    let mut in_key_table = false;
    let mut in_table = false;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let cells: Vec<&str> = line.trim().split('|').collect();
        if !line.trim_start().starts_with('|') {
            in_table = false;
            in_key_table = false;
            if let Some((level, title)) = heading(line) {
                if level == 2 {
                    sinks = title.contains("logship-sink");
                }
                while headings.last().is_some_and(|(open, _)| *open >= level) {
                    headings.pop();
                }
                headings.push((level, variant(title)));
            }
            continue;
        }
        if !in_table {
            in_table = true;
            in_key_table = cells.get(1).is_some_and(|c| c.trim() == "key");
            continue;
        }
        let first = cells.get(1).map_or("", |c| c.trim());
        if !in_key_table || first.starts_with("---") {
            continue;
        }
        let path = first
            .strip_prefix('`')
            .and_then(|rest| rest.split_once('`'))
            .map(|(path, _)| any_name(path))
            .ok_or_else(|| format!("line {number}: a key row's first cell has no `key`"))?;
        let variant = headings.iter().rev().find_map(|(_, v)| v.clone());
        let kind = cells
            .get(2)
            .and_then(|c| c.split_whitespace().next())
            .unwrap_or("")
            .to_lowercase();
        let key = KeyId {
            variant,
            path: path.clone(),
        };
        let part = if sinks {
            &mut reference.sinks
        } else {
            &mut reference.agent
        };
        if let Some(earlier) = part.get(&key) {
            return Err(format!(
                "line {number}: {key} has a row already, at line {}",
                earlier.line
            ));
        }
        part.insert(
            key,
            Row {
                line: number,
                kind,
                text: line.to_owned(),
            },
        );
    }
    Ok(reference)
}

fn heading(line: &str) -> Option<(usize, &str)> {
    let level = line.chars().take_while(|c| *c == '#').count();
    let title = line[level..].strip_prefix(' ')?;
    (level > 0).then_some((level, title))
}

/// `X` of a heading's `` `type = "X"` ``.
fn variant(title: &str) -> Option<String> {
    let rest = title.split_once("`type = \"")?.1;
    let (name, _) = rest.split_once("\"`")?;
    Some(name.to_owned())
}

/// `sources.<id>.include` → `sources.<>.include`: the code's name for any name.
fn any_name(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(open) = rest.find('<') {
        let Some(close) = rest[open..].find('>') else {
            break;
        };
        out.push_str(&rest[..open]);
        out.push_str("<>");
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
## The agent

| key | type | default | meaning |
| --- | --- | --- | --- |
| `data_dir` | string | `\"/var/lib/logship\"` | where |

### `[sources.<id>]` with `type = \"file\"`

| key | type | default | meaning |
| --- | --- | --- | --- |
| `sources.<id>.include` | array of strings | required | globs |

```toml
# not a heading
| `not.a.row` | string | | |
```

#### Multiline

| key | type | default | meaning |
| --- | --- | --- | --- |
| `sources.<id>.multiline.mode` | string | unset | `\"halt_with\"` |

### `[kafka]`

| key | type | default | meaning |
| --- | --- | --- | --- |
| `kafka.brokers` | array | required | |

| value | meaning |
| --- | --- |
| `x` | not a key |

## The sinks: `logship-sink-es`

| key | type | default | meaning |
| --- | --- | --- | --- |
| `kafka.brokers` | array | required | |
";

    #[test]
    fn rows_take_their_part_and_type_from_the_headings_above() {
        let reference = rows(TEXT).expect("valid");
        let agent: Vec<String> = reference.agent.keys().map(|k| k.to_string()).collect();
        assert_eq!(
            agent,
            [
                "`data_dir`",
                "`kafka.brokers`",
                "`sources.<>.include` (type = \"file\")",
                "`sources.<>.multiline.mode` (type = \"file\")",
            ]
        );
        let include = &reference.agent[&KeyId::new(Some("file"), "sources.<>.include")];
        assert_eq!((include.line, include.kind.as_str()), (11, "array"));
        assert_eq!(reference.sinks.len(), 1);
    }

    #[test]
    fn a_key_documented_twice_is_an_error() {
        let text = format!("{TEXT}| `kafka.brokers` | array | | |\n");
        let error = rows(&text).expect_err("twice");
        assert!(error.contains("has a row already"), "{error}");
    }
}
