//! Templates: strings with `{{ field }}` placeholders, such as `logs.{{ service }}` or
//! `{{ kubernetes.namespace }}/{{ kubernetes.pod.name }}`, used for Kafka topics and keys and
//! for the values of `set`. They are parsed when the configuration loads and rendered per event.
//!
//! Whitespace inside the braces is optional (`{{x}}` is `{{ x }}`). There is no escape for a
//! literal `{{`; a `}}` outside a placeholder is plain text.

use std::fmt::{self, Write as _};

use serde_json::Value;

use super::path::{FieldPath, FieldRef, Fields, PathError};
use crate::event::timestamp;

/// A parsed template.
#[derive(Clone, PartialEq)]
pub struct Template {
    text: Box<str>,
    parts: Box<[Part]>,
}

/// A piece of a template: text as written, or a field to fill in.
#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(Box<str>),
    Field(FieldPath),
}

/// Why a template does not parse. Positions count characters from 1.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TemplateError {
    /// A `{{` with no `}}` after it.
    #[error("the `{{{{` at character {position} of `{text}` is never closed with `}}}}`")]
    Unclosed { position: usize, text: String },
    /// `{{ }}` with no field path inside.
    #[error("the placeholder at character {position} of `{text}` has no field path")]
    EmptyPlaceholder { position: usize, text: String },
    /// The text inside a placeholder is not a field path.
    #[error("the placeholder at character {position} of `{text}`: {source}")]
    BadPath {
        position: usize,
        text: String,
        #[source]
        source: PathError,
    },
}

/// A field a template needs is missing (or `null`) in the event; holds the field path.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("field `{0}` is missing")]
pub struct MissingField(pub String);

const OPEN: &str = "{{";
const CLOSE: &str = "}}";

impl Template {
    /// Parses `text`, splitting it into text and placeholders.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find(OPEN) {
            push_text(&mut parts, &rest[..open]);
            let inside_and_after = &rest[open + OPEN.len()..];
            let at = text.len() - rest.len() + open;
            let Some(close) = inside_and_after.find(CLOSE) else {
                return Err(TemplateError::Unclosed {
                    position: position(text, at),
                    text: text.to_owned(),
                });
            };
            parts.push(Part::Field(placeholder(
                text,
                at,
                &inside_and_after[..close],
            )?));
            rest = &inside_and_after[close + CLOSE.len()..];
        }
        push_text(&mut parts, rest);
        Ok(Template {
            text: text.into(),
            parts: parts.into(),
        })
    }

    /// Every field path the template reads, once each, in the order they appear.
    pub fn fields(&self) -> Vec<&FieldPath> {
        let mut paths: Vec<&FieldPath> = Vec::new();
        for part in &self.parts {
            match part {
                Part::Field(path) if !paths.contains(&path) => paths.push(path),
                _ => {}
            }
        }
        paths
    }

    /// Whether the template has no placeholders, so it always renders as its text.
    pub fn is_static(&self) -> bool {
        !self.parts.iter().any(|part| matches!(part, Part::Field(_)))
    }

    /// The template as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Renders to a string: strings as they are, numbers and booleans as JSON text, objects and
    /// arrays as compact JSON, times as RFC 3339; a missing or `null` field is an error.
    pub fn render(&self, fields: &impl Fields) -> Result<String, MissingField> {
        let mut out = String::with_capacity(self.text.len());
        self.render_into(fields, &mut out)?;
        Ok(out)
    }

    /// Appends the rendering to `out`, to reuse a buffer. On error `out` is left as it was.
    pub fn render_into(&self, fields: &impl Fields, out: &mut String) -> Result<(), MissingField> {
        let start = out.len();
        for part in &self.parts {
            let rendered = match part {
                Part::Text(text) => {
                    out.push_str(text);
                    Ok(())
                }
                Part::Field(path) => append_field(fields, path, out),
            };
            if let Err(missing) = rendered {
                out.truncate(start);
                return Err(missing);
            }
        }
        Ok(())
    }

    /// A template that is exactly one placeholder (`"{{ status }}"`) yields the field's own
    /// JSON value, keeping its type; any other renders to a `Value::String`.
    pub fn render_value(&self, fields: &impl Fields) -> Result<Value, MissingField> {
        match &*self.parts {
            [Part::Field(path)] => match fields.field(path).map(FieldRef::to_value) {
                None | Some(Value::Null) => Err(missing(path)),
                Some(value) => Ok(value),
            },
            _ => self.render(fields).map(Value::String),
        }
    }
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Template").field(&self.text).finish()
    }
}

/// Adds `text` to `parts`, unless it is empty.
fn push_text(parts: &mut Vec<Part>, text: &str) {
    if !text.is_empty() {
        parts.push(Part::Text(text.into()));
    }
}

/// The field path inside a placeholder whose `{{` is at byte `at` of `text`.
fn placeholder(text: &str, at: usize, inside: &str) -> Result<FieldPath, TemplateError> {
    let inside = inside.trim();
    if inside.is_empty() {
        return Err(TemplateError::EmptyPlaceholder {
            position: position(text, at),
            text: text.to_owned(),
        });
    }
    FieldPath::parse(inside).map_err(|source| TemplateError::BadPath {
        position: position(text, at),
        text: text.to_owned(),
        source,
    })
}

/// The character position, counted from 1, of byte `at` in `text`.
fn position(text: &str, at: usize) -> usize {
    text.get(..at).unwrap_or(text).chars().count() + 1
}

fn missing(path: &FieldPath) -> MissingField {
    MissingField(path.as_str().to_owned())
}

/// Appends the text of the field at `path` to `out`.
fn append_field<F: Fields + ?Sized>(
    fields: &F,
    path: &FieldPath,
    out: &mut String,
) -> Result<(), MissingField> {
    match fields.field(path) {
        None | Some(FieldRef::Json(Value::Null)) => return Err(missing(path)),
        Some(FieldRef::Str(s)) => out.push_str(s),
        Some(FieldRef::Json(Value::String(s))) => out.push_str(s),
        Some(FieldRef::Time(t)) => out.push_str(&timestamp(t)),
        // Writing to a `String` cannot fail.
        Some(FieldRef::Uint(n)) => _ = write!(out, "{n}"),
        Some(FieldRef::Json(value)) => _ = write!(out, "{value}"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::path::fixtures::{Typed, object};
    use serde_json::{Map, json};

    fn render(template: &str, event: Value) -> Result<String, MissingField> {
        Template::parse(template).unwrap().render(&object(event))
    }

    fn render_value(template: &str, event: Value) -> Result<Value, MissingField> {
        Template::parse(template)
            .unwrap()
            .render_value(&object(event))
    }

    #[test]
    fn static_text_renders_as_itself() {
        let template = Template::parse("logs.all").unwrap();
        assert!(template.is_static());
        assert!(template.fields().is_empty());
        assert_eq!(template.render(&Map::new()).unwrap(), "logs.all");
        assert_eq!(
            template.render_value(&Map::new()).unwrap(),
            json!("logs.all")
        );
        assert_eq!(template.text(), "logs.all");
        assert_eq!(format!("{template:?}"), r#"Template("logs.all")"#);
        let empty = Template::parse("").unwrap();
        assert!(empty.is_static());
        assert_eq!(empty.render(&Map::new()).unwrap(), "");
    }

    #[test]
    fn placeholders_are_filled_in() {
        let event = json!({
            "service": "web",
            "kubernetes": {"namespace": "prod", "pod": {"name": "web-1"}}
        });
        assert_eq!(
            render("logs.{{ service }}", event.clone()).unwrap(),
            "logs.web"
        );
        assert_eq!(
            render(
                "{{ kubernetes.namespace }}/{{kubernetes.pod.name}}",
                event.clone()
            )
            .unwrap(),
            "prod/web-1"
        );
        assert_eq!(
            render("{{service}}{{service}}-{{  service\t}}!", event).unwrap(),
            "webweb-web!"
        );
    }

    #[test]
    fn fields_lists_each_path_once() {
        let template = Template::parse("{{ a }}.{{ b.c }}.{{a}}").unwrap();
        assert!(!template.is_static());
        let names: Vec<&str> = template.fields().iter().map(|p| p.as_str()).collect();
        assert_eq!(names, ["a", "b.c"]);
    }

    #[test]
    fn non_strings_render_as_json_text() {
        let event = json!({
            "code": 503, "ratio": 2.5, "neg": -1, "ok": true,
            "obj": {"a": [1, "x"]}, "list": [1, 2], "empty": ""
        });
        assert_eq!(
            render("{{code}} {{ratio}} {{neg}} {{ok}}", event.clone()).unwrap(),
            "503 2.5 -1 true"
        );
        assert_eq!(
            render("{{ obj }}|{{ list }}", event.clone()).unwrap(),
            r#"{"a":[1,"x"]}|[1,2]"#
        );
        assert_eq!(render("[{{ empty }}]", event).unwrap(), "[]");
    }

    #[test]
    fn typed_fields_render() {
        let template = Template::parse("{{ file }}:{{ offset }}@{{ @timestamp }}").unwrap();
        assert_eq!(
            template.render(&Typed).unwrap(),
            "/var/log/app.log:4096@2024-05-01T12:00:00.000000000Z"
        );
        let offset = Template::parse("{{offset}}").unwrap();
        assert_eq!(offset.render_value(&Typed).unwrap(), json!(4096));
    }

    #[test]
    fn missing_and_null_fields_are_errors() {
        let event = json!({"a": "x", "n": null, "obj": {"b": 1}});
        assert_eq!(
            render("{{ a }}-{{ gone }}", event.clone()),
            Err(MissingField("gone".into()))
        );
        assert_eq!(
            render("{{ n }}", event.clone()),
            Err(MissingField("n".into()))
        );
        assert_eq!(
            render("{{ obj.c }}", event.clone()),
            Err(MissingField("obj.c".into()))
        );
        assert_eq!(
            render_value("{{ n }}", event.clone()),
            Err(MissingField("n".into()))
        );
        assert_eq!(
            render_value("{{ gone }}", event.clone()),
            Err(MissingField("gone".into()))
        );
        assert_eq!(
            render_value("x{{ gone }}", event),
            Err(MissingField("gone".into()))
        );
        assert_eq!(
            MissingField("a.b".into()).to_string(),
            "field `a.b` is missing"
        );
    }

    #[test]
    fn render_into_appends_and_keeps_the_buffer_on_error() {
        let event = object(json!({"a": "x"}));
        let mut out = String::from("key=");
        Template::parse("{{ a }}")
            .unwrap()
            .render_into(&event, &mut out)
            .unwrap();
        assert_eq!(out, "key=x");
        let failed = Template::parse("{{ a }}-{{ b }}")
            .unwrap()
            .render_into(&event, &mut out);
        assert_eq!(failed, Err(MissingField("b".into())));
        assert_eq!(out, "key=x");
    }

    #[test]
    fn a_lone_placeholder_keeps_its_type() {
        let event = json!({"code": 200, "ok": false, "obj": {"k": [1]}, "s": "txt", "f": 1.5});
        assert_eq!(
            render_value("{{ code }}", event.clone()).unwrap(),
            json!(200)
        );
        assert_eq!(render_value("{{ok}}", event.clone()).unwrap(), json!(false));
        assert_eq!(
            render_value("{{ obj }}", event.clone()).unwrap(),
            json!({"k": [1]})
        );
        assert_eq!(
            render_value("{{ s }}", event.clone()).unwrap(),
            json!("txt")
        );
        assert_eq!(render_value("{{ f }}", event.clone()).unwrap(), json!(1.5));
        assert_eq!(
            render_value(" {{ code }}", event.clone()).unwrap(),
            json!(" 200")
        );
        assert_eq!(
            render_value("{{ code }}{{ ok }}", event).unwrap(),
            json!("200false")
        );
        assert_eq!(
            Template::parse("{{ @timestamp }}")
                .unwrap()
                .render_value(&Typed)
                .unwrap(),
            json!("2024-05-01T12:00:00.000000000Z")
        );
    }

    #[test]
    fn stray_closing_braces_are_text() {
        let event = json!({"a": "x"});
        assert_eq!(render("}} {{a}} }}", event.clone()).unwrap(), "}} x }}");
        assert_eq!(render("{ a } {{a}}}", event).unwrap(), "{ a } x}");
        assert!(Template::parse("a }} b").unwrap().is_static());
    }

    #[test]
    fn unclosed_placeholders_are_rejected() {
        assert_eq!(
            Template::parse("logs.{{ service"),
            Err(TemplateError::Unclosed {
                position: 6,
                text: "logs.{{ service".into()
            })
        );
        assert!(matches!(
            Template::parse("{{a}} {{"),
            Err(TemplateError::Unclosed { position: 7, .. })
        ));
        assert!(matches!(
            Template::parse("é{{ a }"),
            Err(TemplateError::Unclosed { position: 2, .. })
        ));
        assert_eq!(
            Template::parse("x{{ y").unwrap_err().to_string(),
            "the `{{` at character 2 of `x{{ y` is never closed with `}}`"
        );
    }

    #[test]
    fn empty_placeholders_are_rejected() {
        for (text, at) in [("{{}}", 1), ("a{{   }}", 2), ("{{a}}{{\t}}", 6)] {
            assert_eq!(
                Template::parse(text),
                Err(TemplateError::EmptyPlaceholder {
                    position: at,
                    text: text.into()
                }),
                "{text}"
            );
        }
        assert_eq!(
            Template::parse("a{{ }}").unwrap_err().to_string(),
            "the placeholder at character 2 of `a{{ }}` has no field path"
        );
    }

    #[test]
    fn bad_paths_are_rejected() {
        assert!(matches!(
            Template::parse("{{ a b }}"),
            Err(TemplateError::BadPath {
                position: 1,
                source: PathError::BadCharacter { found: ' ', .. },
                ..
            })
        ));
        assert!(matches!(
            Template::parse("t.{{ a..b }}"),
            Err(TemplateError::BadPath {
                position: 3,
                source: PathError::EmptySegment(_),
                ..
            })
        ));
        assert!(matches!(
            Template::parse("{{ {{ a }} }}"),
            Err(TemplateError::BadPath {
                source: PathError::BadCharacter { found: '{', .. },
                ..
            })
        ));
        let message = Template::parse("{{ a/b }}").unwrap_err().to_string();
        assert!(
            message.starts_with("the placeholder at character 1 of `{{ a/b }}`: field path `a/b`"),
            "{message}"
        );
    }
}
