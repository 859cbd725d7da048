//! Registry credentials: secrets an account keeps for its private
//! registries. Like access keys they are the admin's business; the password
//! goes in encrypted under the master keyring and comes out only to the agent
//! of a host that pulls with it.

use berth_api::registry_credentials::{
    ContainerRegistryCredentials, CreateRegistryCredentialRequest, ListRegistryCredentialsResponse, RegistryCredential,
    UpdateRegistryCredentialRequest,
};
use berth_api::task_definitions::ContainerDefinition;

use super::{App, AppError, AppResult, validate};
use crate::auth::Principal;
use crate::auth::keyring::Keyring;
use crate::auth::policy::{Action, authorize};
use crate::store::registry_credentials::{RegistryCredentialRow, SealedPassword};
use crate::store::{self, AccountScope, StoreError, Tx};

fn to_wire(row: RegistryCredentialRow) -> RegistryCredential {
    RegistryCredential {
        name: row.name,
        registry: row.registry,
        username: row.username,
        created_at: row.created_at,
        updated_at: row.updated_at,
        version: row.version,
    }
}

fn validate_secret(field: &str, value: &str, max: usize) -> AppResult<()> {
    if value.is_empty() || value.len() > max || value.chars().any(char::is_control) {
        return Err(AppError::validation(
            field,
            format!("{field} must be 1-{max} characters, none of them control characters"),
        ));
    }
    Ok(())
}

fn seal(keyring: &Keyring, password: &str) -> SealedPassword {
    let (key_id, ciphertext) = keyring.encrypt(password.as_bytes());
    SealedPassword { key_id, ciphertext }
}

impl App {
    pub async fn create_registry_credential(
        &self,
        principal: &Principal,
        req: CreateRegistryCredentialRequest,
    ) -> AppResult<RegistryCredential> {
        authorize(principal, Action::CreateRegistryCredential, None)?;
        validate::name("name", &req.name)?;
        // The registry part of an image reference, so the two can be compared.
        let probe = berth_api::images::ImageReference::parse(&format!("{}/x", req.registry));
        if probe.map(|r| r.registry != req.registry).unwrap_or(true) || req.registry.contains('/') {
            return Err(AppError::validation("registry", "registry must be host or host:port, as in image references"));
        }
        validate_secret("username", &req.username, 255)?;
        validate_secret("password", &req.password, 4096)?;
        let scope = principal.scope();
        let sealed = seal(&self.auth().keyring, &req.password);
        let mut tx = self.db().begin_write().await?;
        let now = store::now();
        match store::registry_credentials::insert(&mut tx, scope, &req.name, &req.registry, &req.username, &sealed, now)
            .await
        {
            Err(StoreError::UniqueViolation(_)) => {
                return Err(AppError::AlreadyExists { kind: "registry credential", name: req.name, field: "name" });
            }
            other => other?,
        }
        let row = store::registry_credentials::get(&mut tx, scope, &req.name)
            .await?
            .ok_or_else(|| AppError::Internal("a registry credential vanished in its own transaction".into()))?;
        tx.commit().await?;
        Ok(to_wire(row))
    }

    pub async fn list_registry_credentials(&self, principal: &Principal) -> AppResult<ListRegistryCredentialsResponse> {
        authorize(principal, Action::ReadRegistryCredential, None)?;
        let mut tx = self.db().begin_read().await?;
        let rows = store::registry_credentials::list(&mut tx, principal.scope()).await?;
        tx.rollback().await?;
        Ok(ListRegistryCredentialsResponse { registry_credentials: rows.into_iter().map(to_wire).collect() })
    }

    pub async fn get_registry_credential(&self, principal: &Principal, name: &str) -> AppResult<RegistryCredential> {
        authorize(principal, Action::ReadRegistryCredential, None)?;
        let mut tx = self.db().begin_read().await?;
        let row = store::registry_credentials::get(&mut tx, principal.scope(), name).await?;
        tx.rollback().await?;
        row.map(to_wire).ok_or_else(|| AppError::not_found("registry credential", name))
    }

    /// New secrets for a credential; hosts pull with them from their next start of a task.
    pub async fn update_registry_credential(
        &self,
        principal: &Principal,
        name: &str,
        req: UpdateRegistryCredentialRequest,
    ) -> AppResult<RegistryCredential> {
        authorize(principal, Action::UpdateRegistryCredential, None)?;
        if let Some(u) = &req.username {
            validate_secret("username", u, 255)?;
        }
        validate_secret("password", &req.password, 4096)?;
        let sealed = seal(&self.auth().keyring, &req.password);
        let mut tx = self.db().begin_write().await?;
        let row = store::registry_credentials::update(
            &mut tx,
            principal.scope(),
            name,
            req.username.as_deref(),
            &sealed,
            store::now(),
        )
        .await?
        .ok_or_else(|| AppError::not_found("registry credential", name))?;
        tx.commit().await?;
        Ok(to_wire(row))
    }

    pub async fn delete_registry_credential(&self, principal: &Principal, name: &str) -> AppResult<()> {
        authorize(principal, Action::DeleteRegistryCredential, None)?;
        let mut tx = self.db().begin_write().await?;
        if !store::registry_credentials::delete(&mut tx, principal.scope(), name).await? {
            return Err(AppError::not_found("registry credential", name));
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Refuses a definition naming credentials the account does not have.
pub(crate) async fn check_named(tx: &mut Tx, scope: AccountScope, containers: &[ContainerDefinition]) -> AppResult<()> {
    for (i, c) in containers.iter().enumerate() {
        if let Some(name) = &c.repository_credentials
            && store::registry_credentials::get(tx, scope, name).await?.is_none()
        {
            return Err(AppError::validation(
                format!("container_definitions[{i}].repository_credentials"),
                format!("no registry credential named {name:?} in this account (POST /v1/registry-credentials)"),
            ));
        }
    }
    Ok(())
}

/// The credentials a task's containers pull with, decrypted for its host's
/// agent. One deleted since the definition was registered is left out: the
/// pull then fails with the registry's refusal.
pub(crate) async fn for_containers(
    tx: &mut impl store::Reader,
    scope: AccountScope,
    keyring: &Keyring,
    containers: &[ContainerDefinition],
) -> AppResult<Vec<ContainerRegistryCredentials>> {
    let mut out = Vec::new();
    for c in containers {
        let Some(name) = &c.repository_credentials else { continue };
        let Some(row) = store::registry_credentials::get(tx, scope, name).await? else { continue };
        let password = keyring
            .decrypt(&row.password_key_id, &row.password_ciphertext)
            .map_err(|e| AppError::Internal(format!("registry credential {name}: {e}")))?;
        out.push(ContainerRegistryCredentials {
            container_name: c.name.clone(),
            registry: row.registry,
            username: row.username,
            password: String::from_utf8(password).map_err(|e| AppError::Internal(e.to_string()))?,
        });
    }
    Ok(out)
}
