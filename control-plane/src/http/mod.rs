//! The HTTP layer: routes, extractors, middleware, and the mapping of errors
//! to responses. Handlers are thin: extract, call one app function, respond.

pub mod error;
pub mod extract;
pub mod handlers;
pub mod metrics;
pub mod middleware;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_api::IDEMPOTENT_REPLAYED_HEADER;
use serde::Serialize;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::{App, Written};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub app: App,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Berth API",
        description = "Berth: a self-hostable, multi-tenant container orchestration control plane.",
        license(name = "Apache-2.0"),
    ),
    tags(
        (name = "clusters", description = "Named groups of hosts, tasks and services"),
        (name = "task-definitions", description = "Families of immutable task-definition revisions"),
        (name = "tasks", description = "Runs of a task definition"),
        (name = "services", description = "Desired counts of tasks kept running, deployed revision by revision"),
        (name = "events", description = "The account's event log"),
        (name = "hosts", description = "Hosts registered by agents, and placement"),
        (name = "capacity", description = "Managed capacity: the operator's pools, task sizes and usage"),
        (name = "accounts", description = "Tenant accounts (the operator's API)"),
        (name = "access-keys", description = "Access keys for SigV4 signing"),
        (name = "registry-credentials", description = "Secrets for pulling from private registries"),
        (name = "sessions", description = "Short-lived bearer tokens"),
        (name = "quotas", description = "Per-account limits and usage"),
        (name = "registration-tokens", description = "Tokens host agents exchange for host credentials"),
        (name = "audit", description = "Who did what"),
        (name = "agent", description = "Endpoints for host agents"),
        (name = "system", description = "Health, readiness, metrics and this document"),
    ),
    components(schemas(berth_api::ErrorBody, berth_api::ErrorCode)),
)]
struct ApiDoc;

fn api_routes() -> OpenApiRouter<AppState> {
    use handlers::{
        access_keys, accounts, audit, capacity, clusters, events, hosts, registration_tokens, registry_credentials,
        services, sessions, task_definitions, tasks,
    };
    OpenApiRouter::new()
        .routes(routes!(accounts::create, accounts::list))
        .routes(routes!(accounts::get))
        .routes(routes!(accounts::suspend))
        .routes(routes!(accounts::reactivate))
        .routes(routes!(accounts::create_admin_key))
        .routes(routes!(handlers::quotas::list))
        .routes(routes!(handlers::quotas::list_for_account))
        .routes(routes!(handlers::quotas::put, handlers::quotas::reset))
        .routes(routes!(handlers::quotas::list_rate_limits))
        .routes(routes!(handlers::quotas::list_account_rate_limits))
        .routes(routes!(handlers::quotas::put_rate_limit, handlers::quotas::reset_rate_limit))
        .routes(routes!(access_keys::create, access_keys::list))
        .routes(routes!(access_keys::get, access_keys::delete))
        .routes(routes!(access_keys::deactivate))
        .routes(routes!(access_keys::reactivate))
        .routes(routes!(registry_credentials::create, registry_credentials::list))
        .routes(routes!(registry_credentials::get, registry_credentials::update, registry_credentials::delete))
        .routes(routes!(sessions::create))
        .routes(routes!(audit::list))
        .routes(routes!(registration_tokens::create, registration_tokens::list))
        .routes(routes!(registration_tokens::revoke))
        .routes(routes!(hosts::list))
        .routes(routes!(hosts::get))
        .routes(routes!(hosts::attributes))
        .routes(routes!(hosts::drain))
        .routes(routes!(hosts::deregister))
        .routes(routes!(hosts::simulate))
        .routes(routes!(clusters::create, clusters::list))
        .routes(routes!(clusters::get, clusters::update, clusters::delete))
        .routes(routes!(task_definitions::register, task_definitions::list_families))
        .routes(routes!(task_definitions::get_latest))
        .routes(routes!(task_definitions::list_revisions))
        .routes(routes!(task_definitions::get_revision, task_definitions::delete))
        .routes(routes!(task_definitions::deregister))
        .routes(routes!(tasks::run, tasks::list))
        .routes(routes!(tasks::get))
        .routes(routes!(tasks::stop))
        .routes(routes!(tasks::logs))
        .routes(routes!(services::create, services::list))
        .routes(routes!(services::get, services::update, services::delete))
        .routes(routes!(services::deployments))
        .routes(routes!(events::list))
        .routes(routes!(events::stream))
        .routes(routes!(capacity::create, capacity::list))
        .routes(routes!(capacity::get))
        .routes(routes!(capacity::list_hosts))
        .routes(routes!(capacity::host_attributes))
        .routes(routes!(capacity::drain_host))
        .routes(routes!(capacity::create_registration_token))
        .routes(routes!(capacity::sizes))
        .routes(routes!(capacity::usage))
}

/// Routes for host agents, authenticated by host credential.
fn agent_routes() -> OpenApiRouter<AppState> {
    use handlers::agent;
    OpenApiRouter::new()
        .routes(routes!(agent::identity))
        .routes(routes!(agent::heartbeat))
        .routes(routes!(agent::assignments))
        .routes(routes!(agent::ack))
        .routes(routes!(agent::report))
        .routes(routes!(agent::report_batch))
}

/// Routes without credentials.
fn system_routes() -> OpenApiRouter<AppState> {
    use handlers::system;
    OpenApiRouter::new()
        .routes(routes!(handlers::agent::register))
        .routes(routes!(handlers::sessions::jwks))
        .routes(routes!(system::healthz))
        .routes(routes!(system::readyz))
        .routes(routes!(system::metrics))
        .routes(routes!(system::openapi_json))
}

/// The router and the OpenAPI document generated from the same route list.
pub fn router(state: AppState) -> Router {
    let (router, _) = build(state);
    router
}

/// The OpenAPI document of the API this build serves.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, api) = OpenApiRouter::<AppState>::with_openapi(ApiDoc::openapi())
        .merge(api_routes())
        .merge(agent_routes())
        .merge(system_routes())
        .split_for_parts();
    api
}

/// The operationId of a route, by method and path template: the audit log's action names.
pub fn operation_id(method: &axum::http::Method, route: &str) -> Option<&'static str> {
    static IDS: std::sync::OnceLock<std::collections::HashMap<(String, String), &'static str>> =
        std::sync::OnceLock::new();
    IDS.get_or_init(|| {
        let doc = openapi();
        let mut ids = std::collections::HashMap::new();
        for (path, item) in doc.paths.paths {
            let ops = [
                ("GET", item.get),
                ("POST", item.post),
                ("PUT", item.put),
                ("PATCH", item.patch),
                ("DELETE", item.delete),
            ];
            for (m, op) in ops {
                if let Some(id) = op.and_then(|o| o.operation_id) {
                    ids.insert((m.to_owned(), path.clone()), &*Box::leak(id.into_boxed_str()));
                }
            }
        }
        ids
    })
    .get(&(method.as_str().to_owned(), route.to_owned()))
    .copied()
}

fn build(state: AppState) -> (Router, utoipa::openapi::OpenApi) {
    // Install the metrics recorder before the first request is counted.
    let _ = metrics::handle();
    let api = api_routes().route_layer(axum::middleware::from_fn_with_state(state.clone(), middleware::authenticate));
    let agent =
        agent_routes().route_layer(axum::middleware::from_fn_with_state(state.clone(), middleware::authenticate_host));
    let (router, doc) =
        OpenApiRouter::with_openapi(ApiDoc::openapi()).merge(api).merge(agent).merge(system_routes()).split_for_parts();
    let timeout = axum::middleware::from_fn_with_state(state.clone(), middleware::request_timeout);
    let router = router
        .merge(crate::console::routes(state.clone()))
        .fallback(middleware::not_found)
        .with_state(state)
        .layer(timeout)
        .layer(CatchPanicLayer::custom(middleware::panic_response))
        .layer(axum::middleware::from_fn(middleware::request_context));
    (router, doc)
}

/// Resources whose version is their ETag.
pub trait Versioned {
    fn version(&self) -> i64;
}

impl Versioned for berth_api::clusters::Cluster {
    fn version(&self) -> i64 {
        self.version
    }
}
impl Versioned for berth_api::task_definitions::TaskDefinition {
    fn version(&self) -> i64 {
        self.version
    }
}
impl Versioned for berth_api::tasks::Task {
    fn version(&self) -> i64 {
        self.version
    }
}
impl Versioned for berth_api::services::Service {
    fn version(&self) -> i64 {
        self.version
    }
}

fn etag(version: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or_else(|_| HeaderValue::from_static("\"0\""))
}

/// A single resource with its ETag.
pub fn resource<T: Serialize + Versioned>(status: StatusCode, value: &T) -> Response {
    let mut resp = (status, axum::Json(value)).into_response();
    resp.headers_mut().insert(header::ETAG, etag(value.version()));
    resp
}

/// Marks a response replayed from an earlier request with the same idempotency key.
pub fn mark_replayed(mut resp: Response, replayed: bool) -> Response {
    if replayed {
        resp.headers_mut().insert(IDEMPOTENT_REPLAYED_HEADER, HeaderValue::from_static("true"));
    }
    resp
}

/// The result of a write, with its ETag.
pub fn written<T: Serialize + Versioned>(status: StatusCode, w: Written<T>) -> Response {
    mark_replayed(resource(status, &w.value), w.replayed)
}

/// A write without a body (deletes).
pub fn written_empty(w: Written<()>) -> Response {
    mark_replayed(StatusCode::NO_CONTENT.into_response(), w.replayed)
}
