//! Credentials for private registries: stored encrypted by the control
//! plane, named by a task definition's containers, handed only to the agent
//! of a host that runs such a container. The password is never returned.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

/// The body of `POST /v1/registry-credentials`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRegistryCredentialRequest {
    /// 1-255 letters, digits, hyphens and underscores; unique in the account.
    pub name: String,
    /// The registry it is for, `host[:port]` as in image references (`docker.io` for Docker Hub).
    pub registry: String,
    pub username: String,
    /// A password or token; write-only.
    pub password: String,
}

/// The body of `PUT /v1/registry-credentials/{credential}`: new secrets.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRegistryCredentialRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    pub password: String,
}

macro_rules! redacted_debug {
    ($t:ty, $($field:ident),*) => {
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($t))$(.field(stringify!($field), &self.$field))*.finish_non_exhaustive()
            }
        }
    };
}
redacted_debug!(CreateRegistryCredentialRequest, name, registry, username);
redacted_debug!(UpdateRegistryCredentialRequest, username);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RegistryCredential {
    pub name: String,
    pub registry: String,
    pub username: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    pub version: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ListRegistryCredentialsResponse {
    pub registry_credentials: Vec<RegistryCredential>,
}

/// What an agent gets to pull one container's image.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ContainerRegistryCredentials {
    pub container_name: String,
    pub registry: String,
    pub username: String,
    pub password: String,
}
redacted_debug!(ContainerRegistryCredentials, container_name, registry, username);
