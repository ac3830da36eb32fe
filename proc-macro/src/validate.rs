//! Step 2: checks every rule of `#[skill]` and turns the raw model into the checked [`Skill`].
//!
//! Every violation is collected (each on its own span) and reported together, so one build shows all of them.

use proc_macro2::Span;
use syn::visit::Visit;
use syn::{Ident, LitStr, Pat, ReturnType, Type};

use crate::parse::{Flag, Parsed, RawParam, SkillArgs, first_paragraph};

/// Call deadline when the attribute gives none.
const DEFAULT_TIMEOUT_MS: u64 = 60_000;
/// The longest tool name Codex accepts.
const MAX_NAME_LEN: usize = 64;
/// The longest tag.
const MAX_TAG_LEN: usize = 32;

/// A skill that passed every check.
pub(crate) struct Skill {
    pub name: String,
    pub description: String,
    pub timeout_ms: u64,
    pub annotations: Annotations,
    pub tags: Vec<String>,
    pub is_async: bool,
    pub fn_ident: Ident,
    pub params: Vec<Param>,
    /// The written return type (`()` when none is written).
    pub output: Type,
}

/// MCP tool annotations; `None`: not given.
pub(crate) struct Annotations {
    pub title: Option<String>,
    pub read_only: Option<bool>,
    pub destructive: Option<bool>,
    pub idempotent: Option<bool>,
    pub open_world: Option<bool>,
}

/// A parameter, by the role it plays.
pub(crate) enum Param {
    /// One property of the generated input struct.
    Property {
        ident: Ident,
        ty: Type,
        description: Option<String>,
        /// `#[schemars(range(..))]` and the like, for schemars to read.
        bounds: Vec<syn::Attribute>,
        /// `#[skill(redact)]`: its value is never recorded.
        redacted: bool,
    },
    /// `#[skill(input)]`: the whole input.
    Input { ty: Type },
    /// The injected `SkillContext`.
    Context { ty: Type },
    /// A `State<T>`, taken from the states supplied to the catalog.
    State { ident: Ident, ty: Type },
}

pub(crate) fn validate(parsed: Parsed) -> syn::Result<Skill> {
    let docs = parsed.docs();
    let Parsed {
        args,
        function,
        receiver,
        params: raw_params,
        mut errors,
    } = parsed;
    let sig = &function.sig;

    if let Some(constness) = &sig.constness {
        errors.push(syn::Error::new(constness.span, "a skill cannot be a `const fn`"));
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.push(syn::Error::new(unsafety.span, "a skill cannot be an `unsafe fn`"));
    }
    if let Some(abi) = &sig.abi {
        errors.push(syn::Error::new_spanned(abi, "a skill cannot have an `extern` ABI"));
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(syn::Error::new_spanned(variadic, "a skill cannot be variadic"));
    }
    if !sig.generics.params.is_empty() {
        errors.push(syn::Error::new_spanned(
            &sig.generics,
            "a skill cannot be generic: its parameter types must be concrete to describe them in a schema",
        ));
    }
    if let Some(where_clause) = &sig.generics.where_clause {
        errors.push(syn::Error::new_spanned(
            where_clause,
            "a skill cannot have a `where` clause",
        ));
    }
    if let Some(receiver) = &receiver {
        errors.push(syn::Error::new_spanned(
            receiver,
            "a skill is a free function and cannot take `self`; move it out of the `impl` block",
        ));
    }

    let params = validate_params(raw_params, &mut errors);

    let name = match &args.name {
        Some(literal) => checked_name(literal.value(), literal.span(), &mut errors),
        None => checked_name(unraw(&sig.ident), sig.ident.span(), &mut errors),
    };
    let description = match &args.description {
        Some(literal) if literal.value().trim().is_empty() => {
            errors.push(syn::Error::new(literal.span(), "the description must not be empty"));
            String::new()
        }
        Some(literal) => literal.value().trim().to_owned(),
        None => match docs.as_deref().map(first_paragraph) {
            Some(paragraph) if !paragraph.is_empty() => paragraph,
            _ => {
                errors.push(syn::Error::new(
                    sig.ident.span(),
                    format!(
                        "skill `{}` has no description: add a doc comment (its first paragraph is the tool \
                         description) or `#[skill(description = \"..\")]`",
                        sig.ident
                    ),
                ));
                String::new()
            }
        },
    };
    let timeout_ms = match &args.timeout {
        Some(literal) => parse_timeout(literal).unwrap_or_else(|error| {
            errors.push(error);
            DEFAULT_TIMEOUT_MS
        }),
        None => DEFAULT_TIMEOUT_MS,
    };
    let annotations = checked_annotations(&args, &mut errors);
    let tags = checked_tags(args.tags.as_deref().unwrap_or_default(), &mut errors);
    let output = match &sig.output {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, ty) => {
            if let Type::ImplTrait(impl_trait) = &**ty {
                errors.push(syn::Error::new_spanned(
                    impl_trait,
                    "a skill must name its return type; `impl Trait` hides what the model receives",
                ));
            }
            (**ty).clone()
        }
    };

    if let Some(combined) = errors.into_iter().reduce(|mut all, next| {
        all.combine(next);
        all
    }) {
        return Err(combined);
    }
    Ok(Skill {
        name,
        description,
        timeout_ms,
        annotations,
        tags,
        is_async: sig.asyncness.is_some(),
        fn_ident: sig.ident.clone(),
        params,
        output,
    })
}

fn validate_params(raw_params: Vec<RawParam>, errors: &mut Vec<syn::Error>) -> Vec<Param> {
    let mut params = Vec::new();
    let mut context_seen = false;
    // The `T` of each `State<T>` as written, to refuse the same one twice.
    let mut states_seen: Vec<String> = Vec::new();
    let has_input = raw_params.iter().any(|param| param.input_marker.is_some());
    for raw in raw_params {
        let borrowed = Borrows::find(&raw.ty);
        for problem in &borrowed {
            errors.push(problem.clone());
        }
        if let Some(marker) = raw.redact_marker
            && (raw.input_marker.is_some() || is_context(&raw.ty) || state_inner(&raw.ty).is_some())
        {
            errors.push(syn::Error::new(
                marker,
                "`redact` applies to a plain parameter (its value is left out of recorded calls); an input, a \
                 `SkillContext` or a `State<..>` cannot be redacted",
            ));
        }
        if raw.input_marker.is_some() || is_context(&raw.ty) {
            for attr in &raw.bounds {
                errors.push(syn::Error::new_spanned(
                    attr,
                    "validation attributes apply to plain parameters; bound the fields of the input struct instead",
                ));
            }
        }
        if is_context(&raw.ty) {
            if context_seen {
                errors.push(syn::Error::new_spanned(
                    &raw.ty,
                    "a skill takes at most one `SkillContext`",
                ));
            }
            if let Some(marker) = raw.input_marker {
                errors.push(syn::Error::new(
                    marker,
                    "`SkillContext` is injected; it cannot be the input",
                ));
            }
            context_seen = true;
            params.push(Param::Context { ty: raw.ty });
            continue;
        }
        if let Some(inner) = state_inner(&raw.ty) {
            if let Some(marker) = raw.input_marker {
                errors.push(syn::Error::new(
                    marker,
                    "`State<..>` is supplied by whoever runs the skills; it cannot be the input",
                ));
            }
            let key = quote::ToTokens::to_token_stream(inner).to_string();
            if states_seen.contains(&key) {
                errors.push(syn::Error::new_spanned(
                    &raw.ty,
                    format!(
                        "a skill takes each state type once: an earlier parameter is already `State<{key}>`, and \
                         both would hold the same value"
                    ),
                ));
            }
            states_seen.push(key);
            match plain_name(&raw.pat) {
                Some(ident) => params.push(Param::State { ident, ty: raw.ty }),
                None => errors.push(syn::Error::new_spanned(
                    &raw.pat,
                    "a `State<..>` parameter needs a plain name (start-up errors name it when the state is missing)",
                )),
            }
            continue;
        }
        if raw.input_marker.is_some() {
            params.push(Param::Input { ty: raw.ty });
            continue;
        }
        if has_input {
            errors.push(syn::Error::new_spanned(
                &raw.pat,
                "a skill with an `#[skill(input)]` parameter takes no other parameters (except a `SkillContext` and \
                 `State<..>`s)",
            ));
        }
        let Some(ident) = plain_name(&raw.pat) else {
            errors.push(syn::Error::new_spanned(
                &raw.pat,
                "a skill parameter needs a plain name (it is the property name in the input schema)",
            ));
            continue;
        };
        params.push(Param::Property {
            ident,
            ty: raw.ty,
            description: raw.docs,
            bounds: raw.bounds,
            redacted: raw.redact_marker.is_some(),
        });
    }
    params
}

/// The binding of `name: T` or `mut name: T`.
fn plain_name(pat: &Pat) -> Option<Ident> {
    match pat {
        Pat::Ident(binding) if binding.by_ref.is_none() && binding.subpat.is_none() => Some(binding.ident.clone()),
        _ => None,
    }
}

/// References and `impl Trait` inside a parameter type, each as an error on its span.
struct Borrows {
    errors: Vec<syn::Error>,
}

impl Borrows {
    fn find(ty: &Type) -> Vec<syn::Error> {
        let mut finder = Borrows { errors: Vec::new() };
        finder.visit_type(ty);
        finder.errors
    }
}

impl<'ast> Visit<'ast> for Borrows {
    fn visit_type_reference(&mut self, reference: &'ast syn::TypeReference) {
        let message = match &*reference.elem {
            Type::Path(path) if path.path.is_ident("str") => {
                "a skill parameter must be owned: use `String` instead of `&str`"
            }
            Type::Path(path) if last_segment_is(&path.path, "SkillContext") => {
                "take `SkillContext` by value (it is cheap to clone)"
            }
            ty if state_inner(ty).is_some() => "take `State<..>` by value (it is cheap to clone)",
            _ => "a skill parameter must be owned: arguments are deserialized into owned values",
        };
        self.errors.push(syn::Error::new_spanned(reference, message));
    }

    fn visit_type_impl_trait(&mut self, impl_trait: &'ast syn::TypeImplTrait) {
        self.errors.push(syn::Error::new_spanned(
            impl_trait,
            "a skill parameter cannot be `impl Trait`: name a concrete type",
        ));
    }
}

fn is_context(ty: &Type) -> bool {
    match ty {
        Type::Path(path) => last_segment_is(&path.path, "SkillContext"),
        Type::Reference(reference) => is_context(&reference.elem),
        _ => false,
    }
}

/// `T` of a type written `State<T>` (matched by the last path segment, with exactly one type argument): such a
/// parameter is shared state. A `State` without arguments (a user's own enum, say) is an ordinary parameter.
fn state_inner(ty: &Type) -> Option<&Type> {
    let Type::Path(path) = ty else { return None };
    if path.qself.is_some() {
        return None;
    }
    let segment = path.path.segments.last()?;
    if segment.ident != "State" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(arguments) = &segment.arguments else {
        return None;
    };
    match arguments.args.iter().collect::<Vec<_>>().as_slice() {
        [syn::GenericArgument::Type(inner)] => Some(inner),
        _ => None,
    }
}

fn last_segment_is(path: &syn::Path, name: &str) -> bool {
    path.segments.last().is_some_and(|segment| segment.ident == name)
}

fn unraw(ident: &Ident) -> String {
    let text = ident.to_string();
    text.strip_prefix("r#").map(str::to_owned).unwrap_or(text)
}

fn checked_name(name: String, span: Span, errors: &mut Vec<syn::Error>) -> String {
    let valid_chars = name
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-');
    if name.is_empty() || name.len() > MAX_NAME_LEN || !valid_chars {
        errors.push(syn::Error::new(
            span,
            format!(
                "invalid skill name `{name}`: a tool name must match ^[A-Za-z0-9_-]{{1,{MAX_NAME_LEN}}}$ \
                 (ASCII letters, digits, `_` and `-`, at most {MAX_NAME_LEN})"
            ),
        ));
    }
    name
}

/// The title and the hints; a read-only skill cannot be destructive, and a title says something.
fn checked_annotations(args: &SkillArgs, errors: &mut Vec<syn::Error>) -> Annotations {
    let title = args.title.as_ref().map(|literal| {
        let title = literal.value().trim().to_owned();
        if title.is_empty() {
            errors.push(syn::Error::new(literal.span(), "the title must not be empty"));
        }
        title
    });
    if let (Some(Flag { value: true, .. }), Some(destructive @ Flag { value: true, .. })) =
        (args.read_only, args.destructive)
    {
        errors.push(syn::Error::new(
            destructive.span,
            "a `read_only` skill cannot be `destructive`: it does not modify its environment; drop one of the two",
        ));
    }
    let value = |flag: Option<Flag>| flag.map(|flag| flag.value);
    Annotations {
        title,
        read_only: value(args.read_only),
        destructive: value(args.destructive),
        idempotent: value(args.idempotent),
        open_world: value(args.open_world),
    }
}

/// Each tag matches `^[a-z0-9][a-z0-9_-]{0,31}$` and is given once.
fn checked_tags(literals: &[LitStr], errors: &mut Vec<syn::Error>) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    for literal in literals {
        let tag = literal.value();
        if tag.is_empty() {
            errors.push(syn::Error::new(literal.span(), "a tag must not be empty"));
        } else if !is_valid_tag(&tag) {
            errors.push(syn::Error::new(
                literal.span(),
                format!(
                    "invalid tag `{tag}`: a tag must match ^[a-z0-9][a-z0-9_-]{{0,{}}}$ (lower-case ASCII letters, \
                     digits, `_` and `-`, starting with a letter or digit, at most {MAX_TAG_LEN})",
                    MAX_TAG_LEN - 1
                ),
            ));
        } else if tags.contains(&tag) {
            errors.push(syn::Error::new(
                literal.span(),
                format!("the tag `{tag}` is given twice"),
            ));
        }
        tags.push(tag);
    }
    tags
}

fn is_valid_tag(tag: &str) -> bool {
    let lower_or_digit = |byte: u8| byte.is_ascii_lowercase() || byte.is_ascii_digit();
    let mut bytes = tag.bytes();
    tag.len() <= MAX_TAG_LEN
        && bytes.next().is_some_and(lower_or_digit)
        && bytes.all(|byte| lower_or_digit(byte) || byte == b'_' || byte == b'-')
}

/// `500ms`, `30s`, `2m`, `1h` in milliseconds.
fn parse_timeout(literal: &LitStr) -> syn::Result<u64> {
    let text = literal.value();
    let invalid = |why: &str| {
        syn::Error::new(
            literal.span(),
            format!("invalid timeout `{text}`: {why}; write a whole number and a unit: `500ms`, `30s`, `2m` or `1h`"),
        )
    };
    let trimmed = text.trim();
    let digits_end = trimmed.find(|c: char| !c.is_ascii_digit()).unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits_end);
    if number.is_empty() {
        return Err(invalid("it does not start with a number"));
    }
    let number: u64 = number.parse().map_err(|_| invalid("the number is too large"))?;
    let unit_ms = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "" => return Err(invalid("the unit is missing")),
        _ => return Err(invalid("unknown unit")),
    };
    let millis = number
        .checked_mul(unit_ms)
        .ok_or_else(|| invalid("the duration is too large"))?;
    if millis == 0 {
        return Err(invalid("a skill needs some time to run"));
    }
    Ok(millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeout(text: &str) -> Result<u64, String> {
        parse_timeout(&LitStr::new(text, Span::call_site())).map_err(|error| error.to_string())
    }

    #[test]
    fn timeouts_in_every_unit() {
        assert_eq!(timeout("500ms"), Ok(500));
        assert_eq!(timeout("30s"), Ok(30_000));
        assert_eq!(timeout("2m"), Ok(120_000));
        assert_eq!(timeout("1h"), Ok(3_600_000));
    }

    #[test]
    fn bad_timeouts_say_why() {
        assert!(timeout("soon").unwrap_err().contains("does not start with a number"));
        assert!(timeout("30").unwrap_err().contains("unit is missing"));
        assert!(timeout("3d").unwrap_err().contains("unknown unit"));
        assert!(timeout("0s").unwrap_err().contains("needs some time"));
        assert!(timeout("99999999999999999999s").unwrap_err().contains("too large"));
        assert!(timeout("1.5s").unwrap_err().contains("unknown unit"));
    }

    #[test]
    fn tag_rule() {
        for good in ["a", "9", "tickets", "a-b_c", &"a".repeat(32)] {
            assert!(is_valid_tag(good), "{good}");
        }
        for bad in ["", "-a", "_a", "Tickets", "a b", "a.b", "é", &"a".repeat(33)] {
            assert!(!is_valid_tag(bad), "{bad}");
        }
    }

    #[test]
    fn descriptions_are_the_first_paragraph() {
        assert_eq!(
            first_paragraph("\nCounts words\nin a text.\n\nDetails."),
            "Counts words in a text."
        );
    }
}
