//! `/v1/clusters/{cluster}/registration-tokens`

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use berth_api::auth::{
    CreateRegistrationTokenRequest, CreatedRegistrationToken, ListRegistrationTokensResponse, RegistrationToken,
};
use berth_api::{ErrorBody, Page};

use super::{MutationHeaders, idempotency};
use crate::app::{AppError, IdempotencyRequest};
use crate::auth::Principal;
use crate::http::extract::{ApiQuery, IdempotencyKey, IfMatch, OptionalJson};
use crate::http::{AppState, written};

/// Create a token that host agents exchange for a host credential in this cluster.
#[utoipa::path(post, path = "/v1/clusters/{cluster}/registration-tokens", tag = "registration-tokens", operation_id = "create_registration_token",
    params(("cluster" = String, Path, description = "Cluster name or id"), MutationHeaders),
    request_body(content = Option<CreateRegistrationTokenRequest>, description = "Optional: expiry, uses, description"),
    responses(
        (status = 201, description = "The token, shown only now", body = CreatedRegistrationToken),
        (status = 404, description = "No such cluster", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    Path(cluster): Path<String>,
    IdempotencyKey(key): IdempotencyKey,
    OptionalJson(req): OptionalJson<CreateRegistrationTokenRequest>,
) -> Result<Response, AppError> {
    let idem = idempotency(key, None, &format!("POST /v1/clusters/{cluster}/registration-tokens"), &req)?
        .map(IdempotencyRequest::sensitive);
    Ok(super::created_json(state.app.create_registration_token(&principal, &cluster, req, idem.as_ref()).await?))
}

/// List a cluster's registration tokens (never the tokens themselves).
#[utoipa::path(get, path = "/v1/clusters/{cluster}/registration-tokens", tag = "registration-tokens", operation_id = "list_registration_tokens",
    params(("cluster" = String, Path, description = "Cluster name or id"), Page),
    responses(
        (status = 200, description = "A page of tokens", body = ListRegistrationTokensResponse),
        (status = 404, description = "No such cluster", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Path(cluster): Path<String>,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<axum::Json<ListRegistrationTokensResponse>, AppError> {
    Ok(axum::Json(state.app.list_registration_tokens(&principal, &cluster, &page).await?))
}

/// Revoke a registration token; hosts already registered keep their credentials.
#[utoipa::path(post, path = "/v1/clusters/{cluster}/registration-tokens/{token}/revoke", tag = "registration-tokens", operation_id = "revoke_registration_token",
    params(("cluster" = String, Path, description = "Cluster name or id"), ("token" = String, Path, description = "Registration token id"), MutationHeaders),
    responses(
        (status = 200, description = "The token, now REVOKED", body = RegistrationToken),
        (status = 404, description = "No such cluster or token", body = ErrorBody),
    ))]
pub async fn revoke(
    State(state): State<AppState>,
    principal: Principal,
    Path((cluster, token)): Path<(String, String)>,
    IfMatch(if_match): IfMatch,
    IdempotencyKey(key): IdempotencyKey,
) -> Result<Response, AppError> {
    let idem = idempotency(key, None, &format!("POST /v1/clusters/{cluster}/registration-tokens/{token}/revoke"), &())?;
    let w = state.app.revoke_registration_token(&principal, &cluster, &token, if_match, idem.as_ref()).await?;
    Ok(written(StatusCode::OK, w))
}

impl crate::http::Versioned for RegistrationToken {
    fn version(&self) -> i64 {
        self.version
    }
}
