//! Who is calling, and what they may do.
//!
//! Every API request is authenticated before it reaches a handler, by one of:
//! - AWS Signature Version 4 with an access key (`sigv4`), in the
//!   Authorization header or a presigned URL;
//! - a session JWT (`session`) in `Authorization: Bearer`;
//! - on the agent endpoints only, a host credential (`Authorization: BerthHost`).
//!
//! Handlers receive the resulting [`Principal`] (or [`HostPrincipal`]) from an
//! extractor; [`policy::authorize`] decides what it may do.

pub mod keyring;
pub mod policy;
pub mod session;
pub mod sigv4;

use std::sync::Arc;

use berth_api::auth::Role;
use berth_api::{AccountId, ClusterId, ErrorCode, HostId};
use http::request::Parts;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::app::{App, AppError, AppResult};
use crate::store::access_keys::KeyWithAccount;
use crate::store::{self, AccountScope};

/// An authenticated caller of the tenant API.
#[derive(Clone, Debug)]
pub struct Principal {
    pub account_id: AccountId,
    /// The access key used (directly, or the one the session was made from).
    pub access_key_id: Option<String>,
    pub role: Role,
    /// When set, the only clusters this principal may touch.
    pub clusters: Option<Vec<String>>,
    /// Whether the account is the operator's.
    pub is_operator: bool,
    /// Authenticated with a session token rather than a signature.
    pub via_session: bool,
}

impl Principal {
    /// The only way app code obtains a store scope for tenant data.
    pub fn scope(&self) -> AccountScope {
        AccountScope::new(self.account_id)
    }
}

/// An authenticated host agent: it may reach only its own host's endpoints.
#[derive(Clone, Debug)]
pub struct HostPrincipal {
    pub host_id: HostId,
    pub account_id: AccountId,
    pub cluster_id: ClusterId,
}

pub const HOST_SCHEME: &str = "BerthHost";

/// Settings of authentication.
#[derive(Clone)]
pub struct AuthConfig {
    /// The SigV4 region requests must be signed for.
    pub region: String,
    pub keyring: Arc<keyring::Keyring>,
    pub sessions: session::Sessions,
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Random secret material as URL-safe text.
pub fn random_token(bytes: usize) -> String {
    use base64::Engine as _;
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// Authenticates a tenant API request (SigV4 or bearer session).
pub async fn authenticate(app: &App, parts: &Parts, body: &[u8], source_ip: Option<&str>) -> AppResult<Principal> {
    let auth = app.auth();
    let authorization = parts.headers.get(http::header::AUTHORIZATION).map(|v| v.to_str().unwrap_or(""));
    if let Some(token) = authorization.and_then(|a| a.strip_prefix("Bearer ")) {
        return authenticate_session(app, token.trim(), source_ip).await;
    }
    let presented = match sigv4::parse(&parts.uri, &parts.headers)? {
        Some(p) => p,
        None => {
            return Err(match authorization {
                None => AppError::auth(
                    ErrorCode::MissingAuthenticationToken,
                    "the request carries no credentials: sign it with SigV4 or send a Bearer session token",
                ),
                Some(_) => AppError::auth(
                    ErrorCode::MissingAuthenticationToken,
                    "unsupported Authorization scheme: use AWS4-HMAC-SHA256 (SigV4) or Bearer",
                ),
            });
        }
    };
    presented.check_shape(&auth.region, time::OffsetDateTime::now_utc())?;
    let found = active_key(app, &presented.access_key_id, false).await?;
    let secret = stored_secret(app, &found)?;
    presented.verify(parts.method.as_str(), &parts.uri, &parts.headers, body, &secret)?;
    // The key row already read is reused: one read of it per request.
    principal_from_key(app, found, false, source_ip)
}

/// Authenticates a session token, from a Bearer header or the console's cookie.
pub async fn authenticate_session(app: &App, token: &str, source_ip: Option<&str>) -> AppResult<Principal> {
    let claims = app.auth().sessions.verify(app.db(), token).await?;
    let found = active_key(app, &claims.sub, true).await?;
    principal_from_key(app, found, true, source_ip)
}

/// Authenticates an access key by its secret, as the console's sign-in form
/// presents it. Every failure reads the same, so the form does not tell an
/// attacker which half was wrong.
pub async fn authenticate_secret(
    app: &App,
    access_key_id: &str,
    secret: &str,
    source_ip: Option<&str>,
) -> AppResult<Principal> {
    let wrong = || AppError::auth(ErrorCode::InvalidAccessKeyId, "the access key id or the secret is wrong");
    let found = match active_key(app, access_key_id, false).await {
        Ok(found) => found,
        Err(AppError::Auth { .. }) => return Err(wrong()),
        Err(e) => return Err(e),
    };
    let stored = stored_secret(app, &found)?;
    if !bool::from(stored.as_bytes().ct_eq(secret.as_bytes())) {
        return Err(wrong());
    }
    principal_from_key(app, found, false, source_ip)
}

/// The key's secret, decrypted from its row.
fn stored_secret(app: &App, found: &KeyWithAccount) -> AppResult<String> {
    let key = &found.key;
    let secret = app
        .auth()
        .keyring
        .decrypt(&key.master_key_id, &key.secret_ciphertext)
        .map_err(|e| AppError::Internal(format!("access key {}: {e}", key.access_key_id)))?;
    String::from_utf8(secret).map_err(|_| AppError::Internal("stored secret is not UTF-8".into()))
}

/// The key with this id, and its account, if the key is active. For
/// sessions this runs on every request, so deactivating a key ends its
/// sessions at once.
async fn active_key(app: &App, access_key_id: &str, via_session: bool) -> AppResult<KeyWithAccount> {
    match store::access_keys::find_with_account(app.db(), access_key_id).await? {
        Some(k) if k.key.status == "ACTIVE" => Ok(k),
        _ if via_session => {
            Err(AppError::auth(ErrorCode::InvalidToken, "the session's access key is no longer active"))
        }
        _ => Err(AppError::auth(ErrorCode::InvalidAccessKeyId, "no active access key has this id")),
    }
}

/// Checks the key's account is active, and builds the principal.
fn principal_from_key(
    app: &App,
    found: KeyWithAccount,
    via_session: bool,
    source_ip: Option<&str>,
) -> AppResult<Principal> {
    let KeyWithAccount { key, account_status, account_is_operator } = found;
    match account_status.as_deref() {
        Some("ACTIVE") => {}
        Some(_) => {
            return Err(AppError::auth(ErrorCode::AccountSuspended, "the account is suspended; contact the operator"));
        }
        None => return Err(AppError::Internal("access key without account".into())),
    }
    let role = Role::parse(&key.role).ok_or_else(|| AppError::Internal(format!("unknown role {:?}", key.role)))?;
    app.note_key_use(key.id, source_ip.map(str::to_owned));
    Ok(Principal {
        account_id: AccountId(key.account_id),
        access_key_id: Some(key.access_key_id),
        role,
        clusters: key.cluster_scope.map(|c| c.0),
        is_operator: account_is_operator.unwrap_or(false),
        via_session,
    })
}

/// Authenticates an agent request: `Authorization: BerthHost <host-id>.<secret>`.
pub async fn authenticate_host(app: &App, parts: &Parts) -> AppResult<HostPrincipal> {
    let header = parts.headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or_else(|| {
        AppError::auth(ErrorCode::MissingAuthenticationToken, "agent endpoints need a host credential")
    })?;
    let credential = header
        .strip_prefix(HOST_SCHEME)
        .and_then(|r| r.strip_prefix(' '))
        .ok_or_else(|| AppError::AccessDenied("agent endpoints accept only host credentials (BerthHost)".into()))?;
    let (host, secret) = credential
        .trim()
        .split_once('.')
        .ok_or_else(|| AppError::AccessDenied("a host credential is <host-id>.<secret>".into()))?;
    let host_id: HostId =
        host.parse().map_err(|_| AppError::AccessDenied("the host credential is not valid".into()))?;
    let row = store::hosts::find_credential(app.db(), host_id)
        .await?
        .ok_or_else(|| AppError::AccessDenied("the host credential is not valid".into()))?;
    let given = sha256_hex(secret.as_bytes());
    if !bool::from(given.as_bytes().ct_eq(row.credential_hash.as_bytes())) || row.status == "DEREGISTERED" {
        return Err(AppError::AccessDenied("the host credential is not valid".into()));
    }
    if row.account_status.as_deref() != Some("ACTIVE") {
        return Err(AppError::auth(ErrorCode::AccountSuspended, "the account is suspended"));
    }
    Ok(HostPrincipal { host_id, account_id: AccountId(row.account_id), cluster_id: ClusterId(row.cluster_id) })
}
