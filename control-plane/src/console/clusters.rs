//! The clusters overview, one cluster's page, and creating a cluster.

use axum::extract::{Path, State};
use axum::response::Response;
use berth_api::clusters::CreateClusterRequest;
use berth_api::hosts::{Host, HostStatus};
use berth_api::services::Service;
use berth_api::tasks::TaskStatus;
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{self, Page, badge, csrf, form_key, maybe_when, meter, wire};
use super::{ConsoleError, ConsoleForm, ROOT, Viewer, form_idempotency, see_other, seg};
use super::{SHOWN, collect};
use crate::app::{App, AppResult};
use crate::auth::Principal;
use crate::auth::policy::Action;
use crate::http::AppState;

pub async fn hosts_of(app: &App, principal: &Principal, cluster: &str) -> AppResult<(Vec<Host>, bool)> {
    collect(|page| async move {
        let r = app.list_hosts(principal, cluster, &page).await?;
        Ok((r.hosts, r.next_token))
    })
    .await
}

pub async fn services_of(app: &App, principal: &Principal, cluster: &str) -> AppResult<(Vec<Service>, bool)> {
    collect(|page| async move {
        let r = app.list_services(principal, cluster, &page).await?;
        Ok((r.services, r.next_token))
    })
    .await
}

/// Used and total CPU and memory of the hosts that can take tasks.
fn capacity(hosts: &[Host]) -> Markup {
    let live = hosts.iter().filter(|h| matches!(h.status, HostStatus::Active | HostStatus::Draining));
    let (mut cpu, mut cpu_total, mut mem, mut mem_total) = (0i64, 0i64, 0i64, 0i64);
    for h in live {
        cpu += i64::from(h.used.cpu);
        cpu_total += i64::from(h.total.cpu.saturating_sub(h.reserved.cpu));
        mem += i64::from(h.used.memory);
        mem_total += i64::from(h.total.memory.saturating_sub(h.reserved.memory));
    }
    html! {
        (meter("CPU", cpu, cpu_total, "units"))
        (meter("Memory", mem, mem_total, "MiB"))
    }
}

fn task_counts(cluster: &str, counts: &[(TaskStatus, i64)]) -> Markup {
    html! {
        ul class="counts" aria-label="Tasks by status" {
            @for (status, n) in counts {
                li {
                    a href=(format!("{ROOT}/clusters/{}/tasks?status={}", seg(cluster), status.as_str())) {
                        (badge(status.as_str())) " " (n)
                    }
                }
            }
        }
    }
}

fn services_table(cluster: &str, services: &[Service]) -> Markup {
    html! {
        @if services.is_empty() {
            p class="muted" { "No services." }
        } @else {
            div class="scroll" {
                table class="collapse" {
                    thead { tr { th { "Service" } th { "Status" } th { "Revision" } th { "Desired" } th { "Running" } th { "Pending" } th { "Healthy" } } }
                    tbody {
                        @for s in services {
                            tr {
                                td data-label="Service" { a href=(format!("{ROOT}/clusters/{}/services/{}", seg(cluster), seg(&s.name))) { (s.name) } }
                                td data-label="Status" { (badge(&wire(&s.status))) }
                                td data-label="Revision" { (s.task_definition) }
                                td data-label="Desired" { (s.desired_count) }
                                td data-label="Running" { (s.running_count) }
                                td data-label="Pending" { (s.pending_count) }
                                td data-label="Healthy" {
                                    (s.healthy_count)
                                    @if s.healthy_count < s.desired_count { " " span class="badge s-unhealthy" { "below desired" } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

pub async fn overview(State(state): State<AppState>, viewer: Viewer) -> Page {
    let app = &state.app;
    let p = &viewer.principal;
    let (clusters, more) = collect(|page| async move {
        let r = app.list_clusters(p, &page).await?;
        Ok((r.clusters, r.next_token))
    })
    .await?;
    let mut cards = Vec::new();
    for c in &clusters {
        let (hosts, _) = hosts_of(app, p, &c.name).await?;
        let counts = app.count_tasks_by_status(p, &c.name).await?;
        let (services, _) = services_of(app, p, &c.name).await?;
        cards.push(html! {
            section class="card" aria-labelledby=(format!("cluster-{}", c.id)) {
                h2 id=(format!("cluster-{}", c.id)) {
                    a href=(format!("{ROOT}/clusters/{}", seg(&c.name))) { (c.name) } " " (badge(&wire(&c.status)))
                }
                p class="muted" { (hosts.len()) " hosts · " (services.len()) " services · " (c.active_tasks_count) " active tasks" }
                (capacity(&hosts))
                (task_counts(&c.name, &counts))
                @if !services.is_empty() {
                    ul aria-label="Services" {
                        @for s in &services {
                            li {
                                a href=(format!("{ROOT}/clusters/{}/services/{}", seg(&c.name), seg(&s.name))) { (s.name) }
                                ": " (s.running_count) " of " (s.desired_count) " running, " (s.healthy_count) " healthy"
                            }
                        }
                    }
                }
            }
        });
    }
    Ok(layout::page(
        &viewer,
        "Clusters",
        html! {
            @if viewer.can(Action::CreateCluster, None) {
                form class="row" method="post" action="/console/clusters" {
                    (csrf(&viewer)) (form_key())
                    div { label for="new-cluster" { "New cluster name" } input id="new-cluster" name="name" required maxlength="255"; }
                    button type="submit" { "Create cluster" }
                }
            }
            @if clusters.is_empty() { p class="muted" { "No clusters yet." } }
            div class="cards" { @for card in cards { (card) } }
            @if more { p class="muted" { "Only the first " (SHOWN) " clusters are shown." } }
        },
    ))
}

#[derive(Deserialize)]
pub struct CreateForm {
    name: String,
    idempotency_key: Option<String>,
}

pub async fn create(
    State(state): State<AppState>,
    viewer: Viewer,
    ConsoleForm(form): ConsoleForm<CreateForm>,
) -> Result<Response, ConsoleError> {
    let req = CreateClusterRequest { name: form.name.trim().to_owned(), tags: Default::default(), client_token: None };
    let idem = form_idempotency(form.idempotency_key.as_deref(), "POST /v1/clusters", &req)?;
    let w = state.app.create_cluster(&viewer.principal, req, idem.as_ref()).await?;
    Ok(see_other(&format!("{ROOT}/clusters/{}", seg(&w.value.name))))
}

pub async fn show(State(state): State<AppState>, viewer: Viewer, Path(cluster): Path<String>) -> Page {
    let app = &state.app;
    let p = &viewer.principal;
    let c = app.get_cluster(p, &cluster).await?;
    let (hosts, more_hosts) = hosts_of(app, p, &c.name).await?;
    let counts = app.count_tasks_by_status(p, &c.name).await?;
    let (services, _) = services_of(app, p, &c.name).await?;
    let name = &c.name;
    let can_drain = viewer.can(Action::UpdateHost, Some(name));
    Ok(layout::page(
        &viewer,
        &format!("Cluster {name}"),
        html! {
            p { (badge(&wire(&c.status))) " " (c.active_tasks_count) " active tasks · "
                a href=(format!("{ROOT}/clusters/{}/tasks", seg(name))) { "All tasks" }
                @if viewer.can(Action::RunTask, Some(name)) {
                    " · " a href=(format!("{ROOT}/clusters/{}/tasks#run", seg(name))) { "Run a task" }
                }
            }
            h2 { "Capacity" }
            (capacity(&hosts))
            h2 { "Tasks by status" }
            (task_counts(name, &counts))
            h2 { "Services" }
            (services_table(name, &services))
            h2 { "Hosts" }
            @if hosts.is_empty() {
                p class="muted" { "No hosts. Register one with " code { "berth agent --cluster " (name) } "." }
            } @else {
                div class="scroll" {
                    table class="collapse" {
                        thead { tr { th { "Host" } th { "Status" } th { "CPU" } th { "Memory" } th { "Last heartbeat" } th { span class="visually-hidden" { "Actions" } } } }
                        tbody {
                            @for h in &hosts {
                                tr {
                                    td data-label="Host" { a href=(format!("{ROOT}/clusters/{}/hosts/{}", seg(name), h.id)) { (h.hostname) } br; span class="mono muted" { (h.id) } }
                                    td data-label="Status" { (badge(&wire(&h.status))) }
                                    td data-label="CPU" { (meter("CPU", h.used.cpu.into(), h.total.cpu.saturating_sub(h.reserved.cpu).into(), "units")) }
                                    td data-label="Memory" { (meter("Memory", h.used.memory.into(), h.total.memory.saturating_sub(h.reserved.memory).into(), "MiB")) }
                                    td data-label="Last heartbeat" { (maybe_when(h.last_heartbeat_at)) }
                                    td data-label="Actions" {
                                        @if can_drain && h.status == HostStatus::Active {
                                            (super::hosts::drain_form(&viewer, name, h))
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                @if more_hosts { p class="muted" { "Only the first " (SHOWN) " hosts are shown." } }
            }
        },
    ))
}
