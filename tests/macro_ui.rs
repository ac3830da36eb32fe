//! Compile-time behaviour of `#[skill]`: what compiles (`tests/ui/pass`) and what is refused, with the error on
//! the offending span (`tests/ui/fail`, one file per error; the `.stderr` files pin the messages).
//!
//! Regenerate the expected output after an intended change with `TRYBUILD=overwrite`.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}
