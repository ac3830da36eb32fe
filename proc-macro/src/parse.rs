//! Step 1: reads `#[skill(..)]` and the annotated item into a raw model, without judging it.
//!
//! Only input that cannot be read at all fails here (an item that is not a function, attribute arguments
//! that are not `key = value` pairs); everything else is recorded with its span for [`crate::validate`].

use proc_macro2::{Span, TokenStream};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Attribute, Expr, ExprLit, FnArg, Item, ItemFn, Lit, LitStr, Meta, Pat, Receiver, Token, Type};

/// The attribute's arguments and the function, as written.
pub(crate) struct Parsed {
    pub args: SkillArgs,
    pub function: ItemFn,
    pub receiver: Option<Receiver>,
    pub params: Vec<RawParam>,
    /// Problems found while reading, reported together with the validation errors.
    pub errors: Vec<syn::Error>,
}

/// `#[skill(name = "..", description = "..", timeout = "..", title = "..", read_only, destructive, idempotent,
/// open_world, tags = [".."])]`.
#[derive(Default)]
pub(crate) struct SkillArgs {
    pub name: Option<LitStr>,
    pub description: Option<LitStr>,
    pub timeout: Option<LitStr>,
    pub title: Option<LitStr>,
    pub read_only: Option<Flag>,
    pub destructive: Option<Flag>,
    pub idempotent: Option<Flag>,
    pub open_world: Option<Flag>,
    pub tags: Option<Vec<LitStr>>,
}

/// A hint flag: the bare word (`read_only`, on) or `read_only = false` (off).
#[derive(Clone, Copy)]
pub(crate) struct Flag {
    /// The flag's name, as written.
    pub span: Span,
    pub value: bool,
}

/// One typed parameter of the function.
pub(crate) struct RawParam {
    pub pat: Pat,
    pub ty: Type,
    /// The doc comment, lines joined with `\n`, one leading space per line removed.
    pub docs: Option<String>,
    /// The span of `input` in `#[skill(input)]`, when present.
    pub input_marker: Option<Span>,
    /// The span of `redact` in `#[skill(redact)]`, when present.
    pub redact_marker: Option<Span>,
    /// schemars' validation attributes (`range`, `length`, `pattern`/`regex`, `email`, `url`), as written.
    pub bounds: Vec<Attribute>,
}

/// The schemars attributes a plain parameter may carry: those that bound its value.
const BOUND_KEYS: &[&str] = &["range", "length", "pattern", "regex", "email", "url"];

const ARG_KEYS: &str =
    "`name`, `description`, `timeout`, `title`, `read_only`, `destructive`, `idempotent`, `open_world` or `tags`";

pub(crate) fn parse(attr: TokenStream, item: TokenStream) -> syn::Result<Parsed> {
    let function = parse_function(item)?;
    let mut errors = Vec::new();
    let args = parse_args(attr, &mut errors)?;
    let mut receiver = None;
    let mut params = Vec::new();
    for input in &function.sig.inputs {
        match input {
            FnArg::Receiver(self_param) => receiver = Some(self_param.clone()),
            FnArg::Typed(typed) => {
                let (mut input_marker, mut redact_marker) = (None, None);
                let mut bounds = Vec::new();
                for attr in &typed.attrs {
                    if attr.path().is_ident("skill") {
                        parse_param_attr(attr, &mut input_marker, &mut redact_marker, &mut errors);
                    } else if attr.path().is_ident("schemars") {
                        parse_bounds_attr(attr, &mut bounds, &mut errors);
                    } else if attr.path().is_ident("serde") {
                        errors.push(syn::Error::new_spanned(
                            attr,
                            "serde attributes do not apply to skill parameters; to rename fields or change how \
                             they are read, take a struct input: `#[skill(input)] args: MyArgs`",
                        ));
                    }
                }
                params.push(RawParam {
                    pat: (*typed.pat).clone(),
                    ty: (*typed.ty).clone(),
                    docs: doc_text(&typed.attrs),
                    input_marker,
                    redact_marker,
                    bounds,
                });
            }
        }
    }
    Ok(Parsed {
        args,
        function,
        receiver,
        params,
        errors,
    })
}

impl Parsed {
    /// The function as the compiler should see it: parameter attributes meant for `#[skill]` removed.
    pub(crate) fn function_without_skill_attributes(&self) -> ItemFn {
        let mut function = self.function.clone();
        for input in &mut function.sig.inputs {
            if let FnArg::Typed(typed) = input {
                typed.attrs.retain(|attr| !is_skill_param_attr(attr));
            }
        }
        function
    }

    /// The function's doc comment.
    pub(crate) fn docs(&self) -> Option<String> {
        doc_text(&self.function.attrs)
    }
}

fn is_skill_param_attr(attr: &Attribute) -> bool {
    ["doc", "skill", "serde", "schemars"]
        .iter()
        .any(|name| attr.path().is_ident(name))
}

fn parse_function(item: TokenStream) -> syn::Result<ItemFn> {
    match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Fn(function)) => Ok(function),
        Ok(other) => Err(syn::Error::new(
            item_span(&other),
            format!("#[skill] applies to free functions, not to {}", item_kind(&other)),
        )),
        // Not an item at all (e.g. a method with `self` parses as an `fn` item below, anything else fails).
        Err(_) => syn::parse2::<ItemFn>(item),
    }
}

fn item_kind(item: &Item) -> &'static str {
    match item {
        Item::Struct(_) => "a struct",
        Item::Enum(_) => "an enum",
        Item::Impl(_) => "an impl block (put it on a free function)",
        Item::Trait(_) => "a trait",
        Item::Mod(_) => "a module",
        Item::Const(_) | Item::Static(_) => "a constant",
        Item::Type(_) => "a type alias",
        Item::Use(_) => "a use declaration",
        _ => "this item",
    }
}

fn item_span(item: &Item) -> Span {
    match item {
        Item::Struct(item) => item.ident.span(),
        Item::Enum(item) => item.ident.span(),
        Item::Trait(item) => item.ident.span(),
        Item::Mod(item) => item.ident.span(),
        Item::Const(item) => item.ident.span(),
        Item::Static(item) => item.ident.span(),
        Item::Type(item) => item.ident.span(),
        Item::Impl(item) => item.impl_token.span,
        other => other.span(),
    }
}

fn parse_args(attr: TokenStream, errors: &mut Vec<syn::Error>) -> syn::Result<SkillArgs> {
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(attr)?;
    let mut args = SkillArgs::default();
    for meta in metas {
        let key = meta.path().get_ident().map(ToString::to_string).unwrap_or_default();
        let slot = match key.as_str() {
            "name" => &mut args.name,
            "description" => &mut args.description,
            "timeout" => &mut args.timeout,
            "title" => &mut args.title,
            "read_only" => {
                read_flag(&meta, &mut args.read_only, errors);
                continue;
            }
            "destructive" => {
                read_flag(&meta, &mut args.destructive, errors);
                continue;
            }
            "idempotent" => {
                read_flag(&meta, &mut args.idempotent, errors);
                continue;
            }
            "open_world" => {
                read_flag(&meta, &mut args.open_world, errors);
                continue;
            }
            "tags" => {
                read_tags(&meta, &mut args.tags, errors);
                continue;
            }
            "input" => {
                errors.push(syn::Error::new_spanned(
                    meta.path(),
                    "`input` goes on a parameter: `#[skill(input)] args: MyInput`",
                ));
                continue;
            }
            _ => {
                errors.push(syn::Error::new_spanned(
                    meta.path(),
                    format!(
                        "unknown skill attribute `{}`; expected {ARG_KEYS}",
                        path_text(meta.path())
                    ),
                ));
                continue;
            }
        };
        let value = match &meta {
            Meta::NameValue(pair) => match &pair.value {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(value), ..
                }) => value.clone(),
                other => {
                    errors.push(syn::Error::new_spanned(
                        other,
                        format!("`{key}` takes a string literal: `{key} = \"..\"`"),
                    ));
                    continue;
                }
            },
            _ => {
                errors.push(syn::Error::new_spanned(
                    &meta,
                    format!("`{key}` takes a value: `{key} = \"..\"`"),
                ));
                continue;
            }
        };
        if slot.is_some() {
            errors.push(syn::Error::new_spanned(meta.path(), format!("`{key}` is given twice")));
        } else {
            *slot = Some(value);
        }
    }
    Ok(args)
}

/// A hint flag: `read_only` or `read_only = false`. (`= true` is refused: the bare word says it.)
fn read_flag(meta: &Meta, slot: &mut Option<Flag>, errors: &mut Vec<syn::Error>) {
    let key = path_text(meta.path());
    let value = match meta {
        Meta::Path(_) => true,
        Meta::NameValue(pair) => match &pair.value {
            Expr::Lit(ExprLit {
                lit: Lit::Bool(value), ..
            }) if !value.value => false,
            Expr::Lit(ExprLit {
                lit: Lit::Bool(value), ..
            }) => {
                errors.push(syn::Error::new_spanned(
                    value,
                    format!("`{key}` is a bare flag: write `{key}`, not `{key} = true`"),
                ));
                return;
            }
            other => {
                errors.push(syn::Error::new_spanned(
                    other,
                    format!("`{key}` is a flag: write `{key}`, or `{key} = false` to say the opposite"),
                ));
                return;
            }
        },
        Meta::List(_) => {
            errors.push(syn::Error::new_spanned(
                meta,
                format!("`{key}` is a flag: write `{key}`, or `{key} = false` to say the opposite"),
            ));
            return;
        }
    };
    if slot.is_some() {
        errors.push(syn::Error::new_spanned(meta.path(), format!("`{key}` is given twice")));
    } else {
        *slot = Some(Flag {
            span: meta.path().span(),
            value,
        });
    }
}

/// `tags = ["a", "b"]`: a list of string literals, judged by `validate`.
fn read_tags(meta: &Meta, slot: &mut Option<Vec<LitStr>>, errors: &mut Vec<syn::Error>) {
    const FORM: &str = "`tags` takes a list of string literals: `tags = [\"tickets\", \"admin\"]`";
    let Meta::NameValue(pair) = meta else {
        errors.push(syn::Error::new_spanned(meta, FORM));
        return;
    };
    let Expr::Array(array) = &pair.value else {
        errors.push(syn::Error::new_spanned(&pair.value, FORM));
        return;
    };
    let mut tags = Vec::new();
    for element in &array.elems {
        match element {
            Expr::Lit(ExprLit { lit: Lit::Str(tag), .. }) => tags.push(tag.clone()),
            other => errors.push(syn::Error::new_spanned(other, FORM)),
        }
    }
    if slot.is_some() {
        errors.push(syn::Error::new_spanned(meta.path(), "`tags` is given twice"));
    } else {
        *slot = Some(tags);
    }
}

fn parse_param_attr(
    attr: &Attribute,
    input_marker: &mut Option<Span>,
    redact_marker: &mut Option<Span>,
    errors: &mut Vec<syn::Error>,
) {
    let result = attr.parse_nested_meta(|meta| {
        let marker = if meta.path.is_ident("input") {
            &mut *input_marker
        } else if meta.path.is_ident("redact") {
            &mut *redact_marker
        } else {
            return Err(meta.error(format!(
                "unknown skill parameter attribute `{}`; expected `input` or `redact`",
                path_text(&meta.path)
            )));
        };
        if marker.is_some() {
            return Err(meta.error(format!("`{}` is given twice", path_text(&meta.path))));
        }
        *marker = Some(meta.path.span());
        Ok(())
    });
    if let Err(error) = result {
        errors.push(error);
    }
}

/// Keeps a `#[schemars(..)]` attribute whose every item bounds the value; any other item is an error on its span.
fn parse_bounds_attr(attr: &Attribute, bounds: &mut Vec<Attribute>, errors: &mut Vec<syn::Error>) {
    let result = attr.parse_nested_meta(|meta| {
        let key = path_text(&meta.path);
        if !BOUND_KEYS.contains(&key.as_str()) {
            return Err(meta.error(format!(
                "`{key}` does not apply to a skill parameter; a parameter takes schemars' validation attributes \
                 (`range`, `length`, `pattern`, `regex`, `email`, `url`), and its doc comment describes it"
            )));
        }
        // The item's own arguments are schemars' to read (and to report on).
        if meta.input.peek(syn::token::Paren) {
            let _: proc_macro2::Group = meta.input.parse()?;
        } else if meta.input.peek(Token![=]) {
            let _: Expr = meta.value()?.parse()?;
        }
        Ok(())
    });
    match result {
        Ok(()) => bounds.push(attr.clone()),
        Err(error) => errors.push(error),
    }
}

fn path_text(path: &syn::Path) -> String {
    path.segments
        .iter()
        .map(|segment| segment.ident.to_string())
        .collect::<Vec<_>>()
        .join("::")
}

/// The text of `///` comments (and `#[doc = ".."]` literals); other `#[doc]` forms are skipped.
fn doc_text(attrs: &[Attribute]) -> Option<String> {
    let lines: Vec<String> = attrs
        .iter()
        .filter(|attr| attr.path().is_ident("doc"))
        .filter_map(|attr| match &attr.meta {
            Meta::NameValue(pair) => match &pair.value {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(text), ..
                }) => Some(text.value()),
                _ => None,
            },
            _ => None,
        })
        .flat_map(|text| text.split('\n').map(str::to_owned).collect::<Vec<_>>())
        .map(|line| line.strip_prefix(' ').map(str::to_owned).unwrap_or(line))
        .collect();
    let text = lines.join("\n").trim().to_owned();
    (!text.is_empty()).then_some(text)
}

/// The first paragraph of a doc text, its lines joined with spaces.
pub(crate) fn first_paragraph(docs: &str) -> String {
    docs.lines()
        .map(str::trim)
        .skip_while(|line| line.is_empty())
        .take_while(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}
