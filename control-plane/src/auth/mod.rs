//! Who is calling. Every API handler receives a [`Principal`] from an
//! extractor; no handler reads identity any other way.
//!
//! Authentication proper (SigV4 access keys and JWT sessions) is the
//! authentication issue's work. Until it lands, the only authenticator is
//! [`dev::DevAuthenticator`], which trusts a header naming the account and
//! must never face an untrusted network.

pub mod dev;

use berth_api::{AccessKeyId, AccountId};

use crate::store::AccountScope;

/// What a principal may do within its account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Everything in its account.
    Admin,
}

/// An authenticated caller.
#[derive(Clone, Debug)]
pub struct Principal {
    pub account_id: AccountId,
    pub key_id: Option<AccessKeyId>,
    pub role: Role,
}

impl Principal {
    /// The only way app code obtains a store scope for tenant data.
    pub fn scope(&self) -> AccountScope {
        AccountScope::new(self.account_id)
    }
}
