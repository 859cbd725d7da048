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

pub async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ConsoleError> {
    let form: SignInForm = serde_urlencoded::from_bytes(&body)
        .map_err(|e| AppError::bad_request(None, format!("the sign-in form could not be read: {e}")))?;
    let next = safe_next(form.next.as_deref());
    let principal =
        match crate::auth::authenticate_secret(&state.app, form.access_key_id.trim(), &form.secret_access_key, None)
            .await
        {
            Ok(p) => p,
            Err(AppError::Auth { message, .. }) => {
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

#[derive(Deserialize)]
pub struct SignOutForm {}

/// Forgets the session in this browser. The token itself stays valid until
/// it expires (at most the session lifetime): sessions are stateless JWTs.
pub async fn sign_out(_viewer: Viewer, headers: HeaderMap, ConsoleForm(_): ConsoleForm<SignOutForm>) -> Response {
    let mut resp = see_other(&format!("{ROOT}/sign-in"));
    resp.headers_mut().insert(header::SET_COOKIE, set_cookie("", 0, secure(&headers)));
    resp
}
