//! The Rust SDK for Berth's HTTP API.
//!
//! Typed on the wire types of [`berth_api`] (the same types the server
//! uses, so there is no second copy to drift), signing every request with
//! AWS SigV4 (service `berth`) or a bearer token. Calls that fail with 429 or
//! a 5xx are retried with jittered exponential backoff, honouring
//! `Retry-After`; a call that is not idempotent by nature (POST, PATCH) is
//! only ever retried with the same `Idempotency-Key`, which the SDK attaches
//! itself, so a retry can never apply a change twice. Lists page as streams
//! ([`paging`]), and [`waiters`] wait for tasks, services and deployments.
//!
//! ```no_run
//! # async fn demo() -> Result<(), berth_sdk::Error> {
//! use berth_sdk::{Client, Credentials};
//! let client = Client::new("http://127.0.0.1:7070", Credentials::sigv4("AKID", "secret", "local"))?;
//! let cluster = client.get_cluster("default").await?;
//! println!("{} has {} active tasks", cluster.name, cluster.active_tasks_count);
//! # Ok(()) }
//! ```

mod error;
mod operations;
pub mod paging;
pub mod profile;
mod signing;
pub mod streams;
pub mod waiters;

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use serde::de::DeserializeOwned;

pub use error::{ApiError, Error};
pub use operations::{OPERATIONS, Operation};

/// How the SDK proves who it is.
#[derive(Clone)]
pub enum Credentials {
    /// An access key: every request is signed with AWS SigV4, service `berth`.
    SigV4 { access_key_id: String, secret_access_key: String, region: String },
    /// A session JWT or a host credential, sent as `Authorization: Bearer`.
    Bearer(String),
    /// No credentials (public endpoints: agent registration, health, JWKS).
    Anonymous,
}

impl Credentials {
    pub fn sigv4(access_key_id: impl Into<String>, secret: impl Into<String>, region: impl Into<String>) -> Self {
        Credentials::SigV4 {
            access_key_id: access_key_id.into(),
            secret_access_key: secret.into(),
            region: region.into(),
        }
    }
}

impl std::fmt::Debug for Credentials {
    // Never print a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::SigV4 { access_key_id, region, .. } => {
                write!(f, "SigV4 {{ access_key_id: {access_key_id:?}, region: {region:?} }}")
            }
            Credentials::Bearer(_) => f.write_str("Bearer(..)"),
            Credentials::Anonymous => f.write_str("Anonymous"),
        }
    }
}

/// When and how often a failed call is tried again.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = never retry).
    pub max_attempts: u32,
    /// The first backoff; it doubles with every attempt, with full jitter.
    pub base: Duration,
    /// The longest backoff, and the longest `Retry-After` honoured.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 4, base: Duration::from_millis(200), cap: Duration::from_secs(20) }
    }
}

impl RetryPolicy {
    fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self.base.saturating_mul(1u32 << attempt.min(16)).min(self.cap);
        // Full jitter: anywhere between nothing and the ceiling.
        ceiling.mul_f64(fastrand::f64())
    }
}

/// A client of one Berth endpoint. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    endpoint: String,
    credentials: Credentials,
    retry: RetryPolicy,
    page_size: u32,
}

/// A response body that is text, not JSON (health checks, metrics).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Text(pub String);

/// How a response body becomes the operation's result.
pub trait FromBody: Sized {
    fn from_body(bytes: &[u8]) -> Result<Self, Error>;
}

impl<T: DeserializeOwned> FromBody for T {
    fn from_body(bytes: &[u8]) -> Result<Self, Error> {
        // An empty body (204) reads as `null`, which is what `()` expects.
        let bytes = if bytes.is_empty() { b"null".as_slice() } else { bytes };
        serde_json::from_slice(bytes).map_err(|e| Error::Decode(e.to_string()))
    }
}

impl FromBody for Text {
    fn from_body(bytes: &[u8]) -> Result<Self, Error> {
        Ok(Text(String::from_utf8_lossy(bytes).into_owned()))
    }
}

/// One call, before it is signed and sent.
pub(crate) struct Call<'a> {
    pub method: reqwest::Method,
    pub path: String,
    pub query: Option<String>,
    pub body: Option<Vec<u8>>,
    pub extra_headers: &'a [(&'static str, String)],
}

impl Client {
    /// A client with its own connection pool (rustls, no OpenSSL).
    pub fn new(endpoint: &str, credentials: Credentials) -> Result<Client, Error> {
        // TLS through rustls with ring, unless the program chose its own provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("berth-sdk/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Transport(e.to_string()))?;
        Ok(Self::with_http(http, endpoint, credentials))
    }

    /// A client on an existing reqwest client.
    pub fn with_http(http: reqwest::Client, endpoint: &str, credentials: Credentials) -> Client {
        Client {
            http,
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            credentials,
            retry: RetryPolicy::default(),
            page_size: berth_api::MAX_PAGE_SIZE,
        }
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Client {
        self.retry = retry;
        self
    }

    /// Items per page when listing through [`paging`] streams (1-100).
    pub fn with_page_size(mut self, page_size: u32) -> Client {
        self.page_size = page_size.clamp(1, berth_api::MAX_PAGE_SIZE);
        self
    }

    pub(crate) fn page_size(&self) -> u32 {
        self.page_size
    }

    pub fn with_credentials(&self, credentials: Credentials) -> Client {
        Client { credentials, ..self.clone() }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Sends a call with retries and decodes a successful body.
    pub(crate) async fn call<T: FromBody>(&self, call: Call<'_>) -> Result<T, Error> {
        let resp = self.send(call).await?;
        let bytes = resp.bytes().await.map_err(|e| Error::Transport(e.to_string()))?;
        T::from_body(&bytes)
    }

    /// Sends a call with retries and returns the successful response unread
    /// (for streamed bodies: logs, server-sent events).
    pub(crate) async fn send(&self, call: Call<'_>) -> Result<reqwest::Response, Error> {
        let mutating = call.method == reqwest::Method::POST || call.method == reqwest::Method::PATCH;
        // One key for every attempt: a retry of a change the server already
        // committed replays its answer instead of applying it again.
        let idempotency_key = mutating.then(|| uuid::Uuid::now_v7().to_string());
        let url = match &call.query {
            Some(q) if !q.is_empty() => format!("{}{}?{q}", self.endpoint, call.path),
            _ => format!("{}{}", self.endpoint, call.path),
        };
        let mut attempt = 0;
        loop {
            let mut req =
                self.http.request(call.method.clone(), &url).build().map_err(|e| Error::Transport(e.to_string()))?;
            let headers = req.headers_mut();
            headers.insert(reqwest::header::ACCEPT, HeaderValue::from_static("application/json, text/plain, */*"));
            if let Some(key) = &idempotency_key {
                insert(headers, berth_api::IDEMPOTENCY_KEY_HEADER, key)?;
            }
            for (name, value) in call.extra_headers {
                insert(headers, name, value)?;
            }
            if let Some(body) = &call.body {
                headers.insert(reqwest::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                *req.body_mut() = Some(body.clone().into());
            }
            match &self.credentials {
                Credentials::SigV4 { access_key_id, secret_access_key, region } => {
                    signing::sign(&mut req, access_key_id, secret_access_key, region, std::time::SystemTime::now())?
                }
                Credentials::Bearer(token) => insert(req.headers_mut(), "authorization", &format!("Bearer {token}"))?,
                Credentials::Anonymous => {}
            }
            attempt += 1;
            let last = attempt >= self.retry.max_attempts;
            match self.http.execute(req).await {
                Ok(resp) if resp.status().is_success() => return Ok(resp),
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let retry_after = resp
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let request_id = resp
                        .headers()
                        .get(berth_api::REQUEST_ID_HEADER)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    let bytes = resp.bytes().await.unwrap_or_default();
                    let err = ApiError::from_response(status, &bytes, request_id);
                    let retryable = status == 429 || status >= 500;
                    if !retryable || last {
                        return Err(Error::Api(err));
                    }
                    let wait = retry_after.map_or_else(|| self.retry.backoff(attempt), |d| d.min(self.retry.cap));
                    tokio::time::sleep(wait).await;
                }
                // Nothing came back: safe to retry only when a repeat cannot apply twice.
                Err(e) => {
                    let safe = !mutating || idempotency_key.is_some();
                    if last || !safe || !(e.is_connect() || e.is_timeout() || e.is_request()) {
                        return Err(Error::Transport(e.to_string()));
                    }
                    tokio::time::sleep(self.retry.backoff(attempt)).await;
                }
            }
        }
    }
}

fn insert(headers: &mut HeaderMap, name: &str, value: &str) -> Result<(), Error> {
    let name =
        reqwest::header::HeaderName::from_bytes(name.as_bytes()).map_err(|e| Error::InvalidInput(e.to_string()))?;
    let value = HeaderValue::from_str(value).map_err(|e| Error::InvalidInput(e.to_string()))?;
    headers.insert(name, value);
    Ok(())
}

/// Fills a path template's `{name}` parameters, percent-encoding each value.
pub(crate) fn render_path(template: &str, params: &[(&str, &str)]) -> String {
    let mut out = template.to_owned();
    for (name, value) in params {
        let encoded: String = value
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                other => format!("%{other:02X}"),
            })
            .collect();
        out = out.replace(&format!("{{{name}}}"), &encoded);
    }
    out
}
