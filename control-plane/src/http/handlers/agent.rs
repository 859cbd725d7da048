//! `/v1/agent`: the host agents' endpoints. Registration takes a
//! registration token; everything else takes the host's own credential and
//! reaches only that host. (The agent protocol proper is the placement and
//! agents issue's.)

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use berth_api::ErrorBody;
use berth_api::auth::{HostIdentity, RegisterHostRequest, RegisteredHost};

use crate::app::AppError;
use crate::auth::HostPrincipal;
use crate::http::AppState;
use crate::http::extract::ApiJson;

/// Exchange a registration token for a host id and a host credential.
#[utoipa::path(post, path = "/v1/agent/register", tag = "agent", operation_id = "register_host",
    request_body = RegisterHostRequest,
    responses(
        (status = 201, description = "The host's identity and credential", body = RegisteredHost),
        (status = 403, description = "The token is unknown, revoked, expired or used up", body = ErrorBody),
    ))]
pub async fn register(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<RegisterHostRequest>,
) -> Result<Response, AppError> {
    Ok((StatusCode::CREATED, axum::Json(state.app.register_host(req).await?)).into_response())
}

/// The host's own identity, as the control plane knows it.
#[utoipa::path(get, path = "/v1/agent/hosts/{host}", tag = "agent", operation_id = "get_host_identity",
    params(("host" = String, Path, description = "The host's id; must be the credential's own")),
    responses(
        (status = 200, description = "The host", body = HostIdentity),
        (status = 403, description = "Not this host's credential", body = ErrorBody),
    ))]
pub async fn identity(
    State(state): State<AppState>,
    axum::Extension(host): axum::Extension<HostPrincipal>,
    Path(host_ref): Path<String>,
) -> Result<axum::Json<HostIdentity>, AppError> {
    Ok(axum::Json(state.app.host_identity(&host, &host_ref).await?))
}
