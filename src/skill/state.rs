//! Shared state for skills: [`State<T>`], the parameter a skill takes it by, and [`States`], the values that
//! whoever runs the skills supplies (`Bridge::builder().state(..)`, `cli::App::state(..)`), keyed by type.
//!
//! `#[skill]` records, per skill, which `State<T>` parameters it takes ([`StateRequirement`]: the parameter's
//! name, `T`'s name and `TypeId`). A [`Catalog`](super::Catalog) is built against a `States` and checks every
//! requirement then, so a state that was not supplied stops start-up with the skill, the parameter and the type
//! named ([`CatalogError::MissingState`](super::CatalogError::MissingState)); a call never finds its state
//! missing.
//!
//! A state may also restrict the values of a string parameter of the skills that take it
//! ([`States::choices`]): the catalog then announces that parameter with an `enum` of the values (e.g. the
//! names of the databases an operator configured), and every call's arguments are checked against it like any
//! other bound. A skill called directly as a Rust function gets no such check, so the shipped ones check again.

// Doc examples that define skills taking state are `standalone_crate`: merged doctests share one skill registry,
// where a state-taking skill would make every other example's `Catalog::from_registry()` fail.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// Shared state a skill takes as a parameter: a cheap clone around an `Arc<T>`, dereferencing to `T`.
///
/// The value is supplied once by whoever runs the skills, keyed by its type, and every call of every skill that
/// takes `State<T>` gets the same value. `State` parameters are not part of the input schema. A skill may take
/// several, each of a different `T`. For mutable state, put the mutability inside (`Mutex`, atomics, a pool).
///
/// ```standalone_crate
/// use std::sync::atomic::{AtomicU64, Ordering};
///
/// use skillbridge::skill::{Catalog, SkillContext, States};
/// use skillbridge::{State, skill};
///
/// /// A counter shared by every call.
/// #[derive(Default)]
/// struct Visits(AtomicU64);
///
/// /// Counts this visit and says how many there were.
/// #[skill]
/// async fn visit(visits: State<Visits>) -> u64 {
///     visits.0.fetch_add(1, Ordering::Relaxed) + 1
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let mut states = States::new();
/// states.insert(Visits::default());
/// let catalog = Catalog::from_registry_with(states).expect("every state is supplied");
/// assert_eq!(catalog.get("visit").unwrap().input_schema()["properties"], serde_json::json!({}));
/// let first = catalog.invoke("visit", serde_json::json!({}), SkillContext::detached("visit")).await;
/// let second = catalog.invoke("visit", serde_json::json!({}), SkillContext::detached("visit")).await;
/// assert_eq!((first.text_content(), second.text_content()), ("1".into(), "2".into()));
///
/// // Without it, the catalog is refused before anything runs.
/// let error = Catalog::from_registry().unwrap_err().to_string();
/// assert!(error.starts_with("skill `visit` needs State<") && error.contains("Visits>, which was not provided"));
/// # }
/// ```
pub struct State<T>(Arc<T>);

impl<T: Send + Sync + 'static> State<T> {
    /// A state holding `value`.
    pub fn new(value: T) -> Self {
        Self(Arc::new(value))
    }
}

impl<T> State<T> {
    /// A state sharing `value` with the other holders of the `Arc`.
    pub fn from_arc(value: Arc<T>) -> Self {
        Self(value)
    }

    /// The shared `Arc`.
    pub fn arc(&self) -> &Arc<T> {
        &self.0
    }
}

impl<T> Clone for State<T> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<T> Deref for State<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> AsRef<T> for State<T> {
    fn as_ref(&self) -> &T {
        &self.0
    }
}

impl<T> From<Arc<T>> for State<T> {
    fn from(value: Arc<T>) -> Self {
        Self(value)
    }
}

impl<T: fmt::Debug> fmt::Debug for State<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("State").field(&&*self.0).finish()
    }
}

/// One `State<T>` parameter of a skill, as `#[skill]` records it.
#[derive(Clone, Copy)]
pub struct StateRequirement {
    parameter: &'static str,
    type_id: fn() -> TypeId,
    type_name: fn() -> &'static str,
}

/// Serialized as `{"parameter": "databases", "type": "my_crate::Databases"}`, as `skills --json --details` and the
/// admin `/skills` route show it.
impl serde::Serialize for StateRequirement {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("parameter", self.parameter)?;
        map.serialize_entry("type", (self.type_name)())?;
        map.end()
    }
}

impl StateRequirement {
    #[doc(hidden)]
    pub const fn of<T: Send + Sync + 'static>(parameter: &'static str) -> Self {
        Self {
            parameter,
            type_id: TypeId::of::<T>,
            type_name: std::any::type_name::<T>,
        }
    }

    /// The parameter's name in the skill's signature.
    pub fn parameter(&self) -> &'static str {
        self.parameter
    }

    /// `T`'s name, as [`std::any::type_name`] gives it.
    pub fn type_name(&self) -> &'static str {
        (self.type_name)()
    }

    /// `T`'s `TypeId`, the key of the state in [`States`].
    pub fn type_id(&self) -> TypeId {
        (self.type_id)()
    }
}

impl fmt::Debug for StateRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateRequirement")
            .field("parameter", &self.parameter)
            .field("type_name", &self.type_name())
            .finish()
    }
}

/// The states supplied to the skills, one per type (a type map keyed by `TypeId`). Cheap to clone.
///
/// ```
/// use skillbridge::State;
/// use skillbridge::skill::States;
///
/// struct Greeting(&'static str);
///
/// let mut states = States::new();
/// states.insert(Greeting("hello"));
/// let greeting: State<Greeting> = states.get().expect("supplied");
/// assert_eq!(greeting.0, "hello");
/// assert!(states.get::<String>().is_none());
/// ```
#[derive(Clone, Default)]
pub struct States {
    values: HashMap<TypeId, Entry>,
    choices: HashMap<TypeId, Choices>,
}

#[derive(Clone)]
struct Entry {
    /// The `Arc<T>` of a `State<T>` (so that finding it needs no bound on `T` but `'static`).
    value: Arc<dyn Any + Send + Sync>,
    type_name: &'static str,
}

/// Computes the allowed values from a state's stored value.
type ValuesFn = dyn Fn(&(dyn Any + Send + Sync)) -> Vec<String> + Send + Sync;

/// A parameter restricted to values computed from the state.
#[derive(Clone)]
struct Choices {
    parameter: &'static str,
    values: Arc<ValuesFn>,
}

impl States {
    /// No states.
    pub fn new() -> Self {
        Self::default()
    }

    /// Supplies `value` to every skill taking `State<T>`, replacing an earlier `T`.
    pub fn insert<T: Send + Sync + 'static>(&mut self, value: T) -> &mut Self {
        self.insert_state(State::new(value))
    }

    /// Supplies a state whose `Arc` the caller keeps too (to look at it, or change what is inside).
    pub fn insert_state<T: Send + Sync + 'static>(&mut self, state: State<T>) -> &mut Self {
        let value: Arc<dyn Any + Send + Sync> = Arc::new(state.0);
        self.values.insert(
            TypeId::of::<T>(),
            Entry {
                value,
                type_name: std::any::type_name::<T>(),
            },
        );
        self
    }

    /// Restricts the string parameter `parameter` of every skill that takes `State<T>` to `values(&state)`: the
    /// catalog announces it with `"enum": [..]` (when there is at least one value). Before or after supplying
    /// `T`; without a `T` it does nothing. The skill must still check what it receives.
    pub fn choices<T, F>(&mut self, parameter: &'static str, values: F) -> &mut Self
    where
        T: Send + Sync + 'static,
        F: Fn(&T) -> Vec<String> + Send + Sync + 'static,
    {
        let values: Arc<ValuesFn> = Arc::new(move |any| {
            any.downcast_ref::<Arc<T>>()
                .map(|state| values(state))
                .unwrap_or_default()
        });
        self.choices.insert(TypeId::of::<T>(), Choices { parameter, values });
        self
    }

    /// The state of type `T`, when supplied.
    pub fn get<T: 'static>(&self) -> Option<State<T>> {
        let entry = self.values.get(&TypeId::of::<T>())?;
        entry.value.downcast_ref::<Arc<T>>().cloned().map(State)
    }

    /// Whether a state with this `TypeId` is supplied.
    pub fn contains(&self, type_id: TypeId) -> bool {
        self.values.contains_key(&type_id)
    }

    /// The number of states.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// `true` when no state is supplied.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Adds every state of `other`, replacing those of the same types.
    pub fn extend(&mut self, other: States) -> &mut Self {
        self.values.extend(other.values);
        self.choices.extend(other.choices);
        self
    }

    /// The parameter restricted by the state `type_id` and its allowed values, when [`choices`](Self::choices)
    /// was called for it.
    pub(crate) fn choices_of(&self, type_id: TypeId) -> Option<(&'static str, Vec<String>)> {
        let entry = self.values.get(&type_id)?;
        let choices = self.choices.get(&type_id)?;
        Some((choices.parameter, (choices.values)(&*entry.value)))
    }
}

impl fmt::Debug for States {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&str> = self.values.values().map(|entry| entry.type_name).collect();
        names.sort_unstable();
        f.debug_set().entries(names).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Pool(u32);

    #[test]
    fn states_are_keyed_by_type_and_shared() {
        let mut states = States::new();
        let pool = State::new(Pool(1));
        states.insert_state(pool.clone()).insert(String::from("text"));
        assert_eq!(states.len(), 2);
        let got: State<Pool> = states.get().unwrap();
        assert!(Arc::ptr_eq(got.arc(), pool.arc()), "the same value, not a copy");
        assert_eq!(&*states.get::<String>().unwrap(), "text");
        assert!(states.get::<u8>().is_none());
        states.insert(Pool(2));
        assert_eq!(
            states.get::<Pool>().unwrap().arc().0,
            2,
            "a later value replaces the earlier one"
        );
    }

    #[test]
    fn choices_are_computed_from_the_state() {
        let mut states = States::new();
        states.choices::<Pool, _>("ignored", |_: &Pool| vec!["never".into()]);
        assert!(
            states.choices_of(TypeId::of::<Pool>()).is_none(),
            "no state, no choices"
        );
        states
            .insert(Pool(3))
            .choices::<Pool, _>("size", |pool| vec![pool.0.to_string()]);
        assert_eq!(
            states.choices_of(TypeId::of::<Pool>()),
            Some(("size", vec!["3".to_owned()]))
        );
    }

    #[test]
    fn requirements_name_the_type() {
        let requirement = StateRequirement::of::<Pool>("pool");
        assert_eq!(requirement.parameter(), "pool");
        assert_eq!(requirement.type_name(), "skillbridge::skill::state::tests::Pool");
        assert_eq!(requirement.type_id(), TypeId::of::<Pool>());
    }
}
