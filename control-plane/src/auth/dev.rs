//! The foundation's stand-in authenticator: `Authorization: Dev <account-id>`.
//! It checks that the account exists and nothing else.

use berth_api::AccountId;

use super::{Principal, Role};
use crate::app::{App, AppError, AppResult};
use crate::store;

pub const SCHEME: &str = "Dev";

#[derive(Clone, Debug, Default)]
pub struct DevAuthenticator;

impl DevAuthenticator {
    pub async fn authenticate(&self, app: &App, authorization: Option<&str>) -> AppResult<Principal> {
        let header = authorization.ok_or_else(|| {
            AppError::Unauthenticated(
                "missing Authorization header (expected `Authorization: Dev <account-id>`)".into(),
            )
        })?;
        let account = header
            .strip_prefix(SCHEME)
            .and_then(|rest| rest.strip_prefix(' '))
            .ok_or_else(|| {
                AppError::Unauthenticated("unsupported Authorization scheme (expected `Dev <account-id>`)".into())
            })?
            .trim()
            .parse::<AccountId>()
            .map_err(|_| {
                AppError::AccessDenied("the account id in the Authorization header is not a valid id".into())
            })?;
        let mut tx = app.db().begin_read().await?;
        let row = store::accounts::get(&mut tx, account).await?;
        tx.rollback().await?;
        match row {
            Some(row) if row.status == "ACTIVE" => {
                Ok(Principal { account_id: row.account_id(), key_id: None, role: Role::Admin })
            }
            Some(_) => Err(AppError::AccessDenied("the account is not active".into())),
            None => Err(AppError::AccessDenied("unknown account".into())),
        }
    }
}
