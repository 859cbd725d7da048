//! Reading and setting accounts' rate limits, and keeping this replica's
//! limiter current (overrides, and how many replicas share each bucket).

use std::collections::HashMap;

use berth_api::AccountId;
use berth_api::quotas::{ListRateLimitsResponse, PutRateLimitRequest, QuotaSource, RateLimit, RateLimitClass};

use super::{App, AppError, AppResult};
use crate::auth::Principal;
use crate::auth::policy::{Action, authorize};
use crate::ratelimit::Bucket;
use crate::store;

/// A replica not seen for this long no longer takes a share of the limits.
pub(crate) const REPLICA_ALIVE_WITHIN: time::Duration = time::Duration::seconds(30);

impl App {
    /// `GET /v1/rate-limits`.
    pub async fn list_rate_limits(&self, principal: &Principal) -> AppResult<ListRateLimitsResponse> {
        authorize(principal, Action::ReadQuotas, None)?;
        Ok(self.rate_limits_of(principal.account_id))
    }

    /// `GET /v1/accounts/{account}/rate-limits` (operator).
    pub async fn list_account_rate_limits(
        &self,
        principal: &Principal,
        account: &str,
    ) -> AppResult<ListRateLimitsResponse> {
        authorize(principal, Action::ReadAccount, None)?;
        let scope = self.account_scope(account).await?;
        Ok(self.rate_limits_of(scope.account_id()))
    }

    fn rate_limits_of(&self, account: AccountId) -> ListRateLimitsResponse {
        let rate_limits = match self.rate_limiter() {
            Some(limiter) => RateLimitClass::ALL
                .into_iter()
                .map(|class| {
                    let (b, own) = limiter.configured(account, class);
                    RateLimit {
                        class,
                        per_second: b.per_second,
                        burst: b.burst,
                        source: if own { QuotaSource::Account } else { QuotaSource::Default },
                    }
                })
                .collect(),
            // Rate limiting is off on this server.
            None => Vec::new(),
        };
        ListRateLimitsResponse { rate_limits }
    }

    /// `PUT /v1/accounts/{account}/rate-limits/{class}` (operator).
    pub async fn put_rate_limit(
        &self,
        principal: &Principal,
        account: &str,
        class: &str,
        req: PutRateLimitRequest,
    ) -> AppResult<RateLimit> {
        authorize(principal, Action::UpdateAccount, None)?;
        let class = RateLimitClass::parse(class).ok_or_else(|| AppError::not_found("rate limit class", class))?;
        let bucket = Bucket { per_second: req.per_second, burst: req.burst };
        if let Err(why) = bucket.validate() {
            let field = if why.starts_with("burst") { "burst" } else { "per_second" };
            return Err(AppError::validation(field, why));
        }
        let scope = self.account_scope(account).await?;
        let mut tx = self.db().begin_write().await?;
        let milli = (req.per_second * 1000.0).round() as i64;
        store::rate_limits::set_override(&mut tx, scope, class.as_str(), milli, i64::from(req.burst), store::now())
            .await?;
        tx.commit().await?;
        self.refresh_rate_limits().await?;
        Ok(RateLimit { class, per_second: req.per_second, burst: req.burst, source: QuotaSource::Account })
    }

    /// `DELETE /v1/accounts/{account}/rate-limits/{class}` (operator): back to the default.
    pub async fn reset_rate_limit(&self, principal: &Principal, account: &str, class: &str) -> AppResult<RateLimit> {
        authorize(principal, Action::UpdateAccount, None)?;
        let class = RateLimitClass::parse(class).ok_or_else(|| AppError::not_found("rate limit class", class))?;
        let scope = self.account_scope(account).await?;
        let mut tx = self.db().begin_write().await?;
        store::rate_limits::clear_override(&mut tx, scope, class.as_str()).await?;
        tx.commit().await?;
        self.refresh_rate_limits().await?;
        let listed = self.rate_limits_of(scope.account_id());
        listed
            .rate_limits
            .into_iter()
            .find(|r| r.class == class)
            .ok_or_else(|| AppError::Internal("rate limiting is off on this server".into()))
    }

    /// Records this replica as alive, and reloads the overrides and the number
    /// of live replicas into the limiter. Every replica runs it every 10 s.
    pub async fn refresh_rate_limits(&self) -> AppResult<()> {
        let now = store::now();
        let mut tx = self.db().begin_write().await?;
        store::rate_limits::replica_alive(&mut tx, self.replica_id(), now).await?;
        let replicas = store::rate_limits::live_replicas(&mut tx, now - REPLICA_ALIVE_WITHIN).await?;
        let rows = store::rate_limits::all_overrides(&mut tx).await?;
        tx.commit().await?;
        if let Some(limiter) = self.rate_limiter() {
            let overrides: HashMap<_, _> = rows
                .into_iter()
                .filter_map(|r| {
                    let class = RateLimitClass::parse(&r.class)?;
                    let bucket =
                        Bucket { per_second: r.per_second as f64 / 1000.0, burst: u32::try_from(r.burst).ok()? };
                    Some(((AccountId(r.account_id), class), bucket))
                })
                .collect();
            limiter.set_overrides(overrides);
            limiter.set_replicas(u32::try_from(replicas).unwrap_or(1));
        }
        Ok(())
    }

    /// This replica is stopping: the others take its share of the limits.
    pub async fn leave_replicas(&self) -> AppResult<()> {
        let mut tx = self.db().begin_write().await?;
        store::rate_limits::replica_gone(&mut tx, self.replica_id()).await?;
        tx.commit().await?;
        Ok(())
    }
}
