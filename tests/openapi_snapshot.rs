//! The committed OpenAPI document must match the code's.
//! Regenerate with: `cargo run -q -- openapi > openapi/openapi.json`

#[test]
fn committed_openapi_document_is_current() {
    let generated = serde_json::to_string_pretty(&agent_sessions::openapi::document()).unwrap();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed.trim_end() == generated.trim_end(),
        "openapi/openapi.json is stale; regenerate it with \
         `cargo run -q -- openapi > openapi/openapi.json` and commit it"
    );
}
