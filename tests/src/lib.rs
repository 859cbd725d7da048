//! The end-to-end test harness: fresh databases on the real PostgreSQL that
//! `cargo xtask test` starts (and on SQLite files), and the real HTTP server
//! on a loopback port.
//!
//! Tests that need PostgreSQL fail loudly when it is not there: run them with
//! `cargo xtask test`, which installs and starts it.

pub mod bench;
pub mod browser;
pub mod console;
pub mod containers;
pub mod simulated;

use std::net::SocketAddr;
use std::sync::Once;

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use berth_control_plane::app::{App, Limits};
use berth_control_plane::auth::keyring::Keyring;
use berth_control_plane::config::{AuthSettings, ServerConfig};
use berth_control_plane::server::{BoundServer, build_app};
use berth_control_plane::store::{Db, PoolOptions, migrate};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

/// Where `cargo xtask test` publishes its PostgreSQL: an admin connection URL.
pub const POSTGRES_URL_ENV: &str = "BERTH_TEST_POSTGRES_URL";

static INIT: Once = Once::new();

pub fn init() {
    INIT.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Which database a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// A fresh, migrated database owned by one test.
pub struct TestDb {
    pub db: Db,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

pub fn postgres_admin_url() -> String {
    std::env::var(POSTGRES_URL_ENV).unwrap_or_else(|_| {
        panic!(
            "{POSTGRES_URL_ENV} is not set: run the tests with `cargo xtask test`, which starts a private PostgreSQL"
        )
    })
}

fn with_database(url: &str, database: &str) -> String {
    match url.rfind('/') {
        Some(i) if url[..i].contains("://") && !url[i + 1..].contains('@') => {
            let (base, rest) = url.split_at(i);
            let query = rest.find('?').map(|q| &rest[q..]).unwrap_or("");
            format!("{base}/{database}{query}")
        }
        _ => format!("{url}/{database}"),
    }
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Postgres => Self::postgres().await,
            Backend::Sqlite => Self::sqlite().await,
        }
    }

    /// A new PostgreSQL database cloned from a migrated template. The
    /// template's name carries a hash of the migrations, so a schema change
    /// gets a new template; an advisory lock makes its creation safe when
    /// many test processes start at once.
    pub async fn postgres() -> TestDb {
        init();
        let admin_url = postgres_admin_url();
        let mut hash = Sha256::new();
        for (v, d, pg, _) in migrate::MIGRATIONS {
            hash.update(format!("{v}{d}{pg}"));
        }
        let template = format!("berth_tmpl_{}", &hex::encode(hash.finalize())[..16]);
        let admin = sqlx::PgPool::connect(&admin_url).await.expect("connect to the test PostgreSQL");
        let mut conn = admin.acquire().await.expect("admin connection");
        sqlx::query("SELECT pg_advisory_lock(4242)").execute(&mut *conn).await.expect("lock");
        let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
            .bind(&template)
            .fetch_optional(&mut *conn)
            .await
            .expect("look up template");
        if exists.is_none() {
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{template}\"")))
                .execute(&mut *conn)
                .await
                .expect("create template");
            let db = Db::connect(&with_database(&admin_url, &template), &PoolOptions::default())
                .await
                .expect("connect template");
            migrate::run(&db).await.expect("migrate template");
            db.close().await;
            sqlx::query(sqlx::AssertSqlSafe(format!("ALTER DATABASE \"{template}\" WITH IS_TEMPLATE true")))
                .execute(&mut *conn)
                .await
                .expect("mark template");
        }
        sqlx::query("SELECT pg_advisory_unlock(4242)").execute(&mut *conn).await.expect("unlock");
        let name = format!("berth_t_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\"")))
            .execute(&mut *conn)
            .await
            .expect("create test database");
        drop(conn);
        admin.close().await;
        let url = with_database(&admin_url, &name);
        let db = Db::connect(&url, &PoolOptions::default()).await.expect("connect test database");
        migrate::run(&db).await.expect("migrations are current");
        TestDb { db, url, _dir: None }
    }

    /// Another connection pool to an existing test database (a second replica).
    pub async fn attach(url: &str) -> TestDb {
        init();
        let db = Db::connect(url, &PoolOptions::default()).await.expect("connect");
        TestDb { db, url: url.to_owned(), _dir: None }
    }

    /// A new SQLite database in a temporary directory.
    pub async fn sqlite() -> TestDb {
        init();
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("berth.db").display());
        let db = Db::connect(&url, &PoolOptions::default()).await.expect("open sqlite");
        migrate::run(&db).await.expect("migrate sqlite");
        TestDb { db, url, _dir: Some(dir) }
    }
}

/// Generates one test per backend from an async fn taking a [`Backend`].
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::Backend::Postgres).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::Backend::Sqlite).await
                }
            }
        )*
    };
}

/// A running control plane on a loopback port.
pub struct TestServer {
    pub addr: SocketAddr,
    pub app: App,
    pub testdb: TestDb,
    pub config: ServerConfig,
    /// The operator account's bootstrap admin.
    pub operator: Client,
    pub http: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

pub fn test_config(url: &str) -> ServerConfig {
    ServerConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        database_url: url.to_owned(),
        db_max_connections: 16,
        log_format: Default::default(),
        limits: Limits::default(),
        rate_limits: None,
        auth: AuthSettings {
            region: "local".into(),
            keyring: Keyring::parse(&Keyring::generate_entry("test1")).expect("keyring"),
            sessions: Default::default(),
        },
        agent: Default::default(),
        quotas: Default::default(),
    }
}

impl TestServer {
    pub async fn start(backend: Backend) -> TestServer {
        let testdb = TestDb::new(backend).await;
        let config = test_config(&testdb.url);
        Self::start_with(testdb, config).await
    }

    /// A server whose hosts heartbeat every second, are DISCONNECTED after 3 s
    /// of silence and LOST after 4 s: host loss within a test's patience.
    pub async fn with_quick_host_loss(backend: Backend) -> TestServer {
        let testdb = TestDb::new(backend).await;
        let mut config = test_config(&testdb.url);
        config.agent.heartbeat_interval = std::time::Duration::from_secs(1);
        config.agent.lost_timeout = std::time::Duration::from_secs(4);
        Self::start_with(testdb, config).await
    }

    pub async fn start_with(testdb: TestDb, config: ServerConfig) -> TestServer {
        let app = build_app(testdb.db.clone(), &config).await.expect("build app");
        let server = BoundServer::bind(app.clone(), &config).await.expect("bind");
        let addr = server.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(async move {
            let _ = server
                .serve(async {
                    let _ = rx.await;
                })
                .await;
        });
        let http = reqwest::Client::builder().build().expect("http client");
        let base = format!("http://{addr}");
        let operator = match app.bootstrap().await.expect("bootstrap") {
            Some(boot) => Client::new(
                &base,
                &http,
                Auth::SigV4 {
                    access_key_id: boot.key.access_key.access_key_id,
                    secret: boot.key.secret_access_key,
                    region: "local".into(),
                },
            ),
            None => Client::new(&base, &http, Auth::None),
        };
        TestServer { addr, app, testdb, config, operator, http, shutdown: Some(tx), task: Some(task) }
    }

    /// A new tenant account, made through the operator API, and its admin client.
    pub async fn tenant(&self, name: &str) -> Client {
        self.operator.post("/v1/accounts", serde_json::json!({"name": name})).await.expect(201);
        let key =
            self.operator.post(&format!("/v1/accounts/{name}/access-keys"), serde_json::json!({})).await.expect(201);
        self.with_key(
            key["access_key"]["access_key_id"].as_str().expect("akid"),
            key["secret_access_key"].as_str().expect("secret"),
        )
    }

    /// A client signing with the given key.
    pub fn with_key(&self, access_key_id: &str, secret: &str) -> Client {
        self.client(Auth::SigV4 { access_key_id: access_key_id.into(), secret: secret.into(), region: "local".into() })
    }

    pub fn client(&self, auth: Auth) -> Client {
        Client::new(&format!("http://{}", self.addr), &self.http, auth)
    }

    /// A client without credentials.
    pub fn anonymous(&self) -> Client {
        self.client(Auth::None)
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// A response as a test looks at it.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the status and returns the body, showing the body on mismatch.
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(self.status.as_u16(), status, "unexpected status; body: {}", self.body);
        self.body
    }

    /// Asserts an error response with this status and code, and returns it.
    pub fn expect_error(self, status: u16, code: &str) -> Value {
        assert_eq!(self.status.as_u16(), status, "unexpected status; body: {}", self.body);
        assert_eq!(self.body["code"], code, "unexpected code; body: {}", self.body);
        assert!(
            self.body["request_id"].as_str().is_some_and(|r| !r.is_empty()),
            "error without request_id: {}",
            self.body
        );
        assert_eq!(
            self.body["request_id"].as_str(),
            self.header("x-request-id"),
            "the body's request_id must equal the x-request-id header"
        );
        self.body
    }
}

/// How a client proves who it is.
#[derive(Clone, Debug)]
pub enum Auth {
    None,
    /// Signs every request with AWS SigV4 (aws-sigv4, as the SDK does).
    SigV4 {
        access_key_id: String,
        secret: String,
        region: String,
    },
    Bearer(String),
    /// A raw Authorization header value.
    Header(String),
}

/// An HTTP client acting as one principal.
#[derive(Clone)]
pub struct Client {
    pub base: String,
    pub http: reqwest::Client,
    pub auth: Auth,
}

/// Signs a request in place with SigV4 (header form, x-amz-content-sha256 included).
pub fn sign_request(req: &mut reqwest::Request, access_key_id: &str, secret: &str, region: &str, at: SystemTime) {
    let host = {
        let url = req.url();
        match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or("")),
            None => url.host_str().unwrap_or("").to_owned(),
        }
    };
    req.headers_mut().insert("host", host.parse().expect("host header"));
    let body = req.body().and_then(|b| b.as_bytes()).unwrap_or(&[]).to_vec();
    let identity: Identity = Credentials::new(access_key_id, secret, None, None, "test").into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("berth")
        .time(at)
        .settings(settings)
        .build()
        .expect("signing params")
        .into();
    let headers: Vec<(String, String)> =
        req.headers().iter().map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned())).collect();
    let signable = SignableRequest::new(
        req.method().as_str(),
        req.url().as_str(),
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(&body),
    )
    .expect("signable");
    let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
    let (new_headers, _) = instructions.into_parts();
    for h in new_headers {
        req.headers_mut().insert(
            reqwest::header::HeaderName::from_bytes(h.name().as_bytes()).expect("name"),
            h.value().parse().expect("value"),
        );
    }
}

impl Client {
    pub fn new(base: &str, http: &reqwest::Client, auth: Auth) -> Client {
        Client { base: base.to_owned(), http: http.clone(), auth }
    }

    pub fn with_auth(&self, auth: Auth) -> Client {
        Client { auth, ..self.clone() }
    }

    /// An unsigned request; [`Client::send`] adds the credentials.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{}", self.base, path))
    }

    pub async fn send(&self, rb: reqwest::RequestBuilder) -> Resp {
        let mut req = rb.build().expect("request");
        match &self.auth {
            Auth::None => {}
            Auth::SigV4 { access_key_id, secret, region } => {
                sign_request(&mut req, access_key_id, secret, region, SystemTime::now())
            }
            Auth::Bearer(t) => {
                req.headers_mut().insert("authorization", format!("Bearer {t}").parse().expect("header"));
            }
            Auth::Header(h) => {
                req.headers_mut().insert("authorization", h.parse().expect("header"));
            }
        }
        Self::execute(&self.http, req).await
    }

    pub async fn execute(http: &reqwest::Client, req: reqwest::Request) -> Resp {
        let resp = http.execute(req).await.expect("request sent");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Resp { status, headers, body }
    }

    /// A new key in this client's account, and a client using it.
    pub async fn new_key(&self, role: &str, clusters: Option<Vec<&str>>) -> Client {
        let mut body = serde_json::json!({"role": role});
        if let Some(c) = clusters {
            body["clusters"] = serde_json::json!(c);
        }
        let key = self.post("/v1/access-keys", body).await.expect(201);
        let Auth::SigV4 { region, .. } = &self.auth else { panic!("new_key needs a signing client") };
        self.with_auth(Auth::SigV4 {
            access_key_id: key["access_key"]["access_key_id"].as_str().expect("akid").to_owned(),
            secret: key["secret_access_key"].as_str().expect("secret").to_owned(),
            region: region.clone(),
        })
    }

    /// Registers a host in the cluster through a fresh registration token, as an agent would.
    pub async fn add_host(&self, cluster: &str, cpu: u32, memory: u32, attributes: Value) -> Value {
        let token =
            self.post(&format!("/v1/clusters/{cluster}/registration-tokens"), serde_json::json!({})).await.expect(201);
        let anon = self.with_auth(Auth::None);
        anon.post(
            "/v1/agent/register",
            serde_json::json!({"registration_token": token["token"], "hostname": format!("host-{}", uuid::Uuid::now_v7()),
                   "total": {"cpu": cpu, "memory": memory}, "attributes": attributes, "agent_version": "test"}),
        )
        .await
        .expect(201)
    }

    /// A client using a session token made from this client's key.
    pub async fn session(&self) -> Client {
        let s = self.post("/v1/sessions", serde_json::json!({})).await.expect(201);
        self.with_auth(Auth::Bearer(s["token"].as_str().expect("token").to_owned()))
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(self.request(Method::GET, path)).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.send(self.request(Method::POST, path).json(&body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Resp {
        self.send(self.request(Method::PATCH, path).json(&body)).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.send(self.request(Method::DELETE, path)).await
    }

    /// GETs `path` every 100 ms until `check` holds (up to `secs` seconds) and
    /// returns the body; fails naming `what` and the last body otherwise.
    pub async fn wait_for(&self, path: &str, what: &str, secs: u64, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let v = self.get(path).await.expect(200);
            if check(&v) {
                return v;
            }
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}; last: {v:#}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Creates a cluster and returns its body.
    pub async fn create_cluster(&self, name: &str) -> Value {
        self.post("/v1/clusters", serde_json::json!({"name": name})).await.expect(201)
    }

    /// Registers a one-container definition and returns its body.
    pub async fn register(&self, family: &str) -> Value {
        self.post(
            "/v1/task-definitions",
            serde_json::json!({"family": family, "container_definitions": [
                {"name": "app", "image": "127.0.0.1:5000/busybox:latest", "memory": 64, "command": ["sleep", "3600"]}
            ]}),
        )
        .await
        .expect(201)
    }
}
