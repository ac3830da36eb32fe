//! Step 3: writes the registration of a checked [`Skill`] next to the (unchanged) function.
//!
//! The generated items live in an anonymous `const _: () = { .. };` block: a hidden arguments struct
//! (`Deserialize + JsonSchema`, one field per parameter), the schema functions, the `prepare` function that
//! deserializes arguments and builds the run, and an `inventory::submit!` of the `SkillDescriptor`.
//! Checks that can fail on a user's type are emitted with that type's span, so the compiler reports them
//! on the parameter or return type rather than in generated code.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{ItemFn, LitStr};

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
    let parameter_checks = skill.params.iter().filter_map(|param| match param {
        Param::Property { ty, .. } | Param::Input { ty } => {
            Some(quote_spanned!(ty.span()=> const _: () = #sb::assert_parameter::<#ty>();))
        }
        Param::Context { .. } => None,
    });
    let input = input_items(skill);
    let output = &skill.output;
    let output_span = output.span();
    let output_schema = quote_spanned! {output_span=>
        fn __skill_output_schema(
            generator: &mut #sb::schemars::SchemaGenerator,
        ) -> ::core::option::Option<#sb::schemars::Schema> {
            #[allow(unused_imports)]
            use #sb::returns::{SchemaViaDirect, SchemaViaNothing, SchemaViaResult, SchemaViaResultWithout, SchemaViaType};
            (&&&&#sb::returns::Returns::<#output>::new()).__skill_output_schema()(generator)
        }
    };
    let prepare = prepare_fn(skill);

    quote! {
        #function

        #[doc(hidden)]
        const _: () = {
            #(#parameter_checks)*
            #input
            #output_schema
            #prepare
            #sb::inventory::submit! {
                #sb::SkillDescriptor {
                    name: #name,
                    description: #description,
                    timeout_ms: #timeout_ms,
                    module_path: ::core::module_path!(),
                    file: ::core::file!(),
                    line: ::core::line!(),
                    input_schema: __skill_input_schema,
                    output_schema: __skill_output_schema,
                    prepare: __skill_prepare,
                }
            }
        };
    }
}

/// The arguments struct (or the user's input type) and the input schema function.
fn input_items(skill: &Skill) -> TokenStream {
    let sb = private();
    let input_ty = skill.params.iter().find_map(|param| match param {
        Param::Input { ty } => Some(ty),
        _ => None,
    });
    if let Some(ty) = input_ty {
        return quote! {
            fn __skill_input_schema(generator: &mut #sb::schemars::SchemaGenerator) -> #sb::schemars::Schema {
                generator.root_schema_for::<#ty>()
            }
        };
    }
    let fields = skill.params.iter().filter_map(|param| match param {
        Param::Property {
            ident,
            ty,
            description,
            forwarded,
            ..
        } => {
            let description = description
                .as_ref()
                .map(|text| quote!(#[schemars(description = #text)]));
            Some(quote! {
                #description
                #(#forwarded)*
                #ident: #ty,
            })
        }
        _ => None,
    });
    let serde_crate = LitStr::new("::skillbridge::skill::__private::serde", Span::call_site());
    let schemars_crate = LitStr::new("::skillbridge::skill::__private::schemars", Span::call_site());
    quote! {
        #[derive(#sb::serde::Deserialize, #sb::schemars::JsonSchema)]
        #[serde(crate = #serde_crate)]
        #[schemars(crate = #schemars_crate)]
        #[allow(non_camel_case_types)]
        struct __SkillArguments {
            #(#fields)*
        }

        fn __skill_input_schema(generator: &mut #sb::schemars::SchemaGenerator) -> #sb::schemars::Schema {
            generator.root_schema_for::<__SkillArguments>()
        }
    }
}

/// `__skill_prepare`: deserializes the arguments, then packages the call of the function as a run.
fn prepare_fn(skill: &Skill) -> TokenStream {
    let sb = private();
    let fn_ident = &skill.fn_ident;
    let name = &skill.name;
    let input_binding = format_ident!("__skill_input");
    let has_context = skill.params.iter().any(|param| matches!(param, Param::Context { .. }));
    let mut property_idents = Vec::new();
    let call_args: Vec<TokenStream> = skill
        .params
        .iter()
        .map(|param| match param {
            Param::Property { ident, .. } => {
                property_idents.push(ident.clone());
                quote!(#ident)
            }
            Param::Input { .. } => quote!(#input_binding),
            // Spanned so that a `SkillContext` that is not skillbridge's is reported on the parameter.
            Param::Context { ty } => quote_spanned!(ty.span()=> __skill_context),
        })
        .collect();
    let deserialize = match skill.params.iter().find_map(|param| match param {
        Param::Input { ty } => Some(ty),
        _ => None,
    }) {
        Some(ty) => quote! {
            let #input_binding = #sb::deserialize_arguments::<#ty>(__skill_arguments)?;
        },
        None => quote! {
            let __SkillArguments { #(#property_idents),* } =
                #sb::deserialize_arguments::<__SkillArguments>(__skill_arguments)?;
        },
    };
    let unused_context = (!has_context).then(|| quote!(let _ = __skill_context;));
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
        ) -> ::core::result::Result<#sb::SkillRun, #sb::ArgumentsError> {
            #deserialize
            #unused_context
            ::core::result::Result::Ok(#run)
        }
    }
}
