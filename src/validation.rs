//! Input rules that the `validator` derive lacks: blank text, NUL characters, metadata size
//! and depth. Request DTOs and domain types name them in `#[validate(custom(...))]`.
//!
//! NUL (U+0000): PostgreSQL's text columns cannot hold it (SQLite's can), so text stored in a
//! column of its own (message content, agent names) refuses it on both backends alike. Metadata
//! and attachments are stored as JSON text, where serde_json writes it as the escape `\u0000`:
//! there it is accepted and read back unchanged on both backends.

use std::borrow::Cow;

use serde_json::Value;
use validator::ValidationError;

pub const METADATA_MAX_BYTES: usize = 16 * 1024;
pub const METADATA_MAX_DEPTH: usize = 5;

fn error(code: &'static str, message: impl Into<Cow<'static, str>>) -> ValidationError {
    ValidationError::new(code).with_message(message.into())
}

/// Unicode white space plus the four ASCII separators (U+001C–U+001F) that many languages'
/// `isspace` also counts. The OpenAPI patterns in `api/messages.rs` spell out exactly this
/// set, so the server and the published schema agree on what is blank.
pub fn is_blank_char(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

pub fn is_blank(text: &str) -> bool {
    text.chars().all(is_blank_char)
}

/// Text for a column of its own must not hold NUL (see the module comment).
fn check_nul(text: &str) -> Result<(), ValidationError> {
    if text.contains('\0') {
        Err(error("nul", "must not contain the NUL character (U+0000)"))
    } else {
        Ok(())
    }
}

/// Text stored in a column as is: no NUL.
pub fn text(text: &str) -> Result<(), ValidationError> {
    check_nul(text)
}

/// Text stored in a column that must say something: not blank, no NUL.
pub fn not_blank(text: &str) -> Result<(), ValidationError> {
    if is_blank(text) {
        return Err(error("blank", "must not be empty"));
    }
    check_nul(text)
}

/// Text that must say something, stored inside JSON text: not blank.
pub fn not_blank_json(text: &str) -> Result<(), ValidationError> {
    if is_blank(text) {
        return Err(error("blank", "must not be empty"));
    }
    Ok(())
}

/// An `http` or `https` URL without white space.
pub fn http_url(url: &str) -> Result<(), ValidationError> {
    let scheme_ok = ["http://", "https://"].iter().any(|p| {
        url.len() > p.len()
            && url
                .get(..p.len())
                .is_some_and(|s| s.eq_ignore_ascii_case(p))
    });
    if !scheme_ok || url.chars().any(is_blank_char) {
        return Err(error("url", "must be an http(s) URL"));
    }
    Ok(())
}

fn depth(v: &Value) -> usize {
    match v {
        Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Metadata is a JSON object (or null, meaning `{}`) of at most 16 KB serialized, nested at
/// most 5 levels deep (the object itself is level 1).
pub fn metadata(value: &Value) -> Result<(), ValidationError> {
    match value {
        Value::Null => return Ok(()),
        Value::Object(_) => {}
        _ => return Err(error("object", "must be a JSON object")),
    }
    if value.to_string().len() > METADATA_MAX_BYTES {
        return Err(error(
            "size",
            format!("must be at most {METADATA_MAX_BYTES} bytes serialized"),
        ));
    }
    if depth(value) > METADATA_MAX_DEPTH {
        return Err(error(
            "depth",
            format!("must be nested at most {METADATA_MAX_DEPTH} levels deep"),
        ));
    }
    Ok(())
}

/// Metadata as stored: absent or null is `{}`.
pub fn metadata_or_empty(value: Option<Value>) -> Value {
    match value {
        None | Some(Value::Null) => Value::Object(Default::default()),
        Some(v) => v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn metadata_depth_counts_the_object_itself() {
        let five = json!({"a": {"b": {"c": {"d": {"e": 1}}}}});
        assert!(metadata(&five).is_ok());
        let six = json!({"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}});
        assert!(metadata(&six).is_err());
        assert!(metadata(&json!([1])).is_err());
        assert!(metadata(&Value::Null).is_ok());
        assert_eq!(metadata_or_empty(None), json!({}));
    }

    #[test]
    fn metadata_size_is_bounded() {
        let big = json!({ "x": "y".repeat(METADATA_MAX_BYTES) });
        assert!(metadata(&big).is_err());
    }

    #[test]
    fn nul_is_refused_in_column_text_only() {
        assert!(not_blank("a\0b").is_err());
        assert!(text("a\0").is_err());
        assert!(metadata(&json!({"a": ["x\0"], "k\0": 1})).is_ok());
        assert!(not_blank_json("a\0").is_ok());
        assert!(not_blank(" \u{1f}").is_err());
        assert!(http_url("HTTPS://x.y/z").is_ok());
        assert!(http_url("ftp://x").is_err());
        assert!(http_url("https://").is_err());
    }
}
