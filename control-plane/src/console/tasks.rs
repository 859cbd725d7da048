//! Tasks: the list with filters, running one from a form, a task's page with
//! its timeline, containers, placement and live logs, and stopping it.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use berth_api::tasks::{DesiredStatus, ListTasksQuery, RunTaskRequest, StopTaskRequest, Task, TaskStatus};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{self, Page, badge, csrf, form_key, maybe_when, when, wire};
use super::{ConsoleError, ConsoleForm, ROOT, Viewer, form_idempotency, see_other, seg};
use crate::app::AppError;
use crate::auth::policy::Action;
use crate::http::AppState;

/// A table of tasks, each linking to its page.
pub fn table(cluster: &str, tasks: &[Task]) -> Markup {
    html! {
        div class="scroll" {
            table class="collapse" {
                thead { tr { th { "Task" } th { "Definition" } th { "Status" } th { "Desired" } th { "Started by" } th { "Created" } } }
                tbody {
                    @for t in tasks {
                        tr {
                            td data-label="Task" class="mono" { a href=(format!("{ROOT}/clusters/{}/tasks/{}", seg(cluster), t.id)) { (t.id) } }
                            td data-label="Definition" { (t.task_definition) }
                            td data-label="Status" { (badge(t.last_status.as_str())) }
                            td data-label="Desired" { (wire(&t.desired_status)) }
                            td data-label="Started by" { (t.started_by.as_deref().unwrap_or("")) }
                            td data-label="Created" { (when(t.created_at)) }
                        }
                    }
                }
            }
        }
    }
}

#[derive(Deserialize, Default)]
pub struct ListFilter {
    status: Option<String>,
    family: Option<String>,
    next: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(cluster): Path<String>,
    Query(filter): Query<ListFilter>,
) -> Page {
    let status = match filter.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(TaskStatus::parse(s).ok_or_else(|| {
            AppError::validation(
                "status",
                format!("status must be one of PROVISIONING, PENDING, RUNNING, STOPPING, STOPPED; got {s:?}"),
            )
        })?),
    };
    let family = filter.family.as_deref().map(str::trim).filter(|f| !f.is_empty()).map(str::to_owned);
    let query = ListTasksQuery {
        last_status: status,
        family: family.clone(),
        limit: Some(100),
        next_token: filter.next.clone().filter(|n| !n.is_empty()),
        ..Default::default()
    };
    let p = &viewer.principal;
    let page = state.app.list_tasks(p, &cluster, &query).await?;
    let families = if viewer.can(Action::RunTask, Some(&cluster)) {
        state
            .app
            .list_task_definition_families(p, &berth_api::Page { limit: Some(100), next_token: None })
            .await?
            .families
    } else {
        Vec::new()
    };
    let c = seg(&cluster);
    let next_link = page.next_token.as_ref().map(|n| {
        let mut q = form_urlencoded::Serializer::new(String::new());
        if let Some(s) = status {
            q.append_pair("status", s.as_str());
        }
        if let Some(f) = &family {
            q.append_pair("family", f);
        }
        q.append_pair("next", n);
        format!("{ROOT}/clusters/{c}/tasks?{}", q.finish())
    });
    Ok(layout::page(
        &viewer,
        &format!("Tasks of {cluster}"),
        html! {
            p { a href=(format!("{ROOT}/clusters/{c}")) { "← Cluster " (cluster) } }
            form class="row" method="get" action=(format!("{ROOT}/clusters/{c}/tasks")) role="search" {
                div {
                    label for="filter-status" { "Status" }
                    select id="filter-status" name="status" {
                        option value="" selected[status.is_none()] { "Any" }
                        @for s in TaskStatus::ALL { option value=(s.as_str()) selected[status == Some(s)] { (s.as_str()) } }
                    }
                }
                div { label for="filter-family" { "Family" } input id="filter-family" name="family" value=(family.as_deref().unwrap_or("")); }
                button type="submit" { "Filter" }
            }
            @if page.tasks.is_empty() { p class="muted" { "No tasks match." } } @else { (table(&cluster, &page.tasks)) }
            @if let Some(link) = next_link { p { a href=(link) { "Next page →" } } }
            @if viewer.can(Action::RunTask, Some(&cluster)) {
                h2 id="run" { "Run a task" }
                form class="stack" method="post" action=(format!("{ROOT}/clusters/{c}/tasks")) {
                    (csrf(&viewer)) (form_key())
                    label for="run-td" { "Task definition (family, or family:revision)" }
                    input id="run-td" name="task_definition" required list="families" autocomplete="off";
                    datalist id="families" { @for f in &families { option value=(f.family) {} } }
                    label for="run-count" { "Count" }
                    input id="run-count" name="count" type="number" min="1" value="1" required;
                    div { input id="run-queue" name="queue" type="checkbox" value="true"; " " label for="run-queue" { "Wait for capacity if none is free now" } }
                    div { button type="submit" { "Run task" } }
                }
            }
        },
    ))
}

#[derive(Deserialize)]
pub struct RunForm {
    task_definition: String,
    count: String,
    queue: Option<String>,
    idempotency_key: Option<String>,
}

pub async fn run(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(cluster): Path<String>,
    ConsoleForm(form): ConsoleForm<RunForm>,
) -> Result<Response, ConsoleError> {
    let count =
        form.count.trim().parse::<u32>().map_err(|_| {
            AppError::validation("count", format!("count must be a whole number, got {:?}", form.count))
        })?;
    let req = RunTaskRequest {
        task_definition: form.task_definition.trim().to_owned(),
        count,
        overrides: Default::default(),
        started_by: Some("console".to_owned()),
        tags: Default::default(),
        client_token: None,
        placement_strategy: Vec::new(),
        placement_constraints: Vec::new(),
        queue: form.queue.is_some(),
        launch_type: Default::default(),
    };
    let idem = form_idempotency(form.idempotency_key.as_deref(), &format!("POST /v1/clusters/{cluster}/tasks"), &req)?;
    let out = state.app.run_task(&viewer.principal, &cluster, req, idem.as_ref()).await?.value;
    let c = seg(&cluster);
    if let ([task], []) = (out.tasks.as_slice(), out.failures.as_slice()) {
        return Ok(see_other(&format!("{ROOT}/clusters/{c}/tasks/{}", task.id)));
    }
    Ok(layout::page(
        &viewer,
        "Run a task",
        html! {
            p { (out.tasks.len()) " of " (count) " tasks started." }
            @if !out.tasks.is_empty() { (table(&cluster, &out.tasks)) }
            @if !out.failures.is_empty() {
                h2 { "Not placed" }
                ul { @for f in &out.failures { li { code { (f.reason) } @if let Some(d) = &f.detail { ": " (d) } } } }
            }
            p { a href=(format!("{ROOT}/clusters/{c}/tasks")) { "Back to the tasks" } }
        },
    )
    .into_response())
}

pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((cluster, task)): Path<(String, String)>,
) -> Page {
    let t = state.app.get_task(&viewer.principal, &cluster, &task).await?;
    let c = seg(&cluster);
    let base = format!("{ROOT}/clusters/{c}/tasks/{}", t.id);
    let steps = [
        ("PROVISIONING", Some(t.created_at)),
        ("PENDING", t.pending_at),
        ("RUNNING", t.running_at),
        ("STOPPING", t.stopping_at),
        ("STOPPED", t.stopped_at),
    ];
    let can_stop = viewer.can(Action::StopTask, Some(&cluster)) && t.desired_status == DesiredStatus::Running;
    Ok(layout::page(
        &viewer,
        &format!("Task {}", t.id),
        html! {
            p { a href=(format!("{ROOT}/clusters/{c}/tasks")) { "← Tasks of " (cluster) } }
            p id="task-status" { "Status " (badge(t.last_status.as_str())) " · desired " (wire(&t.desired_status)) }
            @if can_stop {
                div class="actions" {
                    form method="post" action=(format!("{base}/stop")) data-confirm="Stop this task?" {
                        (csrf(&viewer)) (form_key())
                        input type="hidden" name="version" value=(t.version);
                        button type="submit" class="danger" { "Stop task" }
                    }
                }
            }
            h2 { "Timeline" }
            ol class="timeline" {
                @for (name, at) in steps {
                    li class=[at.map(|_| "reached")] { strong { (name) } br; (maybe_when(at)) }
                }
            }
            h2 { "Details" }
            dl class="facts" {
                dt { "Task definition" } dd { a href=(format!("{ROOT}/task-definitions/{}", seg(t.task_definition.split(':').next().unwrap_or("")))) { (t.task_definition) } }
                dt { "Launch type" } dd { (wire(&t.launch_type)) }
                dt { "Size" } dd { (t.cpu) " CPU units, " (t.memory) " MiB" }
                dt { "Host" } dd {
                    @match t.host_id {
                        Some(h) => a class="mono" href=(format!("{ROOT}/clusters/{c}/hosts/{h}")) { (h) },
                        None => span class="muted" { "none" },
                    }
                }
                dt { "Started by" } dd { (t.started_by.as_deref().unwrap_or("—")) }
                @if let Some(s) = t.service_id { dt { "Service" } dd class="mono" { (s) } }
                @if let Some(h) = t.health_status { dt { "Health" } dd { (badge(&wire(&h))) } }
                @if let Some(code) = t.stop_code { dt { "Stop code" } dd { code { (wire(&code)) } } }
                @if let Some(r) = &t.stopped_reason { dt { "Stopped reason" } dd { (r) } }
            }
            h2 { "Containers" }
            div class="scroll" {
                table class="collapse" {
                    thead { tr { th { "Name" } th { "Image" } th { "Status" } th { "Exit code" } th { "Reason" } th { "Restarts" } th { "Ports" } } }
                    tbody {
                        @for ct in &t.containers {
                            tr {
                                td data-label="Name" { (ct.name) @if !ct.essential { " " span class="muted" { "(not essential)" } } }
                                td data-label="Image" class="mono" { (ct.image) }
                                td data-label="Status" { (badge(ct.last_status.as_str())) }
                                td data-label="Exit code" { @if let Some(x) = ct.exit_code { (x) } @else { span class="muted" { "—" } } }
                                td data-label="Reason" { (ct.reason.as_deref().unwrap_or("")) }
                                td data-label="Restarts" { (ct.restart_count) }
                                td data-label="Ports" { @for b in &ct.network_bindings { (format!("{}→{}/{} ", b.host_port, b.container_port, wire(&b.protocol))) } }
                            }
                        }
                    }
                }
            }
            h2 { "Placement" }
            @match &t.placement {
                None => p class="muted" { "No placement was recorded (the task was never placed, or runs on managed capacity)." },
                Some(d) => dl class="facts" {
                    dt { "Host chosen" } dd class="mono" { (d.host_id) }
                    dt { "Hosts considered" } dd { (d.hosts_considered) }
                    dt { "Strategy" } dd { @if d.strategy.is_empty() { "default" } @for s in &d.strategy { code { (s.strategy_type) @if let Some(f) = &s.field { "(" (f) ")" } } " " } }
                    dt { "Constraints" } dd { @if d.constraints.is_empty() { "none" } @for k in &d.constraints { code { (serde_json::to_string(k).unwrap_or_default()) } " " } }
                    dt { "Dynamic host ports" } dd { (format!("{:?}", d.dynamic_host_ports)) }
                    dt { "Decided" } dd { (when(d.decided_at)) }
                },
            }
            h2 { "Logs" }
            @if t.host_id.is_some() {
                p id="logs-status" role="status" aria-live="polite" {
                    "Logs appear here live when scripts run; otherwise "
                    a href=(format!("{base}/logs?tail=1000")) { "read them as text" } "."
                }
                pre class="logs" id="logs" tabindex="0" aria-label="Container logs"
                    data-follow=(format!("{base}/logs?follow=true&tail=1000")) data-status="logs-status" {}
            } @else {
                p class="muted" { "The task has not reached a host, so it has no logs." }
            }
        },
    ))
}

#[derive(Deserialize)]
pub struct StopForm {
    version: Option<i64>,
    idempotency_key: Option<String>,
}

pub async fn stop(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((cluster, task)): Path<(String, String)>,
    ConsoleForm(form): ConsoleForm<StopForm>,
) -> Result<Response, ConsoleError> {
    let req = StopTaskRequest { reason: Some("Stopped from the console".to_owned()) };
    let op = format!("POST /v1/clusters/{cluster}/tasks/{task}/stop");
    let idem = form_idempotency(form.idempotency_key.as_deref(), &op, &req)?;
    let t = state.app.stop_task(&viewer.principal, &cluster, &task, req, form.version, idem.as_ref()).await?;
    Ok(see_other(&format!("{ROOT}/clusters/{}/tasks/{}", seg(&cluster), t.value.id)))
}
