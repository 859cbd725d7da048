//! Accounts: the operator's API, and bootstrapping an empty database.
//!
//! Suspending an account refuses every API call made with its credentials
//! (403 `AccountSuspended`) and every call of its host agents. Its running
//! tasks are left running: suspension is reversible (a billing dispute, an
//! investigation), and stopping a tenant's workloads is a separate,
//! deliberate act. See docs/authentication.md.

use berth_api::auth::{
    Account, AccountStatus, CreateAccountRequest, CreatedAccessKey, ListAccountsResponse, Role, SuspendAccountRequest,
};
use berth_api::{AccountId, Page};
use serde_json::json;

use super::paging::{self, PageRequest};
use super::{App, AppError, AppResult, IdempotencyRequest, Written, check_version, validate};
use crate::auth::Principal;
use crate::auth::policy::{Action, authorize};
use crate::store::accounts::AccountRow;
use crate::store::{self, AccountScope, StoreError, Tx};

pub const OPERATOR_ACCOUNT: &str = "operator";

pub(crate) fn to_wire(row: AccountRow) -> Account {
    Account {
        id: row.account_id(),
        status: if row.status == "ACTIVE" { AccountStatus::Active } else { AccountStatus::Suspended },
        name: row.name,
        is_operator: row.is_operator,
        status_reason: row.status_reason,
        created_at: row.created_at,
        updated_at: row.updated_at,
        version: row.version,
    }
}

pub(crate) async fn resolve(tx: &mut Tx, reference: &str) -> AppResult<AccountRow> {
    let row = match reference.parse::<AccountId>() {
        Ok(id) => store::accounts::get(tx, id).await?,
        Err(_) => store::accounts::get_by_name(tx, reference).await?,
    };
    row.ok_or_else(|| AppError::not_found("account", reference))
}

/// What bootstrapping produced: the operator account and its first admin key.
pub struct Bootstrap {
    pub account_id: AccountId,
    pub key: CreatedAccessKey,
}

impl App {
    /// On an empty database, creates the operator account and one admin key.
    /// Returns None when the database already has accounts (or another
    /// replica bootstrapped it at the same moment).
    pub async fn bootstrap(&self) -> AppResult<Option<Bootstrap>> {
        let mut tx = self.db().begin_write().await?;
        if store::accounts::count(&mut tx).await? > 0 {
            return Ok(None);
        }
        let id = AccountId::generate();
        match store::accounts::insert(&mut tx, id, OPERATOR_ACCOUNT, true, store::now()).await {
            Err(StoreError::UniqueViolation(_)) => return Ok(None),
            other => other?,
        };
        let key = self
            .insert_access_key(&mut tx, AccountScope::new(id), Role::Admin, None, Some("bootstrap admin key"))
            .await?;
        tx.commit().await?;
        Ok(Some(Bootstrap { account_id: id, key }))
    }

    /// The operator's account, for in-process tools (`berth dev`'s agent).
    pub async fn operator_account_id(&self) -> AppResult<Option<AccountId>> {
        let mut tx = self.db().begin_read().await?;
        let row = store::accounts::get_by_name(&mut tx, OPERATOR_ACCOUNT).await?;
        tx.rollback().await?;
        Ok(row.map(|r| AccountId(r.id)))
    }

    pub async fn create_account(
        &self,
        principal: &Principal,
        req: CreateAccountRequest,
        idem: Option<&IdempotencyRequest>,
    ) -> AppResult<Written<Account>> {
        authorize(principal, Action::CreateAccount, None)?;
        validate::name("name", &req.name)?;
        self.write(principal.scope(), idem, move |tx| {
            Box::pin(async move {
                let id = AccountId::generate();
                let row = match store::accounts::insert(tx, id, &req.name, false, store::now()).await {
                    Err(StoreError::UniqueViolation(_)) => {
                        return Err(AppError::AlreadyExists { kind: "account", name: req.name.clone(), field: "name" });
                    }
                    other => other?,
                };
                Ok(to_wire(row))
            })
        })
        .await
    }

    /// Creates a tenant account without a caller (tests and tooling).
    pub async fn create_account_unchecked(&self, name: &str) -> AppResult<AccountId> {
        validate::name("name", name)?;
        let mut tx = self.db().begin_write().await?;
        let id = AccountId::generate();
        match store::accounts::insert(&mut tx, id, name, false, store::now()).await {
            Err(StoreError::UniqueViolation(_)) => {
                return Err(AppError::AlreadyExists { kind: "account", name: name.into(), field: "name" });
            }
            other => other?,
        };
        tx.commit().await?;
        Ok(id)
    }

    pub async fn list_accounts(&self, principal: &Principal, page: &Page) -> AppResult<ListAccountsResponse> {
        authorize(principal, Action::ReadAccount, None)?;
        let page = PageRequest::<uuid::Uuid>::parse(page.limit, page.next_token.as_deref())?;
        let mut tx = self.db().begin_read().await?;
        let rows = store::accounts::list(&mut tx, page.after, page.fetch_limit()).await?;
        tx.rollback().await?;
        let (rows, next_token) = paging::finish(rows, page.limit, |r| r.id);
        Ok(ListAccountsResponse { accounts: rows.into_iter().map(to_wire).collect(), next_token })
    }

    pub async fn get_account(&self, principal: &Principal, account: &str) -> AppResult<Account> {
        authorize(principal, Action::ReadAccount, None)?;
        let mut tx = self.db().begin_read().await?;
        let row = resolve(&mut tx, account).await?;
        tx.rollback().await?;
        Ok(to_wire(row))
    }

    /// Suspends (`suspend = true`) or reactivates an account.
    pub async fn set_account_status(
        &self,
        principal: &Principal,
        account: &str,
        suspend: bool,
        req: SuspendAccountRequest,
        if_match: Option<i64>,
        idem: Option<&IdempotencyRequest>,
    ) -> AppResult<Written<Account>> {
        authorize(principal, Action::UpdateAccount, None)?;
        if let Some(r) = &req.reason {
            validate::text("reason", r, 255)?;
        }
        let account = account.to_owned();
        let operator_scope = principal.scope();
        self.write(operator_scope, idem, move |tx| {
            Box::pin(async move {
                let row = resolve(tx, &account).await?;
                check_version("account", if_match, row.version)?;
                if row.is_operator && suspend {
                    return Err(AppError::InvalidTransition("the operator account cannot be suspended".into()));
                }
                let status = if suspend { "SUSPENDED" } else { "ACTIVE" };
                if row.status == status {
                    return Ok(to_wire(row));
                }
                let now = store::now();
                let reason = if suspend { req.reason.as_deref() } else { None };
                if !store::accounts::set_status(tx, row.account_id(), row.version, status, reason, now).await? {
                    return Err(AppError::concurrent("account"));
                }
                let scope = AccountScope::new(row.account_id());
                let event = if suspend { "account.suspended" } else { "account.reactivated" };
                store::events::append(tx, scope, event, &row.id.to_string(), json!({"reason": reason}), now).await?;
                Ok(to_wire(resolve(tx, &row.id.to_string()).await?))
            })
        })
        .await
    }

    /// The operator creates an admin key in a tenant account, to hand to the tenant.
    pub async fn create_account_admin_key(
        &self,
        principal: &Principal,
        account: &str,
        idem: Option<&IdempotencyRequest>,
    ) -> AppResult<Written<CreatedAccessKey>> {
        authorize(principal, Action::UpdateAccount, None)?;
        let account = account.to_owned();
        let app = self.clone();
        self.write(principal.scope(), idem, move |tx| {
            Box::pin(async move {
                let row = resolve(tx, &account).await?;
                let scope = AccountScope::new(row.account_id());
                app.insert_access_key(tx, scope, Role::Admin, None, Some("created by the operator")).await
            })
        })
        .await
    }
}
