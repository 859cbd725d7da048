//! The page shell, the error page, and small pieces every page uses.

use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};
use serde::Serialize;
use time::OffsetDateTime;

use super::{ROOT, Viewer};
use crate::app::AppError;
use crate::auth::policy::Action;

/// A page without navigation (sign-in, errors).
pub fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Berth" }
                link rel="stylesheet" href=(super::assets::CSS_PATH);
                script src=(super::assets::JS_PATH) defer {}
            }
            body { (body) }
        }
    }
}

/// A signed-in page: navigation, the account, sign-out, then `body`.
pub fn page(viewer: &Viewer, title: &str, body: Markup) -> Markup {
    let p = &viewer.principal;
    bare(
        title,
        html! {
            a class="skip" href="#main" { "Skip to content" }
            header class="top" {
                nav aria-label="Main" {
                    a class="brand" href=(ROOT) { "Berth" }
                    a href=(ROOT) { "Clusters" }
                    a href="/console/task-definitions" { "Task definitions" }
                    a href="/console/events" { "Events" }
                    a href="/console/quotas" { "Quotas" }
                    @if viewer.can(Action::ReadAccount, None) {
                        a href="/console/accounts" { "Accounts" }
                    }
                }
                div class="who" {
                    span { (p.access_key_id.as_deref().unwrap_or("")) " · " (p.role.as_str()) }
                    form method="post" action="/console/sign-out" class="inline" {
                        (csrf(viewer))
                        button type="submit" class="link" { "Sign out" }
                    }
                }
            }
            main id="main" {
                h1 { (title) }
                (body)
            }
        },
    )
}

/// The hidden field every form posts.
pub fn csrf(viewer: &Viewer) -> Markup {
    html! { input type="hidden" name="csrf" value=(viewer.csrf); }
}

/// A fresh idempotency key for one rendering of a form.
pub fn form_key() -> Markup {
    html! { input type="hidden" name="idempotency_key" value=(uuid::Uuid::now_v7().to_string()); }
}

/// Used against total, as a bar with the numbers beside it (near full is a warning).
pub fn meter(label: &str, used: i64, total: i64, unit: &str) -> Markup {
    bar(label, used, total, unit, false)
}

/// Progress towards a goal, as a bar (full is good).
pub fn progress(label: &str, done: i64, goal: i64, unit: &str) -> Markup {
    bar(label, done, goal, unit, true)
}

fn bar(label: &str, used: i64, total: i64, unit: &str, full_is_good: bool) -> Markup {
    let pct = if total > 0 { used.saturating_mul(100) / total } else { 0 };
    let (high, optimum) = if full_is_good { (total, total) } else { (total * 9 / 10, 0) };
    html! {
        div class="meter" {
            span class="meter-label" { (label) }
            meter min="0" max=(total.max(0)) value=(used.clamp(0, total.max(0))) high=(high) optimum=(optimum)
                aria-label=(format!("{label}: {used} of {total} {unit}")) {}
            span class="meter-figures" { (used) " / " (total) " " (unit) " (" (pct) "%)" }
        }
    }
}

/// A status, as text in a badge (the colour only repeats what the text says).
pub fn badge(status: &str) -> Markup {
    html! { span class=(format!("badge s-{}", status.to_ascii_lowercase())) { (status) } }
}

/// An enum as it is spelled on the wire (`RUNNING`, `UserInitiated`).
pub fn wire<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// A time, in UTC.
pub fn when(t: OffsetDateTime) -> Markup {
    let text = t
        .format(&time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC"))
        .unwrap_or_default();
    let iso = t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    html! { time datetime=(iso) { (text) } }
}

pub fn maybe_when(t: Option<OffsetDateTime>) -> Markup {
    match t {
        Some(t) => when(t),
        None => html! { span class="muted" { "—" } },
    }
}

/// The error code of a failed console request, for its audit entry.
#[derive(Clone, Copy, Debug)]
pub struct Outcome(pub berth_api::ErrorCode);

/// A failed console request, shown as a page with the API's error code,
/// status and message (naming the field when one was wrong).
#[derive(Debug)]
pub struct ConsoleError(pub AppError);

impl ConsoleError {
    pub fn csrf() -> ConsoleError {
        ConsoleError(AppError::AccessDenied(
            "the form's CSRF token is missing or wrong: reload the page and send it again".into(),
        ))
    }
}

impl From<AppError> for ConsoleError {
    fn from(e: AppError) -> Self {
        ConsoleError(e)
    }
}

impl From<crate::store::StoreError> for ConsoleError {
    fn from(e: crate::store::StoreError) -> Self {
        ConsoleError(e.into())
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let (code, field) = crate::http::error::code_of(&self.0);
        let status = crate::http::error::status_of(code);
        if status.is_server_error() {
            tracing::error!(error = %self.0, "console request failed");
        }
        let message = if status.is_server_error() {
            "an internal error occurred; the server's log has the details".to_owned()
        } else {
            self.0.to_string()
        };
        let title = status.canonical_reason().unwrap_or("Error");
        let body = bare(
            title,
            html! {
                main class="error-page" {
                    h1 { (status.as_u16()) " " (title) }
                    p role="alert" class="error" {
                        code { (code.to_string()) } ": " (message)
                        @if let Some(field) = field { " (field " code { (field) } ")" }
                    }
                    p { a href=(ROOT) { "Back to the console" } }
                }
            },
        );
        let mut resp = (status, body).into_response();
        resp.extensions_mut().insert(Outcome(code));
        resp
    }
}

pub type Page = Result<Markup, ConsoleError>;
