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
        .with_retriever(Siblings)
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

/// Where a schema refers to another of doc/schema/ (kill's forwards
/// share the probe's `target_sockets`): its `$id`, resolved against the
/// referring schema's, is read from the committed file, never fetched.
pub struct Siblings;

/// Where lsport's schemas say they live (their `$id`s).
const SCHEMA_BASE: &str = "https://lsport.invalid/schema/";

impl jsonschema::Retrieve for Siblings {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let file = uri
            .as_str()
            .strip_prefix(SCHEMA_BASE)
            .filter(|f| f.ends_with(".schema.json") && !f.contains('/'))
            .ok_or_else(|| format!("{} is not one of lsport's schemas", uri.as_str()))?;
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("doc/schema")
            .join(file);
        Ok(serde_json::from_str(&std::fs::read_to_string(path)?)?)
    }
}
