//! Hosts registered by agents. (The placement-and-agents issue extends this
//! with resources, attributes and heartbeats.)

use berth_api::{ClusterId, HostId};
use sea_query::{Expr, ExprTrait, Query};
use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

use super::schema::Hosts;
use super::{AccountScope, StoreResult, Tx};

#[derive(Clone, Debug, FromRow)]
pub struct HostRow {
    pub id: Uuid,
    pub account_id: Uuid,
    pub cluster_id: Uuid,
    pub credential_hash: String,
    pub hostname: String,
    pub status: String,
    pub created_at: OffsetDateTime,
    pub version: i64,
}

pub struct NewHost<'a> {
    pub id: HostId,
    pub cluster_id: ClusterId,
    pub registration_token_id: Uuid,
    pub credential_hash: &'a str,
    pub hostname: &'a str,
    pub now: OffsetDateTime,
}

pub async fn insert(tx: &mut Tx, scope: AccountScope, new: NewHost<'_>) -> StoreResult<()> {
    let stmt = Query::insert()
        .into_table(Hosts::Table)
        .columns([
            Hosts::Id,
            Hosts::AccountId,
            Hosts::ClusterId,
            Hosts::RegistrationTokenId,
            Hosts::CredentialHash,
            Hosts::Hostname,
            Hosts::Status,
            Hosts::CreatedAt,
            Hosts::UpdatedAt,
            Hosts::Version,
        ])
        .values_panic([
            new.id.0.into(),
            scope.uuid().into(),
            new.cluster_id.0.into(),
            new.registration_token_id.into(),
            new.credential_hash.into(),
            new.hostname.into(),
            "ACTIVE".into(),
            new.now.into(),
            new.now.into(),
            1i64.into(),
        ])
        .to_owned();
    tx.execute(&stmt).await?;
    Ok(())
}

/// For host authentication: the host with this id, in any account.
pub async fn find_for_authentication(tx: &mut Tx, id: HostId) -> StoreResult<Option<HostRow>> {
    let stmt = Query::select()
        .columns([
            Hosts::Id,
            Hosts::AccountId,
            Hosts::ClusterId,
            Hosts::CredentialHash,
            Hosts::Hostname,
            Hosts::Status,
            Hosts::CreatedAt,
            Hosts::Version,
        ])
        .from(Hosts::Table)
        .and_where(Expr::col(Hosts::Id).eq(id.0))
        .to_owned();
    tx.fetch_optional(&stmt).await
}

/// Hosts of the cluster that are not deregistered.
pub async fn count_in_cluster(tx: &mut Tx, scope: AccountScope, cluster: ClusterId) -> StoreResult<i64> {
    let stmt = Query::select()
        .from(Hosts::Table)
        .and_where(Expr::col(Hosts::AccountId).eq(scope.uuid()))
        .and_where(Expr::col(Hosts::ClusterId).eq(cluster.0))
        .and_where(Expr::col(Hosts::Status).ne("DEREGISTERED"))
        .to_owned();
    tx.count(stmt).await
}
