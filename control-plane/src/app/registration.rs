//! Registration tokens, and the exchange of one for a host credential.

use berth_api::auth::{
    CreateRegistrationTokenRequest, CreatedRegistrationToken, HostIdentity, ListRegistrationTokensResponse,
    RegisterHostRequest, RegisteredHost, RegistrationToken, RegistrationTokenStatus,
};
use berth_api::{ClusterId, HostId, Page};
use serde_json::json;
use time::Duration;
use uuid::Uuid;

use super::paging::{self, PageRequest};
use super::{App, AppError, AppResult, IdempotencyRequest, Written, check_version, clusters, validate};
use crate::auth::policy::{Action, authorize};
use crate::auth::{HostPrincipal, Principal, random_token, sha256_hex};
use crate::store::hosts::NewHost;
use crate::store::registration_tokens::{NewToken, RegistrationTokenRow};
use crate::store::{self, AccountScope};

const TOKEN_PREFIX: &str = "brt_";

fn to_wire(row: RegistrationTokenRow) -> RegistrationToken {
    RegistrationToken {
        id: row.id,
        cluster_id: ClusterId(row.cluster_id),
        description: row.description,
        expires_at: row.expires_at,
        max_uses: row.max_uses,
        uses: row.uses,
        status: if row.status == "ACTIVE" { RegistrationTokenStatus::Active } else { RegistrationTokenStatus::Revoked },
        created_at: row.created_at,
        version: row.version,
    }
}

impl App {
    pub async fn create_registration_token(
        &self,
        principal: &Principal,
        cluster: &str,
        req: CreateRegistrationTokenRequest,
        idem: Option<&IdempotencyRequest>,
    ) -> AppResult<Written<CreatedRegistrationToken>> {
        authorize(principal, Action::CreateRegistrationToken, None)?;
        let expires_in = req.expires_in_seconds.unwrap_or(3600);
        if !(60..=30 * 24 * 3600).contains(&expires_in) {
            return Err(AppError::validation("expires_in_seconds", "expires_in_seconds must be 60-2592000"));
        }
        let max_uses = req.max_uses.unwrap_or(1);
        if !(1..=10_000).contains(&max_uses) {
            return Err(AppError::validation("max_uses", "max_uses must be 1-10000"));
        }
        if let Some(d) = &req.description {
            validate::text("description", d, 255)?;
        }
        let scope = principal.scope();
        let (cluster, principal) = (cluster.to_owned(), principal.clone());
        self.write(scope, idem, move |tx| {
            Box::pin(async move {
                let cluster = clusters::resolve(tx, scope, &cluster).await?;
                authorize(&principal, Action::CreateRegistrationToken, Some(&cluster.name))?;
                let token = format!("{TOKEN_PREFIX}{}", random_token(32));
                let now = store::now();
                let id = Uuid::now_v7();
                store::registration_tokens::insert(
                    tx,
                    scope,
                    NewToken {
                        id,
                        cluster_id: cluster.cluster_id(),
                        token_hash: &sha256_hex(token.as_bytes()),
                        description: req.description.as_deref(),
                        expires_at: now + Duration::seconds(i64::try_from(expires_in).unwrap_or(3600)),
                        max_uses,
                        now,
                    },
                )
                .await?;
                store::events::append(
                    tx,
                    scope,
                    "registration_token.created",
                    &id.to_string(),
                    json!({"cluster": cluster.name}),
                    now,
                )
                .await?;
                let row = store::registration_tokens::get(tx, scope, cluster.cluster_id(), id)
                    .await?
                    .ok_or_else(|| AppError::Internal("inserted token not found".into()))?;
                Ok(CreatedRegistrationToken { registration_token: to_wire(row), token })
            })
        })
        .await
    }

    pub async fn list_registration_tokens(
        &self,
        principal: &Principal,
        cluster: &str,
        page: &Page,
    ) -> AppResult<ListRegistrationTokensResponse> {
        authorize(principal, Action::ReadRegistrationToken, None)?;
        let page = PageRequest::<Uuid>::parse(page.limit, page.next_token.as_deref())?;
        let scope = principal.scope();
        let mut tx = self.db().begin_read().await?;
        let cluster = clusters::resolve(&mut tx, scope, cluster).await?;
        authorize(principal, Action::ReadRegistrationToken, Some(&cluster.name))?;
        let rows =
            store::registration_tokens::list(&mut tx, scope, cluster.cluster_id(), page.after, page.fetch_limit())
                .await?;
        tx.rollback().await?;
        let (rows, next_token) = paging::finish(rows, page.limit, |r| r.id);
        Ok(ListRegistrationTokensResponse { registration_tokens: rows.into_iter().map(to_wire).collect(), next_token })
    }

    pub async fn revoke_registration_token(
        &self,
        principal: &Principal,
        cluster: &str,
        token: &str,
        if_match: Option<i64>,
        idem: Option<&IdempotencyRequest>,
    ) -> AppResult<Written<RegistrationToken>> {
        authorize(principal, Action::RevokeRegistrationToken, None)?;
        let scope = principal.scope();
        let (cluster, token, principal) = (cluster.to_owned(), token.to_owned(), principal.clone());
        self.write(scope, idem, move |tx| {
            Box::pin(async move {
                let cluster = clusters::resolve(tx, scope, &cluster).await?;
                authorize(&principal, Action::RevokeRegistrationToken, Some(&cluster.name))?;
                let id: Uuid = token.parse().map_err(|_| AppError::not_found("registration token", &token))?;
                let row = store::registration_tokens::get(tx, scope, cluster.cluster_id(), id)
                    .await?
                    .ok_or_else(|| AppError::not_found("registration token", &token))?;
                check_version("registration token", if_match, row.version)?;
                if row.status == "ACTIVE" {
                    if !store::registration_tokens::revoke(tx, scope, id, row.version).await? {
                        return Err(AppError::concurrent("registration token"));
                    }
                    store::events::append(tx, scope, "registration_token.revoked", &token, json!({}), store::now())
                        .await?;
                }
                let row = store::registration_tokens::get(tx, scope, cluster.cluster_id(), id)
                    .await?
                    .ok_or_else(|| AppError::not_found("registration token", &token))?;
                Ok(to_wire(row))
            })
        })
        .await
    }

    /// An agent presents a registration token and gets a host id and a
    /// credential that works only for that host. The token's use count and
    /// the host are written in one transaction.
    pub async fn register_host(&self, req: RegisterHostRequest) -> AppResult<RegisteredHost> {
        validate::text("hostname", &req.hostname, 255)?;
        if req.hostname.is_empty() {
            return Err(AppError::validation("hostname", "hostname must not be empty"));
        }
        validate::text("agent_version", &req.agent_version, 64)?;
        if req.total.cpu == 0 || req.total.memory == 0 {
            return Err(AppError::validation("total", "a host needs some CPU and memory"));
        }
        if req.reserved.cpu > req.total.cpu || req.reserved.memory > req.total.memory {
            return Err(AppError::validation("reserved", "reserved resources exceed the host's total"));
        }
        let [lo, hi] = req.dynamic_port_range.unwrap_or([32768, 60999]);
        if lo == 0 || hi < lo {
            return Err(AppError::validation(
                "dynamic_port_range",
                "the range must be [low, high] with 1 <= low <= high",
            ));
        }
        if req.attributes.len() > 50 {
            return Err(AppError::validation("attributes", "at most 50 attributes"));
        }
        for (k, v) in &req.attributes {
            validate::attribute(&format!("attributes.{k}"), k, v)?;
        }
        let mut attributes = req.attributes.clone();
        attributes.insert("hostname".into(), req.hostname.clone());
        attributes.insert("agent.version".into(), req.agent_version.clone());
        if let Some(rt) = &req.runtime {
            validate::attribute("runtime.name", "runtime.name", &rt.name)?;
            validate::attribute("runtime.version", "runtime.version", &rt.version)?;
            attributes.insert("runtime.name".into(), rt.name.clone());
            attributes.insert("runtime.version".into(), rt.version.clone());
        }
        let mut tx = self.db().begin_write().await?;
        let now = store::now();
        let token = store::registration_tokens::consume(&mut tx, &sha256_hex(req.registration_token.as_bytes()), now)
            .await?
            .ok_or_else(|| {
                AppError::AccessDenied("the registration token is unknown, revoked, expired or used up".into())
            })?;
        let scope = AccountScope::new(berth_api::AccountId(token.account_id));
        let account = store::accounts::get(&mut tx, scope.account_id()).await?;
        if account.is_none_or(|a| a.status != "ACTIVE") {
            return Err(AppError::auth(berth_api::ErrorCode::AccountSuspended, "the account is suspended"));
        }
        super::quotas::require(&mut tx, scope, self.quota_defaults(), &[(berth_api::quotas::QuotaName::Hosts, 1)])
            .await?;
        // A capacity pool's host runs every account's MANAGED tasks.
        let shared = store::clusters::get_by_id(&mut tx, scope, ClusterId(token.cluster_id))
            .await?
            .is_some_and(|c| c.pool_priority.is_some());
        let host_id = HostId::generate();
        let secret = random_token(32);
        store::hosts::insert(
            &mut tx,
            scope,
            NewHost {
                id: host_id,
                cluster_id: ClusterId(token.cluster_id),
                registration_token_id: token.id,
                credential_hash: &sha256_hex(secret.as_bytes()),
                hostname: &req.hostname,
                cpu_total: req.total.cpu,
                memory_total: req.total.memory,
                cpu_reserved: req.reserved.cpu,
                memory_reserved: req.reserved.memory,
                port_range: (lo, hi),
                attributes: &attributes,
                agent_version: &req.agent_version,
                shared,
                now,
            },
        )
        .await?;
        store::events::append(
            &mut tx,
            scope,
            "host.registered",
            &host_id.to_string(),
            json!({"hostname": req.hostname}),
            now,
        )
        .await?;
        // A new host: daemon services place on it, waiting services may fit now.
        tx.wake(crate::reconcilers::services::WAKE_KEY);
        tx.commit().await?;
        Ok(RegisteredHost {
            host_id,
            cluster_id: ClusterId(token.cluster_id),
            host_credential: format!("{host_id}.{secret}"),
        })
    }

    /// An agent reads its own identity. A credential for another host is refused.
    pub async fn host_identity(&self, host: &HostPrincipal, host_ref: &str) -> AppResult<HostIdentity> {
        if host_ref != host.host_id.to_string() {
            return Err(AppError::AccessDenied("a host credential reaches only its own host's endpoints".into()));
        }
        let mut tx = self.db().begin_read().await?;
        let row = store::hosts::find_for_authentication(&mut tx, host.host_id).await?;
        tx.rollback().await?;
        let row = row.ok_or_else(|| AppError::not_found("host", host_ref))?;
        Ok(HostIdentity {
            host_id: HostId(row.id),
            cluster_id: ClusterId(row.cluster_id),
            hostname: row.hostname,
            status: row.status,
        })
    }
}
