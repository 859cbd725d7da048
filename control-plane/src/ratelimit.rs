//! Rate limits: a token bucket per account and per class of call (read,
//! mutate, run-task, agent), so a tenant's burst of one kind never delays its
//! other kinds (its agents' heartbeats above all), and no tenant's burst
//! touches another's.
//!
//! Buckets live in each replica's memory (governor). So that N replicas do
//! not grant N times the limit, each replica takes 1/N of every bucket's rate
//! and size, N being the replicas that recorded themselves alive in the
//! database in the last 30 s. The accuracy this gives is in
//! docs/rate-limits.md. Operator overrides per account and class are read
//! from the database every 10 s (and at once on the replica that set them).

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use berth_api::AccountId;
use berth_api::quotas::RateLimitClass;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};

/// One bucket: `burst` tokens, refilled at `per_second`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bucket {
    pub per_second: f64,
    pub burst: u32,
}

impl Bucket {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.per_second.is_finite() && self.per_second > 0.0 && self.per_second <= 1_000_000.0) {
            return Err("per_second must be more than 0 and at most 1000000".into());
        }
        if self.burst == 0 || self.burst > 10_000_000 {
            return Err("burst must be 1-10000000".into());
        }
        Ok(())
    }

    /// This replica's share when `replicas` replicas serve the account.
    fn share(&self, replicas: u32) -> Bucket {
        let n = replicas.max(1);
        Bucket { per_second: self.per_second / f64::from(n), burst: self.burst.div_ceil(n).max(1) }
    }
}

/// The buckets every account has unless the operator sets its own.
#[derive(Clone, Debug, PartialEq)]
pub struct RateLimitSettings {
    pub defaults: BTreeMap<RateLimitClass, Bucket>,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            defaults: BTreeMap::from([
                (RateLimitClass::Read, Bucket { per_second: 100.0, burst: 200 }),
                (RateLimitClass::Mutate, Bucket { per_second: 50.0, burst: 100 }),
                (RateLimitClass::RunTask, Bucket { per_second: 20.0, burst: 100 }),
                // 10,000 hosts heartbeating every 5 s, plus their reports.
                (RateLimitClass::Agent, Bucket { per_second: 5000.0, burst: 10_000 }),
            ]),
        }
    }
}

impl RateLimitSettings {
    pub fn get(&self, class: RateLimitClass) -> Bucket {
        self.defaults.get(&class).copied().unwrap_or(Bucket { per_second: 100.0, burst: 200 })
    }
}

/// The outcome of taking a token, with what the `RateLimit-*` headers say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allowed { limit: u32, remaining: u32, reset_secs: u64 },
    Throttled { limit: u32, retry_after_secs: u64 },
}

type Limiter = governor::RateLimiter<NotKeyed, InMemoryState, DefaultClock, StateInformationMiddleware>;
/// Each account's bucket for a class, with the settings it was built from.
type Buckets = HashMap<(AccountId, RateLimitClass), (Bucket, Arc<Limiter>)>;

pub struct RateLimiter {
    settings: RateLimitSettings,
    overrides: RwLock<HashMap<(AccountId, RateLimitClass), Bucket>>,
    replicas: AtomicU32,
    buckets: Mutex<Buckets>,
    /// Which account each access key seen here belongs to, and until when an
    /// account's bucket is known to be empty: a flood of calls from a key whose
    /// bucket is empty is refused before authentication, with no database
    /// round trip or signature check. Nothing is taken from a bucket until a
    /// call has authenticated, so claiming someone else's key id (which is not
    /// a secret) cannot use up their tokens.
    key_accounts: Mutex<HashMap<String, AccountId>>,
    /// With the bucket settings it was found empty under: new settings start a full bucket.
    empty_until: Mutex<HashMap<(AccountId, RateLimitClass), (std::time::Instant, Bucket)>>,
}

/// Access keys remembered for early refusals before the map is cleared.
const MAX_REMEMBERED_KEYS: usize = 100_000;

fn build(bucket: Bucket) -> Arc<Limiter> {
    let period = Duration::from_secs_f64(1.0 / bucket.per_second).max(Duration::from_nanos(1));
    let burst = NonZeroU32::new(bucket.burst).unwrap_or(NonZeroU32::MIN);
    let quota = governor::Quota::with_period(period)
        .unwrap_or_else(|| governor::Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst);
    Arc::new(governor::RateLimiter::direct(quota).with_middleware::<StateInformationMiddleware>())
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl RateLimiter {
    pub fn new(settings: RateLimitSettings) -> Self {
        Self {
            settings,
            overrides: RwLock::default(),
            replicas: AtomicU32::new(1),
            buckets: Mutex::default(),
            key_accounts: Mutex::default(),
            empty_until: Mutex::default(),
        }
    }

    /// Notes that an authenticated call used this key of this account.
    pub fn remember_key(&self, access_key_id: &str, account: AccountId) {
        let mut keys = self.key_accounts.lock().unwrap_or_else(PoisonError::into_inner);
        if keys.get(access_key_id) == Some(&account) {
            return;
        }
        if keys.len() >= MAX_REMEMBERED_KEYS {
            keys.clear();
        }
        keys.insert(access_key_id.to_owned(), account);
    }

    /// A refusal for a call claiming this key, if its account's bucket for the
    /// class is known to be empty; None means "authenticate and check".
    pub fn refuse_early(&self, access_key_id: &str, class: RateLimitClass) -> Option<Decision> {
        let account = *self.key_accounts.lock().unwrap_or_else(PoisonError::into_inner).get(access_key_id)?;
        let (until, under) = *self.empty_until.lock().unwrap_or_else(PoisonError::into_inner).get(&(account, class))?;
        let share = self.configured(account, class).0.share(self.replicas());
        if share != under {
            return None;
        }
        let wait = until.checked_duration_since(std::time::Instant::now())?;
        Some(Decision::Throttled { limit: share.burst, retry_after_secs: ceil_secs(wait).max(1) })
    }

    /// The account's whole bucket for a class (before the replica share).
    pub fn configured(&self, account: AccountId, class: RateLimitClass) -> (Bucket, bool) {
        match self.overrides.read().unwrap_or_else(PoisonError::into_inner).get(&(account, class)) {
            Some(b) => (*b, true),
            None => (self.settings.get(class), false),
        }
    }

    pub fn set_overrides(&self, overrides: HashMap<(AccountId, RateLimitClass), Bucket>) {
        *self.overrides.write().unwrap_or_else(PoisonError::into_inner) = overrides;
    }

    pub fn set_replicas(&self, n: u32) {
        self.replicas.store(n.max(1), Ordering::Relaxed);
    }

    pub fn replicas(&self) -> u32 {
        self.replicas.load(Ordering::Relaxed)
    }

    /// Takes one token from the account's bucket for the class.
    pub fn check(&self, account: AccountId, class: RateLimitClass) -> Decision {
        let share = self.configured(account, class).0.share(self.replicas());
        let limiter = {
            let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
            match buckets.get(&(account, class)) {
                // Rebuilt (full) when the settings or the replica count changed.
                Some((b, l)) if *b == share => l.clone(),
                _ => {
                    let l = build(share);
                    buckets.insert((account, class), (share, l.clone()));
                    l
                }
            }
        };
        match limiter.check() {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                let missing = f64::from(share.burst.saturating_sub(remaining));
                Decision::Allowed {
                    limit: share.burst,
                    remaining,
                    reset_secs: ceil_secs(Duration::from_secs_f64(missing / share.per_second)),
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                self.empty_until
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert((account, class), (std::time::Instant::now() + wait, share));
                Decision::Throttled { limit: share.burst, retry_after_secs: ceil_secs(wait).max(1) }
            }
        }
    }
}

/// Per-account caps on calls that are expensive to serve (RunTask, placement
/// simulation): at most this many in flight per account on each replica.
pub struct ConcurrencyCaps {
    per_account: usize,
    in_flight: Mutex<HashMap<AccountId, Arc<tokio::sync::Semaphore>>>,
}

impl ConcurrencyCaps {
    pub fn new(per_account: usize) -> Self {
        Self { per_account: per_account.max(1), in_flight: Mutex::default() }
    }

    pub fn limit(&self) -> usize {
        self.per_account
    }

    /// A permit, or None when the account already has its cap in flight.
    pub fn try_acquire(&self, account: AccountId) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let semaphore = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(account)
            .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(self.per_account)))
            .clone();
        semaphore.try_acquire_owned().ok()
    }
}
