//! The web console at `/console`: server-rendered HTML over the same app
//! calls the API handlers make, so it has the API's semantics and its
//! authorization (see `docs/console.md`).
//!
//! A browser signs in with an access key; the console keeps the session
//! token it gets in an HttpOnly, SameSite=Strict cookie. Every form carries a
//! CSRF token derived from that cookie, which a page of another origin can
//! neither read nor compute.

mod accounts;
mod assets;
mod clusters;
mod events;
mod hosts;
mod layout;
mod services;
mod session;
mod task_definitions;
mod tasks;

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use berth_api::quotas::RateLimitClass;
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

use crate::app::{AppError, IdempotencyRequest};
use crate::auth::Principal;
use crate::auth::policy::{Action, authorize};
use crate::http::AppState;
use crate::http::middleware::RequestId;

pub use layout::ConsoleError;

/// Where the console lives.
pub const ROOT: &str = "/console";

/// The routes of the console, to merge into the server's router.
pub fn routes(state: AppState) -> Router<AppState> {
    let signed_in = Router::new()
        .route("/console", get(clusters::overview))
        .route("/console/sign-out", post(session::sign_out))
        .route("/console/clusters", post(clusters::create))
        .route("/console/clusters/{cluster}", get(clusters::show))
        .route("/console/clusters/{cluster}/hosts/{host}", get(hosts::show))
        .route("/console/clusters/{cluster}/hosts/{host}/drain", post(hosts::drain))
        .route("/console/clusters/{cluster}/tasks", get(tasks::list).post(tasks::run))
        .route("/console/clusters/{cluster}/tasks/{task}", get(tasks::show))
        .route("/console/clusters/{cluster}/tasks/{task}/stop", post(tasks::stop))
        .route("/console/clusters/{cluster}/tasks/{task}/logs", get(crate::http::handlers::tasks::logs))
        .route("/console/clusters/{cluster}/services/{service}", get(services::show))
        .route("/console/clusters/{cluster}/services/{service}/scale", post(services::scale))
        .route("/console/clusters/{cluster}/services/{service}/deploy", post(services::deploy))
        .route("/console/task-definitions", get(task_definitions::list).post(task_definitions::register))
        .route("/console/task-definitions/{family}", get(task_definitions::show))
        .route("/console/quotas", get(accounts::quotas))
        .route("/console/events", get(events::list))
        .route("/console/events/stream", get(crate::http::handlers::events::stream))
        .route("/console/accounts", get(accounts::list))
        .route("/console/accounts/{account}/status", post(accounts::set_status))
        .route_layer(axum::middleware::from_fn_with_state(state, require_session));
    Router::new()
        .route("/console/", get(|| async { Redirect::to(ROOT) }))
        .route("/console/sign-in", get(session::sign_in_page).post(session::sign_in))
        .route("/console/assets/{file}", get(assets::serve))
        // A console path that is no page: the console's 404, not the API's JSON one.
        .route(
            "/console/{*rest}",
            get(|uri: axum::http::Uri| async move {
                ConsoleError(AppError::not_found("console page", uri.path().to_owned()))
            }),
        )
        .merge(signed_in)
        .layer(axum::middleware::from_fn(security_headers))
}

/// The signed-in caller of a console page, and the CSRF token its forms carry.
#[derive(Clone, Debug)]
pub struct Viewer {
    pub principal: Principal,
    pub csrf: String,
}

impl Viewer {
    /// Whether the viewer may do `action` (on `cluster`): pages show a
    /// button only when it would be allowed, and the app checks again.
    pub fn can(&self, action: Action, cluster: Option<&str>) -> bool {
        authorize(&self.principal, action, cluster).is_ok()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Viewer {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Viewer>()
            .cloned()
            .ok_or_else(|| AppError::Unauthenticated("sign in first".into()).into())
    }
}

/// Signs the request in from its session cookie, or sends a browser to the
/// sign-in page. Writes are rate limited and audited as API writes are.
async fn require_session(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let ip = req.extensions().get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip().to_string());
    let Some(token) = session::cookie(req.headers()) else {
        return to_sign_in(&req);
    };
    let principal = match crate::auth::authenticate_session(&state.app, &token, ip.as_deref()).await {
        Ok(p) => p,
        Err(AppError::Auth { .. }) => return to_sign_in(&req),
        Err(e) => return ConsoleError::from(e).into_response(),
    };
    let write = req.method() != Method::GET && req.method() != Method::HEAD;
    let class = if write { RateLimitClass::Mutate } else { RateLimitClass::Read };
    if let Err(throttled) = crate::http::middleware::rate_limited(&state, principal.account_id, class) {
        return ConsoleError::from(throttled).into_response();
    }
    let route = req.extensions().get::<MatchedPath>().map_or_else(String::new, |p| p.as_str().to_owned());
    let path = req.uri().path().to_owned();
    let request_id = req.extensions().get::<RequestId>().map(|r| r.0.clone()).unwrap_or_default();
    req.extensions_mut().insert(Viewer { principal: principal.clone(), csrf: session::csrf_token(&token) });
    req.extensions_mut().insert(principal.clone());
    let resp = next.run(req).await;
    if write {
        let status = resp.status();
        let record = crate::app::audit::AuditRecord {
            account: principal.scope(),
            access_key_id: principal.access_key_id.clone(),
            action: format!("console POST {route}"),
            resource: path,
            outcome: resp
                .extensions()
                .get::<layout::Outcome>()
                .map_or_else(|| "Success".to_owned(), |o| o.0.to_string()),
            status_code: status.as_u16(),
            source_ip: ip,
            request_id,
        };
        if let Err(e) = state.app.record_audit(record).await {
            tracing::error!(error = %e, "could not write the audit log");
        }
    }
    resp
}

/// A page asked for without a session: the sign-in page, then back here.
fn to_sign_in(req: &Request) -> Response {
    if req.method() == Method::GET {
        let back = req.uri().path_and_query().map_or(ROOT, |p| p.as_str());
        let target = format!("{ROOT}/sign-in?next={}", percent_encoding::utf8_percent_encode(back, QUERY_VALUE));
        Redirect::to(&target).into_response()
    } else {
        ConsoleError::from(AppError::Unauthenticated("the session has ended: sign in again".into())).into_response()
    }
}

/// What must be escaped in a query parameter's value.
const QUERY_VALUE: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'/');

/// Headers on every console response: no framing, no inline script, no
/// sniffing, and nothing cached that a shared machine could show later.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// A form posted from a console page: `application/x-www-form-urlencoded`,
/// with the session's CSRF token in its `csrf` field.
pub struct ConsoleForm<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ConsoleForm<T> {
    type Rejection = ConsoleError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let expected = req.extensions().get::<Viewer>().map(|v| v.csrf.clone());
        let limit = state.app.limits().max_body_bytes;
        let bytes = crate::http::extract::read_limited(req.into_body(), limit).await?;
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| AppError::bad_request(None, format!("the form could not be read: {e}")))?;
        let given = pairs.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v.as_bytes());
        match (expected, given) {
            (Some(expected), Some(given)) if bool::from(expected.as_bytes().ct_eq(given)) => {}
            _ => return Err(ConsoleError::csrf()),
        }
        let value = serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| AppError::bad_request(None, format!("the form could not be read: {e}")))?;
        Ok(ConsoleForm(value))
    }
}

/// The idempotency of a form: each rendered form carries a fresh key, so a
/// form sent twice (a double click, a resubmitted page) acts once.
pub fn form_idempotency<B: serde::Serialize>(
    key: Option<&str>,
    operation: &str,
    body: &B,
) -> Result<Option<IdempotencyRequest>, AppError> {
    key.filter(|k| !k.is_empty()).map(|k| IdempotencyRequest::new(format!("console:{k}"), operation, body)).transpose()
}

/// At most this many of a list are shown on one page.
pub const SHOWN: usize = 1000;

/// Pages through a list call until it ends or `SHOWN` items are in.
pub async fn collect<T, F, Fut>(mut fetch: F) -> crate::app::AppResult<(Vec<T>, bool)>
where
    F: FnMut(berth_api::Page) -> Fut,
    Fut: std::future::Future<Output = crate::app::AppResult<(Vec<T>, Option<String>)>>,
{
    let mut all = Vec::new();
    let mut next_token = None;
    loop {
        let (items, next) = fetch(berth_api::Page { limit: Some(100), next_token: next_token.take() }).await?;
        all.extend(items);
        match next {
            Some(n) if all.len() < SHOWN => next_token = Some(n),
            Some(_) => return Ok((all, true)),
            None => return Ok((all, false)),
        }
    }
}

/// A 303 to a console page after a form did its work.
pub fn see_other(path: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, path.to_owned())]).into_response()
}

/// `s` as one path segment of a console URL.
pub fn seg(s: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}
