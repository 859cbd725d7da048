//! Rate limits per account and class of call, their headers, replicas sharing
//! them, and the request guards (nesting depth, timeout, page size, the cap
//! on expensive calls in flight).

use std::time::Duration;

use berth_tests::{Auth, Backend, Client, TestDb, TestServer, on_both_backends, test_config};
use reqwest::Method;
use serde_json::{Value, json};

async fn start(backend: Backend) -> TestServer {
    let t = TestDb::new(backend).await;
    let mut config = test_config(&t.url);
    config.rate_limits = Some(Default::default());
    TestServer::start_with(t, config).await
}

async fn set_limit(s: &TestServer, account: &str, class: &str, per_second: f64, burst: u32) -> Value {
    let rb = s
        .operator
        .request(Method::PUT, &format!("/v1/accounts/{account}/rate-limits/{class}"))
        .json(&json!({"per_second": per_second, "burst": burst}));
    s.operator.send(rb).await.expect(200)
}

fn header(r: &berth_tests::Resp, name: &str) -> u64 {
    r.header(name).unwrap_or_else(|| panic!("{name} missing")).parse().expect("a number")
}

async fn buckets_headers_and_429(backend: Backend) {
    let s = start(backend).await;
    let c = s.tenant("acme").await;
    let other = s.tenant("globex").await;
    let defaults = c.get("/v1/rate-limits").await.expect(200);
    assert_eq!(defaults["rate_limits"].as_array().expect("limits").len(), 4);

    // One token every 100 s, three at once: the fourth call in a row is refused.
    let set = set_limit(&s, "acme", "read", 0.01, 3).await;
    assert_eq!(set, json!({"class": "read", "per_second": 0.01, "burst": 3, "source": "account"}));
    for remaining in [2, 1, 0] {
        let r = c.get("/v1/clusters").await;
        assert_eq!(r.status.as_u16(), 200, "{}", r.body);
        assert_eq!(header(&r, "ratelimit-limit"), 3);
        assert_eq!(header(&r, "ratelimit-remaining"), remaining);
        assert!(header(&r, "ratelimit-reset") <= 300);
    }
    let r = c.get("/v1/clusters").await;
    let retry = header(&r, "retry-after");
    assert!((1..=100).contains(&retry), "Retry-After {retry}");
    assert_eq!(header(&r, "ratelimit-remaining"), 0);
    assert_eq!(header(&r, "ratelimit-reset"), retry);
    r.expect_error(429, "ThrottlingException");
    // While the bucket is empty, calls claiming the key are refused before
    // authentication (no database read): even a badly signed one.
    let Auth::SigV4 { access_key_id, region, .. } = c.auth.clone() else { panic!("a signing client") };
    let forged = c.with_auth(Auth::SigV4 { access_key_id, secret: "not-the-secret".into(), region });
    forged.get("/v1/clusters").await.expect_error(429, "ThrottlingException");
    forged.post("/v1/clusters", json!({"name": "x"})).await.expect_error(403, "SignatureDoesNotMatch");

    // Other classes and other accounts have their own buckets.
    c.post("/v1/clusters", json!({"name": "prod"})).await.expect(201);
    other.get("/v1/clusters").await.expect(200);
    // The operator sees and resets it; only the operator may.
    let seen = s.operator.get("/v1/accounts/acme/rate-limits").await.expect(200);
    let read = seen["rate_limits"].as_array().expect("limits").iter().find(|l| l["class"] == "read").expect("read");
    assert_eq!(read["source"], "account");
    let rb = other
        .request(Method::PUT, "/v1/accounts/globex/rate-limits/read")
        .json(&json!({"per_second": 1e6, "burst": 1}));
    other.send(rb).await.expect_error(403, "AccessDenied");
    let rb = s
        .operator
        .request(Method::PUT, "/v1/accounts/acme/rate-limits/read")
        .json(&json!({"per_second": 0, "burst": 1}));
    assert_eq!(s.operator.send(rb).await.expect_error(422, "ValidationError")["field"], "per_second");
    let rb = s
        .operator
        .request(Method::PUT, "/v1/accounts/acme/rate-limits/writes")
        .json(&json!({"per_second": 1, "burst": 1}));
    s.operator.send(rb).await.expect_error(404, "ResourceNotFound");
    let reset = s.operator.delete("/v1/accounts/acme/rate-limits/read").await.expect(200);
    assert_eq!(reset["source"], "default");
    c.get("/v1/clusters").await.expect(200);
    s.stop().await;
}

/// A tenant that used up its API buckets still heartbeats: agents have their own.
async fn agents_have_their_own_bucket(backend: Backend) {
    let s = start(backend).await;
    let c = s.tenant("acme").await;
    c.create_cluster("prod").await;
    let host = c.add_host("prod", 4096, 4096, json!({})).await;
    let agent = c.with_auth(Auth::Header(format!("BerthHost {}", host["host_credential"].as_str().expect("cred"))));
    let beat = format!("/v1/agent/hosts/{}/heartbeat", host["host_id"].as_str().expect("id"));
    set_limit(&s, "acme", "read", 0.01, 1).await;
    set_limit(&s, "acme", "mutate", 0.01, 1).await;
    c.get("/v1/clusters").await.expect(200);
    c.get("/v1/clusters").await.expect_error(429, "ThrottlingException");
    c.post("/v1/clusters", json!({"name": "a"})).await.expect(201);
    c.post("/v1/clusters", json!({"name": "b"})).await.expect_error(429, "ThrottlingException");
    for _ in 0..5 {
        agent.post(&beat, json!({"observed": []})).await.expect(200);
    }
    set_limit(&s, "acme", "agent", 0.01, 1).await;
    agent.post(&beat, json!({"observed": []})).await.expect(200);
    agent.post(&beat, json!({"observed": []})).await.expect_error(429, "ThrottlingException");
    s.stop().await;
}

/// Replicas recorded in the database share each bucket, so two replicas do
/// not grant twice the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_each_bucket() {
    let s1 = start(Backend::Postgres).await;
    let c1 = s1.tenant("acme").await;
    set_limit(&s1, "acme", "read", 0.01, 4).await;
    let db2 = TestDb::attach(&s1.testdb.url).await;
    let mut config2 = test_config(&s1.testdb.url);
    config2.auth = s1.config.auth.clone();
    config2.rate_limits = Some(Default::default());
    let s2 = TestServer::start_with(db2, config2).await;
    s1.app.refresh_rate_limits().await.expect("refresh");
    s2.app.refresh_rate_limits().await.expect("refresh");
    let Auth::SigV4 { access_key_id, secret, .. } = c1.auth.clone() else { panic!("a signing client") };
    let c2 = s2.with_key(&access_key_id, &secret);
    // Each replica grants half of the four: four in all, not eight.
    let mut granted = 0;
    for c in [&c1, &c2] {
        for _ in 0..4 {
            let r = c.get("/v1/clusters").await;
            if r.status.as_u16() == 200 {
                assert_eq!(header(&r, "ratelimit-limit"), 2);
                granted += 1;
            }
        }
    }
    assert_eq!(granted, 4);
    // When a replica stops, the other takes the whole bucket again.
    s2.stop().await;
    s1.app.refresh_rate_limits().await.expect("refresh");
    let r = c1.get("/v1/rate-limits").await;
    assert_eq!(header(&r, "ratelimit-limit"), 4);
    s1.stop().await;
}

async fn request_guards(backend: Backend) {
    let t = TestDb::new(backend).await;
    let mut config = test_config(&t.url);
    config.limits.request_timeout = Duration::from_secs(1);
    config.limits.expensive_calls_per_account = 1;
    let s = TestServer::start_with(t, config).await;
    let c: Client = s.tenant("acme").await;
    c.create_cluster("prod").await;
    c.register("web").await;

    // Nesting deeper than 32 levels is refused before it is parsed.
    let mut deep = json!("x");
    for _ in 0..40 {
        deep = json!([deep]);
    }
    let e = c.post("/v1/clusters", json!({"name": "deep", "tags": {"k": deep}})).await.expect_error(400, "BadRequest");
    assert!(e["message"].as_str().expect("message").contains("levels deep"), "{e}");
    c.get("/v1/clusters/deep").await.expect_error(404, "ResourceNotFound");

    // A page larger than the maximum is refused, naming the parameter.
    assert_eq!(c.get("/v1/clusters?limit=1000").await.expect_error(400, "BadRequest")["field"], "limit");

    // A request past the timeout is abandoned with a specific error.
    let r = c.get("/v1/events?after=1000000&wait=5").await;
    assert_eq!(header(&r, "retry-after"), 1);
    r.expect_error(503, "RequestTimeout");

    // Expensive calls in flight are capped per account.
    let account =
        s.operator.get("/v1/accounts/acme").await.expect(200)["id"].as_str().expect("id").parse().expect("id");
    let slot = s.app.expensive_call(account).expect("the only slot");
    let e = c.post("/v1/clusters/prod/tasks", json!({"task_definition": "web", "queue": true})).await;
    e.expect_error(429, "TooManyConcurrentRequests");
    let other = s.tenant("globex").await;
    other.create_cluster("prod").await;
    other.register("web").await;
    other.post("/v1/clusters/prod/tasks", json!({"task_definition": "web", "queue": true})).await.expect(201);
    drop(slot);
    c.post("/v1/clusters/prod/tasks", json!({"task_definition": "web", "queue": true})).await.expect(201);
    s.stop().await;
}

on_both_backends!(buckets_headers_and_429, agents_have_their_own_bucket, request_guards);
