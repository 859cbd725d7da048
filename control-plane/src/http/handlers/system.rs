//! Health, readiness, metrics and the OpenAPI document. These routes need no
//! credentials: load balancers and Prometheus call them.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use berth_api::ErrorBody;

use crate::app::AppError;
use crate::http::AppState;

/// Liveness: the process is serving.
#[utoipa::path(get, path = "/healthz", tag = "system", operation_id = "healthz",
    responses((status = 200, description = "Serving", body = String, content_type = "text/plain")))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the database answers.
#[utoipa::path(get, path = "/readyz", tag = "system", operation_id = "readyz",
    responses(
        (status = 200, description = "Ready", body = String, content_type = "text/plain"),
        (status = 503, description = "The database does not answer", body = ErrorBody),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Result<&'static str, AppError> {
    state.app.db().ping().await.map_err(AppError::Unavailable)?;
    Ok("ready")
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "system", operation_id = "metrics",
    responses((status = 200, description = "Metrics", body = String, content_type = "text/plain; version=0.0.4")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let (open, idle, max) = state.app.db().pool_stats();
    let backend = state.app.db().backend().as_str();
    metrics::gauge!("berth_db_pool_connections", "backend" => backend, "state" => "open").set(f64::from(open));
    metrics::gauge!("berth_db_pool_connections", "backend" => backend, "state" => "idle").set(f64::from(idle));
    metrics::gauge!("berth_db_pool_max_connections", "backend" => backend).set(f64::from(max));
    let mut resp = crate::http::metrics::handle().render().into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
    resp
}

/// This API's OpenAPI 3.1 document.
#[utoipa::path(get, path = "/openapi.json", tag = "system", operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json")))]
pub async fn openapi_json() -> Response {
    match crate::http::openapi().to_pretty_json() {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(e) => AppError::Internal(e.to_string()).into_response(),
    }
}
