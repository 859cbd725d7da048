//! `berth_account` and `berth_account_quota`: the operator's resources (the
//! provider must use an operator account's key).
//!
//! Accounts are never deleted (their records stay for the audit log):
//! destroy suspends the account, and creating an account whose name belongs
//! to a suspended account reactivates it.

use async_trait::async_trait;
use berth_api::auth::{Account, AccountStatus, CreateAccountRequest, SuspendAccountRequest};
use berth_api::quotas::{PutQuotaRequest, QuotaName, QuotaSource};
use serde::{Deserialize, Serialize};
use tf_provider::schema::{AttributeConstraint::*, AttributeType, Block, Schema};
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{AttributePath, Diagnostics, Resource, map};

use crate::util::*;

pub struct AccountResource(pub Api);

#[derive(Serialize, Deserialize, Clone, Default, PartialEq, Debug)]
pub struct AccountState {
    pub id: Value<String>,
    pub name: Value<String>,
}

fn account_state(a: &Account) -> AccountState {
    AccountState { id: known(a.id.to_string()), name: known(a.name.clone()) }
}

#[async_trait]
impl Resource for AccountResource {
    type State<'a> = AccountState;
    type PrivateState<'a> = ValueEmpty;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _d: &mut Diagnostics) -> Option<Schema> {
        Some(Schema {
            version: 1,
            block: Block {
                attributes: map! {
                    "id" => attr(AttributeType::String, Computed, "The account's id"),
                    "name" => attr(AttributeType::String, Required, "Unique; changing it makes another account")
                },
                description: "A tenant account (operator only). Destroy suspends it; accounts are never deleted".into(),
                ..Default::default()
            },
        })
    }

    async fn read<'a>(
        &self,
        d: &mut Diagnostics,
        state: AccountState,
        p: ValueEmpty,
        _m: ValueEmpty,
    ) -> Option<(AccountState, ValueEmpty)> {
        let c = client(&self.0, d).await?;
        let key = string(&state.id).or(string(&state.name))?.to_owned();
        match read_result(d, "Reading the account", c.get_account(&key).await) {
            // Suspended is what destroy leaves: gone, for Terraform.
            Read::Found(a) if a.status == AccountStatus::Suspended => None,
            Read::Found(a) => Some((account_state(&a), p)),
            Read::Gone => None,
            Read::Failed => Some((state, p)),
        }
    }

    async fn plan_create<'a>(
        &self,
        _d: &mut Diagnostics,
        _p: AccountState,
        config: AccountState,
        _m: ValueEmpty,
    ) -> Option<(AccountState, ValueEmpty)> {
        Some((AccountState { id: Value::Unknown, ..config }, ValueEmpty::default()))
    }

    async fn plan_update<'a>(
        &self,
        _d: &mut Diagnostics,
        prior: AccountState,
        _p: AccountState,
        config: AccountState,
        pp: ValueEmpty,
        _m: ValueEmpty,
    ) -> Option<(AccountState, ValueEmpty, Vec<AttributePath>)> {
        let replace = replacements(&[("name", changed(&prior.name, &config.name))]);
        let id = if replace.is_empty() { keep(&prior.id) } else { Value::Unknown };
        Some((AccountState { id, ..config }, pp, replace))
    }

    async fn plan_destroy<'a>(
        &self,
        _d: &mut Diagnostics,
        _prior: AccountState,
        pp: ValueEmpty,
        _m: ValueEmpty,
    ) -> Option<ValueEmpty> {
        Some(pp)
    }

    async fn create<'a>(
        &self,
        d: &mut Diagnostics,
        planned: AccountState,
        _c: AccountState,
        pp: ValueEmpty,
        _m: ValueEmpty,
    ) -> Option<(AccountState, ValueEmpty)> {
        let c = client(&self.0, d).await?;
        let name = string(&planned.name)?.to_owned();
        match c.create_account(&CreateAccountRequest { name: name.clone() }).await {
            Ok(a) => Some((account_state(&a), pp)),
            Err(e) if e.api().is_some_and(|a| a.code == "ResourceAlreadyExists") => match c.get_account(&name).await {
                Ok(a) if a.status == AccountStatus::Suspended => match c.reactivate_account(&name).await {
                    Ok(a) => Some((account_state(&a), pp)),
                    Err(e) => {
                        report(d, "Reactivating the suspended account", &e, &[]);
                        None
                    }
                },
                _ => {
                    d.error(
                        "Creating the account failed",
                        format!("an active account named {name:?} exists: import it (terraform import ... {name})"),
                        AttributePath::new("name"),
                    );
                    None
                }
            },
            Err(e) => {
                report(d, "Creating the account", &e, &[("name", "name")]);
                None
            }
        }
    }

    async fn update<'a>(
        &self,
        _d: &mut Diagnostics,
        _prior: AccountState,
        planned: AccountState,
        _c: AccountState,
        pp: ValueEmpty,
        _m: ValueEmpty,
    ) -> Option<(AccountState, ValueEmpty)> {
        Some((planned, pp))
    }

    async fn destroy<'a>(
        &self,
        d: &mut Diagnostics,
        prior: AccountState,
        _pp: ValueEmpty,
        _m: ValueEmpty,
    ) -> Option<()> {
        let c = client(&self.0, d).await?;
        let req = SuspendAccountRequest { reason: Some("destroyed by Terraform".into()) };
        deleted(d, "Suspending the account", c.suspend_account(string(&prior.id)?, &req).await)
    }

    /// `terraform import berth_account.x <name or id>`
    async fn import<'a>(&self, _d: &mut Diagnostics, id: String) -> Option<(AccountState, ValueEmpty)> {
        Some((AccountState { id: known(id), ..Default::default() }, ValueEmpty::default()))
    }
}

pub struct AccountQuotaResource(pub Api);

#[derive(Serialize, Deserialize, Clone, Default, PartialEq, Debug)]
pub struct QuotaState {
    /// `account/quota`.
    pub id: Value<String>,
    pub account: Value<String>,
    pub name: Value<String>,
    pub limit: Value<i64>,
}

#[async_trait]
impl Resource for AccountQuotaResource {
    type State<'a> = QuotaState;
    type PrivateState<'a> = ValueEmpty;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _d: &mut Diagnostics) -> Option<Schema> {
        let s = AttributeType::String;
        Some(Schema {
            version: 1,
            block: Block {
                attributes: map! {
                    "id" => attr(s.clone(), Computed, "account/quota"),
                    "account" => attr(s.clone(), Required, "The account (name or id)"),
                    "name" => attr(s, Required, "The quota (running_tasks, running_cpu, services, ...; docs/quotas.md)"),
                    "limit" => attr(AttributeType::Number, Required, "The account's limit")
                },
                description: "An account's own limit for one quota (operator only). Destroy goes back to the default"
                    .into(),
                ..Default::default()
            },
        })
    }

    async fn validate<'a>(&self, d: &mut Diagnostics, config: QuotaState) -> Option<()> {
        if let Some(n) = string(&config.name)
            && QuotaName::parse(n).is_none()
        {
            d.error(
                "Unknown quota",
                format!("{n:?} is not a quota name (see docs/quotas.md)"),
                AttributePath::new("name"),
            );
        }
        Some(())
    }

    async fn read<'a>(
        &self,
        d: &mut Diagnostics,
        state: QuotaState,
        p: ValueEmpty,
        _m: ValueEmpty,
    ) -> Option<(QuotaState, ValueEmpty)> {
        let c = client(&self.0, d).await?;
        let (account, name) = (string(&state.account)?.to_owned(), string(&state.name)?.to_owned());
        match read_result(d, "Reading the quota", c.list_account_quotas(&account).await) {
            Read::Found(list) => {
                let q = list.quotas.into_iter().find(|q| q.name.as_str() == name)?;
                // Back at the default: this resource's override is gone.
                if q.source == QuotaSource::Default {
                    return None;
                }
                Some((QuotaState { limit: known(q.limit), ..state }, p))
            }
            Read::Gone => None,
            Read::Failed => Some((state, p)),
        }
    }

    async fn plan_create<'a>(
        &self,
        _d: &mut Diagnostics,
        _p: QuotaState,
        config: QuotaState,
        _m: ValueEmpty,
    ) -> Option<(QuotaState, ValueEmpty)> {
        let id = match (string(&config.account), string(&config.name)) {
            (Some(a), Some(n)) => known(format!("{a}/{n}")),
            _ => Value::Unknown,
        };
        Some((QuotaState { id, ..config }, ValueEmpty::default()))
    }

    async fn plan_update<'a>(
        &self,
        d: &mut Diagnostics,
        prior: QuotaState,
        p: QuotaState,
        config: QuotaState,
        pp: ValueEmpty,
        m: ValueEmpty,
    ) -> Option<(QuotaState, ValueEmpty, Vec<AttributePath>)> {
        let (plan, _) = self.plan_create(d, p, config, m).await?;
        let replace = replacements(&[
            ("account", changed(&prior.account, &plan.account)),
            ("name", changed(&prior.name, &plan.name)),
        ]);
        Some((plan, pp, replace))
    }

    async fn plan_destroy<'a>(
        &self,
        _d: &mut Diagnostics,
        _prior: QuotaState,
        pp: ValueEmpty,
        _m: ValueEmpty,
    ) -> Option<ValueEmpty> {
        Some(pp)
    }

    async fn create<'a>(
        &self,
        d: &mut Diagnostics,
        planned: QuotaState,
        _c: QuotaState,
        pp: ValueEmpty,
        _m: ValueEmpty,
    ) -> Option<(QuotaState, ValueEmpty)> {
        let c = client(&self.0, d).await?;
        let (account, name) = (string(&planned.account)?.to_owned(), string(&planned.name)?.to_owned());
        let req = PutQuotaRequest { limit: planned.limit.as_ref_option().copied()? };
        match c.put_account_quota(&account, &name, &req).await {
            Ok(q) => {
                Some((QuotaState { id: known(format!("{account}/{name}")), limit: known(q.limit), ..planned }, pp))
            }
            Err(e) => {
                report(d, "Setting the quota", &e, &[("limit", "limit"), ("name", "name")]);
                None
            }
        }
    }

    async fn update<'a>(
        &self,
        d: &mut Diagnostics,
        _prior: QuotaState,
        planned: QuotaState,
        c: QuotaState,
        pp: ValueEmpty,
        m: ValueEmpty,
    ) -> Option<(QuotaState, ValueEmpty)> {
        self.create(d, planned, c, pp, m).await
    }

    async fn destroy<'a>(&self, d: &mut Diagnostics, prior: QuotaState, _pp: ValueEmpty, _m: ValueEmpty) -> Option<()> {
        let c = client(&self.0, d).await?;
        deleted(d, "Resetting the quota", c.reset_account_quota(string(&prior.account)?, string(&prior.name)?).await)
    }

    /// `terraform import berth_account_quota.x account/quota`
    async fn import<'a>(&self, d: &mut Diagnostics, id: String) -> Option<(QuotaState, ValueEmpty)> {
        let Some((account, name)) = id.split_once('/') else {
            d.root_error("Invalid import id", format!("{id:?}: import a quota as account/quota"));
            return None;
        };
        Some((
            QuotaState {
                id: known(id.clone()),
                account: known(account.to_owned()),
                name: known(name.to_owned()),
                ..Default::default()
            },
            ValueEmpty::default(),
        ))
    }
}
