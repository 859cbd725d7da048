//! `/v1/registry-credentials`: secrets for private registries (admin keys only).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Response};
use berth_api::ErrorBody;
use berth_api::registry_credentials::{
    CreateRegistryCredentialRequest, ListRegistryCredentialsResponse, RegistryCredential,
    UpdateRegistryCredentialRequest,
};

use crate::app::AppError;
use crate::auth::Principal;
use crate::http::AppState;
use crate::http::extract::ApiJson;

/// Store a registry credential. The password is kept encrypted and never returned.
#[utoipa::path(post, path = "/v1/registry-credentials", tag = "registry-credentials",
    operation_id = "create_registry_credential",
    request_body = CreateRegistryCredentialRequest,
    responses(
        (status = 201, description = "The credential, without its password", body = RegistryCredential),
        (status = 403, description = "Only admin keys manage credentials", body = ErrorBody),
        (status = 409, description = "The name is taken", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(req): ApiJson<CreateRegistryCredentialRequest>,
) -> Result<Response, AppError> {
    let created = state.app.create_registry_credential(&principal, req).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// List the account's registry credentials (never their passwords).
#[utoipa::path(get, path = "/v1/registry-credentials", tag = "registry-credentials",
    operation_id = "list_registry_credentials",
    responses(
        (status = 200, description = "The credentials, by name", body = ListRegistryCredentialsResponse),
        (status = 403, description = "Only admin keys manage credentials", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<ListRegistryCredentialsResponse>, AppError> {
    Ok(Json(state.app.list_registry_credentials(&principal).await?))
}

/// Get a registry credential (without its password).
#[utoipa::path(get, path = "/v1/registry-credentials/{credential}", tag = "registry-credentials",
    operation_id = "get_registry_credential",
    params(("credential" = String, Path, description = "Credential name")),
    responses(
        (status = 200, description = "The credential", body = RegistryCredential),
        (status = 404, description = "No such credential", body = ErrorBody),
    ))]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
) -> Result<Json<RegistryCredential>, AppError> {
    Ok(Json(state.app.get_registry_credential(&principal, &name).await?))
}

/// Replace a credential's password (and username).
#[utoipa::path(put, path = "/v1/registry-credentials/{credential}", tag = "registry-credentials",
    operation_id = "update_registry_credential",
    params(("credential" = String, Path, description = "Credential name")),
    request_body = UpdateRegistryCredentialRequest,
    responses(
        (status = 200, description = "The credential", body = RegistryCredential),
        (status = 404, description = "No such credential", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
    ))]
pub async fn update(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<UpdateRegistryCredentialRequest>,
) -> Result<Json<RegistryCredential>, AppError> {
    Ok(Json(state.app.update_registry_credential(&principal, &name, req).await?))
}

/// Delete a credential. Tasks already given it keep it; new pulls go without it.
#[utoipa::path(delete, path = "/v1/registry-credentials/{credential}", tag = "registry-credentials",
    operation_id = "delete_registry_credential",
    params(("credential" = String, Path, description = "Credential name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such credential", body = ErrorBody),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
) -> Result<StatusCode, AppError> {
    state.app.delete_registry_credential(&principal, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
