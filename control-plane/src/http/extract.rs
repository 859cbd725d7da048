//! Extractors that turn every malformed request into a specific, field-named
//! error in the API's error body (axum's own rejections are plain text).

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use berth_api::IDEMPOTENCY_KEY_HEADER;
use serde::de::DeserializeOwned;

use super::AppState;
use crate::app::AppError;
use crate::auth::Principal;

/// A JSON request body: `application/json`, within the size limit, matching
/// the type exactly (unknown fields are refused).
pub struct ApiJson<T>(pub T);

/// Like [`ApiJson`], but an empty body means `T::default()`.
pub struct OptionalJson<T>(pub T);

async fn read_body(state: &AppState, req: Request, allow_empty: bool) -> Result<Option<axum::body::Bytes>, AppError> {
    let limit = state.app.limits().max_body_bytes;
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let bytes = read_limited(req.into_body(), limit).await?;
    if bytes.is_empty() && allow_empty {
        return Ok(None);
    }
    let is_json = content_type
        .as_deref()
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(AppError::UnsupportedMediaType(format!(
            "the request body must be application/json, got {}",
            content_type.as_deref().unwrap_or("no Content-Type")
        )));
    }
    Ok(Some(bytes))
}

/// How much of an oversized body is read and thrown away before answering
/// 413, so the client sees the answer instead of a reset connection.
const DRAIN_LIMIT: usize = 64 << 20;

/// Reads a body of at most `limit` bytes. A larger one is refused with 413
/// after being drained, so the connection stays usable for the next request.
pub async fn read_limited(body: axum::body::Body, limit: usize) -> Result<axum::body::Bytes, AppError> {
    use http_body_util::BodyExt as _;
    let mut body = body;
    let mut buf = bytes_buf(limit);
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| AppError::bad_request(None, format!("the request body could not be read: {e}")))?;
        if let Ok(data) = frame.into_data() {
            total += data.len();
            if total <= limit {
                buf.extend_from_slice(&data);
            } else if total > DRAIN_LIMIT {
                break;
            }
        }
    }
    if total > limit {
        return Err(too_large(limit));
    }
    Ok(axum::body::Bytes::from(buf))
}

fn bytes_buf(limit: usize) -> Vec<u8> {
    Vec::with_capacity(limit.min(64 << 10))
}

fn too_large(limit: usize) -> AppError {
    AppError::PayloadTooLarge { message: format!("the request body exceeds the limit of {limit} bytes"), field: None }
}

/// Deepest nesting of arrays and objects a request body may have: every
/// API body is a few levels deep, and deep nesting only costs stack and time.
pub const MAX_JSON_DEPTH: usize = 32;

/// How deeply arrays and objects nest in a JSON text (strings skipped).
fn json_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Deserializes with the path of the offending field in the error.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    let depth = json_depth(bytes);
    if depth > MAX_JSON_DEPTH {
        return Err(AppError::bad_request(
            None,
            format!("the request body nests {depth} levels deep; at most {MAX_JSON_DEPTH} are allowed"),
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, T>(de) {
        Ok(v) => Ok(v),
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                return Err(AppError::bad_request(None, format!("the request body is not valid JSON: {inner}")));
            }
            let message = inner.to_string();
            // The path already ends at an unknown field; a missing field is named only in the message.
            let missing = message.strip_prefix("missing field `").and_then(|rest| rest.split('`').next());
            let field = match (path.as_str(), missing) {
                (".", Some(name)) => name.to_owned(),
                (p, Some(name)) => format!("{p}.{name}"),
                (".", None) => String::new(),
                (p, None) => p.to_owned(),
            };
            let field = (!field.is_empty()).then_some(field);
            let message = match &field {
                Some(f) => format!("{f}: {message}"),
                None => message,
            };
            Err(AppError::BadRequest { message, field })
        }
    }
}

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        match read_body(state, req, false).await? {
            Some(bytes) => parse_json(&bytes).map(ApiJson),
            None => Err(AppError::bad_request(None, "a JSON request body is required")),
        }
    }
}

impl<T: DeserializeOwned + Default> FromRequest<AppState> for OptionalJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        match read_body(state, req, true).await? {
            Some(bytes) => parse_json(&bytes).map(OptionalJson),
            None => Ok(OptionalJson(T::default())),
        }
    }
}

/// Query parameters, with unknown or malformed ones refused by name.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        // A presigned URL's own parameters belong to authentication, not to the operation.
        let params: Vec<(String, String)> =
            form_urlencoded::parse(query.as_bytes()).into_owned().filter(|(k, _)| !k.starts_with("X-Amz-")).collect();
        let filtered = form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(filtered.as_bytes()));
        serde_path_to_error::deserialize::<_, T>(de).map(ApiQuery).map_err(|err| {
            let inner = err.into_inner().to_string();
            let field = inner.split('`').nth(1).map(str::to_owned);
            AppError::BadRequest { message: format!("invalid query string: {inner}"), field }
        })
    }
}

/// The `If-Match` header as a version number: `"5"`, `W/"5"` or `5`; `*` or
/// absent means no precondition.
pub struct IfMatch(pub Option<i64>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(header::IF_MATCH) else {
            return Ok(IfMatch(None));
        };
        let bad =
            || AppError::bad_request(Some("if_match"), "If-Match must be an ETag this API returned, such as \"3\"");
        let text = value.to_str().map_err(|_| bad())?.trim();
        if text == "*" {
            return Ok(IfMatch(None));
        }
        let text = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
        text.parse::<i64>().map(|v| IfMatch(Some(v))).map_err(|_| bad())
    }
}

/// The `Idempotency-Key` header.
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.headers.get(IDEMPOTENCY_KEY_HEADER) {
            None => Ok(IdempotencyKey(None)),
            Some(v) => v
                .to_str()
                .map(|s| IdempotencyKey(Some(s.to_owned())))
                .map_err(|_| AppError::bad_request(Some("idempotency_key"), "Idempotency-Key must be visible ASCII")),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| AppError::Unauthenticated("the request carries no credentials".into()))
    }
}
