//! JWT sessions: short-lived bearer tokens for the console and SDKs.
//!
//! Tokens are EdDSA (Ed25519) JWTs naming their signing key in `kid`. Signing
//! keys live in the database, their private halves encrypted under the
//! master key, so every replica signs and verifies with the same set. The
//! newest key signs; a new key is made once the newest is older than the
//! rotation period, and each key keeps verifying until every token it signed
//! has expired. Verification accepts EdDSA only: `none`, HS256 and every
//! other algorithm are refused before any key is looked at.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use berth_api::ErrorCode;
use berth_api::auth::{Jwk, JwkSet};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use tokio::sync::RwLock;

use super::keyring::Keyring;
use crate::app::{AppError, AppResult};
use crate::store::signing_keys::SigningKeyRow;
use crate::store::{self, Db};

pub const ISSUER: &str = "berth";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// The access key the session was made from.
    pub sub: String,
    /// The account.
    pub acc: String,
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clusters: Option<Vec<String>>,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

#[derive(Clone, Debug)]
pub struct SessionSettings {
    pub default_lifetime: Duration,
    pub max_lifetime: Duration,
    pub rotation_period: Duration,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            default_lifetime: Duration::hours(1),
            max_lifetime: Duration::hours(12),
            rotation_period: Duration::hours(24),
        }
    }
}

struct LiveKey {
    kid: String,
    created_at: OffsetDateTime,
    retire_at: OffsetDateTime,
    encoding: EncodingKey,
    decoding: DecodingKey,
    public_x: String,
}

/// Issues and verifies session tokens.
#[derive(Clone)]
pub struct Sessions {
    settings: SessionSettings,
    keyring: Arc<Keyring>,
    keys: Arc<RwLock<Vec<Arc<LiveKey>>>>,
    loaded_at: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
}

/// How stale a replica's copy of the signing keys may get: a key retired on
/// one replica stops verifying on all of them within this time.
pub const KEY_RELOAD_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

fn internal(e: impl std::fmt::Display) -> AppError {
    AppError::Internal(e.to_string())
}

impl Sessions {
    pub fn new(settings: SessionSettings, keyring: Arc<Keyring>) -> Self {
        Self { settings, keyring, keys: Arc::new(RwLock::new(Vec::new())), loaded_at: Default::default() }
    }

    pub fn settings(&self) -> &SessionSettings {
        &self.settings
    }

    fn load(&self, row: &SigningKeyRow) -> AppResult<LiveKey> {
        let seed = self.keyring.decrypt(&row.master_key_id, &row.private_ciphertext).map_err(internal)?;
        let seed: [u8; 32] = seed.try_into().map_err(|_| internal("a signing key seed is not 32 bytes"))?;
        let signing = SigningKey::from_bytes(&seed);
        let der = signing.to_pkcs8_der().map_err(internal)?;
        Ok(LiveKey {
            kid: row.kid.clone(),
            created_at: row.created_at,
            retire_at: row.retire_at,
            encoding: EncodingKey::from_ed_der(der.as_bytes()),
            decoding: DecodingKey::from_ed_components(&row.public_key).map_err(internal)?,
            public_x: row.public_key.clone(),
        })
    }

    /// Reloads the live keys from the database.
    pub async fn refresh(&self, db: &Db) -> AppResult<()> {
        let mut tx = db.begin_read().await?;
        let rows = store::signing_keys::live(&mut tx, store::now()).await?;
        tx.rollback().await?;
        let loaded = rows.iter().map(|r| self.load(r).map(Arc::new)).collect::<AppResult<Vec<_>>>()?;
        *self.keys.write().await = loaded;
        if let Ok(mut at) = self.loaded_at.lock() {
            *at = Some(std::time::Instant::now());
        }
        Ok(())
    }

    /// Makes a new signing key and reloads.
    pub async fn rotate(&self, db: &Db) -> AppResult<String> {
        let mut seed = [0u8; 32];
        rand::rng().fill_bytes(&mut seed);
        let signing = SigningKey::from_bytes(&seed);
        let public_key = URL_SAFE_NO_PAD.encode(signing.verifying_key().to_bytes());
        let (master_key_id, private_ciphertext) = self.keyring.encrypt(&seed);
        let now = store::now();
        let kid = format!("k{}", now.unix_timestamp_nanos() / 1000);
        let row = SigningKeyRow {
            kid: kid.clone(),
            algorithm: "EdDSA".into(),
            private_ciphertext,
            master_key_id,
            public_key,
            created_at: now,
            // Keys verify for one rotation period after a newer key takes over, plus the longest token life.
            retire_at: now + self.settings.rotation_period * 2 + self.settings.max_lifetime,
        };
        let mut tx = db.begin_write().await?;
        store::signing_keys::insert(&mut tx, &row).await?;
        tx.commit().await?;
        self.refresh(db).await?;
        Ok(kid)
    }

    /// The key to sign with, making one when the newest is older than the rotation period.
    async fn signing_key(&self, db: &Db) -> AppResult<Arc<LiveKey>> {
        let now = store::now();
        let fresh = |k: &LiveKey| k.created_at + self.settings.rotation_period > now && k.retire_at > now;
        if let Some(k) = self.keys.read().await.first().filter(|k| fresh(k)) {
            return Ok(k.clone());
        }
        self.refresh(db).await?;
        if let Some(k) = self.keys.read().await.first().filter(|k| fresh(k)) {
            return Ok(k.clone());
        }
        self.rotate(db).await?;
        self.keys.read().await.first().cloned().ok_or_else(|| internal("no signing key after rotation"))
    }

    pub async fn issue(&self, db: &Db, mut claims: Claims, lifetime: Duration) -> AppResult<(String, OffsetDateTime)> {
        let key = self.signing_key(db).await?;
        let now = OffsetDateTime::now_utc();
        let exp = now + lifetime;
        claims.iss = ISSUER.into();
        claims.iat = now.unix_timestamp();
        claims.exp = exp.unix_timestamp();
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(key.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &key.encoding).map_err(internal)?;
        Ok((token, exp))
    }

    /// Checks a token's algorithm, key, signature, issuer and expiry.
    pub async fn verify(&self, db: &Db, token: &str) -> AppResult<Claims> {
        let invalid = |m: &str| AppError::auth(ErrorCode::InvalidToken, m.to_owned());
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("the bearer token is not a JWT"))?;
        if header.alg != Algorithm::EdDSA {
            return Err(invalid("the bearer token's algorithm is not accepted"));
        }
        let kid = header.kid.ok_or_else(|| invalid("the bearer token names no signing key"))?;
        let stale =
            self.loaded_at.lock().map(|at| at.is_none_or(|t| t.elapsed() > KEY_RELOAD_INTERVAL)).unwrap_or(true);
        if stale {
            self.refresh(db).await?;
        }
        let mut key = self.keys.read().await.iter().find(|k| k.kid == kid).cloned();
        if key.is_none() {
            self.refresh(db).await?;
            key = self.keys.read().await.iter().find(|k| k.kid == kid).cloned();
        }
        let key = key.ok_or_else(|| invalid("the bearer token's signing key is unknown or retired"))?;
        if key.retire_at <= store::now() {
            return Err(invalid("the bearer token's signing key is retired"));
        }
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = 0;
        jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation).map(|d| d.claims).map_err(|e| {
            match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => invalid("the bearer token has expired"),
                _ => invalid("the bearer token is not valid"),
            }
        })
    }

    pub async fn jwks(&self, db: &Db) -> AppResult<JwkSet> {
        self.refresh(db).await?;
        let keys = self
            .keys
            .read()
            .await
            .iter()
            .map(|k| Jwk {
                kty: "OKP".into(),
                crv: "Ed25519".into(),
                kid: k.kid.clone(),
                x: k.public_x.clone(),
                alg: "EdDSA".into(),
                key_use: "sig".into(),
            })
            .collect();
        Ok(JwkSet { keys })
    }

    /// Re-encrypts signing keys stored under an older master key.
    pub async fn reencrypt(&self, db: &Db) -> AppResult<usize> {
        let mut tx = db.begin_write().await?;
        let rows = store::signing_keys::all(&mut tx).await?;
        let mut n = 0;
        for row in rows.iter().filter(|r| r.master_key_id != self.keyring.current_id()) {
            let plain = self.keyring.decrypt(&row.master_key_id, &row.private_ciphertext).map_err(internal)?;
            let (kid, ct) = self.keyring.encrypt(&plain);
            if store::signing_keys::reencrypt(&mut tx, &row.kid, &row.master_key_id, &kid, &ct).await? {
                n += 1;
            }
        }
        tx.commit().await?;
        Ok(n)
    }
}
