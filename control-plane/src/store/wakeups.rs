//! Wake-ups for readers that wait for new rows: an agent waiting for its
//! next assignment, a client long-polling the event log.
//!
//! A transaction that appends to a host's assignment stream or an account's
//! event log names the host or account ([`super::Tx::wake`]); once it has
//! committed, every waiter on that key in this process is woken and reads the
//! new rows. On PostgreSQL the keys are also sent with `NOTIFY` inside the
//! transaction (so they are delivered only if it commits), and every replica
//! listens, so a task placed by one replica reaches an agent connected to
//! another at once. Waiters never trust a wake-up: they re-read the store,
//! and still re-check at their deadline, so a lost notification costs latency,
//! never correctness.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::Notify;
use uuid::Uuid;

/// The PostgreSQL channel that carries wake-ups between replicas.
pub const CHANNEL: &str = "berth_wakeups";

/// Waiters by key (a host id or an account id).
#[derive(Debug, Default)]
pub struct Wakeups {
    waiters: Mutex<HashMap<Uuid, Arc<Notify>>>,
}

/// A registered interest in a key. Create it before reading the store, so a
/// commit between the read and the wait is not missed.
pub struct Subscription<'a> {
    hub: &'a Wakeups,
    key: Uuid,
    notify: Arc<Notify>,
}

impl Wakeups {
    pub fn subscribe(&self, key: Uuid) -> Subscription<'_> {
        let notify = self
            .waiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key)
            .or_insert_with(|| Arc::new(Notify::new()))
            .clone();
        Subscription { hub: self, key, notify }
    }

    pub fn wake(&self, key: Uuid) {
        let notify = self.waiters.lock().unwrap_or_else(PoisonError::into_inner).get(&key).cloned();
        if let Some(n) = notify {
            n.notify_waiters();
        }
    }

    /// Wakes everyone: after the listener lost its connection, notifications may have been missed.
    pub fn wake_all(&self) {
        let all: Vec<_> = self.waiters.lock().unwrap_or_else(PoisonError::into_inner).values().cloned().collect();
        for n in all {
            n.notify_waiters();
        }
    }

    /// How many keys have someone waiting (for metrics and tests).
    pub fn keys_waited_on(&self) -> usize {
        self.waiters.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

impl Subscription<'_> {
    /// The next wake-up for the key. Enable it (`Notified::enable`) before
    /// reading the store, so a commit during the read is not missed.
    pub fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }

    /// Runs `check` until it returns something or the deadline passes, waking
    /// on every notification for the key. `check` returning `None` means
    /// "nothing yet".
    pub async fn wait_until<T, E, F, Fut>(&self, deadline: tokio::time::Instant, mut check: F) -> Result<Option<T>, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>>,
    {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            // Registered before the read: a wake-up during the read is kept.
            notified.as_mut().enable();
            if let Some(found) = check().await? {
                return Ok(Some(found));
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }
}

impl Drop for Subscription<'_> {
    fn drop(&mut self) {
        let mut waiters = self.hub.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        // Only the map and this subscription hold it: nobody else waits on the key.
        if Arc::strong_count(&self.notify) == 2 {
            waiters.remove(&self.key);
        }
    }
}

/// Forwards other replicas' (and this one's) `NOTIFY`s to local waiters until
/// the pool closes.
pub(super) fn spawn_listener(pool: PgPool, hub: Arc<Wakeups>) {
    tokio::spawn(async move {
        loop {
            match listen(&pool, &hub).await {
                Ok(()) => return,
                Err(e) => {
                    if pool.is_closed() {
                        return;
                    }
                    tracing::warn!(error = %e, "wake-up listener failed; retrying");
                    hub.wake_all();
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
    });
}

async fn listen(pool: &PgPool, hub: &Wakeups) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    // Anything committed before LISTEN took effect would otherwise wait for a deadline.
    hub.wake_all();
    loop {
        match listener.try_recv().await {
            Ok(Some(n)) => {
                for key in n.payload().split(',').filter_map(|k| k.parse::<Uuid>().ok()) {
                    hub.wake(key);
                }
            }
            // The connection was lost and re-established: notifications may be gone.
            Ok(None) => hub.wake_all(),
            Err(sqlx::Error::PoolClosed) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}
