//! The `#[skill]` attribute of skillbridge. Use it through `skillbridge::skill`; this crate has no other API.
//!
//! The expansion runs in three steps: `parse` reads the function and the attribute into a raw model,
//! `validate` checks every rule and collects every error (each with its span), and `expand` writes the
//! registration code against `::skillbridge::skill::__private`.

mod expand;
mod parse;
mod validate;

use proc_macro::TokenStream;

/// Turns a free function into a Codex dynamic tool and registers it with the binary's skill catalog.
///
/// ```
/// use skillbridge::skill;
/// use skillbridge::skill::SkillError;
///
/// /// Counts the words in a text.
/// ///
/// /// Words are separated by whitespace. (Only this first paragraph becomes the tool description.)
/// #[skill]
/// fn word_count(
///     /// The text to count.
///     text: String,
///     /// Count each distinct word once.
///     unique: Option<bool>,
/// ) -> usize {
///     let words = text.split_whitespace();
///     if unique.unwrap_or(false) {
///         words.collect::<std::collections::HashSet<_>>().len()
///     } else {
///         words.count()
///     }
/// }
///
/// #[skill(name = "ticket-status", description = "The status of a support ticket.", timeout = "5s")]
/// async fn status(ticket_id: String) -> Result<String, SkillError> {
///     match ticket_id.as_str() {
///         "T-1" => Ok("open".into()),
///         other => Err(format!("no ticket {other}").into()),
///     }
/// }
///
/// // The functions stay ordinary functions:
/// assert_eq!(word_count("a b a".into(), Some(true)), 2);
///
/// let catalog = skillbridge::skill::Catalog::from_registry().unwrap();
/// let tool = catalog.get("word_count").unwrap();
/// assert_eq!(tool.description(), "Counts the words in a text.");
/// assert_eq!(tool.input_schema()["required"], serde_json::json!(["text"]));
/// assert_eq!(tool.input_schema()["properties"]["text"]["description"], "The text to count.");
/// assert_eq!(catalog.get("ticket-status").unwrap().timeout().as_secs(), 5);
/// ```
///
/// # The function
///
/// - A free function, `fn` or `async fn`, without generics, `self`, `const`, `unsafe` or `extern`.
///   `async fn` skills are polled in the task that serves the call (their future must be `Send`); plain `fn`
///   skills run on Tokio's blocking pool, so a skill that blocks (file or database I/O, heavy computation)
///   never stalls the runtime.
/// - A skill that does not block (string handling, a lookup in memory, awaiting other async code) is cheapest
///   as an `async fn`: handing a plain `fn` to the blocking pool wakes a thread and switches to it for every
///   call (several microseconds), which dominates the cost of a trivial skill. Keep `fn` for skills that block.
/// - It stays callable as an ordinary function, e.g. from unit tests.
///
/// # Parameters
///
/// - Each parameter becomes a property of the tool's object input schema, under the parameter's name.
///   Its type must be owned (no `&str`; use `String`) and implement `serde::de::DeserializeOwned` and
///   `schemars::JsonSchema`; a type that does not is reported on the parameter.
/// - A doc comment on a parameter becomes the property's `description`.
/// - An `Option<T>` parameter is not required; a missing or `null` value is `None`. (The rule is general: a
///   parameter whose type accepts `null` may be left out.)
/// - A parameter may carry schemars' validation attributes, which land in its schema and are enforced on every
///   call: `#[schemars(range(min = 1, max = 50))]`, `length(min = .., max = ..)`, `regex(pattern = ..)` (or
///   `pattern(..)`), `email`, `url`. It takes no other `#[schemars(..)]` and no `#[serde(..)]` attribute; to
///   rename fields or change how they are read, take a struct input (below).
/// - A parameter whose type is `SkillContext` (matched by the last path segment) is not part of the
///   schema: the runtime injects the call's context (thread, turn, call and request ids, tool name, and the
///   cancellation token that fires at the skill's timeout or when the turn is interrupted).
/// - A parameter whose type is written `State<T>` (last path segment `State` with one type argument) is shared
///   state: not part of the schema, injected from the states supplied to the catalog (`Bridge::builder().state(..)`,
///   `skillbridge::cli::App::state(..)`). `T` must be `Send + Sync + 'static`; a skill may take several, each of a
///   different `T` (the same `T` twice is a compile error). A skill whose state was not supplied stops start-up.
/// - **Struct input:** mark one parameter `#[skill(input)]` and its type (a `Deserialize + JsonSchema`
///   struct with named fields) is the whole input schema; the skill may then have no other parameters
///   except a `SkillContext` and `State<T>`s.
///
/// ```
/// use skillbridge::skill;
/// use skillbridge::skill::SkillContext;
///
/// /// Parameters of a search.
/// #[derive(serde::Deserialize, schemars::JsonSchema)]
/// struct Search {
///     /// Words to look for.
///     query: String,
///     /// At most this many hits.
///     limit: Option<u32>,
/// }
///
/// /// Searches the notes of the current thread.
/// #[skill]
/// async fn search_notes(#[skill(input)] search: Search, ctx: SkillContext) -> Vec<String> {
///     let limit = search.limit.unwrap_or(10) as usize;
///     if ctx.is_cancelled() {
///         return Vec::new();
///     }
///     vec![format!("{} (thread {})", search.query, ctx.thread_id)].into_iter().take(limit).collect()
/// }
///
/// let catalog = skillbridge::skill::Catalog::from_registry().unwrap();
/// let schema = catalog.get("search_notes").unwrap().input_schema();
/// assert_eq!(schema["properties"]["query"]["description"], "Words to look for.");
/// assert_eq!(schema["required"], serde_json::json!(["query"]));
/// ```
///
/// # Return values
///
/// - `String`, `&'static str`, `Cow<str>`: the text as is. `()`: the text `ok`.
/// - `Content`, `ToolResult`, `ContentItem`, `Vec<ContentItem>`: exactly those items (text and images),
///   or anything else implementing `IntoToolResult`.
/// - Any other `T: Serialize`: its JSON text; when `T: JsonSchema` too, the catalog keeps `T`'s schema as the
///   skill's output schema.
/// - `Result<T, E>` with one of the above as `T` and `E: Display` (`SkillError`, `anyhow::Error`, `String`, ..):
///   `Err` answers `success: false` with the error's message.
///
/// # Attribute arguments
///
/// `#[skill(name = "..", description = "..", timeout = "..")]`, all optional:
/// - `name`: the tool name (default: the function's name); must match `^[A-Za-z0-9_-]{1,64}$`.
/// - `description`: the tool description (default: the first paragraph of the function's doc comment; one of
///   the two is required).
/// - `timeout`: how long one call may run, as `500ms`, `30s`, `2m` or `1h` (default `60s`). Past it the call
///   answers `success: false` and the skill's cancellation token fires.
///
/// Annotations and tags, also optional, describe the skill to people and tooling (`skillbridge skills`, the
/// admin `/skills` routes, `SkillInfo::annotations` and `SkillInfo::tags`); they are not sent to Codex:
/// - `title = ".."`: a human-readable title (not empty).
/// - The hints of MCP's tool annotations, as bare flags: `read_only` (does not modify its environment),
///   `destructive` (may destroy or overwrite data), `idempotent` (a repeated call has no further effect),
///   `open_world` (reaches outside entities, like the web). `flag = false` says the opposite; a flag left out
///   is reported as absent. A `read_only` skill cannot be `destructive`; no flag may be given twice.
/// - `tags = ["tickets", "admin"]`: each matching `^[a-z0-9][a-z0-9_-]{0,31}$`, none twice.
///
/// ```
/// use skillbridge::skill;
///
/// /// Deletes a note.
/// #[skill(title = "Delete a note", destructive, idempotent, open_world = false, tags = ["notes"])]
/// fn delete_note(key: String) -> String {
///     format!("deleted {key}")
/// }
///
/// let catalog = skillbridge::skill::Catalog::from_registry().unwrap();
/// let tool = catalog.get("delete_note").unwrap();
/// assert_eq!(tool.annotations().destructive(), Some(true));
/// assert_eq!(tool.annotations().read_only(), None);
/// assert_eq!(tool.tags(), ["notes"]);
/// ```
///
/// Every rule above is checked at compile time, and every violation is reported at once, on the offending
/// span. Duplicate names across the binary and recursive input types are reported by
/// `Catalog::from_registry` at startup.
#[proc_macro_attribute]
pub fn skill(attr: TokenStream, item: TokenStream) -> TokenStream {
    let attr = proc_macro2::TokenStream::from(attr);
    let item = proc_macro2::TokenStream::from(item);
    let parsed = match parse::parse(attr, item.clone()) {
        Ok(parsed) => parsed,
        // Not a function at all: keep the item so that the only error is ours.
        Err(error) => {
            let error = error.to_compile_error();
            return quote::quote!(#item #error).into();
        }
    };
    let plain_fn = parsed.function_without_skill_attributes();
    match validate::validate(parsed) {
        Ok(skill) => expand::expand(&skill, &plain_fn).into(),
        Err(error) => {
            let error = error.to_compile_error();
            quote::quote!(#plain_fn #error).into()
        }
    }
}
