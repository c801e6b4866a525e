//! Validating real output against the committed JSON Schemas
//! (doc/schema/NAME.schema.json, draft 2020-12), with formats asserted.

use serde_json::Value;

/// Fails the test, naming each place, when `doc` does not match the
/// schema `name`.
pub fn assert_valid(name: &str, doc: &Value) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("doc/schema")
        .join(format!("{name}.schema.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let schema: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is no JSON: {e}", path.display()));
    let validator = jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("{name}.schema.json does not compile: {e}"));
    let errors: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "the document does not match {name}.schema.json:\n  {}\n{doc:#}",
        errors.join("\n  ")
    );
}
