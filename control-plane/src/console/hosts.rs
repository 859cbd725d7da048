//! A host: what it has, what runs on it, and draining it.

use axum::extract::{Path, State};
use axum::response::Response;
use berth_api::hosts::{Host, HostStatus};
use berth_api::tasks::{DesiredStatus, ListTasksQuery};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{self, Page, badge, csrf, form_key, maybe_when, meter, when, wire};
use super::{ConsoleError, ConsoleForm, ROOT, Viewer, form_idempotency, see_other, seg};
use crate::auth::policy::Action;
use crate::http::AppState;

/// The drain button of a host. It carries no version: every placement
/// changes the host's row, and draining twice is harmless.
pub fn drain_form(viewer: &Viewer, cluster: &str, host: &Host) -> Markup {
    html! {
        form class="inline" method="post" action=(format!("{ROOT}/clusters/{}/hosts/{}/drain", seg(cluster), host.id))
            data-confirm=(format!("Drain {}? No new tasks will be placed on it.", host.hostname)) {
            (csrf(viewer)) (form_key())
            button type="submit" class="danger" aria-label=(format!("Drain host {}", host.hostname)) { "Drain" }
        }
    }
}

pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((cluster, host)): Path<(String, String)>,
) -> Page {
    let p = &viewer.principal;
    let h = state.app.get_host(p, &cluster, &host).await?;
    let query = ListTasksQuery {
        host_id: Some(h.id),
        desired_status: Some(DesiredStatus::Running),
        limit: Some(100),
        ..Default::default()
    };
    let tasks = state.app.list_tasks(p, &cluster, &query).await?;
    let c = seg(&cluster);
    Ok(layout::page(
        &viewer,
        &format!("Host {}", h.hostname),
        html! {
            p { a href=(format!("{ROOT}/clusters/{c}")) { "← Cluster " (cluster) } }
            @if viewer.can(Action::UpdateHost, Some(&cluster)) && h.status == HostStatus::Active {
                div class="actions" { (drain_form(&viewer, &cluster, &h)) }
            }
            dl class="facts" {
                dt { "Id" } dd class="mono" { (h.id) }
                dt { "Status" } dd { (badge(&wire(&h.status))) }
                dt { "Agent version" } dd { (h.agent_version) }
                dt { "Registered" } dd { (when(h.registered_at)) }
                dt { "Last heartbeat" } dd { (maybe_when(h.last_heartbeat_at)) }
                dt { "Reserved for the system" } dd { (h.reserved.cpu) " CPU units, " (h.reserved.memory) " MiB" }
                dt { "Dynamic ports" } dd { (h.dynamic_port_range[0]) "–" (h.dynamic_port_range[1]) }
            }
            h2 { "Resources" }
            (meter("CPU", h.used.cpu.into(), h.total.cpu.saturating_sub(h.reserved.cpu).into(), "units"))
            (meter("Memory", h.used.memory.into(), h.total.memory.saturating_sub(h.reserved.memory).into(), "MiB"))
            h2 { "Attributes" }
            dl class="facts" {
                @for (k, v) in &h.attributes { dt class="mono" { (k) } dd class="mono" { (v) } }
            }
            h2 { "Tasks on this host" }
            @if tasks.tasks.is_empty() { p class="muted" { "None." } } @else {
                (super::tasks::table(&cluster, &tasks.tasks))
            }
        },
    ))
}

#[derive(Deserialize)]
pub struct DrainForm {
    idempotency_key: Option<String>,
}

pub async fn drain(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((cluster, host)): Path<(String, String)>,
    ConsoleForm(form): ConsoleForm<DrainForm>,
) -> Result<Response, ConsoleError> {
    let op = format!("POST /v1/clusters/{cluster}/hosts/{host}/drain");
    let idem = form_idempotency(form.idempotency_key.as_deref(), &op, &())?;
    let h = state.app.drain_host(&viewer.principal, &cluster, &host, None, idem.as_ref()).await?;
    Ok(see_other(&format!("{ROOT}/clusters/{}/hosts/{}", seg(&cluster), h.value.id)))
}
