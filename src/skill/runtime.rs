//! [`RuntimeSkill`]: a skill built from code at start-up rather than with `#[skill]`, for tools that are only
//! known once the program runs (one per endpoint of an API description it reads, one per configured query).
//!
//! It is checked when it is built exactly as a macro skill is when the catalog is: the name and description Codex
//! accepts, annotations that do not contradict themselves, valid tags, and an input schema that is an object and
//! compiles. In a [`Catalog`](super::Catalog) it is a skill like any other: its arguments are validated against
//! its schema, it runs under its deadline with its cancellation token, and it shows in every listing. A name it
//! shares with another skill (macro or run-time) is a start-up error naming both.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::annotations::{self, Annotations};
use super::catalog::{CatalogError, MAX_NAME_LEN, SkillLocation, is_valid_name};
use super::schema::{self, SchemaProblem};
use super::validate::ArgumentCheck;
use super::{IntoToolResult, SkillContext, ToolResult};

/// What `#[skill]` gives a skill that does not set `timeout`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// What [`SkillLocation::module_path`] says for a run-time skill.
pub(crate) const RUNTIME_MODULE: &str = "run-time skill";

/// The handler of a run-time skill: the call's arguments (an object, already valid for the input schema) and
/// context in, the answer out.
type Handler = dyn Fn(Value, SkillContext) -> BoxFuture<'static, ToolResult> + Send + Sync;

/// A skill built at run time: name, description, input schema, annotations, tags, timeout and an `async` handler.
/// Cheap to clone (one `Arc`).
///
/// ```
/// use std::time::Duration;
///
/// use serde_json::json;
/// use skillbridge::skill::{Annotations, Catalog, RuntimeSkill, SkillContext, ToolResult};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// // One tool per configured endpoint, say.
/// let status = RuntimeSkill::builder("service_status", "Says whether a service is up.")
///     .input_schema(json!({
///         "type": "object",
///         "properties": {"service": {"type": "string", "enum": ["billing", "search"]}},
///         "required": ["service"],
///     }))
///     .annotations(Annotations::new().with_read_only(true))
///     .tags(["ops"])
///     .timeout(Duration::from_secs(5))
///     .handler(|arguments, _ctx: SkillContext| async move {
///         ToolResult::text(format!("{} is up", arguments["service"].as_str().unwrap_or_default()))
///     })
///     .build()
///     .expect("a valid skill");
///
/// let catalog = Catalog::builder().skill(status).build().expect("no name is taken twice");
/// let up = catalog.invoke("service_status", json!({"service": "search"}), SkillContext::detached("service_status"));
/// assert_eq!(up.await.text_content(), "search is up");
///
/// // Arguments are checked against the schema before the handler runs.
/// let refused = catalog.invoke("service_status", json!({"service": "mail"}), SkillContext::detached("service_status"));
/// assert!(refused.await.text_content().starts_with("invalid arguments for `service_status`: service: "));
/// # }
/// ```
#[derive(Clone)]
pub struct RuntimeSkill {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) annotations: Annotations,
    pub(crate) tags: Vec<String>,
    pub(crate) redacted: Vec<String>,
    /// The schema as given: what arguments are checked against.
    pub(crate) derived_input: Value,
    /// The schema as Codex receives it (definitions inlined).
    pub(crate) input_schema: Value,
    pub(crate) output_schema: Option<Value>,
    pub(crate) arguments: Arc<ArgumentCheck>,
    pub(crate) timeout: Duration,
    pub(crate) location: SkillLocation,
    handler: Arc<Handler>,
}

impl RuntimeSkill {
    /// Starts a skill called `name` that the model knows by `description`. Its location in error messages is
    /// where this is called.
    #[track_caller]
    pub fn builder(name: impl Into<String>, description: impl Into<String>) -> RuntimeSkillBuilder<()> {
        let caller = std::panic::Location::caller();
        RuntimeSkillBuilder {
            name: name.into(),
            description: description.into(),
            input_schema: json!({"type": "object", "properties": {}}),
            output_schema: None,
            annotations: Annotations::new(),
            tags: Vec::new(),
            redacted: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            location: SkillLocation {
                module_path: RUNTIME_MODULE,
                file: caller.file(),
                line: caller.line(),
            },
            handler: (),
        }
    }

    /// The tool name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    pub(crate) fn parts(&self) -> &Inner {
        &self.inner
    }

    /// Starts the handler on `arguments` (`null` read as `{}`); anything but an object is refused, as it is for a
    /// macro skill.
    pub(crate) fn start(&self, arguments: Value, ctx: SkillContext) -> Result<BoxFuture<'static, ToolResult>, String> {
        let arguments = super::__private::arguments_object(arguments).map_err(|error| error.0)?;
        Ok((self.inner.handler)(Value::Object(arguments), ctx))
    }
}

impl fmt::Debug for RuntimeSkill {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuntimeSkill")
            .field("name", &self.inner.name)
            .field("location", &self.inner.location)
            .finish_non_exhaustive()
    }
}

/// Builds a [`RuntimeSkill`]; [`handler`](Self::handler) is required before [`build`](Self::build) (`H` says
/// whether it was given).
#[must_use]
pub struct RuntimeSkillBuilder<H> {
    name: String,
    description: String,
    input_schema: Value,
    output_schema: Option<Value>,
    annotations: Annotations,
    tags: Vec<String>,
    redacted: Vec<String>,
    timeout: Duration,
    location: SkillLocation,
    handler: H,
}

impl<H> RuntimeSkillBuilder<H> {
    /// The JSON Schema of the arguments: an object schema (default: no parameters). Every keyword is enforced on
    /// each call, including those Codex leaves out of what the model sees (`minimum`, `pattern`, `format`, ...).
    /// A `schemars::Schema` converts into it.
    pub fn input_schema(mut self, schema: impl Into<Value>) -> Self {
        self.input_schema = schema.into();
        self
    }

    /// The schema of the JSON the skill returns, for listings and tooling (Codex has no use for it).
    pub fn output_schema(mut self, schema: impl Into<Value>) -> Self {
        self.output_schema = Some(schema.into());
        self
    }

    /// The MCP tool annotations: title and behaviour hints (default: none).
    pub fn annotations(mut self, annotations: Annotations) -> Self {
        self.annotations = annotations;
        self
    }

    /// Tags that group skills for selection (`--tools TAG`) and listings; each must match `^[a-z0-9][a-z0-9_-]{0,31}$`.
    pub fn tags<T: Into<String>>(mut self, tags: impl IntoIterator<Item = T>) -> Self {
        self.tags = tags.into_iter().map(Into::into).collect();
        self
    }

    /// Parameters whose values recorded calls leave out (a password, a personal detail), as `#[skill(redact)]`.
    pub fn redact<T: Into<String>>(mut self, parameters: impl IntoIterator<Item = T>) -> Self {
        self.redacted = parameters.into_iter().map(Into::into).collect();
        self
    }

    /// How long one call may run before it is answered with a timeout and its cancellation token fires (default
    /// 1 minute, as for `#[skill]`).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

impl RuntimeSkillBuilder<()> {
    /// What runs a call: gets the arguments (an object valid for the input schema) and the call's
    /// [`SkillContext`] (ids, cancellation token), and answers anything that is [`IntoToolResult`] — a
    /// [`ToolResult`], text, or a `Result` of those (an `Err` answers `success: false` with its message).
    pub fn handler<F, Fut>(self, handler: F) -> RuntimeSkillBuilder<Arc<Handler>>
    where
        F: Fn(Value, SkillContext) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: IntoToolResult,
    {
        let handler: Arc<Handler> =
            Arc::new(move |arguments, ctx| handler(arguments, ctx).map(IntoToolResult::into_tool_result).boxed());
        RuntimeSkillBuilder {
            name: self.name,
            description: self.description,
            input_schema: self.input_schema,
            output_schema: self.output_schema,
            annotations: self.annotations,
            tags: self.tags,
            redacted: self.redacted,
            timeout: self.timeout,
            location: self.location,
            handler,
        }
    }
}

impl RuntimeSkillBuilder<Arc<Handler>> {
    /// Checks the skill as the catalog checks a `#[skill]`, and compiles its input schema.
    ///
    /// Fails with [`CatalogError::InvalidSkill`] for a name Codex refuses, an empty description or title, a zero
    /// timeout, contradictory annotations, a bad or repeated tag, or a schema that does not compile; with
    /// [`CatalogError::InputNotObject`] or [`CatalogError::RecursiveSchema`] for an input schema Codex cannot use.
    pub fn build(self) -> Result<RuntimeSkill, CatalogError> {
        let invalid = |problem: String| CatalogError::InvalidSkill {
            skill: self.name.clone(),
            location: self.location.clone(),
            problem,
        };
        if !is_valid_name(&self.name) {
            return Err(invalid(format!(
                "the name must match ^[A-Za-z0-9_-]{{1,{MAX_NAME_LEN}}}$"
            )));
        }
        if self.description.trim().is_empty() {
            return Err(invalid("the description is empty".to_owned()));
        }
        if self.timeout.is_zero() {
            return Err(invalid("the timeout is zero".to_owned()));
        }
        let tags: Vec<&str> = self.tags.iter().map(String::as_str).collect();
        if let Some(problem) = self.annotations.problem().or_else(|| annotations::tags_problem(&tags)) {
            return Err(invalid(problem));
        }
        let arguments = ArgumentCheck::compile(&self.input_schema).map_err(invalid)?;
        let given =
            schemars::Schema::try_from(self.input_schema.clone()).map_err(|_| CatalogError::InputNotObject {
                skill: self.name.clone(),
                location: self.location.clone(),
                found: format!("the schema `{}`", self.input_schema),
            })?;
        let input_schema = schema::portable_input(given).map_err(|problem| match problem {
            SchemaProblem::Recursive { type_name } => CatalogError::RecursiveSchema {
                skill: self.name.clone(),
                location: self.location.clone(),
                type_name,
            },
            SchemaProblem::NotObject { found } => CatalogError::InputNotObject {
                skill: self.name.clone(),
                location: self.location.clone(),
                found,
            },
        })?;
        Ok(RuntimeSkill {
            inner: Arc::new(Inner {
                name: self.name,
                description: self.description,
                annotations: self.annotations,
                tags: self.tags,
                redacted: self.redacted,
                derived_input: self.input_schema,
                input_schema,
                output_schema: self.output_schema,
                arguments: Arc::new(arguments),
                timeout: self.timeout,
                location: self.location,
                handler: self.handler,
            }),
        })
    }
}

impl<H> fmt::Debug for RuntimeSkillBuilder<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuntimeSkillBuilder")
            .field("name", &self.name)
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo() -> RuntimeSkillBuilder<Arc<Handler>> {
        RuntimeSkill::builder("echo", "Echoes.").handler(|arguments: Value, _| async move { arguments.to_string() })
    }

    #[test]
    fn is_checked_like_a_macro_skill() {
        let problem = |builder: RuntimeSkillBuilder<Arc<Handler>>| builder.build().unwrap_err().to_string();
        let bad_name = RuntimeSkill::builder("has space", "x").handler(|_, _| async { "" });
        assert!(problem(bad_name).ends_with("the name must match ^[A-Za-z0-9_-]{1,64}$"));
        let blank = RuntimeSkill::builder("blank", " ").handler(|_, _| async { "" });
        assert!(problem(blank).ends_with("the description is empty"));
        assert!(problem(echo().timeout(Duration::ZERO)).ends_with("the timeout is zero"));
        let contradiction = Annotations::new().with_read_only(true).with_destructive(true);
        assert!(problem(echo().annotations(contradiction)).ends_with("a read-only skill cannot be destructive"));
        assert!(problem(echo().tags(["ok", "ok"])).ends_with("the tag \"ok\" is given twice"));
        assert!(
            problem(echo().input_schema(json!({"type": "string"})))
                .ends_with("its input must be an object with named fields, but it is type \"string\""),
        );
        assert!(
            problem(echo().input_schema(json!({"type": "object", "properties": {"a": {"pattern": "("}}})))
                .contains("its input schema cannot be compiled"),
        );
    }

    #[test]
    fn errors_say_where_the_skill_was_built() {
        let line = line!() + 1;
        let error = RuntimeSkill::builder("x y", "x")
            .handler(|_, _| async { "" })
            .build()
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "skill `x y` (run-time skill at {}:{line}): the name must match ^[A-Za-z0-9_-]{{1,64}}$",
                file!()
            )
        );
    }

    #[test]
    fn definitions_are_inlined_for_codex_and_kept_for_validation() {
        let skill = echo()
            .input_schema(json!({
                "type": "object",
                "properties": {"id": {"$ref": "#/$defs/Id"}},
                "$defs": {"Id": {"type": "string", "pattern": "^T-[0-9]+$"}},
            }))
            .build()
            .unwrap();
        assert_eq!(
            skill.parts().input_schema,
            json!({"type": "object", "properties": {"id": {"type": "string", "pattern": "^T-[0-9]+$"}}})
        );
        assert_eq!(
            skill.parts().arguments.check(&json!({"id": "x"})).unwrap_err(),
            "id: \"x\" does not match \"^T-[0-9]+$\""
        );
    }
}
