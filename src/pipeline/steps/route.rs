//! `route`: chooses the Kafka topic per event. The first route whose `when` holds wins; its
//! topic may be a template (`logs.{{ service }}`). No route, or a topic naming a missing field:
//! `default`, and without one the configured `[kafka] topic`.

use std::sync::Arc;

use serde::Deserialize;

use super::{BuildError, Flow, Read, Step, StepConfig, StepFailure, template, template_reads};
use crate::event::Event;
use crate::pipeline::condition::Condition;
use crate::pipeline::template::Template;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    routes: Vec<RouteConfig>,
    #[serde(default)]
    default: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteConfig {
    when: String,
    topic: String,
}

impl StepConfig for Config {
    fn build(self) -> Result<Step, BuildError> {
        if self.routes.is_empty() {
            return Err(BuildError::new("routes", "names no route"));
        }
        let mut routes = Vec::new();
        for (i, r) in self.routes.iter().enumerate() {
            let when = Condition::parse(&r.when)
                .map_err(|e| BuildError::new(format!("routes[{i}].when"), e))?;
            routes.push((when, Topic::new(&format!("routes[{i}].topic"), &r.topic)?));
        }
        let default = self
            .default
            .as_deref()
            .map(|d| Topic::new("default", d))
            .transpose()?;
        Ok(Step::Route(Route { routes, default }))
    }
}

/// A topic: fixed, or a template rendered per event.
#[derive(Debug, Clone)]
enum Topic {
    Fixed(Arc<str>),
    Template(Template),
}

impl Topic {
    fn new(key: &str, text: &str) -> Result<Self, BuildError> {
        let t = template(key, text)?;
        if t.is_static() {
            check_topic_name(text).map_err(|reason| BuildError::new(key, reason))?;
            Ok(Topic::Fixed(Arc::from(text)))
        } else {
            Ok(Topic::Template(t))
        }
    }

    fn render(&self, event: &Event) -> Result<Arc<str>, StepFailure> {
        match self {
            Topic::Fixed(name) => Ok(Arc::clone(name)),
            Topic::Template(t) => {
                let name = t
                    .render(event)
                    .map_err(|e| StepFailure::new("missing_field", e.to_string()))?;
                check_topic_name(&name)
                    .map_err(|reason| StepFailure::new("invalid_topic", reason))?;
                Ok(Arc::from(name))
            }
        }
    }
}

/// Kafka's rule for topic names: 1 to 249 of `[A-Za-z0-9._-]`.
pub fn check_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 249 {
        return Err(format!("topic `{name}` must have 1 to 249 characters"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "topic `{name}` holds `{c}`; Kafka allows only letters, digits, `.`, `_` and `-`"
        ));
    }
    Ok(())
}

#[derive(Debug, Clone)]
pub struct Route {
    routes: Vec<(Condition, Topic)>,
    default: Option<Topic>,
}

impl Route {
    pub fn apply(&self, event: &mut Event) -> Result<Flow, StepFailure> {
        let chosen = self.routes.iter().find(|(when, _)| when.eval(event));
        let topic = match chosen.map(|(_, topic)| topic.render(event)) {
            Some(Ok(topic)) => Some(topic),
            Some(Err(failure)) => match &self.default {
                Some(default) => Some(default.render(event)?),
                None => return Err(failure),
            },
            None => self.default.as_ref().map(|d| d.render(event)).transpose()?,
        };
        if topic.is_some() {
            event.topic = topic;
        }
        Ok(Flow::Next)
    }

    pub fn reads(&self) -> Vec<Read<'_>> {
        let mut reads = Vec::new();
        for (i, (when, topic)) in self.routes.iter().enumerate() {
            reads.extend(when.fields().into_iter().map(|path| Read {
                key: format!("routes[{i}].when"),
                path,
            }));
            if let Topic::Template(t) = topic {
                reads.extend(template_reads(&format!("routes[{i}].topic"), t));
            }
        }
        if let Some(Topic::Template(t)) = &self.default {
            reads.extend(template_reads("default", t));
        }
        reads
    }
}
