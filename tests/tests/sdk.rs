//! The Rust SDK against the real server: signing, errors, retries (on the
//! real rate limiter, and on a scripted test double that fails on purpose),
//! paging streams and waiters.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use berth_api::clusters::CreateClusterRequest;
use berth_api::hosts::Resources;
use berth_api::services::{CreateServiceRequest, DeploymentConfiguration, UpdateServiceRequest};
use berth_api::tasks::{RunTaskRequest, StopTaskRequest};
use berth_sdk::waiters::Wait;
use berth_sdk::{Client, Credentials, Error, RetryPolicy};
use berth_tests::simulated::SimAgent;
use berth_tests::{Auth, Backend, TestDb, TestServer, test_config};
use futures::StreamExt as _;
use serde_json::json;

fn sdk_for(s: &TestServer, c: &berth_tests::Client) -> Client {
    let Auth::SigV4 { access_key_id, secret, region } = &c.auth else { panic!("a signing client") };
    Client::new(&format!("http://{}", s.addr), Credentials::sigv4(access_key_id, secret, region)).expect("sdk")
}

fn cluster(name: &str) -> CreateClusterRequest {
    CreateClusterRequest { name: name.into(), ..Default::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_errors_sessions_and_paging() {
    let s = TestServer::start(Backend::Postgres).await;
    let tenant = s.tenant("acme").await;
    let sdk = sdk_for(&s, &tenant);

    let made = sdk.create_cluster(&cluster("prod")).await.expect("create");
    assert_eq!(made.name, "prod");
    assert_eq!(sdk.get_cluster("prod").await.expect("get").id, made.id);

    // Errors carry the API's code, message, field and request id.
    let Err(Error::Api(e)) = sdk.create_cluster(&cluster("prod")).await else { panic!("a duplicate is refused") };
    assert_eq!((e.status, e.code.as_str()), (409, "ResourceAlreadyExists"));
    assert_eq!(e.field.as_deref(), Some("name"));
    assert!(e.request_id.as_deref().is_some_and(|r| !r.is_empty()));
    let Err(Error::Api(e)) = sdk.create_cluster(&cluster("has space")).await else { panic!("refused") };
    assert_eq!((e.code.as_str(), e.field.as_deref()), ("ValidationError", Some("name")));
    let Err(Error::Api(e)) = sdk.get_cluster("nope").await else { panic!("missing") };
    assert_eq!(e.code, "ResourceNotFound");

    // A session token works like the key it came from.
    let session = sdk.create_session(&Default::default()).await.expect("session");
    let bearer = sdk.with_credentials(Credentials::Bearer(session.token.clone()));
    assert_eq!(bearer.get_cluster("prod").await.expect("with a session").id, made.id);
    let Err(Error::Api(e)) = sdk.with_credentials(Credentials::Anonymous).get_cluster("prod").await else {
        panic!("anonymous is refused")
    };
    assert_eq!(e.status, 401);

    // Paging as a stream: 23 clusters in pages of 5.
    for i in 0..22 {
        sdk.create_cluster(&cluster(&format!("c{i:02}"))).await.expect("create");
    }
    let paged = sdk.clone().with_page_size(5);
    let names: Vec<String> =
        Client::collect(paged.clusters()).await.expect("all pages").into_iter().map(|c| c.name).collect();
    assert_eq!(names.len(), 23);
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 23, "each cluster once");

    // System operations.
    assert_eq!(sdk.healthz().await.expect("healthz").0.trim(), "ok");
    assert!(sdk.openapi().await.expect("openapi")["paths"].is_object());
    s.stop().await;
}

/// The real rate limiter answers 429 with Retry-After; the SDK waits and
/// retries, and a create sent with its own idempotency key is applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_calls_are_retried_after_the_servers_delay() {
    let t = TestDb::new(Backend::Postgres).await;
    let mut config = test_config(&t.url);
    config.rate_limits = Some(Default::default());
    let s = TestServer::start_with(t, config).await;
    let tenant = s.tenant("acme").await;
    let put = s
        .operator
        .request(reqwest::Method::PUT, "/v1/accounts/acme/rate-limits/mutate")
        .json(&json!({"per_second": 1.0, "burst": 1}));
    s.operator.send(put).await.expect(200);
    let sdk = sdk_for(&s, &tenant).with_retry(RetryPolicy { max_attempts: 5, ..Default::default() });
    let started = Instant::now();
    for i in 0..3 {
        sdk.create_cluster(&cluster(&format!("t{i}"))).await.expect("retried until admitted");
    }
    assert!(started.elapsed() >= Duration::from_millis(1500), "the SDK waited as told: {:?}", started.elapsed());
    let no_retry = sdk.clone().with_retry(RetryPolicy { max_attempts: 1, ..Default::default() });
    let Err(Error::Api(e)) = no_retry.create_cluster(&cluster("t9")).await else { panic!("throttled") };
    assert_eq!((e.status, e.code.as_str()), (429, "ThrottlingException"));
    let all = Client::collect(sdk.clusters()).await.expect("list");
    assert_eq!(all.len(), 3, "each create applied once");
    s.stop().await;
}

/// A test double in front of nothing: answers 503 twice, then 201. The SDK
/// retries a POST only with one idempotency key for every attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_of_a_change_reuse_one_idempotency_key() {
    let seen: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let attempts = Arc::new(AtomicU32::new(0));
    let app = {
        let (seen, attempts) = (seen.clone(), attempts.clone());
        axum::Router::new().route(
            "/v1/clusters",
            axum::routing::post(move |headers: axum::http::HeaderMap| {
                let (seen, attempts) = (seen.clone(), attempts.clone());
                async move {
                    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                    seen.lock().expect("lock").push(key);
                    if attempts.fetch_add(1, Ordering::SeqCst) < 2 {
                        return (
                            axum::http::StatusCode::SERVICE_UNAVAILABLE,
                            [("retry-after", "0")],
                            r#"{"code":"ServiceUnavailable","message":"try again","request_id":"r1"}"#.to_owned(),
                        );
                    }
                    let now = "2026-01-01T00:00:00Z";
                    let body = json!({"id": uuid::Uuid::now_v7(), "name": "x", "status": "ACTIVE", "tags": {},
                        "active_tasks_count": 0, "created_at": now, "updated_at": now, "version": 1});
                    (axum::http::StatusCode::CREATED, [("retry-after", "0")], body.to_string())
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    let sdk = Client::new(&format!("http://{addr}"), Credentials::sigv4("AKID", "secret", "local")).expect("sdk");
    sdk.create_cluster(&cluster("x")).await.expect("succeeds on the third attempt");
    let keys = seen.lock().expect("lock").clone();
    assert_eq!(keys.len(), 3);
    assert!(!keys[0].is_empty() && keys.iter().all(|k| *k == keys[0]), "one key for every attempt: {keys:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn waiters_follow_tasks_services_and_deployments() {
    let t = TestDb::new(Backend::Postgres).await;
    let mut config = test_config(&t.url);
    config.agent.heartbeat_interval = Duration::from_secs(1);
    config.agent.lost_timeout = Duration::from_secs(4);
    let s = TestServer::start_with(t, config).await;
    let tenant = s.tenant("acme").await;
    tenant.create_cluster("prod").await;
    tenant.register("web").await;
    let dir = tempfile::tempdir().expect("dir");
    let agent = SimAgent::start(
        &tenant,
        &format!("http://{}", s.addr),
        "prod",
        dir.path(),
        "sim",
        Resources { cpu: 4096, memory: 4096 },
        &[],
    )
    .await;
    let sdk = sdk_for(&s, &tenant);
    let wait = Wait { timeout: Duration::from_secs(30), interval: Duration::from_millis(100) };

    let run = RunTaskRequest {
        task_definition: "web".into(),
        count: 1,
        overrides: Default::default(),
        started_by: None,
        tags: Default::default(),
        client_token: None,
        placement_strategy: vec![],
        placement_constraints: vec![],
        queue: false,
        launch_type: Default::default(),
    };
    let started = sdk.run_task("prod", &run).await.expect("run");
    let task = started.tasks[0].id.to_string();
    let running = sdk.wait_task_running("prod", &task, wait).await.expect("running");
    assert_eq!(running.last_status, berth_api::tasks::TaskStatus::Running);
    sdk.stop_task("prod", &task, &StopTaskRequest::default()).await.expect("stop");
    sdk.wait_task_stopped("prod", &task, wait).await.expect("stopped");
    // Waiting for RUNNING on a stopped task fails at once, saying why.
    let Err(Error::Failed(why)) = sdk.wait_task_running("prod", &task, wait).await else { panic!("fails") };
    assert!(why.contains("UserInitiated"), "{why}");

    let create = CreateServiceRequest {
        name: "web".into(),
        task_definition: "web".into(),
        desired_count: Some(2),
        scheduling_strategy: Default::default(),
        launch_type: Default::default(),
        placement_strategy: vec![],
        placement_constraints: vec![],
        deployment_configuration: Some(DeploymentConfiguration {
            min_healthy_time_seconds: Some(1),
            ..Default::default()
        }),
        health_check_grace_period_seconds: 0,
        tags: Default::default(),
        client_token: None,
    };
    sdk.create_service("prod", &create).await.expect("service");
    let stable = sdk.wait_service_stable("prod", "web", wait).await.expect("stable");
    assert_eq!(stable.running_count, 2);
    let update = UpdateServiceRequest { force_new_deployment: true, ..Default::default() };
    let updated = sdk.update_service("prod", "web", &update).await.expect("deploy");
    let deployment = updated.deployments.iter().find(|d| d.primary).expect("primary").id;
    let done = sdk.wait_deployment("prod", "web", deployment, wait).await.expect("deployment completes");
    assert_eq!(done.state, berth_api::services::DeploymentState::Completed);

    // Events as a server-sent stream, from the start.
    let mut events = Box::pin(
        sdk.stream_events(&berth_api::events::StreamEventsQuery { after: Some(0), types: None }, None)
            .await
            .expect("stream"),
    );
    let first = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("an event")
        .expect("some")
        .expect("ok");
    assert_eq!(first.sequence, 1);
    // An open stream would hold the server's graceful shutdown.
    drop(events);
    agent.kill().await;
    s.stop().await;
}
