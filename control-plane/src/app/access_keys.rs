//! Access keys: a public id and a secret for SigV4, with a role and an
//! optional cluster restriction. Secrets are stored encrypted under the
//! master key (SigV4 verification needs the plaintext, so they cannot be hashed).

use berth_api::auth::{
    AccessKey, AccessKeyStatus, CreateAccessKeyRequest, CreatedAccessKey, ListAccessKeysResponse, Role,
};
use berth_api::{AccountId, Page};
use serde_json::json;
use uuid::Uuid;

use super::paging::{self, PageRequest};
use super::{App, AppError, AppResult, IdempotencyRequest, Written, check_version, validate};
use crate::auth::Principal;
use crate::auth::policy::{Action, authorize};
use crate::store::access_keys::{AccessKeyRow, NewAccessKey};
use crate::store::{self, AccountScope, Tx};

const KEY_ID_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// `BK` and 18 base32 characters, like AWS's `AKIA...` ids.
fn new_access_key_id() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    let tail: String = (0..18).map(|_| KEY_ID_ALPHABET[rng.random_range(0..KEY_ID_ALPHABET.len())] as char).collect();
    format!("BK{tail}")
}

pub(crate) fn to_wire(row: AccessKeyRow) -> AppResult<AccessKey> {
    Ok(AccessKey {
        access_key_id: row.access_key_id,
        account_id: AccountId(row.account_id),
        role: Role::parse(&row.role).ok_or_else(|| AppError::Internal(format!("unknown role {:?}", row.role)))?,
        clusters: row.cluster_scope.map(|c| c.0),
        status: if row.status == "ACTIVE" { AccessKeyStatus::Active } else { AccessKeyStatus::Inactive },
        description: row.description,
        created_at: row.created_at,
        last_used_at: row.last_used_at,
        last_used_ip: row.last_used_ip,
        version: row.version,
    })
}

async fn resolve(tx: &mut Tx, scope: AccountScope, key: &str) -> AppResult<AccessKeyRow> {
    store::access_keys::get(tx, scope, key).await?.ok_or_else(|| AppError::not_found("access key", key))
}

impl App {
    /// Inserts a key in the caller's transaction and returns it with its secret.
    pub(crate) async fn insert_access_key(
        &self,
        tx: &mut Tx,
        scope: AccountScope,
        role: Role,
        clusters: Option<&[String]>,
        description: Option<&str>,
    ) -> AppResult<CreatedAccessKey> {
        let access_key_id = new_access_key_id();
        let secret = crate::auth::random_token(30);
        let (master_key_id, secret_ciphertext) = self.auth().keyring.encrypt(secret.as_bytes());
        let now = store::now();
        store::access_keys::insert(
            tx,
            scope,
            NewAccessKey {
                id: Uuid::now_v7(),
                access_key_id: &access_key_id,
                secret_ciphertext: &secret_ciphertext,
                master_key_id: &master_key_id,
                role: role.as_str(),
                cluster_scope: clusters,
                description,
                now,
            },
        )
        .await?;
        store::events::append(tx, scope, "access_key.created", &access_key_id, json!({"role": role.as_str()}), now)
            .await?;
        let row = resolve(tx, scope, &access_key_id).await?;
        Ok(CreatedAccessKey { access_key: to_wire(row)?, secret_access_key: secret })
    }

    pub async fn create_access_key(
        &self,
        principal: &Principal,
        req: CreateAccessKeyRequest,
        idem: Option<&IdempotencyRequest>,
    ) -> AppResult<Written<CreatedAccessKey>> {
        authorize(principal, Action::CreateAccessKey, None)?;
        if let Some(clusters) = &req.clusters {
            if clusters.is_empty() || clusters.len() > 100 {
                return Err(AppError::validation("clusters", "list 1-100 cluster names, or leave clusters out"));
            }
            for (i, c) in clusters.iter().enumerate() {
                validate::name(&format!("clusters[{i}]"), c)?;
            }
        }
        if let Some(d) = &req.description {
            validate::text("description", d, 255)?;
        }
        let scope = principal.scope();
        let app = self.clone();
        self.write(scope, idem, move |tx| {
            Box::pin(async move {
                app.insert_access_key(tx, scope, req.role, req.clusters.as_deref(), req.description.as_deref()).await
            })
        })
        .await
    }

    pub async fn list_access_keys(&self, principal: &Principal, page: &Page) -> AppResult<ListAccessKeysResponse> {
        authorize(principal, Action::ReadAccessKey, None)?;
        let page = PageRequest::<Uuid>::parse(page.limit, page.next_token.as_deref())?;
        let mut tx = self.db().begin_read().await?;
        let rows = store::access_keys::list(&mut tx, principal.scope(), page.after, page.fetch_limit()).await?;
        tx.rollback().await?;
        let (rows, next_token) = paging::finish(rows, page.limit, |r| r.id);
        Ok(ListAccessKeysResponse { access_keys: rows.into_iter().map(to_wire).collect::<AppResult<_>>()?, next_token })
    }

    pub async fn get_access_key(&self, principal: &Principal, key: &str) -> AppResult<AccessKey> {
        authorize(principal, Action::ReadAccessKey, None)?;
        let mut tx = self.db().begin_read().await?;
        let row = resolve(&mut tx, principal.scope(), key).await?;
        tx.rollback().await?;
        to_wire(row)
    }

    /// Activates or deactivates a key. A deactivated key's signatures and
    /// sessions are refused from the next request on.
    pub async fn set_access_key_status(
        &self,
        principal: &Principal,
        key: &str,
        active: bool,
        if_match: Option<i64>,
        idem: Option<&IdempotencyRequest>,
    ) -> AppResult<Written<AccessKey>> {
        authorize(principal, Action::UpdateAccessKey, None)?;
        let scope = principal.scope();
        let key = key.to_owned();
        self.write(scope, idem, move |tx| {
            Box::pin(async move {
                let row = resolve(tx, scope, &key).await?;
                check_version("access key", if_match, row.version)?;
                let status = if active { "ACTIVE" } else { "INACTIVE" };
                if row.status == status {
                    return to_wire(row);
                }
                if !active {
                    ensure_not_last_admin(tx, scope, &row).await?;
                }
                if !store::access_keys::set_status(tx, scope, row.id, row.version, status).await? {
                    return Err(AppError::concurrent("access key"));
                }
                let event = if active { "access_key.reactivated" } else { "access_key.deactivated" };
                store::events::append(tx, scope, event, &key, json!({}), store::now()).await?;
                to_wire(resolve(tx, scope, &key).await?)
            })
        })
        .await
    }

    pub async fn delete_access_key(
        &self,
        principal: &Principal,
        key: &str,
        if_match: Option<i64>,
        idem: Option<&IdempotencyRequest>,
    ) -> AppResult<Written<()>> {
        authorize(principal, Action::DeleteAccessKey, None)?;
        let scope = principal.scope();
        let key = key.to_owned();
        self.write(scope, idem, move |tx| {
            Box::pin(async move {
                let row = resolve(tx, scope, &key).await?;
                check_version("access key", if_match, row.version)?;
                ensure_not_last_admin(tx, scope, &row).await?;
                if !store::access_keys::delete(tx, scope, row.id, row.version).await? {
                    return Err(AppError::concurrent("access key"));
                }
                store::events::append(tx, scope, "access_key.deleted", &key, json!({}), store::now()).await?;
                Ok(())
            })
        })
        .await
    }

    /// Re-encrypts every stored secret under the current master key; run at start-up.
    pub async fn reencrypt_secrets(&self) -> AppResult<usize> {
        let keyring = &self.auth().keyring;
        let current = keyring.current_id().to_owned();
        let mut tx = self.db().begin_read().await?;
        let in_use = store::access_keys::master_key_ids(&mut tx).await?;
        tx.rollback().await?;
        if let Some(missing) = in_use.iter().find(|k| !keyring.contains(k)) {
            return Err(AppError::Internal(format!(
                "access-key secrets are encrypted under master key {missing:?}, which is not configured: add it back to the key ring"
            )));
        }
        let mut total = 0;
        loop {
            let mut tx = self.db().begin_write().await?;
            let rows = store::access_keys::not_under_master_key(&mut tx, &current, 200).await?;
            if rows.is_empty() {
                tx.rollback().await?;
                break;
            }
            for row in &rows {
                let plain = keyring
                    .decrypt(&row.master_key_id, &row.secret_ciphertext)
                    .map_err(|e| AppError::Internal(format!("access key {}: {e}", row.access_key_id)))?;
                let (kid, ct) = keyring.encrypt(&plain);
                if store::access_keys::reencrypt(&mut tx, row.id, &row.master_key_id, &kid, &ct).await? {
                    total += 1;
                }
            }
            tx.commit().await?;
        }
        total += self.auth().sessions.reencrypt(self.db()).await?;
        Ok(total)
    }
}

/// Refuses to remove the account's last active admin key: nobody could manage keys afterwards.
async fn ensure_not_last_admin(tx: &mut Tx, scope: AccountScope, row: &AccessKeyRow) -> AppResult<()> {
    if row.role != Role::Admin.as_str() || row.status != "ACTIVE" || row.cluster_scope.is_some() {
        return Ok(());
    }
    let mut after = None;
    loop {
        let page = store::access_keys::list(tx, scope, after, 200).await?;
        if page.iter().any(|k| {
            k.id != row.id && k.status == "ACTIVE" && k.role == Role::Admin.as_str() && k.cluster_scope.is_none()
        }) {
            return Ok(());
        }
        match page.last() {
            Some(last) if page.len() == 200 => after = Some(last.id),
            _ => break,
        }
    }
    Err(AppError::InUse("this is the account's last active unrestricted admin key; create another first".into()))
}
