//! Extractors that parse and validate input once, turning anything bad into the service's
//! JSON errors (never a plain-text 400).

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::web::Bytes;
use actix_web::{FromRequest, HttpRequest};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use validator::{Validate, ValidationError, ValidationErrors, ValidationErrorsKind};

use crate::api::error::ApiError;
use crate::domain::{AgentId, KeyId, SessionId, UserId};
use crate::service::idempotency::IdempotencyKey;
use crate::service::ServiceError;

/// A JSON body, parsed into `T` and validated, together with the JSON value it came from
/// (idempotency keys compare requests by it). Requires `Content-Type: application/json` (or
/// `+json`) when a body is present, treats an empty or `null` body as `{}`, honours the app's
/// payload limit, and names the offending field when parsing or validation fails.
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

/// Parses a body (empty or `null` means `{}`) into `T` and validates it.
pub fn parse_json<T: DeserializeOwned + Validate>(bytes: &[u8]) -> Result<(T, Value), ApiError> {
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
    let typed: T = serde_path_to_error::deserialize(&value).map_err(|e| {
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
    typed.validate().map_err(invalid)?;
    Ok((typed, value))
}

/// The field serde names in a missing-field error.
fn missing_field(reason: &str) -> Option<&str> {
    reason.strip_prefix("missing field `")?.split('`').next()
}

/// The first violation (by field path, so the answer is stable) as a 400 naming its field.
pub fn invalid(errors: ValidationErrors) -> ApiError {
    let mut all = Vec::new();
    violations(&errors, "", &mut all);
    all.sort_by(|a, b| a.0.cmp(&b.0));
    match all.into_iter().next() {
        Some((field, reason)) => ApiError::invalid(field, reason),
        None => ApiError::invalid("body", "is invalid"),
    }
}

/// Flattens validator's nested errors into `(camelCase path, reason)` pairs, with the paths
/// written as serde names them (`timeoutConfig.timeoutMinutes`, `attachments[0].url`).
fn violations(errors: &ValidationErrors, prefix: &str, out: &mut Vec<(String, String)>) {
    for (field, kind) in errors.errors() {
        let path = format!("{prefix}{}", camel_case(field));
        match kind {
            ValidationErrorsKind::Field(errs) => {
                if let Some(e) = errs.first() {
                    out.push((path, reason(e)));
                }
            }
            ValidationErrorsKind::Struct(inner) => violations(inner, &format!("{path}."), out),
            ValidationErrorsKind::List(items) => {
                for (i, inner) in items {
                    violations(inner, &format!("{path}[{i}]."), out);
                }
            }
        }
    }
}

/// `timeout_minutes` → `timeoutMinutes`, `r#type` → `type`.
fn camel_case(rust_name: &str) -> String {
    let name = rust_name.trim_start_matches("r#");
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        match c {
            '_' => upper = true,
            c if upper => {
                out.extend(c.to_uppercase());
                upper = false;
            }
            c => out.push(c),
        }
    }
    out
}

/// What a violation says: its own message, else a sentence built from its code and limits.
fn reason(e: &ValidationError) -> String {
    if let Some(message) = &e.message {
        return message.to_string();
    }
    let param = |name: &str| e.params.get(name).map(Value::to_string).unwrap_or_default();
    match e.code.as_ref() {
        "range" => format!(
            "must be an integer from {} to {}",
            param("min"),
            param("max")
        ),
        "chars" => format!("must be at most {} characters", param("max")),
        "items" => format!("must hold at most {} items", param("max")),
        code => format!("is invalid ({code})"),
    }
}

impl<T: DeserializeOwned + Validate + 'static> FromRequest for ApiJson<T> {
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

/// Path ids: a handler that takes a `SessionId` (or `AgentId`) gets the route's parameter of
/// that name, parsed; a malformed one is a 400 naming the parameter. Handlers take the id right
/// after the state: actix polls extractors in argument order and answers the first error, so a
/// malformed id is always the error reported, whatever else is wrong with the request.
macro_rules! path_ids {
    ($($id:ty),*) => {$(
        impl FromRequest for $id {
            type Error = ApiError;
            type Future = std::future::Ready<Result<Self, ApiError>>;

            fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
                let parsed = match req.match_info().get(<$id>::FIELD) {
                    Some(text) => parse_field(<$id>::FIELD, text),
                    // A handler mounted on a route without the parameter: a bug, not bad input.
                    None => Err(ApiError::Service(ServiceError::Internal(format!(
                        "route {:?} has no {{{}}} parameter",
                        req.match_pattern(),
                        <$id>::FIELD
                    )))),
                };
                std::future::ready(parsed)
            }
        }
    )*};
}

path_ids!(SessionId, AgentId, KeyId, UserId);

/// Parses a path or query parameter; a malformed one is a 400 naming it.
fn parse_field<T>(field: &str, text: &str) -> Result<T, ApiError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    text.parse()
        .map_err(|e: T::Err| ApiError::invalid(field, e.to_string()))
}

/// Parses an optional id from a query parameter; a malformed one is a 400 naming it.
pub fn query_id<T>(field: &str, value: Option<&str>) -> Result<Option<T>, ApiError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    value.map(|v| parse_field(field, v)).transpose()
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
            .map_err(|e| ApiError::invalid("Idempotency-Key", e.to_string()))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_paths_are_camel_case() {
        assert_eq!(camel_case("timeout_minutes"), "timeoutMinutes");
        assert_eq!(camel_case("r#type"), "type");
        assert_eq!(camel_case("content"), "content");
    }
}
