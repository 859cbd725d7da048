//! A service: desired, running and healthy counts, its deployments and
//! events; scaling it and deploying another revision.

use axum::extract::{Path, State};
use axum::response::Response;
use berth_api::services::{DeploymentState, UpdateServiceRequest};
use maud::html;
use serde::Deserialize;

use super::layout::{self, Page, badge, csrf, form_key, maybe_when, progress, when, wire};
use super::{ConsoleError, ConsoleForm, ROOT, Viewer, form_idempotency, see_other, seg};
use crate::app::AppError;
use crate::auth::policy::Action;
use crate::http::AppState;

pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((cluster, service)): Path<(String, String)>,
) -> Page {
    let p = &viewer.principal;
    let s = state.app.get_service(p, &cluster, &service).await?;
    let history = state
        .app
        .list_deployments(p, &cluster, &service, &berth_api::Page { limit: Some(20), next_token: None })
        .await?;
    let family = s.task_definition.split(':').next().unwrap_or_default().to_owned();
    let can_update = viewer.can(Action::UpdateService, Some(&cluster));
    let revisions = if can_update {
        state
            .app
            .list_task_definition_revisions(p, &family, &berth_api::Page { limit: Some(100), next_token: None })
            .await?
            .task_definitions
    } else {
        Vec::new()
    };
    let (c, sv) = (seg(&cluster), seg(&s.name));
    let desired = i64::from(s.desired_count);
    Ok(layout::page(
        &viewer,
        &format!("Service {}", s.name),
        html! {
            p { a href=(format!("{ROOT}/clusters/{c}")) { "← Cluster " (cluster) } }
            p { (badge(&wire(&s.status))) " " (wire(&s.scheduling_strategy)) " · " (wire(&s.launch_type)) " · revision " (s.task_definition) }
            h2 { "Health" }
            dl class="facts" id="service-counts" {
                dt { "Desired" } dd { (s.desired_count) }
                dt { "Running" } dd { (s.running_count) }
                dt { "Pending" } dd { (s.pending_count) }
                dt { "Healthy" } dd { (s.healthy_count) }
            }
            (progress("Running", s.running_count.into(), desired, "tasks"))
            (progress("Healthy", s.healthy_count.into(), desired, "tasks"))
            p { a href=(format!("{ROOT}/clusters/{c}/tasks?family={}", seg(&family))) { "Tasks of " (family) } }
            @if can_update {
                h2 { "Change" }
                form class="row" method="post" action=(format!("{ROOT}/clusters/{c}/services/{sv}/scale")) {
                    (csrf(&viewer)) (form_key())
                    input type="hidden" name="version" value=(s.version);
                    div { label for="desired-count" { "Desired count" }
                          input id="desired-count" name="desired_count" type="number" min="0" required value=(s.desired_count); }
                    button type="submit" { "Scale" }
                }
                form class="row" method="post" action=(format!("{ROOT}/clusters/{c}/services/{sv}/deploy")) {
                    (csrf(&viewer)) (form_key())
                    input type="hidden" name="version" value=(s.version);
                    div { label for="deploy-revision" { "Revision to deploy" }
                        select id="deploy-revision" name="task_definition" required {
                            @for td in &revisions {
                                @let r = format!("{}:{}", td.family, td.revision);
                                option value=(r) selected[r == s.task_definition] { (r) " (" (wire(&td.status)) ")" }
                            }
                        }
                    }
                    button type="submit" { "Deploy" }
                }
            }
            h2 { "Deployments" }
            div class="scroll" {
                table class="collapse" {
                    thead { tr { th { "Revision" } th { "State" } th { "Progress" } th { "Failed tasks" } th { "Trigger" } th { "Started" } th { "Finished" } } }
                    tbody {
                        @for d in &history.deployments {
                            tr {
                                td data-label="Revision" { (d.task_definition) @if d.primary { " " span class="badge" { "primary" } } }
                                td data-label="State" { (badge(&wire(&d.state))) @if let Some(r) = &d.reason { br; span class="muted" { (r) } } }
                                td data-label="Progress" {
                                    @if d.state == DeploymentState::InProgress || d.primary {
                                        (progress("Healthy", d.healthy_count.into(), if d.primary { desired } else { i64::from(d.running_count) }, "tasks"))
                                    } @else { (d.running_count) " running" }
                                }
                                td data-label="Failed tasks" { (d.failed_tasks) " / " (d.failure_threshold) }
                                td data-label="Trigger" { (d.trigger) }
                                td data-label="Started" { (when(d.created_at)) }
                                td data-label="Finished" { (maybe_when(d.finished_at)) }
                            }
                        }
                    }
                }
            }
            h2 { "Events" }
            @if s.events.is_empty() { p class="muted" { "None yet." } }
            ul {
                @for e in &s.events { li { (when(e.at)) " " (e.message) } }
            }
        },
    ))
}

#[derive(Deserialize)]
pub struct ScaleForm {
    desired_count: String,
    version: Option<i64>,
    idempotency_key: Option<String>,
}

pub async fn scale(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((cluster, service)): Path<(String, String)>,
    ConsoleForm(form): ConsoleForm<ScaleForm>,
) -> Result<Response, ConsoleError> {
    let count = form.desired_count.trim().parse::<u32>().map_err(|_| {
        AppError::validation(
            "desired_count",
            format!("desired_count must be a whole number, got {:?}", form.desired_count),
        )
    })?;
    let req = UpdateServiceRequest { desired_count: Some(count), ..Default::default() };
    update(&state, &viewer, &cluster, &service, form.version, form.idempotency_key.as_deref(), req).await
}

#[derive(Deserialize)]
pub struct DeployForm {
    task_definition: String,
    version: Option<i64>,
    idempotency_key: Option<String>,
}

pub async fn deploy(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((cluster, service)): Path<(String, String)>,
    ConsoleForm(form): ConsoleForm<DeployForm>,
) -> Result<Response, ConsoleError> {
    let req =
        UpdateServiceRequest { task_definition: Some(form.task_definition.trim().to_owned()), ..Default::default() };
    update(&state, &viewer, &cluster, &service, form.version, form.idempotency_key.as_deref(), req).await
}

async fn update(
    state: &AppState,
    viewer: &Viewer,
    cluster: &str,
    service: &str,
    version: Option<i64>,
    key: Option<&str>,
    req: UpdateServiceRequest,
) -> Result<Response, ConsoleError> {
    let idem = form_idempotency(key, &format!("PATCH /v1/clusters/{cluster}/services/{service}"), &req)?;
    let s = state.app.update_service(&viewer.principal, cluster, service, version, req, idem.as_ref()).await?;
    Ok(see_other(&format!("{ROOT}/clusters/{}/services/{}", seg(cluster), seg(&s.value.name))))
}
