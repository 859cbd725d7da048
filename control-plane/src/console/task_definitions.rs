//! Task definitions: families, registering a revision from JSON, a family's
//! revisions, and the difference between two of them.

use axum::extract::{Path, Query, State};
use axum::response::Response;
use berth_api::task_definitions::{RegisterTaskDefinitionRequest, TaskDefinition};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{self, Page, badge, csrf, form_key, when, wire};
use super::{ConsoleError, ConsoleForm, ROOT, Viewer, form_idempotency, see_other, seg};
use crate::auth::policy::Action;
use crate::http::AppState;

/// What the register form starts with: a small, complete example.
const EXAMPLE: &str = r#"{
  "family": "hello",
  "container_definitions": [
    {
      "name": "main",
      "image": "registry.example/busybox:latest",
      "memory": 64,
      "command": ["sh", "-c", "echo hello from berth; sleep 3600"]
    }
  ]
}"#;

pub async fn list(State(state): State<AppState>, viewer: Viewer) -> Page {
    let (families, more) = super::collect(|page| {
        let (app, p) = (&state.app, &viewer.principal);
        async move {
            let r = app.list_task_definition_families(p, &page).await?;
            Ok((r.families, r.next_token))
        }
    })
    .await?;
    Ok(layout::page(
        &viewer,
        "Task definitions",
        html! {
            @if families.is_empty() { p class="muted" { "No task definitions yet." } } @else {
                div class="scroll" {
                    table class="collapse" {
                        thead { tr { th { "Family" } th { "Latest revision" } th { "Latest active" } th { "Created" } } }
                        tbody {
                            @for f in &families {
                                tr {
                                    td data-label="Family" { a href=(format!("{ROOT}/task-definitions/{}", seg(&f.family))) { (f.family) } }
                                    td data-label="Latest revision" { (f.latest_revision) }
                                    td data-label="Latest active" { @if let Some(r) = f.latest_active_revision { (r) } @else { span class="muted" { "none" } } }
                                    td data-label="Created" { (when(f.created_at)) }
                                }
                            }
                        }
                    }
                }
                @if more { p class="muted" { "Only the first " (super::SHOWN) " families are shown." } }
            }
            @if viewer.can(Action::RegisterTaskDefinition, None) {
                h2 { "Register a revision" }
                form class="stack" method="post" action="/console/task-definitions" {
                    (csrf(&viewer)) (form_key())
                    label for="td-json" { "Task definition (JSON, as the API's RegisterTaskDefinition takes it)" }
                    textarea id="td-json" name="definition" rows="14" required spellcheck="false" { (EXAMPLE) }
                    div { button type="submit" { "Register" } }
                }
            }
        },
    ))
}

#[derive(Deserialize)]
pub struct RegisterForm {
    definition: String,
    idempotency_key: Option<String>,
}

pub async fn register(
    State(state): State<AppState>,
    viewer: Viewer,
    ConsoleForm(form): ConsoleForm<RegisterForm>,
) -> Result<Response, ConsoleError> {
    let req: RegisterTaskDefinitionRequest = crate::http::extract::parse_json(form.definition.as_bytes())?;
    let idem = form_idempotency(form.idempotency_key.as_deref(), "POST /v1/task-definitions", &req)?;
    let td = state.app.register_task_definition(&viewer.principal, req, idem.as_ref()).await?.value;
    Ok(see_other(&format!("{ROOT}/task-definitions/{}?to={}", seg(&td.family), td.revision)))
}

#[derive(Deserialize)]
pub struct DiffQuery {
    from: Option<i64>,
    to: Option<i64>,
}

/// The part of a revision a user wrote: without ids, times and status.
fn definition_text(td: &TaskDefinition) -> String {
    let mut v = serde_json::to_value(td).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        for volatile in ["id", "revision", "status", "registered_at", "deregistered_at", "version"] {
            o.remove(volatile);
        }
    }
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

fn diff(from: &TaskDefinition, to: &TaskDefinition) -> Markup {
    let (a, b) = (definition_text(from), definition_text(to));
    let d = similar::TextDiff::from_lines(&a, &b);
    html! {
        @if a == b { p { "The two revisions define the same task." } }
        pre class="diff" aria-label=(format!("Changes from revision {} to {}", from.revision, to.revision)) {
            @for change in d.iter_all_changes() {
                @match change.tag() {
                    similar::ChangeTag::Delete => span class="del" { "- " (change.value().trim_end_matches('\n')) },
                    similar::ChangeTag::Insert => span class="add" { "+ " (change.value().trim_end_matches('\n')) },
                    similar::ChangeTag::Equal => span { "  " (change.value().trim_end_matches('\n')) },
                }
            }
        }
    }
}

pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(family): Path<String>,
    Query(q): Query<DiffQuery>,
) -> Page {
    let (mut revisions, _) = super::collect(|page| {
        let (app, p, family) = (&state.app, &viewer.principal, &family);
        async move {
            let r = app.list_task_definition_revisions(p, family, &page).await?;
            Ok((r.task_definitions, r.next_token))
        }
    })
    .await?;
    revisions.sort_by_key(|td| td.revision);
    let latest = revisions.last().map_or(0, |td| td.revision);
    let to_rev = q.to.unwrap_or(latest);
    let from_rev =
        q.from.unwrap_or_else(|| revisions.iter().rev().map(|td| td.revision).find(|r| *r < to_rev).unwrap_or(to_rev));
    let find = |r: i64| revisions.iter().find(|td| td.revision == r);
    let (from, to) = (find(from_rev), find(to_rev));
    let f = seg(&family);
    Ok(layout::page(
        &viewer,
        &format!("Task definition {family}"),
        html! {
            p { a href="/console/task-definitions" { "← Task definitions" } }
            div class="scroll" {
                table class="collapse" {
                    thead { tr { th { "Revision" } th { "Status" } th { "Containers" } th { "CPU / memory" } th { "Registered" } } }
                    tbody {
                        @for td in revisions.iter().rev() {
                            tr {
                                td data-label="Revision" { a href=(format!("{ROOT}/task-definitions/{f}?from={}&to={}", td.revision, td.revision)) { (td.revision) } }
                                td data-label="Status" { (badge(&wire(&td.status))) }
                                td data-label="Containers" { @for c in &td.container_definitions { code { (c.name) } " " span class="muted mono" { (c.image) } br; } }
                                td data-label="CPU / memory" {
                                    (td.cpu.map_or("—".to_owned(), |c| c.to_string())) " / " (td.memory.map_or("—".to_owned(), |m| format!("{m} MiB")))
                                }
                                td data-label="Registered" { (when(td.registered_at)) }
                            }
                        }
                    }
                }
            }
            h2 { "Compare revisions" }
            form class="row" method="get" action=(format!("{ROOT}/task-definitions/{f}")) {
                div { label for="diff-from" { "From" }
                    select id="diff-from" name="from" { @for td in &revisions { option value=(td.revision) selected[td.revision == from_rev] { (td.revision) } } } }
                div { label for="diff-to" { "To" }
                    select id="diff-to" name="to" { @for td in &revisions { option value=(td.revision) selected[td.revision == to_rev] { (td.revision) } } } }
                button type="submit" { "Compare" }
            }
            @match (from, to) {
                (Some(a), Some(b)) if a.revision != b.revision => {
                    h3 { "Revision " (a.revision) " → " (b.revision) }
                    (diff(a, b))
                }
                (_, Some(b)) => {
                    h3 { "Revision " (b.revision) }
                    pre { (definition_text(b)) }
                }
                _ => p class="muted" { "No such revision." },
            }
        },
    ))
}
