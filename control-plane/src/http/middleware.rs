//! Middleware every request passes through: request ids, the request span,
//! metrics, error rendering, authentication and rate limiting.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use berth_api::quotas::RateLimitClass;
use berth_api::{ErrorBody, ErrorCode, REQUEST_ID_HEADER};
use tracing::Instrument;
use tracing::field::Empty;

use super::AppState;
use super::error::{ErrorDraft, draft_response};
use crate::app::AppError;
use crate::ratelimit::Decision;

/// The request's id: the caller's `x-request-id` when it is sane, else a new one.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

fn sane_request_id(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    (!s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic())).then(|| s.to_owned())
}

/// Outermost middleware: one span per request (method, route, status,
/// account, request id, latency), request metrics, and the JSON error body.
pub async fn request_context(mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    let request_id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(sane_request_id)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let span = tracing::info_span!(
        "request",
        method = %method,
        route = %route,
        request_id = %request_id,
        status = Empty,
        account = Empty,
        latency_ms = Empty,
    );
    let mut resp = next.run(req).instrument(span.clone()).await;

    if let Some(draft) = resp.extensions_mut().remove::<ErrorDraft>() {
        resp = render_error(resp.status(), resp.headers().clone(), draft, &request_id);
    } else if resp.status() == StatusCode::METHOD_NOT_ALLOWED {
        resp = render_error(
            resp.status(),
            resp.headers().clone(),
            ErrorDraft {
                code: ErrorCode::MethodNotAllowed,
                message: format!("{method} is not allowed on {route}"),
                field: None,
                quota: None,
            },
            &request_id,
        );
    }
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert(REQUEST_ID_HEADER, v);
    }

    let status = resp.status().as_u16();
    let elapsed = start.elapsed();
    let labels = [("method", method.to_string()), ("route", route), ("status", status.to_string())];
    metrics::counter!("berth_http_requests_total", &labels).increment(1);
    metrics::histogram!("berth_http_request_duration_seconds", &labels[..2]).record(elapsed.as_secs_f64());
    span.record("status", status);
    span.record("latency_ms", elapsed.as_secs_f64() * 1000.0);
    if status >= 500 {
        tracing::warn!(parent: &span, "request failed");
    } else {
        tracing::info!(parent: &span, "request finished");
    }
    resp
}

fn render_error(
    status: StatusCode,
    mut headers: axum::http::HeaderMap,
    draft: ErrorDraft,
    request_id: &str,
) -> Response {
    let body = ErrorBody {
        code: draft.code,
        message: draft.message,
        field: draft.field,
        quota: draft.quota,
        request_id: request_id.to_owned(),
    };
    headers.remove(header::CONTENT_LENGTH);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let mut resp = (status, axum::Json(body)).into_response();
    for (k, v) in headers.iter() {
        resp.headers_mut().insert(k, v.clone());
    }
    resp
}

fn source_ip(req: &Request) -> Option<String> {
    req.extensions().get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip().to_string())
}

/// Authenticates a tenant API request, applies the account's rate limit, and
/// records mutating calls in the audit log. The body is read here (under the
/// size limit) because a SigV4 signature covers it.
pub async fn authenticate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let ip = source_ip(&req);
    let (parts, body) = req.into_parts();
    let method = parts.method.clone();
    let route = parts.extensions.get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let class = match (&method, route.as_deref()) {
        (&axum::http::Method::GET | &axum::http::Method::HEAD, _) => RateLimitClass::Read,
        (&axum::http::Method::POST, Some("/v1/clusters/{cluster}/tasks")) => RateLimitClass::RunTask,
        _ => RateLimitClass::Mutate,
    };
    // A flood from a key whose bucket is already empty costs no database read.
    let claimed_key = crate::auth::sigv4::parse(&parts.uri, &parts.headers).ok().flatten().map(|p| p.access_key_id);
    if let (Some(limiter), Some(key)) = (state.app.rate_limiter(), claimed_key.as_deref())
        && let Some(Decision::Throttled { limit, retry_after_secs }) = limiter.refuse_early(key, class)
    {
        metrics::counter!("berth_rate_limited_total", "class" => class.as_str()).increment(1);
        return AppError::Throttled { retry_after_secs, limit }.into_response();
    }
    let bytes = match super::extract::read_limited(body, state.app.limits().max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let principal = match crate::auth::authenticate(&state.app, &parts, &bytes, ip.as_deref()).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    if let (Some(limiter), Some(key)) = (state.app.rate_limiter(), principal.access_key_id.as_deref())
        && !principal.via_session
    {
        limiter.remember_key(key, principal.account_id);
    }
    tracing::Span::current().record("account", tracing::field::display(principal.account_id));
    let audited =
        !matches!(parts.method, axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS);
    let request_id = parts.extensions.get::<RequestId>().map(|r| r.0.clone()).unwrap_or_default();
    let path = parts.uri.path().to_owned();
    let resp = match rate_limited(&state, principal.account_id, class) {
        Err(throttled) => throttled.into_response(),
        Ok(headers) => {
            let mut req = Request::from_parts(parts, axum::body::Body::from(bytes));
            req.extensions_mut().insert(principal.clone());
            let mut resp = next.run(req).await;
            resp.headers_mut().extend(headers);
            resp
        }
    };
    if audited {
        let outcome =
            resp.extensions().get::<ErrorDraft>().map_or_else(|| "Success".to_owned(), |d| d.code.to_string());
        let record = crate::app::audit::AuditRecord {
            account: principal.scope(),
            access_key_id: principal.access_key_id.clone(),
            action: route.as_deref().and_then(|r| super::operation_id(&method, r)).unwrap_or("unknown").to_owned(),
            resource: path,
            outcome,
            status_code: resp.status().as_u16(),
            source_ip: ip,
            request_id,
        };
        // Written before the response goes out, so an acknowledged call always has its audit entry.
        if let Err(e) = state.app.record_audit(record).await {
            tracing::error!(error = %e, "could not write the audit log");
        }
    }
    resp
}

/// Authenticates a host agent on the agent endpoints.
pub async fn authenticate_host(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let host = match crate::auth::authenticate_host(&state.app, &parts).await {
        Ok(h) => h,
        Err(e) => return e.into_response(),
    };
    req = Request::from_parts(parts, body);
    tracing::Span::current().record("account", tracing::field::display(host.account_id));
    // Agents have their own bucket: a tenant's API burst never delays its heartbeats.
    let headers = match rate_limited(&state, host.account_id, RateLimitClass::Agent) {
        Ok(h) => h,
        Err(throttled) => return throttled.into_response(),
    };
    req.extensions_mut().insert(host);
    let mut resp = next.run(req).await;
    resp.headers_mut().extend(headers);
    resp
}

/// Takes a token from the account's bucket for the class: the `RateLimit-*`
/// headers for the response, or the 429 to answer with.
pub(crate) fn rate_limited(
    state: &AppState,
    account: berth_api::AccountId,
    class: RateLimitClass,
) -> Result<axum::http::HeaderMap, AppError> {
    let mut headers = axum::http::HeaderMap::new();
    let Some(limiter) = state.app.rate_limiter() else { return Ok(headers) };
    match limiter.check(account, class) {
        Decision::Allowed { limit, remaining, reset_secs } => {
            headers.insert("ratelimit-limit", HeaderValue::from(limit));
            headers.insert("ratelimit-remaining", HeaderValue::from(remaining));
            headers.insert("ratelimit-reset", HeaderValue::from(reset_secs));
            Ok(headers)
        }
        Decision::Throttled { limit, retry_after_secs } => {
            metrics::counter!("berth_rate_limited_total", "class" => class.as_str()).increment(1);
            Err(AppError::Throttled { retry_after_secs, limit })
        }
    }
}

/// Abandons a request that runs past the per-request timeout with a specific
/// error (the transaction it was in rolls back). Event streams and followed
/// logs are exempt: they are meant to stay open.
pub async fn request_timeout(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let follows_logs = path.ends_with("/logs") && req.uri().query().is_some_and(|q| q.contains("follow=true"));
    if path == "/v1/events/stream" || path == "/console/events/stream" || follows_logs {
        return next.run(req).await;
    }
    let limit = state.app.limits().request_timeout;
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => AppError::RequestTimeout(limit.as_secs().max(1)).into_response(),
    }
}

/// A panic in a handler becomes a 500 with the usual body, not a dropped connection.
pub fn panic_response(_err: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("handler panicked");
    draft_response(ErrorCode::InternalError, "an internal error occurred; quote the request id when reporting it", None)
}

/// Unknown paths.
pub async fn not_found(req: Request) -> Response {
    AppError::not_found("route", req.uri().path().to_owned()).into_response()
}
