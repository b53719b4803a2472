//! The compile errors of `#[cached]`, one file per mistake a user can make, and the forms
//! it accepts. An error message is part of the API: a change to one shows up here.
//!
//! Regenerate the expected output with
//! `TRYBUILD=overwrite cargo test -p cachemacro-tests --test ui`, then read every `.stderr`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    t.pass("tests/ui-pass/*.rs");
}
