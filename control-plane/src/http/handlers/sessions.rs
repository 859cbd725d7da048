//! `/v1/sessions` and the public keys that verify session tokens.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use berth_api::ErrorBody;
use berth_api::auth::{CreateSessionRequest, JwkSet, Session};

use crate::app::AppError;
use crate::auth::Principal;
use crate::http::AppState;
use crate::http::extract::OptionalJson;

/// Exchange a SigV4-signed request for a short-lived bearer token.
#[utoipa::path(post, path = "/v1/sessions", tag = "sessions", operation_id = "create_session",
    request_body(content = Option<CreateSessionRequest>, description = "Optional: the lifetime"),
    responses(
        (status = 201, description = "The session token", body = Session),
        (status = 403, description = "Sessions cannot create sessions", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    OptionalJson(req): OptionalJson<CreateSessionRequest>,
) -> Result<Response, AppError> {
    Ok((StatusCode::CREATED, axum::Json(state.app.create_session(&principal, req).await?)).into_response())
}

/// The public keys that verify session tokens (RFC 7517).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "sessions", operation_id = "jwks",
    responses((status = 200, description = "The JSON Web Key Set", body = JwkSet)))]
pub async fn jwks(State(state): State<AppState>) -> Result<axum::Json<JwkSet>, AppError> {
    Ok(axum::Json(state.app.jwks().await?))
}
