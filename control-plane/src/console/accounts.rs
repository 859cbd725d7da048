//! The account's quotas, and, for the operator, every account with
//! suspension and reactivation.

use axum::extract::{Path, State};
use axum::response::Response;
use berth_api::auth::{AccountStatus, SuspendAccountRequest};
use maud::html;
use serde::Deserialize;

use super::layout::{self, Page, badge, csrf, form_key, meter, when, wire};
use super::{ConsoleError, ConsoleForm, ROOT, Viewer, form_idempotency, see_other};
use crate::auth::policy::Action;
use crate::http::AppState;

pub async fn quotas(State(state): State<AppState>, viewer: Viewer) -> Page {
    let quotas = state.app.list_quotas(&viewer.principal).await?.quotas;
    Ok(layout::page(
        &viewer,
        "Quotas",
        html! {
            p class="muted" { "What this account may use, and what it uses now. The operator sets the limits." }
            div class="scroll" {
                table class="collapse" {
                    thead { tr { th { "Quota" } th { "Usage" } th { "Limit from" } } }
                    tbody {
                        @for q in &quotas {
                            tr {
                                td data-label="Quota" { code { (wire(&q.name)) } }
                                td data-label="Usage" { (meter(&wire(&q.name), q.usage, q.limit, "")) }
                                td data-label="Limit from" { (wire(&q.source)) }
                            }
                        }
                    }
                }
            }
        },
    ))
}

pub async fn list(State(state): State<AppState>, viewer: Viewer) -> Page {
    let (accounts, more) = super::collect(|page| {
        let (app, p) = (&state.app, &viewer.principal);
        async move {
            let r = app.list_accounts(p, &page).await?;
            Ok((r.accounts, r.next_token))
        }
    })
    .await?;
    let can_update = viewer.can(Action::UpdateAccount, None);
    Ok(layout::page(
        &viewer,
        "Accounts",
        html! {
            div class="scroll" {
                table class="collapse" {
                    thead { tr { th { "Account" } th { "Status" } th { "Created" } th { span class="visually-hidden" { "Actions" } } } }
                    tbody {
                        @for a in &accounts {
                            tr {
                                td data-label="Account" { (a.name) @if a.is_operator { " " span class="badge" { "operator" } } br; span class="mono muted" { (a.id) } }
                                td data-label="Status" { (badge(&wire(&a.status))) @if let Some(r) = &a.status_reason { br; span class="muted" { (r) } } }
                                td data-label="Created" { (when(a.created_at)) }
                                td data-label="Actions" {
                                    @if can_update && !a.is_operator {
                                        form class="row" method="post" action=(format!("{ROOT}/accounts/{}/status", a.id)) {
                                            (csrf(&viewer)) (form_key())
                                            input type="hidden" name="version" value=(a.version);
                                            @if a.status == AccountStatus::Active {
                                                input type="hidden" name="action" value="suspend";
                                                div { label for=(format!("reason-{}", a.id)) { "Reason" }
                                                      input id=(format!("reason-{}", a.id)) name="reason" maxlength="255"; }
                                                button type="submit" class="danger" aria-label=(format!("Suspend {}", a.name)) { "Suspend" }
                                            } @else {
                                                input type="hidden" name="action" value="reactivate";
                                                button type="submit" aria-label=(format!("Reactivate {}", a.name)) { "Reactivate" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if more { p class="muted" { "Only the first " (super::SHOWN) " accounts are shown." } }
        },
    ))
}

#[derive(Deserialize)]
pub struct StatusForm {
    action: String,
    reason: Option<String>,
    version: Option<i64>,
    idempotency_key: Option<String>,
}

pub async fn set_status(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(account): Path<String>,
    ConsoleForm(form): ConsoleForm<StatusForm>,
) -> Result<Response, ConsoleError> {
    let suspend = match form.action.as_str() {
        "suspend" => true,
        "reactivate" => false,
        other => {
            return Err(crate::app::AppError::validation(
                "action",
                format!("action must be suspend or reactivate, got {other:?}"),
            )
            .into());
        }
    };
    let req = SuspendAccountRequest { reason: form.reason.filter(|r| !r.trim().is_empty()) };
    let op = format!("POST /v1/accounts/{account}/{}", form.action);
    let idem = form_idempotency(form.idempotency_key.as_deref(), &op, &req)?;
    state.app.set_account_status(&viewer.principal, &account, suspend, req, form.version, idem.as_ref()).await?;
    Ok(see_other(&format!("{ROOT}/accounts")))
}
