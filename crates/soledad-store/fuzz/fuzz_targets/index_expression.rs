//! Index expressions: parsing and evaluating against a document never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // "expression\ndocument": the document defaults to a varied fixed one.
    let (expression, doc) = text.split_once('\n').unwrap_or((
        text,
        r#"{"a": "Foo Bar", "b": 12, "c": [true, {"d": "x"}, [1]], "e": {"f": null}}"#,
    ));
    let _ = soledad_store::fuzz_index_expression(expression, doc);
});
