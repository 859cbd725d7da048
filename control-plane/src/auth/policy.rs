//! The one place that decides whether a principal may perform an action.
//! App functions call [`authorize`] first with the action, and again with
//! the cluster's name once they have resolved it; nothing else checks
//! permissions.

use berth_api::auth::Role;

use super::Principal;
use crate::app::{AppError, AppResult};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Area {
    /// Clusters and what lives in them (tasks, services, hosts, registration tokens).
    Cluster,
    /// Account-wide resources an operator role works with (task definitions, events).
    Workload,
    /// Access keys and the audit log: admins only.
    Security,
    /// Other accounts: the operator account's admins only.
    Accounts,
    /// Exchanging credentials for a session.
    Session,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    CreateCluster,
    ReadCluster,
    UpdateCluster,
    DeleteCluster,
    RegisterTaskDefinition,
    ReadTaskDefinition,
    DeregisterTaskDefinition,
    DeleteTaskDefinition,
    RunTask,
    ReadTask,
    StopTask,
    CreateService,
    ReadService,
    UpdateService,
    DeleteService,
    ReadEvents,
    ReadHost,
    UpdateHost,
    SimulatePlacement,
    CreateRegistrationToken,
    ReadRegistrationToken,
    RevokeRegistrationToken,
    CreateAccessKey,
    ReadAccessKey,
    UpdateAccessKey,
    DeleteAccessKey,
    ReadAudit,
    CreateAccount,
    ReadAccount,
    UpdateAccount,
    CreateSession,
    ReadQuotas,
    CreateRegistryCredential,
    ReadRegistryCredential,
    UpdateRegistryCredential,
    DeleteRegistryCredential,
    /// Capacity pools and their hosts, every account's usage.
    ManageCapacity,
    ReadUsage,
}

impl Action {
    pub fn is_read(self) -> bool {
        use Action::*;
        matches!(
            self,
            ReadCluster
                | ReadTaskDefinition
                | ReadTask
                | ReadService
                | ReadEvents
                | ReadRegistrationToken
                | ReadAccessKey
                | ReadAudit
                | ReadAccount
                | ReadHost
                | SimulatePlacement
                | ReadQuotas
                | ReadRegistryCredential
                | ReadUsage
        )
    }

    pub fn area(self) -> Area {
        use Action::*;
        match self {
            CreateCluster
            | ReadCluster
            | UpdateCluster
            | DeleteCluster
            | RunTask
            | ReadTask
            | StopTask
            | CreateService
            | ReadService
            | UpdateService
            | DeleteService
            | ReadHost
            | UpdateHost
            | SimulatePlacement
            | CreateRegistrationToken
            | ReadRegistrationToken
            | RevokeRegistrationToken => Area::Cluster,
            RegisterTaskDefinition
            | ReadTaskDefinition
            | DeregisterTaskDefinition
            | DeleteTaskDefinition
            | ReadEvents
            | ReadQuotas
            | ReadUsage => Area::Workload,
            CreateAccessKey
            | ReadAccessKey
            | UpdateAccessKey
            | DeleteAccessKey
            | ReadAudit
            | CreateRegistryCredential
            | ReadRegistryCredential
            | UpdateRegistryCredential
            | DeleteRegistryCredential => Area::Security,
            CreateAccount | ReadAccount | UpdateAccount | ManageCapacity => Area::Accounts,
            CreateSession => Area::Session,
        }
    }
}

/// Allows or denies `action` for `principal`, on `cluster` when the action
/// is about one (by name). Denials are 403 `AccessDenied` naming the action.
pub fn authorize(principal: &Principal, action: Action, cluster: Option<&str>) -> AppResult<()> {
    let deny = |why: &str| Err(AppError::AccessDenied(format!("{action:?} is not allowed: {why}")));
    let area = action.area();
    match area {
        Area::Session => return Ok(()),
        Area::Accounts if !(principal.is_operator && principal.role == Role::Admin) => {
            return deny("only the operator account's admin keys manage accounts");
        }
        Area::Security | Area::Accounts if principal.clusters.is_some() => {
            return deny("a key restricted to clusters cannot manage keys, accounts or the audit log");
        }
        Area::Security if principal.role != Role::Admin => {
            return deny("only admin keys manage keys and read the audit log");
        }
        _ => {}
    }
    if principal.role == Role::ReadOnly && !action.is_read() {
        return deny("the key is read-only");
    }
    if let (Some(allowed), Some(name)) = (&principal.clusters, cluster)
        && !allowed.iter().any(|c| c == name)
    {
        return deny(&format!("the key is restricted to clusters {allowed:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::AccountId;

    fn p(role: Role, clusters: Option<Vec<&str>>, is_operator: bool) -> Principal {
        Principal {
            account_id: AccountId::generate(),
            access_key_id: Some("BK".into()),
            role,
            clusters: clusters.map(|c| c.into_iter().map(str::to_owned).collect()),
            is_operator,
            via_session: false,
        }
    }

    #[test]
    fn roles() {
        let ro = p(Role::ReadOnly, None, false);
        assert!(authorize(&ro, Action::ReadCluster, Some("a")).is_ok());
        assert!(authorize(&ro, Action::RunTask, Some("a")).is_err());
        assert!(authorize(&ro, Action::ReadAccessKey, None).is_err());
        let op = p(Role::Operator, None, false);
        assert!(authorize(&op, Action::RunTask, Some("a")).is_ok());
        assert!(authorize(&op, Action::CreateAccessKey, None).is_err());
        assert!(authorize(&op, Action::ReadAudit, None).is_err());
        let admin = p(Role::Admin, None, false);
        assert!(authorize(&admin, Action::CreateAccessKey, None).is_ok());
        assert!(authorize(&admin, Action::CreateAccount, None).is_err());
        assert!(authorize(&p(Role::Admin, None, true), Action::CreateAccount, None).is_ok());
        assert!(authorize(&p(Role::Operator, None, true), Action::CreateAccount, None).is_err());
    }

    #[test]
    fn cluster_restriction() {
        let k = p(Role::Admin, Some(vec!["a"]), false);
        assert!(authorize(&k, Action::RunTask, Some("a")).is_ok());
        assert!(authorize(&k, Action::RunTask, Some("b")).is_err());
        assert!(authorize(&k, Action::CreateAccessKey, None).is_err(), "no escalation through new keys");
        assert!(authorize(&k, Action::RegisterTaskDefinition, None).is_ok());
    }
}
