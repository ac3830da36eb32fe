//! The `#[skill]` attribute of skillbridge.

use proc_macro::TokenStream;

/// Registers a function as a skill.
#[proc_macro_attribute]
pub fn skill(_attr: TokenStream, item: TokenStream) -> TokenStream {
    item
}
