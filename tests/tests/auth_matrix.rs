//! A table-driven authorization matrix over every route of the API, taken
//! from the OpenAPI document the router itself generates: a new route cannot
//! escape it.

use std::time::{Duration, SystemTime};

use berth_tests::{Auth, Backend, Client, TestServer, sign_request};
use reqwest::Method;
use serde_json::{Value, json};

/// A route of the tenant API: method, path template, operationId.
#[derive(Clone, Debug)]
struct Route {
    method: Method,
    path: String,
    id: String,
}

fn tenant_routes() -> Vec<Route> {
    let doc = berth_control_plane::http::openapi();
    let mut out = Vec::new();
    for (path, item) in doc.paths.paths {
        if !path.starts_with("/v1/") || path.starts_with("/v1/agent") {
            continue;
        }
        for (method, op) in [
            (Method::GET, item.get),
            (Method::POST, item.post),
            (Method::PUT, item.put),
            (Method::PATCH, item.patch),
            (Method::DELETE, item.delete),
        ] {
            if let Some(op) = op {
                out.push(Route { method, path: path.clone(), id: op.operation_id.expect("operationId") });
            }
        }
    }
    assert!(out.len() >= 30, "only {} tenant routes found", out.len());
    out
}

/// A body each operation accepts, so that what is checked is authorization, not validation.
/// Routes only the operator account's admin keys may call.
fn operator_only(path: &str) -> bool {
    path.starts_with("/v1/accounts") || path.starts_with("/v1/capacity-pools")
}

fn body_for(op: &str) -> Option<Value> {
    Some(match op {
        "create_cluster" => json!({"name": "matrix-new"}),
        "update_cluster" => json!({"tags": {"k": "v"}}),
        "register_task_definition" => json!({"family": "web", "container_definitions": [
            {"name": "app", "image": "busybox", "memory": 64}]}),
        "run_task" => json!({"task_definition": "globex-web", "queue": true}),
        "create_service" => json!({"name": "matrix-svc", "task_definition": "globex-web", "desired_count": 0}),
        "update_service" => json!({"desired_count": 0}),
        "create_access_key" => json!({"role": "read-only"}),
        "create_account" => json!({"name": "matrix-account"}),
        "update_host_attributes" => json!({"attributes": {"rack": "r1"}}),
        "simulate_placement" => json!({"task_definition": "globex-web"}),
        "put_account_quota" => json!({"limit": 1000}),
        "create_registry_credential" => {
            json!({"name": "matrix-cred", "registry": "127.0.0.1:5000", "username": "u", "password": "p"})
        }
        "update_registry_credential" => json!({"password": "p2"}),
        "put_account_rate_limit" => json!({"per_second": 10.0, "burst": 10}),
        "create_capacity_pool" => json!({"name": "matrix-pool"}),
        "update_pool_host_attributes" => json!({"attributes": {"rack": "r1"}}),
        "stop_task"
        | "create_session"
        | "create_registration_token"
        | "create_pool_registration_token"
        | "suspend_account"
        | "deregister_host" => {
            json!({})
        }
        _ => return None,
    })
}

/// One account's resources, as path parameter values.
struct Fixture {
    client: Client,
    family: String,
    account: String,
    cluster: String,
    task: String,
    key: String,
    token: String,
    host: String,
    credential: String,
    service: String,
}

async fn fixture(s: &TestServer, name: &str) -> Fixture {
    let client = s.tenant(name).await;
    let cluster = client.create_cluster("prod").await["id"].as_str().expect("id").to_owned();
    // Family names are per account: give each its own, so a lookup cannot succeed on the caller's own family.
    let family = format!("{name}-web");
    client.register(&family).await;
    let run =
        client.post("/v1/clusters/prod/tasks", json!({"task_definition": family, "queue": true})).await.expect(201);
    let task = run["tasks"][0]["id"].as_str().expect("task").to_owned();
    let key = client.post("/v1/access-keys", json!({"role": "operator"})).await.expect(201);
    let key = key["access_key"]["access_key_id"].as_str().expect("key").to_owned();
    let token = client.post("/v1/clusters/prod/registration-tokens", json!({})).await.expect(201);
    let token = token["registration_token"]["id"].as_str().expect("token").to_owned();
    let host = client.add_host("prod", 4096, 8192, json!({})).await["host_id"].as_str().expect("host").to_owned();
    let account =
        s.operator.get(&format!("/v1/accounts/{name}")).await.expect(200)["id"].as_str().expect("id").to_owned();
    let credential = format!("{name}-registry");
    client
        .post(
            "/v1/registry-credentials",
            json!({"name": credential, "registry": "127.0.0.1:5000", "username": "u", "password": "secret"}),
        )
        .await
        .expect(201);
    let service = client
        .post("/v1/clusters/prod/services", json!({"name": "svc", "task_definition": family, "desired_count": 0}))
        .await
        .expect(201)["id"]
        .as_str()
        .expect("service")
        .to_owned();
    Fixture { client, family, account, cluster, task, key, token, host, credential, service }
}

fn fill(path: &str, f: &Fixture) -> String {
    path.replace("{cluster}", &f.cluster)
        .replace("{family}", &f.family)
        .replace("{revision}", "1")
        .replace("{task}", &f.task)
        .replace("{key}", &f.key)
        .replace("{token}", &f.token)
        .replace("{account}", &f.account)
        .replace("{host}", &f.host)
        .replace("{credential}", &f.credential)
        .replace("{service}", &f.service)
        .replace("{name}", "clusters")
        .replace("{class}", "read")
        .replace("{pool}", "matrix-pool")
}

async fn call(c: &Client, route: &Route, path: &str) -> berth_tests::Resp {
    let mut rb = c.request(route.method.clone(), path);
    if let Some(body) = body_for(&route.id) {
        rb = rb.json(&body);
    }
    c.send(rb).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_accounts_resources_are_404_on_every_route() {
    let s = TestServer::start(Backend::Postgres).await;
    let a = fixture(&s, "acme").await;
    let b = fixture(&s, "globex").await;
    let mut checked = 0;
    for route in tenant_routes() {
        // Routes naming no resource have nothing of B's to find; account and
        // capacity-pool routes are the operator's (403 below).
        if !route.path.contains('{') || operator_only(&route.path) {
            continue;
        }
        let path = fill(&route.path, &b);
        let r = call(&a.client, &route, &path).await;
        assert_eq!(r.status.as_u16(), 404, "{} {path} ({}) as another account: {}", route.method, route.id, r.body);
        assert_eq!(r.body["code"], "ResourceNotFound", "{}: {}", route.id, r.body);
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} routes checked");
    // Nothing of B's changed.
    let task = b.client.get(&format!("/v1/clusters/prod/tasks/{}", b.task)).await.expect(200);
    assert_eq!(task["desired_status"], "RUNNING");
    assert_eq!(b.client.get("/v1/clusters/prod").await.expect(200)["version"], 1);
    assert_eq!(b.client.get(&format!("/v1/access-keys/{}", b.key)).await.expect(200)["status"], "ACTIVE");
    assert_eq!(b.client.get("/v1/task-definitions/globex-web/revisions/1").await.expect(200)["status"], "ACTIVE");
    // The operator's routes: a tenant's admin is refused outright.
    for route in tenant_routes().into_iter().filter(|r| operator_only(&r.path)) {
        let r = call(&a.client, &route, &fill(&route.path, &b)).await;
        r.expect_error(403, "AccessDenied");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_keys_are_refused_on_every_mutating_route() {
    let s = TestServer::start(Backend::Postgres).await;
    let b = fixture(&s, "globex").await;
    let ro = b.client.new_key("read-only", None).await;
    let mut checked = 0;
    for route in tenant_routes() {
        // Creating a session and a placement dry run are reads, whatever their method.
        if route.method == Method::GET || route.id == "create_session" || route.id == "simulate_placement" {
            continue;
        }
        let path = fill(&route.path, &b);
        let r = call(&ro, &route, &path).await;
        assert_eq!(r.status.as_u16(), 403, "{} {path} ({}) read-only: {}", route.method, route.id, r.body);
        assert_eq!(r.body["code"], "AccessDenied", "{}: {}", route.id, r.body);
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} routes checked");
    // And reads work (the event stream never ends, so it is left to its own tests).
    for route in tenant_routes().into_iter().filter(|r| r.method == Method::GET && r.id != "stream_events") {
        let r = call(&ro, &route, &fill(&route.path, &b)).await;
        let allowed = !matches!(
            route.id.as_str(),
            "list_access_keys"
                | "get_access_key"
                | "list_audit_events"
                | "list_registry_credentials"
                | "get_registry_credential"
        ) && !operator_only(&route.path);
        if route.id == "get_task_logs" {
            // Allowed, but this task never reached a host, so it has no logs.
            r.expect_error(404, "ResourceNotFound");
        } else if allowed {
            assert_eq!(r.status.as_u16(), 200, "{} read-only: {}", route.id, r.body);
        } else {
            r.expect_error(403, "AccessDenied");
        }
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_get_the_right_code_on_every_route() {
    let s = TestServer::start(Backend::Sqlite).await;
    let b = fixture(&s, "globex").await;
    let Auth::SigV4 { access_key_id, secret, .. } = b.client.auth.clone() else { panic!("signing client") };
    for route in tenant_routes() {
        let path = fill(&route.path, &b);
        let expect = |r: berth_tests::Resp, status: u16, code: &str, what: &str| {
            assert_eq!(r.status.as_u16(), status, "{} {path} with {what}: {}", route.method, r.body);
            assert_eq!(r.body["code"], code, "{} {path} with {what}: {}", route.method, r.body);
        };
        let anon = s.anonymous();
        expect(call(&anon, &route, &path).await, 401, "MissingAuthenticationToken", "no credentials");
        let malformed = b.client.with_auth(Auth::Header("AWS4-HMAC-SHA256 Credential=garbage".into()));
        expect(call(&malformed, &route, &path).await, 403, "IncompleteSignature", "a malformed signature");
        let unknown = s.with_key("BKDOESNOTEXIST000000", &secret);
        expect(call(&unknown, &route, &path).await, 403, "InvalidAccessKeyId", "an unknown key");
        let wrong = s.with_key(&access_key_id, "not-the-secret");
        expect(call(&wrong, &route, &path).await, 403, "SignatureDoesNotMatch", "a wrong secret");
        let bearer = b.client.with_auth(Auth::Bearer("not.a.token".into()));
        expect(call(&bearer, &route, &path).await, 401, "InvalidToken", "a bad bearer token");
        // Signed ten minutes ago.
        let mut rb = b.client.request(route.method.clone(), &path);
        if let Some(body) = body_for(&route.id) {
            rb = rb.json(&body);
        }
        let mut req = rb.build().expect("request");
        sign_request(&mut req, &access_key_id, &secret, "local", SystemTime::now() - Duration::from_secs(600));
        expect(Client::execute(&b.client.http, req).await, 403, "RequestExpired", "an old signature");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_restricted_keys_cannot_touch_other_clusters() {
    let s = TestServer::start(Backend::Postgres).await;
    let b = fixture(&s, "globex").await;
    b.client.create_cluster("staging").await;
    let restricted = b.client.new_key("admin", Some(vec!["staging"])).await;
    let mut checked = 0;
    for route in tenant_routes().into_iter().filter(|r| r.path.contains("{cluster}")) {
        let path = fill(&route.path, &b);
        let r = call(&restricted, &route, &path).await;
        assert_eq!(r.status.as_u16(), 403, "{} {path} ({}) restricted key: {}", route.method, route.id, r.body);
        assert_eq!(r.body["code"], "AccessDenied");
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} cluster routes");
    // Within its cluster it works; listing shows only its clusters; keys are out of reach.
    restricted
        .post("/v1/clusters/staging/tasks", json!({"task_definition": "globex-web", "queue": true}))
        .await
        .expect(201);
    let list = restricted.get("/v1/clusters").await.expect(200);
    let names: Vec<&str> =
        list["clusters"].as_array().expect("list").iter().map(|c| c["name"].as_str().expect("name")).collect();
    assert_eq!(names, ["staging"]);
    restricted.post("/v1/access-keys", json!({"role": "admin"})).await.expect_error(403, "AccessDenied");
    restricted.post("/v1/clusters", json!({"name": "elsewhere"})).await.expect_error(403, "AccessDenied");
    s.stop().await;
}
