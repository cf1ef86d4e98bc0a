//! `[pipelines.<name>]`: each pipeline's `steps`, loaded one table at a time so an error keeps
//! its key path (`pipelines.nginx.steps[2].pattern`), then compiled and checked (`pipeline::known`).

use std::collections::BTreeMap;
use std::sync::Arc;

use toml::de::DeValue;

use super::ConfigError;
use super::document::{Document, Loader, Node};
use crate::pipeline::condition::Condition;
use crate::pipeline::steps::{self, STEP_TYPES};
use crate::pipeline::{OnError, Pipeline, Stage, known};

/// Builds every pipeline. `dead_letter_topic` is `[kafka] dead_letter_topic`, which
/// `on_error = "dead_letter"` needs.
pub fn pipelines(
    doc: &Document<'_>,
    node: Option<Node<'_>>,
    dead_letter_topic: Option<&str>,
) -> Result<BTreeMap<String, Pipeline>, ConfigError> {
    let mut out = BTreeMap::new();
    let Some(node) = node else {
        return Ok(out);
    };
    let DeValue::Table(table) = node.into_inner() else {
        return Err(doc.error_at("pipelines", "must be a table of named pipelines"));
    };
    for (name, node) in table {
        let name = name.into_inner().into_owned();
        let prefix = format!("pipelines.{name}");
        let DeValue::Table(mut fields) = node.into_inner() else {
            return Err(doc.error_at(&prefix, "must be a table with `steps`"));
        };
        let steps = fields.remove("steps");
        if let Some((key, _)) = fields.into_iter().next() {
            return Err(doc.error_at(
                &format!("{prefix}.{}", key.into_inner()),
                "unknown key, expected `steps`",
            ));
        }
        let Some(steps) = steps else {
            return Err(doc.error_at(&format!("{prefix}.steps"), "required key is missing"));
        };
        let DeValue::Array(items) = steps.into_inner() else {
            return Err(doc.error_at(
                &format!("{prefix}.steps"),
                "must be an array of step tables",
            ));
        };
        let mut stages = Vec::new();
        for (index, item) in items.into_iter().enumerate() {
            let key = format!("{prefix}.steps[{index}]");
            stages.push(stage(doc, item, &key, index, dead_letter_topic)?);
        }
        known::check(&stages).map_err(|u| {
            doc.error_at(
                &format!("{prefix}.steps[{}].{}", u.stage, u.key),
                format!(
                    "field `{}` is never set before this step: neither the source nor an earlier step writes it",
                    u.field
                ),
            )
        })?;
        let pipeline = Pipeline::new(&name, stages, dead_letter_topic.map(Arc::from))
            .map_err(|e| doc.error_at(&prefix, e))?;
        out.insert(name, pipeline);
    }
    Ok(out)
}

fn stage(
    doc: &Document<'_>,
    item: Node<'_>,
    prefix: &str,
    index: usize,
    dead_letter_topic: Option<&str>,
) -> Result<Stage, ConfigError> {
    let span = item.span();
    let DeValue::Table(mut fields) = item.into_inner() else {
        return Err(doc.error_at(prefix, "must be a table with `type`"));
    };
    let mut string = |key: &str| -> Result<Option<String>, ConfigError> {
        match fields.remove(key).map(toml::Spanned::into_inner) {
            Some(DeValue::String(s)) => Ok(Some(s.into_owned())),
            Some(_) => Err(doc.error_at(&format!("{prefix}.{key}"), "must be a string")),
            None => Ok(None),
        }
    };
    let kind = string("type")?
        .ok_or_else(|| doc.error_at(&format!("{prefix}.type"), "required key is missing"))?;
    let when = string("when")?;
    let on_error = string("on_error")?;
    let node = toml::Spanned::new(span, DeValue::Table(fields));
    let mut loader = Loader::new(doc, node, prefix);
    let step = match steps::build(&kind, &mut loader) {
        Some(built) => {
            built?.map_err(|e| doc.error_at(&format!("{prefix}.{}", e.key), e.reason))?
        }
        None => {
            return Err(doc.error_at(
                &format!("{prefix}.type"),
                format!(
                    "unknown step type `{kind}`, expected one of: {}",
                    STEP_TYPES.join(", ")
                ),
            ));
        }
    };
    let when = when
        .map(|text| Condition::parse(&text).map_err(|e| doc.error_at(&format!("{prefix}.when"), e)))
        .transpose()?;
    if kind == "drop" && when.is_none() {
        return Err(doc.error_at(
            &format!("{prefix}.when"),
            "`drop` needs `when`: without it every event would be dropped",
        ));
    }
    let on_error = match on_error.as_deref() {
        None => OnError::Keep,
        Some(_) if !steps::is_parser(&kind) => {
            return Err(doc.error_at(
                &format!("{prefix}.on_error"),
                "only parse steps take `on_error`",
            ));
        }
        Some("keep") => OnError::Keep,
        Some("drop") => OnError::Drop,
        Some("dead_letter") if dead_letter_topic.is_none() => {
            return Err(doc.error_at(
                &format!("{prefix}.on_error"),
                "`dead_letter` needs `[kafka] dead_letter_topic`",
            ));
        }
        Some("dead_letter") => OnError::DeadLetter,
        Some(other) => {
            return Err(doc.error_at(
                &format!("{prefix}.on_error"),
                format!("unknown value `{other}`, expected one of: keep, drop, dead_letter"),
            ));
        }
    };
    Ok(Stage {
        step,
        when,
        on_error,
        label: Arc::from(format!("{index}:{kind}")),
    })
}
