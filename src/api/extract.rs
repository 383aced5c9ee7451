//! Extractors that turn bad input into the service's JSON errors (never a plain-text 400).

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::web::Bytes;
use actix_web::{FromRequest, HttpRequest, HttpResponse};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::service::idempotency::{IdempotencyKey, Reply};

/// A JSON body, typed and as a JSON value. Requires `Content-Type: application/json` (or
/// `+json`) when a body is present, treats an empty body as `{}`, honours the app's payload
/// limit, and names the offending field when deserialization fails.
pub struct ApiJson<T>(pub T, pub Value);

fn is_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json"
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
        .unwrap_or(false)
}

/// Parses a body (empty or `null` means `{}`) into `T`, keeping the JSON value too
/// (idempotency keys compare requests by it).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, Value), ApiError> {
    let value: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(bytes).map_err(|e| ApiError::Validation {
            message: format!("Malformed JSON: {e}"),
            details: json!({ "reason": e.to_string() }),
        })?
    };
    // No body and a JSON `null` body both mean "nothing given": an empty object.
    let value = match value {
        Value::Null => Value::Object(Default::default()),
        v @ Value::Object(_) => v,
        _ => {
            return Err(ApiError::Validation {
                message: "Request body must be a JSON object".to_owned(),
                details: json!({ "reason": "expected a JSON object" }),
            })
        }
    };
    let typed = serde_path_to_error::deserialize(&value).map_err(|e| {
        let field = e.path().to_string();
        let reason = e.into_inner().to_string();
        if let Some(name) = missing_field(&reason) {
            // "missing field `agentId`": the path stops at the parent.
            let field = if field == "." {
                name.to_owned()
            } else {
                format!("{field}.{name}")
            };
            ApiError::invalid(field, reason)
        } else if field == "." {
            ApiError::Validation {
                message: format!("Invalid request body: {reason}"),
                details: json!({ "reason": reason }),
            }
        } else {
            ApiError::invalid(field, reason)
        }
    })?;
    Ok((typed, value))
}

/// The field serde names in a missing-field error.
fn missing_field(reason: &str) -> Option<&str> {
    reason.strip_prefix("missing field `")?.split('`').next()
}

impl<T: DeserializeOwned + 'static> FromRequest for ApiJson<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let json = is_json(req);
        let limit = req
            .app_data::<actix_web::web::Data<crate::state::AppState>>()
            .map_or(262_144, |s| s.settings.max_body_bytes);
        let body = Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = body.await.map_err(|e| match e.as_error::<PayloadError>() {
                Some(PayloadError::Overflow) => ApiError::PayloadTooLarge { limit },
                _ => ApiError::Validation {
                    message: format!("Cannot read request body: {e}"),
                    details: json!({ "reason": e.to_string() }),
                },
            })?;
            if !bytes.is_empty() && !json {
                return Err(ApiError::UnsupportedMediaType);
            }
            parse_json(&bytes).map(|(typed, value)| ApiJson(typed, value))
        })
    }
}

/// `X-Debug: true` asks for the provenance of the effective timeout config. The header is a
/// boolean: `true`/`false` (or `1`/`0`); anything else is a 400.
pub struct DebugFlag(pub bool);

impl FromRequest for DebugFlag {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let value = req
            .headers()
            .get("x-debug")
            .map(|v| v.to_str().map(str::trim));
        let flag = match value {
            None => Ok(false),
            Some(Ok(v)) if v.eq_ignore_ascii_case("true") || v == "1" => Ok(true),
            Some(Ok(v)) if v.eq_ignore_ascii_case("false") || v == "0" => Ok(false),
            Some(_) => Err(ApiError::invalid("X-Debug", "must be true or false")),
        };
        std::future::ready(flag.map(DebugFlag))
    }
}

/// The `Idempotency-Key` header, if sent.
pub struct IdempotencyHeader(pub Option<String>);

impl IdempotencyHeader {
    /// The validated key for this request; `scope` names the caller and target.
    pub fn key(self, scope: String, request: &Value) -> Result<Option<IdempotencyKey>, ApiError> {
        self.0
            .map(|k| IdempotencyKey::new(scope, &k, request))
            .transpose()
    }
}

impl FromRequest for IdempotencyHeader {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let value = match req.headers().get("idempotency-key").map(|v| v.to_str()) {
            None => Ok(None),
            Some(Ok(v)) => Ok(Some(v.to_owned())),
            Some(Err(_)) => Err(ApiError::invalid(
                "Idempotency-Key",
                "must be visible ASCII characters",
            )),
        };
        std::future::ready(value.map(IdempotencyHeader))
    }
}

/// Turns a service reply into a response; replays say so in `Idempotent-Replayed`.
pub fn respond(reply: Reply) -> HttpResponse {
    let mut builder = HttpResponse::build(reply.status);
    if reply.replayed {
        builder.insert_header(("Idempotent-Replayed", "true"));
    }
    builder.json(reply.body)
}

/// Unicode white space plus the four ASCII separators (U+001C–U+001F) that many languages'
/// `isspace` also counts. The OpenAPI patterns in `messages.rs` spell out exactly this set,
/// so the server and the published schema agree on what is blank.
pub fn is_blank_char(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

pub fn is_blank(text: &str) -> bool {
    text.chars().all(is_blank_char)
}

/// The OpenAPI pattern of every id: a hyphenated UUID, either case.
pub const UUID_PATTERN: &str =
    "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";

/// Parses an id: a hyphenated UUID (as [`UUID_PATTERN`] says), returned in lower case.
pub fn uuid_field(field: &str, value: &str) -> Result<String, ApiError> {
    let hyphenated = value.len() == 36
        && value
            .char_indices()
            .all(|(i, c)| matches!(i, 8 | 13 | 18 | 23) == (c == '-'));
    uuid::Uuid::try_parse(value)
        .ok()
        .filter(|_| hyphenated)
        .map(|u| u.hyphenated().to_string())
        .ok_or_else(|| ApiError::invalid(field, "must be a hyphenated UUID"))
}

/// Parses an optional integer query parameter within an inclusive range.
pub fn int_param(
    field: &str,
    value: Option<&str>,
    default: i64,
    (min, max): (i64, i64),
) -> Result<i64, ApiError> {
    let Some(text) = value else {
        return Ok(default);
    };
    match text.trim().parse::<i64>() {
        Ok(v) if (min..=max).contains(&v) => Ok(v),
        _ => Err(ApiError::invalid(
            field,
            format!("must be an integer from {min} to {max}"),
        )),
    }
}

const METADATA_MAX_BYTES: usize = 16 * 1024;
const METADATA_MAX_DEPTH: usize = 5;

fn depth(v: &Value) -> usize {
    match v {
        Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Metadata is a JSON object of at most 16 KB serialized, nested at most 5 levels deep (the
/// object itself is level 1). Absent or null metadata is `{}`.
pub fn metadata(field: &str, value: Option<Value>) -> Result<Value, ApiError> {
    let value = match value {
        None | Some(Value::Null) => return Ok(Value::Object(Default::default())),
        Some(v @ Value::Object(_)) => v,
        Some(_) => return Err(ApiError::invalid(field, "must be a JSON object")),
    };
    if value.to_string().len() > METADATA_MAX_BYTES {
        return Err(ApiError::invalid(
            field,
            format!("must be at most {METADATA_MAX_BYTES} bytes serialized"),
        ));
    }
    if depth(&value) > METADATA_MAX_DEPTH {
        return Err(ApiError::invalid(
            field,
            format!("must be nested at most {METADATA_MAX_DEPTH} levels deep"),
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_depth_counts_the_object_itself() {
        let five = json!({"a": {"b": {"c": {"d": {"e": 1}}}}});
        assert!(metadata("metadata", Some(five)).is_ok());
        let six = json!({"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}});
        assert!(metadata("metadata", Some(six)).is_err());
        assert!(metadata("metadata", Some(json!([1]))).is_err());
        assert_eq!(metadata("metadata", None).unwrap(), json!({}));
    }

    #[test]
    fn metadata_size_is_bounded() {
        let big = json!({ "x": "y".repeat(METADATA_MAX_BYTES) });
        assert!(metadata("metadata", Some(big)).is_err());
    }
}
