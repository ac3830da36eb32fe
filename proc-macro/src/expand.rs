//! Step 3: writes the registration of a checked [`Skill`] next to the (unchanged) function.
//!
//! The generated items live in an anonymous `const _: () = { .. };` block: the input and output schema
//! functions, the `prepare` function that reads the arguments, takes the states and packages the call, the
//! check that no state type is taken twice, and an `inventory::submit!` of the `SkillDescriptor` (with the
//! skill's `State<T>` requirements).
//!
//! Every use of a user's type goes through a generic helper whose bound carries a custom diagnostic, written with
//! that type's span: a parameter type that cannot be read from JSON is reported once per missing trait, on the
//! parameter; a return type that cannot be answered is reported on the return type.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Ident, ItemFn, Type};

use crate::validate::{Param, Skill};

/// The runtime support module, as seen from the user's crate.
fn private() -> TokenStream {
    quote!(::skillbridge::skill::__private)
}

pub(crate) fn expand(skill: &Skill, function: &ItemFn) -> TokenStream {
    let sb = private();
    let name = &skill.name;
    let description = &skill.description;
    let timeout_ms = skill.timeout_ms;
    let annotations = annotations(skill);
    let tags = &skill.tags;
    let input_schema = input_schema_fn(skill);
    let output_schema = output_schema_fn(skill);
    let prepare = prepare_fn(skill);
    let (states, distinct_states) = state_requirements(skill);
    let redacted = skill.params.iter().filter_map(|param| match param {
        Param::Property {
            ident, redacted: true, ..
        } => Some(ident.to_string()),
        _ => None,
    });
    quote! {
        #function

        #[doc(hidden)]
        const _: () = {
            #input_schema
            #output_schema
            #prepare
            #distinct_states
            const __SKILL_STATES: &[#sb::StateRequirement] = &[#(#states),*];
            #sb::inventory::submit! {
                #sb::SkillDescriptor {
                    name: #name,
                    description: #description,
                    timeout_ms: #timeout_ms,
                    annotations: #annotations,
                    tags: &[#(#tags),*],
                    module_path: ::core::module_path!(),
                    file: ::core::file!(),
                    line: ::core::line!(),
                    input_schema: __skill_input_schema,
                    output_schema: __skill_output_schema,
                    states: __SKILL_STATES,
                    redacted: &[#(#redacted),*],
                    prepare: __skill_prepare,
                }
            }
        };
    }
}

/// The `RawAnnotations` of the descriptor.
fn annotations(skill: &Skill) -> TokenStream {
    let sb = private();
    let some = |value: Option<TokenStream>| match value {
        Some(value) => quote!(::core::option::Option::Some(#value)),
        None => quote!(::core::option::Option::None),
    };
    let flag = |value: Option<bool>| some(value.map(|value| quote!(#value)));
    let annotations = &skill.annotations;
    let title = some(annotations.title.as_ref().map(|title| quote!(#title)));
    let (read_only, destructive) = (flag(annotations.read_only), flag(annotations.destructive));
    let (idempotent, open_world) = (flag(annotations.idempotent), flag(annotations.open_world));
    quote! {
        #sb::RawAnnotations {
            title: #title,
            read_only: #read_only,
            destructive: #destructive,
            idempotent: #idempotent,
            open_world: #open_world,
        }
    }
}

/// The input schema: the `#[skill(input)]` type's schema, or an object with one property per parameter.
fn input_schema_fn(skill: &Skill) -> TokenStream {
    let sb = private();
    let body = match input_type(skill) {
        Some(ty) => quote_spanned!(ty.span()=> #sb::input_schema::<#ty>(generator)),
        None => {
            let parameters = skill.params.iter().filter_map(|param| match param {
                Param::Property {
                    ident,
                    ty,
                    description,
                    bounds,
                    ..
                } => {
                    let name = property_name(ident);
                    let description = match description {
                        Some(text) => quote!(::core::option::Option::Some(#text)),
                        None => quote!(::core::option::Option::None),
                    };
                    if bounds.is_empty() {
                        return Some(
                            quote_spanned!(ty.span()=> schema.parameter::<#ty>(generator, #name, #description);),
                        );
                    }
                    // schemars reads the bounds, as it would on a field: they are written on one of a struct that
                    // exists only for its schema.
                    let holder = format_ident!("__SkillBounds_{}", ident);
                    let schemars_path = format!("{sb}::schemars").replace(' ', "");
                    Some(quote! {
                        #[allow(non_camel_case_types, dead_code)]
                        #[derive(#sb::schemars::JsonSchema)]
                        #[schemars(crate = #schemars_path)]
                        struct #holder {
                            #(#bounds)*
                            value: #ty,
                        }
                        schema.bounded_parameter::<#ty, #holder>(generator, #name, #description);
                    })
                }
                Param::Input { .. } | Param::Context { .. } | Param::State { .. } => None,
            });
            quote! {
                let mut schema = #sb::ArgumentsSchema::new();
                #(#parameters)*
                schema.finish(generator)
            }
        }
    };
    quote! {
        fn __skill_input_schema(generator: &mut #sb::schemars::SchemaGenerator) -> #sb::schemars::Schema {
            #body
        }
    }
}

/// The output schema, chosen by the return-type dispatch (see `__private::returns`).
fn output_schema_fn(skill: &Skill) -> TokenStream {
    let sb = private();
    let output = &skill.output;
    quote_spanned! {output.span()=>
        fn __skill_output_schema(
            generator: &mut #sb::schemars::SchemaGenerator,
        ) -> ::core::option::Option<#sb::schemars::Schema> {
            #[allow(unused_imports)]
            use #sb::returns::{SchemaViaDirect, SchemaViaNothing, SchemaViaResult, SchemaViaResultWithout, SchemaViaType};
            (&&&&#sb::returns::Returns::<#output>::new()).__skill_output_schema()(generator)
        }
    }
}

/// `__skill_prepare`: reads the arguments, then packages the call of the function as a run.
fn prepare_fn(skill: &Skill) -> TokenStream {
    let sb = private();
    let fn_ident = &skill.fn_ident;
    let name = &skill.name;
    let input_binding = format_ident!("__skill_input");
    let has_context = skill.params.iter().any(|param| matches!(param, Param::Context { .. }));
    let mut reads = Vec::new();
    let mut states = Vec::new();
    let call_args: Vec<TokenStream> = skill
        .params
        .iter()
        .map(|param| match param {
            Param::Property { ident, ty, .. } => {
                let name = property_name(ident);
                reads.push(quote_spanned! {ty.span()=>
                    let #ident = #sb::argument::<#ty>(&mut __skill_arguments, #name)?;
                });
                quote!(#ident)
            }
            Param::Input { ty } => {
                reads.push(quote_spanned! {ty.span()=>
                    let #input_binding = #sb::input::<#ty>(__skill_arguments)?;
                });
                quote!(#input_binding)
            }
            // Spanned so that a `SkillContext` that is not skillbridge's is reported on the parameter.
            Param::Context { ty } => quote_spanned!(ty.span()=> __skill_context),
            Param::State { ident, ty } => {
                let name = property_name(ident);
                states.push(quote_spanned! {ty.span()=>
                    let #ident = #sb::state::<#ty>(__skill_states, #name)?;
                });
                quote!(#ident)
            }
        })
        .collect();
    let takes_one_by_one = input_type(skill).is_none() && !reads.is_empty();
    let arguments_binding = if takes_one_by_one {
        quote!(mut __skill_arguments)
    } else {
        quote!(__skill_arguments)
    };
    let unused_context = (!has_context).then(|| quote!(let _ = __skill_context;));
    let unused_states = states.is_empty().then(|| quote!(let _ = __skill_states;));
    let output = &skill.output;
    let convert = quote_spanned! {output.span()=>
        {
            #[allow(unused_imports)]
            use #sb::returns::{ViaDirect, ViaJson, ViaJsonOrError};
            (&&&#sb::returns::Returns::<#output>::new()).__skill_return_kind().into_tool_result(__skill_output, #name)
        }
    };
    let run = if skill.is_async {
        let future = quote_spanned! {fn_ident.span()=>
            #sb::assert_send_future(async move {
                let __skill_output: #output = #fn_ident(#(#call_args),*).await;
                #convert
            })
        };
        quote!(#sb::SkillRun::Async(::std::boxed::Box::pin(#future)))
    } else {
        quote! {
            #sb::SkillRun::Blocking(::std::boxed::Box::new(move || {
                let __skill_output: #output = #fn_ident(#(#call_args),*);
                #convert
            }))
        }
    };
    quote! {
        fn __skill_prepare(
            __skill_arguments: #sb::serde_json::Value,
            __skill_context: ::skillbridge::skill::SkillContext,
            __skill_states: &::skillbridge::skill::States,
        ) -> ::core::result::Result<#sb::SkillRun, #sb::ArgumentsError> {
            #[allow(unused_variables)]
            let #arguments_binding = #sb::arguments_object(__skill_arguments)?;
            #(#reads)*
            #(#states)*
            #unused_context
            #unused_states
            ::core::result::Result::Ok(#run)
        }
    }
}

fn input_type(skill: &Skill) -> Option<&Type> {
    skill.params.iter().find_map(|param| match param {
        Param::Input { ty } => Some(ty),
        Param::Property { .. } | Param::Context { .. } | Param::State { .. } => None,
    })
}

/// The `StateRequirement` of each `State<T>` parameter, and an impl of a trait local to the skill per state
/// type: two parameters of one type (written alike or not, e.g. through an alias) are conflicting impls.
/// (`validate` already refuses two written alike, with a clearer message.)
fn state_requirements(skill: &Skill) -> (Vec<TokenStream>, TokenStream) {
    let sb = private();
    let mut requirements = Vec::new();
    let mut impls = Vec::new();
    for param in &skill.params {
        if let Param::State { ident, ty } = param {
            let name = property_name(ident);
            requirements.push(quote_spanned! {ty.span()=>
                #sb::state_requirement::<<#ty as #sb::StateParameter>::Inner>(#name)
            });
            impls.push(quote_spanned!(ty.span()=> impl SkillTakesEachStateTypeOnce for #ty {}));
        }
    }
    let distinct = if impls.len() > 1 {
        quote! {
            trait SkillTakesEachStateTypeOnce {}
            #(#impls)*
        }
    } else {
        TokenStream::new()
    };
    (requirements, distinct)
}

/// The JSON name of a parameter: its identifier without `r#`.
fn property_name(ident: &Ident) -> String {
    let text = ident.to_string();
    text.strip_prefix("r#").map(str::to_owned).unwrap_or(text)
}
