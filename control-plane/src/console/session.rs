//! Signing in with an access key, and out.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use berth_api::auth::CreateSessionRequest;
use maud::html;
use serde::Deserialize;

use super::layout::{self, ConsoleError};
use super::{ConsoleForm, ROOT, Viewer, see_other};
use crate::app::AppError;
use crate::http::AppState;
use crate::http::middleware::RequestId;

const COOKIE: &str = "berth_session";

/// The session token in the request's cookie, if any.
pub fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|v| !v.is_empty())
}

/// The CSRF token of a session: a hash of its token, which only pages of
/// this origin ever see (the cookie is HttpOnly and SameSite=Strict).
pub fn csrf_token(session_token: &str) -> String {
    crate::auth::sha256_hex(format!("berth-console-csrf\0{session_token}").as_bytes())
}

/// `Secure` when the browser reached us over TLS, which the server knows
/// only from the proxy that terminated it.
fn secure(headers: &HeaderMap) -> bool {
    headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

fn set_cookie(value: &str, max_age: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let cookie = format!("{COOKIE}={value}; Path={ROOT}; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}");
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static("berth_session=; Max-Age=0"))
}

#[derive(Deserialize)]
pub struct SignInQuery {
    next: Option<String>,
}

/// Only a console path may be returned to: never another site.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with(ROOT) && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => ROOT.to_owned(),
    }
}

pub async fn sign_in_page(Query(q): Query<SignInQuery>) -> Response {
    page(&safe_next(q.next.as_deref()), None).into_response()
}

fn page(next: &str, error: Option<&str>) -> maud::Markup {
    layout::bare(
        "Sign in",
        html! {
            main class="sign-in" {
                h1 { "Sign in to Berth" }
                @if let Some(error) = error {
                    p class="error" role="alert" id="sign-in-error" { (error) }
                }
                form method="post" action="/console/sign-in" {
                    input type="hidden" name="next" value=(next);
                    label for="access_key_id" { "Access key id" }
                    input id="access_key_id" name="access_key_id" type="text" required autocomplete="username"
                        autocapitalize="none" spellcheck="false";
                    label for="secret_access_key" { "Secret access key" }
                    input id="secret_access_key" name="secret_access_key" type="password" required
                        autocomplete="current-password";
                    button type="submit" { "Sign in" }
                }
                p class="hint" { "Use an access key of your account. The console keeps a session of an hour in a cookie." }
            }
        },
    )
}

#[derive(Deserialize)]
pub struct SignInForm {
    access_key_id: String,
    secret_access_key: String,
    next: Option<String>,
}

pub async fn sign_in(State(state): State<AppState>, req: axum::extract::Request) -> Result<Response, ConsoleError> {
    let (parts, body) = req.into_parts();
    let headers = parts.headers;
    let ip = parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip().to_string());
    let request_id = parts.extensions.get::<RequestId>().map(|r| r.0.clone());
    let body = crate::http::extract::read_limited(body, state.app.limits().max_body_bytes).await?;
    let form: SignInForm = serde_urlencoded::from_bytes(&body)
        .map_err(|e| AppError::bad_request(None, format!("the sign-in form could not be read: {e}")))?;
    let next = safe_next(form.next.as_deref());
    let key_id = form.access_key_id.trim();
    let principal =
        match crate::auth::authenticate_secret(&state.app, key_id, &form.secret_access_key, ip.as_deref()).await {
            Ok(p) => p,
            Err(AppError::Auth { code, message }) => {
                let request_id = request_id.unwrap_or_default();
                failed_sign_in(&state, key_id, code, ip, request_id).await?;
                return Ok((axum::http::StatusCode::UNAUTHORIZED, page(&next, Some(&message))).into_response());
            }
            Err(e) => return Err(e.into()),
        };
    let session = state.app.create_session(&principal, CreateSessionRequest { duration_seconds: None }).await?;
    let max_age = (session.expires_at - time::OffsetDateTime::now_utc()).whole_seconds().max(0);
    let mut resp = see_other(&next);
    resp.headers_mut().insert(header::SET_COOKIE, set_cookie(&session.token, max_age, secure(&headers)));
    Ok(resp)
}

/// A refused sign-in with an existing key goes to that key's account's audit
/// log, and takes a token from its account's write budget: guessing a
/// secret is throttled like any other burst of writes, and the owner sees it.
async fn failed_sign_in(
    state: &AppState,
    key_id: &str,
    code: berth_api::ErrorCode,
    source_ip: Option<String>,
    request_id: String,
) -> Result<(), ConsoleError> {
    let Some(found) = crate::store::access_keys::find_with_account(state.app.db(), key_id).await? else {
        return Ok(());
    };
    let account = berth_api::AccountId(found.key.account_id);
    let record = crate::app::audit::AuditRecord {
        account: crate::store::AccountScope::new(account),
        access_key_id: Some(key_id.to_owned()),
        action: "console SignIn".to_owned(),
        resource: format!("{ROOT}/sign-in"),
        outcome: code.to_string(),
        status_code: 401,
        source_ip,
        request_id,
    };
    state.app.record_audit(record).await?;
    crate::http::middleware::rate_limited(state, account, berth_api::quotas::RateLimitClass::Mutate)?;
    Ok(())
}

#[derive(Deserialize)]
pub struct SignOutForm {}

/// Forgets the session in this browser. The token itself stays valid until
/// it expires (at most the session lifetime): sessions are stateless JWTs.
pub async fn sign_out(_viewer: Viewer, headers: HeaderMap, ConsoleForm(_): ConsoleForm<SignOutForm>) -> Response {
    let mut resp = see_other(&format!("{ROOT}/sign-in"));
    resp.headers_mut().insert(header::SET_COOKIE, set_cookie("", 0, secure(&headers)));
    resp
}
