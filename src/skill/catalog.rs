//! [`Catalog`]: the skills linked into the binary, their portable schemas, and the `dynamicTools` payload.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::__private::{self as private, ArgumentsError, SkillDescriptor, SkillRun};
use super::annotations::{self, Annotations};
use super::invoke::{self, Invocation};
use super::runtime::RuntimeSkill;
use super::schema::{self, SchemaProblem};
use super::validate::ArgumentCheck;
use super::{SkillContext, StateRequirement, States, ToolResult};

/// What a redacted argument is recorded as.
pub const REDACTED: &str = "<redacted>";

/// The longest tool name Codex accepts.
pub(crate) const MAX_NAME_LEN: usize = 64;

/// The skills of this binary, sorted by name, ready to be announced to Codex and invoked, with the
/// [`States`] they take.
///
/// Every skill of a catalog can run: the catalog is refused when a skill takes a [`State<T>`](super::State)
/// that its `States` lack. Cheap to clone (one `Arc`), `Send + Sync`.
///
/// ```
/// use skillbridge::skill;
/// use skillbridge::skill::{Catalog, SkillContext, ToolFlavor};
///
/// /// Adds two numbers.
/// #[skill]
/// fn add(a: i64, b: i64) -> i64 {
///     a + b
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let catalog = Catalog::from_registry().expect("the registered skills are valid");
/// let add = catalog.get("add").unwrap();
/// assert_eq!(add.description(), "Adds two numbers.");
/// assert_eq!(add.input_schema()["required"], serde_json::json!(["a", "b"]));
///
/// let tools = catalog.dynamic_tools(ToolFlavor::AppServer);
/// assert_eq!(tools[0]["type"], "function");
///
/// let result = catalog.invoke("add", serde_json::json!({"a": 2, "b": 3}), SkillContext::detached("add")).await;
/// assert_eq!(result.text_content(), "5");
/// # }
/// ```
#[derive(Clone)]
pub struct Catalog {
    inner: Arc<Inner>,
}

struct Inner {
    /// Sorted by name.
    skills: Vec<SkillInfo>,
    by_name: HashMap<String, usize>,
    states: States,
}

/// Which upstream a `dynamicTools` payload is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum ToolFlavor {
    /// codex-manager (`POST /api/sessions`): `{name, description, inputSchema}`.
    CodexManager,
    /// `codex app-server` (`thread/start`): also `"type": "function"`.
    AppServer,
}

/// Why the registered skills do not form a valid catalog. Reported at startup, before any tool is announced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// Two skills share a name; tool names must be unique.
    #[error(
        "two skills are named `{name}`: {first} and {second}; tool names must be unique (a #[skill] is renamed with \
         #[skill(name = \"..\")])"
    )]
    DuplicateName {
        /// The shared name.
        name: String,
        /// Where the first is defined (`module at file:line`).
        first: SkillLocation,
        /// Where the second is defined.
        second: SkillLocation,
    },
    /// An input type refers to itself, so its schema cannot be inlined.
    #[error(
        "skill `{skill}` ({location}): its input type `{type_name}` is recursive; Codex needs inlined schemas, so a \
         recursive type cannot be a skill input"
    )]
    RecursiveSchema {
        /// The skill.
        skill: String,
        /// Where it is defined.
        location: SkillLocation,
        /// The recursive type as schemars names it.
        type_name: String,
    },
    /// The input schema's root is not an object (e.g. `#[skill(input)]` on a string or an enum).
    #[error("skill `{skill}` ({location}): its input must be an object with named fields, but it is {found}")]
    InputNotObject {
        /// The skill.
        skill: String,
        /// Where it is defined.
        location: SkillLocation,
        /// What the root schema is instead.
        found: String,
    },
    /// A skill takes a `State<T>` that was not supplied.
    #[error(
        "skill `{skill}` needs State<{type_name}>, which was not provided (parameter `{parameter}`, {location}); \
         supply it with Bridge::builder().state(..) or skillbridge::cli::App::new().state(..)"
    )]
    MissingState {
        /// The skill.
        skill: String,
        /// Where it is defined.
        location: SkillLocation,
        /// The `State<T>` parameter.
        parameter: String,
        /// `T`, as `std::any::type_name` names it.
        type_name: String,
    },
    /// A name or description Codex would reject (only reachable without the `#[skill]` checks).
    #[error("skill `{skill}` ({location}): {problem}")]
    InvalidSkill {
        /// The skill.
        skill: String,
        /// Where it is defined.
        location: SkillLocation,
        /// What is wrong (also: contradictory annotations, a malformed or repeated tag).
        problem: String,
    },
}

/// Where a skill is defined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkillLocation {
    /// The module path (`my_skills::text`); `run-time skill` for a [`RuntimeSkill`], whose file and line are where
    /// [`RuntimeSkill::builder`] was called.
    pub module_path: &'static str,
    /// The source file.
    pub file: &'static str,
    /// The line of the `#[skill]` attribute.
    pub line: u32,
}

impl fmt::Display for SkillLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}:{}", self.module_path, self.file, self.line)
    }
}

/// One skill of a [`Catalog`], `#[skill]` or [`RuntimeSkill`]: its name, description, schemas, timeout,
/// annotations and tags.
pub struct SkillInfo {
    name: String,
    description: String,
    annotations: Annotations,
    tags: Vec<String>,
    redacted: Vec<String>,
    input_schema: Value,
    output_schema: Option<Value>,
    /// The input schema as derived, before the rewrite for Codex: what arguments are checked against.
    derived_input: Value,
    arguments: Arc<ArgumentCheck>,
    timeout: Duration,
    location: SkillLocation,
    definition: Definition,
}

/// Where a skill comes from; a catalog is rebuilt from these (with other states, more skills).
#[derive(Clone)]
enum Definition {
    Macro(&'static SkillDescriptor),
    Runtime(RuntimeSkill),
}

impl SkillInfo {
    fn new(definition: Definition) -> Result<Self, CatalogError> {
        match definition {
            Definition::Macro(descriptor) => Self::from_descriptor(descriptor),
            Definition::Runtime(skill) => Ok(Self::from_runtime(skill)),
        }
    }

    /// A run-time skill was checked and compiled when it was built.
    fn from_runtime(skill: RuntimeSkill) -> Self {
        let parts = skill.parts();
        Self {
            name: parts.name.clone(),
            description: parts.description.clone(),
            annotations: parts.annotations.clone(),
            tags: parts.tags.clone(),
            redacted: parts.redacted.clone(),
            input_schema: parts.input_schema.clone(),
            output_schema: parts.output_schema.clone(),
            derived_input: parts.derived_input.clone(),
            arguments: Arc::clone(&parts.arguments),
            timeout: parts.timeout,
            location: parts.location.clone(),
            definition: Definition::Runtime(skill),
        }
    }

    fn from_descriptor(descriptor: &'static SkillDescriptor) -> Result<Self, CatalogError> {
        let location = SkillLocation {
            module_path: descriptor.module_path,
            file: descriptor.file,
            line: descriptor.line,
        };
        let invalid = |problem: String| CatalogError::InvalidSkill {
            skill: descriptor.name.to_owned(),
            location: location.clone(),
            problem,
        };
        if !is_valid_name(descriptor.name) {
            return Err(invalid(format!(
                "the name must match ^[A-Za-z0-9_-]{{1,{MAX_NAME_LEN}}}$"
            )));
        }
        if descriptor.description.trim().is_empty() {
            return Err(invalid("the description is empty".to_owned()));
        }
        if descriptor.timeout_ms == 0 {
            return Err(invalid("the timeout is zero".to_owned()));
        }
        let annotations = Annotations::from_raw(&descriptor.annotations);
        if let Some(problem) = annotations
            .problem()
            .or_else(|| annotations::tags_problem(descriptor.tags))
        {
            return Err(invalid(problem));
        }
        let raw_input = (descriptor.input_schema)(&mut schema::input_generator());
        // Arguments are checked against the schema as derived: the portable rewrite only reshapes it for Codex.
        let derived_input = raw_input.as_value().clone();
        let arguments = ArgumentCheck::compile(&derived_input).map_err(invalid)?;
        let input_schema = schema::portable_input(raw_input).map_err(|problem| match problem {
            SchemaProblem::Recursive { type_name } => CatalogError::RecursiveSchema {
                skill: descriptor.name.to_owned(),
                location: location.clone(),
                type_name,
            },
            SchemaProblem::NotObject { found } => CatalogError::InputNotObject {
                skill: descriptor.name.to_owned(),
                location: location.clone(),
                found,
            },
        })?;
        let output_schema = (descriptor.output_schema)(&mut schema::output_generator()).map(schema::portable_output);
        Ok(Self {
            name: descriptor.name.to_owned(),
            description: descriptor.description.to_owned(),
            annotations,
            tags: descriptor.tags.iter().map(|&tag| tag.to_owned()).collect(),
            redacted: descriptor.redacted.iter().map(|&name| name.to_owned()).collect(),
            input_schema,
            output_schema,
            derived_input,
            arguments: Arc::new(arguments),
            timeout: Duration::from_millis(descriptor.timeout_ms),
            location,
            definition: Definition::Macro(descriptor),
        })
    }

    /// The tool name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The tool description the model reads.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The skill's MCP tool annotations: title and behaviour hints, each `None` when the skill does not say.
    /// Not part of the `dynamicTools` payload.
    pub fn annotations(&self) -> &Annotations {
        &self.annotations
    }

    /// The skill's tags (`#[skill(tags = [..])]`), in the order written; empty when it has none. Not part of the
    /// `dynamicTools` payload.
    pub fn tags(&self) -> &[String] {
        &self.tags
    }

    /// The parameters whose values recorded calls leave out (`#[skill(redact)]`, [`RuntimeSkillBuilder::redact`](super::RuntimeSkillBuilder::redact)).
    pub fn redacted_parameters(&self) -> &[String] {
        &self.redacted
    }

    /// `arguments` as a recorded call keeps them: each redacted parameter's value replaced by `"<redacted>"`.
    pub fn redact(&self, arguments: &Value) -> Value {
        let mut kept = arguments.clone();
        if let Value::Object(object) = &mut kept {
            for name in &self.redacted {
                if let Some(value) = object.get_mut(name) {
                    *value = Value::from(REDACTED);
                }
            }
        }
        kept
    }

    /// `true` when the skill has the tag `tag`.
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|own| own == tag)
    }

    /// `true` for a skill built with [`RuntimeSkill`], `false` for a `#[skill]`.
    pub fn is_runtime(&self) -> bool {
        matches!(self.definition, Definition::Runtime(_))
    }

    /// `Ok` when `arguments` satisfy the skill's whole input schema; otherwise each violation as `path: message`
    /// (see the validation module).
    pub(crate) fn check_arguments(&self, arguments: &Value) -> Result<(), String> {
        self.arguments.check(arguments)
    }

    /// The portable input schema (always an object).
    pub fn input_schema(&self) -> &Value {
        &self.input_schema
    }

    /// The schema of the JSON text the skill returns, when it returns a `Serialize + JsonSchema` value.
    /// Kept for documentation and tooling; Codex has no use for it.
    pub fn output_schema(&self) -> Option<&Value> {
        self.output_schema.as_ref()
    }

    /// How long one call may run before it fails with a timeout and its cancellation token fires.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Where the skill is defined.
    pub fn location(&self) -> &SkillLocation {
        &self.location
    }

    /// Checks that `states` has every state the skill takes, and announces the parameters they restrict.
    fn take_states(&mut self, states: &States) -> Result<(), CatalogError> {
        let needs = self.state_parameters();
        if let Some(missing) = needs.iter().find(|need| !states.contains(need.type_id())) {
            return Err(CatalogError::MissingState {
                skill: self.name.to_owned(),
                location: self.location.clone(),
                parameter: missing.parameter().to_owned(),
                type_name: missing.type_name().to_owned(),
            });
        }
        if restrict_choices(&mut self.input_schema, needs, states) {
            // The choices are checked like every other bound.
            restrict_choices(&mut self.derived_input, needs, states);
            let arguments =
                ArgumentCheck::compile(&self.derived_input).map_err(|problem| CatalogError::InvalidSkill {
                    skill: self.name.to_owned(),
                    location: self.location.clone(),
                    problem,
                })?;
            self.arguments = Arc::new(arguments);
        }
        Ok(())
    }

    /// The `State<T>` parameters the skill takes (never part of its schemas or of the `dynamicTools` payload).
    pub fn state_parameters(&self) -> &'static [StateRequirement] {
        match &self.definition {
            Definition::Macro(descriptor) => descriptor.states,
            // A run-time skill's handler captures what it needs.
            Definition::Runtime(_) => &[],
        }
    }

    /// The top-level parameter names, in schema order, each with whether it is required.
    pub fn parameters(&self) -> Vec<(&str, bool)> {
        let required: Vec<&str> = self.input_schema["required"]
            .as_array()
            .map(|names| names.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        self.input_schema["properties"]
            .as_object()
            .map(|properties| {
                properties
                    .keys()
                    .map(|name| (name.as_str(), required.contains(&name.as_str())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The skill as the listings show it (admin `/skills`, `skills --json --details`): name, description,
    /// annotations (MCP's `ToolAnnotations`, hints not given left out), tags, `State<T>` parameters, schemas and
    /// timeout. Never sent to Codex.
    pub fn listing(&self) -> Value {
        json!({
            "name": self.name(),
            "description": self.description(),
            "annotations": self.annotations(),
            "tags": self.tags(),
            "states": self.state_parameters(),
            "redacted": self.redacted_parameters(),
            "inputSchema": self.input_schema(),
            "outputSchema": self.output_schema(),
            "timeoutMs": self.timeout().as_millis() as u64,
        })
    }

    /// The skill's entry of a `dynamicTools` payload.
    pub fn dynamic_tool(&self, flavor: ToolFlavor) -> Value {
        let mut tool = json!({
            "name": self.name,
            "description": self.description,
            "inputSchema": self.input_schema,
        });
        if flavor == ToolFlavor::AppServer {
            tool["type"] = json!("function");
        }
        tool
    }

    /// Reads the arguments into the skill's parameters (with its states) and prepares the run.
    pub(crate) fn prepare(&self, arguments: Value, ctx: SkillContext, states: &States) -> Result<SkillRun, String> {
        match &self.definition {
            Definition::Macro(descriptor) => {
                (descriptor.prepare)(arguments, ctx, states).map_err(|ArgumentsError(message)| message)
            }
            Definition::Runtime(skill) => skill.start(arguments, ctx).map(SkillRun::Async),
        }
    }
}

impl fmt::Debug for SkillInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SkillInfo")
            .field("name", &self.name)
            .field("description", &self.description)
            .field("annotations", &self.annotations)
            .field("tags", &self.tags())
            .field("timeout", &self.timeout)
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

/// Announces a parameter restricted by a state ([`States::choices`]) with `"enum"`: the values the state allows.
/// A skill without that parameter is left as it is, and so is one when the state allows nothing (an empty `enum`
/// would make the tool uncallable; the skill refuses every value then, and says why).
/// Returns whether it restricted any.
fn restrict_choices(input_schema: &mut Value, needs: &[StateRequirement], states: &States) -> bool {
    let mut restricted = false;
    for need in needs {
        let Some((parameter, values)) = states.choices_of(need.type_id()) else {
            continue;
        };
        if values.is_empty() {
            continue;
        }
        if let Some(property) = input_schema["properties"]
            .get_mut(parameter)
            .and_then(Value::as_object_mut)
        {
            property.insert("enum".to_owned(), json!(values));
            restricted = true;
        }
    }
    restricted
}

/// `^[A-Za-z0-9_-]{1,64}$`, the tool names Codex and the model APIs accept.
pub fn is_valid_name(name: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-')
}

impl Catalog {
    /// Every `#[skill]` linked into the binary, sorted by name, without states.
    ///
    /// Fails when two skills share a name (the error names both, with their source locations), when an
    /// input type is recursive, when an input is not an object, or when a skill takes a
    /// [`State<T>`](super::State) (use [`from_registry_with`](Self::from_registry_with) then).
    pub fn from_registry() -> Result<Catalog, CatalogError> {
        Self::from_registry_with(States::new())
    }

    /// Every `#[skill]` linked into the binary, with `states` for the skills that take `State<T>` parameters.
    ///
    /// Fails as [`from_registry`](Self::from_registry) does, and with [`CatalogError::MissingState`] when a
    /// skill takes a state that `states` lacks. Parameters restricted by a state ([`States::choices`]) are
    /// announced with the state's values.
    pub fn from_registry_with(states: States) -> Result<Catalog, CatalogError> {
        Self::builder().states(states).build()
    }

    /// Builds a catalog of the registered `#[skill]`s (unless [`without_registry`](CatalogBuilder::without_registry)),
    /// the [`RuntimeSkill`]s given, and the states they take. See [`RuntimeSkill`] for an example.
    pub fn builder() -> CatalogBuilder {
        CatalogBuilder {
            registry: true,
            skills: Vec::new(),
            states: States::new(),
        }
    }

    /// The same skills with `states` added to this catalog's (replacing those of the same types), checked again.
    pub fn with_states(&self, states: States) -> Result<Catalog, CatalogError> {
        self.extended(states, Vec::new())
    }

    /// The same skills and `skills`, with `states` added to this catalog's, checked again.
    pub(crate) fn extended(&self, states: States, skills: Vec<RuntimeSkill>) -> Result<Catalog, CatalogError> {
        let mut merged = self.inner.states.clone();
        merged.extend(states);
        let definitions = self
            .iter()
            .map(|skill| skill.definition.clone())
            .chain(skills.into_iter().map(Definition::Runtime));
        Self::from_definitions(definitions, merged)
    }

    /// The states the skills take.
    pub fn states(&self) -> &States {
        &self.inner.states
    }

    fn from_definitions(
        definitions: impl IntoIterator<Item = Definition>,
        states: States,
    ) -> Result<Catalog, CatalogError> {
        let mut skills = definitions
            .into_iter()
            .map(SkillInfo::new)
            .collect::<Result<Vec<_>, _>>()?;
        // Location order makes the duplicate report independent of link order.
        skills.sort_by(|a, b| {
            (&a.name, a.location.file, a.location.line, a.location.module_path).cmp(&(
                &b.name,
                b.location.file,
                b.location.line,
                b.location.module_path,
            ))
        });
        if let Some(pair) = skills.windows(2).find(|pair| pair[0].name == pair[1].name) {
            return Err(CatalogError::DuplicateName {
                name: pair[0].name.to_owned(),
                first: pair[0].location.clone(),
                second: pair[1].location.clone(),
            });
        }
        // In name order, so that the first missing state reported does not depend on link order.
        for skill in &mut skills {
            skill.take_states(&states)?;
        }
        let by_name = skills
            .iter()
            .enumerate()
            .map(|(index, skill)| (skill.name.clone(), index))
            .collect();
        Ok(Catalog {
            inner: Arc::new(Inner {
                skills,
                by_name,
                states,
            }),
        })
    }

    /// The number of skills.
    pub fn len(&self) -> usize {
        self.inner.skills.len()
    }

    /// `true` when the binary has no skills.
    pub fn is_empty(&self) -> bool {
        self.inner.skills.is_empty()
    }

    /// The skills, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = &SkillInfo> {
        self.inner.skills.iter()
    }

    /// The skill called `name`.
    pub fn get(&self, name: &str) -> Option<&SkillInfo> {
        self.inner.by_name.get(name).map(|&index| &self.inner.skills[index])
    }

    /// The skill names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.iter().map(SkillInfo::name)
    }

    /// The `dynamicTools` payload announcing every skill, in name order.
    pub fn dynamic_tools(&self, flavor: ToolFlavor) -> Vec<Value> {
        self.iter().map(|skill| skill.dynamic_tool(flavor)).collect()
    }

    /// The `dynamicTools` payload of the skills `offered` names (see [`Toolset::select`](super::Toolset::select)).
    pub fn dynamic_tools_of(&self, offered: &std::collections::BTreeSet<String>, flavor: ToolFlavor) -> Vec<Value> {
        self.iter()
            .filter(|skill| offered.contains(skill.name()))
            .map(|skill| skill.dynamic_tool(flavor))
            .collect()
    }

    /// Runs the skill `name` with `arguments` and answers the tool result the upstream receives.
    ///
    /// Never panics and never hangs: bad arguments, an unknown tool, a panicking skill, a skill past its
    /// timeout and a cancelled call (the context's token fired) all answer `success: false` with a message
    /// for the model. Must run inside a Tokio runtime (the skill runs on a task of its own).
    pub async fn invoke(&self, name: &str, arguments: Value, ctx: SkillContext) -> ToolResult {
        self.invoke_detailed(name, arguments, ctx).await.result
    }

    /// Like [`invoke`](Self::invoke), and also says how the call ended (for logs and metrics).
    pub async fn invoke_detailed(&self, name: &str, arguments: Value, ctx: SkillContext) -> Invocation {
        invoke::invoke(self, name, arguments, ctx).await
    }
}

/// Builds a [`Catalog`]: the registered `#[skill]`s, [`RuntimeSkill`]s, and the [`States`] the skills take.
#[must_use]
#[derive(Debug)]
pub struct CatalogBuilder {
    registry: bool,
    skills: Vec<RuntimeSkill>,
    states: States,
}

impl CatalogBuilder {
    /// Leaves out the `#[skill]`s linked into the binary: the catalog has only the run-time skills given.
    pub fn without_registry(mut self) -> Self {
        self.registry = false;
        self
    }

    /// Adds a skill built at run time.
    pub fn skill(mut self, skill: RuntimeSkill) -> Self {
        self.skills.push(skill);
        self
    }

    /// Adds skills built at run time.
    pub fn skills(mut self, skills: impl IntoIterator<Item = RuntimeSkill>) -> Self {
        self.skills.extend(skills);
        self
    }

    /// Supplies `value` to every skill that takes `State<T>` (replacing an earlier `T`).
    pub fn state<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.states.insert(value);
        self
    }

    /// Supplies every state of `states`.
    pub fn states(mut self, states: States) -> Self {
        self.states.extend(states);
        self
    }

    /// Checks the skills and builds the catalog. Fails as [`Catalog::from_registry_with`] does; a run-time skill
    /// whose name another skill has is a [`CatalogError::DuplicateName`] naming both.
    pub fn build(self) -> Result<Catalog, CatalogError> {
        let registered = self
            .registry
            .then(private::registered)
            .into_iter()
            .flatten()
            .map(Definition::Macro);
        let definitions = registered.chain(self.skills.into_iter().map(Definition::Runtime));
        Catalog::from_definitions(definitions, self.states)
    }
}

impl fmt::Debug for Catalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl<'a> IntoIterator for &'a Catalog {
    type Item = &'a SkillInfo;
    type IntoIter = std::slice::Iter<'a, SkillInfo>;

    fn into_iter(self) -> Self::IntoIter {
        self.inner.skills.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemars::{Schema, SchemaGenerator};

    fn object_schema(generator: &mut SchemaGenerator) -> Schema {
        let _ = generator;
        schemars::json_schema!({"type": "object", "properties": {}})
    }

    fn string_schema(_: &mut SchemaGenerator) -> Schema {
        schemars::json_schema!({"type": "string"})
    }

    fn no_output(_: &mut SchemaGenerator) -> Option<Schema> {
        None
    }

    fn prepare(_: Value, _: SkillContext, _: &States) -> Result<private::SkillRun, private::ArgumentsError> {
        Ok(private::SkillRun::Blocking(Box::new(|| ToolResult::text("ok"))))
    }

    const fn descriptor(name: &'static str, line: u32) -> SkillDescriptor {
        SkillDescriptor {
            name,
            description: "A test skill.",
            timeout_ms: 1000,
            annotations: private::RawAnnotations::NONE,
            tags: &[],
            module_path: "catalog::tests",
            file: "src/skill/catalog.rs",
            line,
            input_schema: object_schema,
            output_schema: no_output,
            states: &[],
            redacted: &[],
            prepare,
        }
    }

    fn macros<const N: usize>(descriptors: [&'static SkillDescriptor; N]) -> impl Iterator<Item = Definition> {
        descriptors.into_iter().map(Definition::Macro)
    }

    static ALPHA: SkillDescriptor = descriptor("alpha", 1);
    static BETA: SkillDescriptor = descriptor("beta", 2);
    static BETA_AGAIN: SkillDescriptor = descriptor("beta", 3);
    static BAD_NAME: SkillDescriptor = descriptor("has space", 4);
    static STRING_INPUT: SkillDescriptor = SkillDescriptor {
        input_schema: string_schema,
        ..descriptor("stringly", 5)
    };

    static READ_ONLY_DESTRUCTIVE: SkillDescriptor = SkillDescriptor {
        annotations: private::RawAnnotations {
            read_only: Some(true),
            destructive: Some(true),
            ..private::RawAnnotations::NONE
        },
        ..descriptor("contradiction", 6)
    };
    static BAD_TAG: SkillDescriptor = SkillDescriptor {
        tags: &["ok", "Not-Ok"],
        ..descriptor("bad_tag", 7)
    };

    #[test]
    fn sorts_by_name() {
        let catalog = Catalog::from_definitions(macros([&BETA, &ALPHA]), States::new()).unwrap();
        assert_eq!(catalog.names().collect::<Vec<_>>(), ["alpha", "beta"]);
    }

    #[test]
    fn duplicate_names_report_both_locations() {
        let error = Catalog::from_definitions(macros([&BETA_AGAIN, &ALPHA, &BETA]), States::new()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "two skills are named `beta`: catalog::tests at src/skill/catalog.rs:2 and catalog::tests at \
             src/skill/catalog.rs:3; tool names must be unique (a #[skill] is renamed with #[skill(name = \"..\")])"
        );
    }

    #[test]
    fn rejects_names_codex_would_refuse() {
        let error = Catalog::from_definitions(macros([&BAD_NAME]), States::new()).unwrap_err();
        assert!(matches!(error, CatalogError::InvalidSkill { .. }), "{error}");
    }

    #[test]
    fn rejects_inputs_that_are_not_objects() {
        let error = Catalog::from_definitions(macros([&STRING_INPUT]), States::new()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "skill `stringly` (catalog::tests at src/skill/catalog.rs:5): its input must be an object with named \
             fields, but it is type \"string\""
        );
    }

    fn database_schema(_: &mut SchemaGenerator) -> Schema {
        schemars::json_schema!({"type": "object", "properties": {"database": {"type": "string"}}})
    }

    struct Databases(Vec<String>);

    static NEEDS_DATABASES: SkillDescriptor = SkillDescriptor {
        input_schema: database_schema,
        states: &[StateRequirement::of::<Databases>("databases")],
        ..descriptor("query", 6)
    };

    #[test]
    fn a_state_that_was_not_supplied_is_refused_naming_skill_parameter_and_type() {
        let error = Catalog::from_definitions(macros([&ALPHA, &NEEDS_DATABASES]), States::new()).unwrap_err();
        assert_eq!(
            error,
            CatalogError::MissingState {
                skill: "query".into(),
                location: NEEDS_DATABASES_LOCATION,
                parameter: "databases".into(),
                type_name: "skillbridge::skill::catalog::tests::Databases".into(),
            }
        );
        assert!(
            error.to_string().starts_with(
                "skill `query` needs State<skillbridge::skill::catalog::tests::Databases>, which was not provided \
                 (parameter `databases`, catalog::tests at src/skill/catalog.rs:6)"
            ),
            "{error}"
        );
    }

    const NEEDS_DATABASES_LOCATION: SkillLocation = SkillLocation {
        module_path: "catalog::tests",
        file: "src/skill/catalog.rs",
        line: 6,
    };

    #[test]
    fn a_state_restricts_its_parameter_to_its_choices() {
        let mut states = States::new();
        states
            .insert(Databases(vec!["main".into(), "archive".into()]))
            .choices::<Databases, _>("database", |databases| databases.0.clone());
        let catalog = Catalog::from_definitions(macros([&ALPHA, &NEEDS_DATABASES]), states).unwrap();
        let query = catalog.get("query").unwrap();
        assert_eq!(
            query.input_schema()["properties"]["database"],
            json!({"type": "string", "enum": ["main", "archive"]})
        );
        assert_eq!(query.state_parameters()[0].parameter(), "databases");
        assert_eq!(
            catalog.get("alpha").unwrap().input_schema(),
            &json!({"type": "object", "properties": {}})
        );

        let mut none = States::new();
        none.insert(Databases(Vec::new()))
            .choices::<Databases, _>("database", |databases| databases.0.clone());
        let catalog = catalog.with_states(none).unwrap();
        assert_eq!(
            catalog.get("query").unwrap().input_schema()["properties"]["database"],
            json!({"type": "string"}),
            "no values: no enum, the skill says why it refuses"
        );
    }

    #[test]
    fn rejects_annotations_and_tags_the_macro_would_refuse() {
        let error = Catalog::from_definitions(macros([&READ_ONLY_DESTRUCTIVE]), States::new()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "skill `contradiction` (catalog::tests at src/skill/catalog.rs:6): a read-only skill cannot be destructive"
        );
        let error = Catalog::from_definitions(macros([&BAD_TAG]), States::new()).unwrap_err();
        assert!(
            error
                .to_string()
                .ends_with("invalid tag \"Not-Ok\": a tag must match ^[a-z0-9][a-z0-9_-]{0,31}$"),
            "{error}"
        );
        let catalog = Catalog::from_definitions(macros([&ALPHA]), States::new()).unwrap();
        let alpha = catalog.get("alpha").unwrap();
        assert!(alpha.annotations().is_empty() && alpha.tags().is_empty());
    }

    #[test]
    fn name_rule_matches_codex() {
        assert!(is_valid_name("word_count-2"));
        assert!(is_valid_name(&"a".repeat(64)));
        assert!(!is_valid_name(&"a".repeat(65)));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("dotted.name"));
    }

    #[test]
    fn catalog_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<Catalog>();
    }
}
