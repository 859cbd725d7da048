//! The web console over plain HTTP, as a browser without scripts uses it:
//! signing in, the session cookie, CSRF, authorization, account isolation,
//! errors and idempotent forms. `console_browser.rs` drives a real Chromium.

use berth_tests::console::{ConsoleClient, key_of};
use berth_tests::{Backend, Client, TestServer, on_both_backends};
use serde_json::json;

/// How many forms on a page post something, not counting sign-out.
fn action_forms(html: &str) -> usize {
    html.matches("method=\"post\"").count() - html.matches("action=\"/console/sign-out\"").count()
}

async fn sign_in_and_forms(backend: Backend) {
    let s = TestServer::start(backend).await;
    let acme = s.tenant("acme").await;
    let (id, secret) = key_of(&acme);
    let mut browser = ConsoleClient::new(&s);

    let page = browser.get("/console/clusters/web?x=1").await.expect(303);
    assert_eq!(page.location.as_deref(), Some("/console/sign-in?next=/console/clusters/web%3Fx%3D1"));
    let page = browser.get("/console/sign-in").await.expect(200);
    assert!(page.html.contains("<label for=\"access_key_id\">"), "labelled fields: {}", page.html);

    for (id, secret) in [(id.as_str(), "wrong"), ("BKNOSUCHKEY0000000000", secret.as_str())] {
        let page = browser.sign_in(id, secret).await.expect(401);
        assert!(page.html.contains("the access key id or the secret is wrong"), "{}", page.html);
        assert!(page.set_cookie.is_none() && browser.cookie.is_none());
    }
    // The owner of the key sees the refused attempt in its audit log.
    let audit = acme.get("/v1/audit-events").await.expect(200);
    let refused: Vec<&serde_json::Value> =
        audit["audit_events"].as_array().into_iter().flatten().filter(|e| e["action"] == "console SignIn").collect();
    assert_eq!(refused.len(), 1, "{audit}");
    assert_eq!(
        (refused[0]["status_code"].as_u64(), refused[0]["access_key_id"].as_str()),
        (Some(401), Some(id.as_str()))
    );
    let page = browser.sign_in(&id, &secret).await.expect(303);
    assert_eq!(page.location.as_deref(), Some("/console"));
    let cookie = page.set_cookie.expect("a session cookie");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(cookie.contains(attr), "{attr} in {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: not Secure: {cookie}");

    let home = browser.get("/console").await.expect(200);
    let missing = browser.get("/console/no/such/page").await.expect(404);
    assert!(missing.html.contains("<code>ResourceNotFound</code>"), "an HTML page: {}", missing.html);
    assert!(home.html.contains("No clusters yet."), "{}", home.html);

    // A form without the session's CSRF token, or with another, changes nothing.
    browser.post_raw("/console/clusters", &[("name", "web")]).await.expect(403);
    browser.post_raw("/console/clusters", &[("name", "web"), ("csrf", "0123")]).await.expect(403);
    acme.get("/v1/clusters/web").await.expect_error(404, "ResourceNotFound");

    let page = browser.post("/console/clusters", &home, &[("name", "web")]).await.expect(303);
    assert_eq!(page.location.as_deref(), Some("/console/clusters/web"));
    acme.get("/v1/clusters/web").await.expect(200);
    let bad = browser.post("/console/clusters", &home, &[("name", "no spaces")]).await.expect(422);
    assert!(bad.html.contains("name"), "the field is named: {}", bad.html);

    acme.add_host("web", 1024, 1024, json!({})).await;
    register_hello(&acme, 64).await;

    // The same rendering of the run form sent twice runs one task.
    let tasks_page = browser.get("/console/clusters/web/tasks").await.expect(200);
    let key = tasks_page.input("idempotency_key").expect("the run form has a key");
    let fields = [("task_definition", "hello"), ("count", "1"), ("idempotency_key", key.as_str())];
    let first = browser.post("/console/clusters/web/tasks", &tasks_page, &fields).await.expect(303);
    let again = browser.post("/console/clusters/web/tasks", &tasks_page, &fields).await.expect(303);
    assert_eq!(first.location, again.location);
    let listed = acme.get("/v1/clusters/web/tasks").await.expect(200);
    assert_eq!(listed["tasks"].as_array().map(Vec::len), Some(1), "{listed}");
    let task_id = listed["tasks"][0]["id"].as_str().expect("id").to_owned();
    assert_eq!(first.location.as_deref(), Some(format!("/console/clusters/web/tasks/{task_id}").as_str()));

    // Bad input is a specific error naming the field, and changes nothing.
    let page = browser
        .post("/console/clusters/web/tasks", &tasks_page, &[("task_definition", "hello"), ("count", "many")])
        .await
        .expect(422);
    assert!(page.html.contains("count must be a whole number"), "{}", page.html);
    let page = browser
        .post("/console/clusters/web/tasks", &tasks_page, &[("task_definition", "hello"), ("count", "0")])
        .await
        .expect(422);
    assert!(page.html.contains("count"), "{}", page.html);
    let defs = browser.get("/console/task-definitions").await.expect(200);
    let page = browser
        .post(
            "/console/task-definitions",
            &defs,
            &[("definition", r#"{"family": "broken", "container_definitions": [{"name": "main"}]}"#)],
        )
        .await;
    assert_eq!(page.status.as_u16(), 400, "as the API answers a body missing a field: {}", page.html);
    assert!(page.html.contains("<code>container_definitions[0].image</code>"), "the field is named: {}", page.html);
    acme.get("/v1/task-definitions/broken").await.expect_error(404, "ResourceNotFound");
    assert_eq!(acme.get("/v1/clusters/web/tasks").await.expect(200)["tasks"].as_array().map(Vec::len), Some(1));

    // The task's page shows it; stopping it from there stops it.
    let task_page = browser.get(&format!("/console/clusters/web/tasks/{task_id}")).await.expect(200);
    assert!(task_page.html.contains("PENDING"), "{}", task_page.html);
    let version = task_page.input("version").expect("the stop form carries the version");
    browser
        .post(&format!("/console/clusters/web/tasks/{task_id}/stop"), &task_page, &[("version", &version)])
        .await
        .expect(303);
    let task = acme.get(&format!("/v1/clusters/web/tasks/{task_id}")).await.expect(200);
    assert_eq!(
        (task["desired_status"].as_str(), task["stop_code"].as_str()),
        (Some("STOPPED"), Some("UserInitiated")),
        "{task}"
    );
    // A stale page's form (an older version) is refused.
    let page = browser
        .post(&format!("/console/clusters/web/tasks/{task_id}/stop"), &task_page, &[("version", &version)])
        .await;
    assert_eq!(page.status.as_u16(), 412, "{}", page.html);

    // Console writes are in the audit log, under the key that signed in.
    let audit = acme.get("/v1/audit-events").await.expect(200);
    let actions: Vec<&str> =
        audit["audit_events"].as_array().into_iter().flatten().filter_map(|e| e["action"].as_str()).collect();
    assert!(
        actions.iter().any(|a| a.starts_with("console POST /console/clusters/{cluster}/tasks/{task}/stop")),
        "{audit}"
    );

    let page = browser.post("/console/sign-out", &home, &[]).await.expect(303);
    assert!(page.set_cookie.as_deref().is_some_and(|c| c.contains("Max-Age=0")), "{:?}", page.set_cookie);
    s.stop().await;
}

on_both_backends!(sign_in_and_forms);

/// The tenant `acme` with a cluster `web`, a host (without an agent: tasks
/// stay PENDING) and one task of `hello` on it: (client, host id, task id).
async fn acme_with_a_task(s: &TestServer) -> (Client, String, String) {
    let acme = s.tenant("acme").await;
    acme.create_cluster("web").await;
    let host = acme.add_host("web", 2048, 2048, json!({})).await;
    let host_id = host["host_id"].as_str().expect("host id").to_owned();
    register_hello(&acme, 64).await;
    let run = acme.post("/v1/clusters/web/tasks", json!({"task_definition": "hello"})).await.expect(201);
    let task = run["tasks"][0]["id"].as_str().expect("task").to_owned();
    (acme, host_id, task)
}

/// Registers the next revision of `hello`, one container of `memory` MiB.
async fn register_hello(c: &Client, memory: u32) {
    c.post(
        "/v1/task-definitions",
        json!({"family": "hello", "container_definitions": [{"name": "main", "image": "busybox", "memory": memory}]}),
    )
    .await
    .expect(201);
}

/// A read-only key sees no buttons, and the server refuses the action anyway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_key_sees_no_actions_and_is_refused_anyway() {
    let s = TestServer::start(Backend::Postgres).await;
    let (acme, host_id, task) = acme_with_a_task(&s).await;
    acme.post("/v1/clusters/web/services", json!({"name": "api", "task_definition": "hello", "desired_count": 1}))
        .await
        .expect(201);

    let admin = ConsoleClient::signed_in(&s, &acme).await;
    let reader = ConsoleClient::signed_in(&s, &acme.new_key("read-only", None).await).await;
    let pages = [
        "/console".to_owned(),
        "/console/clusters/web".to_owned(),
        "/console/clusters/web/tasks".to_owned(),
        format!("/console/clusters/web/tasks/{task}"),
        format!("/console/clusters/web/hosts/{host_id}"),
        "/console/clusters/web/services/api".to_owned(),
        "/console/task-definitions".to_owned(),
    ];
    for path in &pages {
        let as_admin = admin.get(path).await.expect(200);
        let as_reader = reader.get(path).await.expect(200);
        assert!(action_forms(&as_admin.html) > 0, "the admin has actions on {path}");
        assert_eq!(action_forms(&as_reader.html), 0, "no actions for a read-only key on {path}: {}", as_reader.html);
    }
    let any_page = reader.get("/console/clusters/web").await.expect(200);
    let page = reader.post(&format!("/console/clusters/web/tasks/{task}/stop"), &any_page, &[]).await.expect(403);
    assert!(page.html.contains("read-only"), "{}", page.html);
    reader.post("/console/clusters/web/services/api/scale", &any_page, &[("desired_count", "3")]).await.expect(403);
    reader.post("/console/clusters", &any_page, &[("name", "other")]).await.expect(403);
    let t = acme.get(&format!("/v1/clusters/web/tasks/{task}")).await.expect(200);
    assert_eq!(t["desired_status"], "RUNNING", "{t}");
    assert_eq!(acme.get("/v1/clusters/web/services/api").await.expect(200)["desired_count"], 1);
    acme.get("/v1/clusters/other").await.expect_error(404, "ResourceNotFound");
    s.stop().await;
}

/// Draining a host, and deploying another revision of a service, from their pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_a_host_and_deploy_a_revision() {
    let s = TestServer::start(Backend::Postgres).await;
    let acme = s.tenant("acme").await;
    acme.create_cluster("web").await;
    let host = acme.add_host("web", 2048, 2048, json!({})).await;
    let host_id = host["host_id"].as_str().expect("host id").to_owned();
    for memory in [64, 96] {
        register_hello(&acme, memory).await;
    }
    acme.post("/v1/clusters/web/services", json!({"name": "api", "task_definition": "hello:1", "desired_count": 1}))
        .await
        .expect(201);
    let browser = ConsoleClient::signed_in(&s, &acme).await;

    let service = browser.get("/console/clusters/web/services/api").await.expect(200);
    assert!(service.html.contains("<option value=\"hello:2\""), "the revisions are offered: {}", service.html);
    let version = service.input("version").expect("version");
    let page = browser
        .post(
            "/console/clusters/web/services/api/deploy",
            &service,
            &[("task_definition", "hello:2"), ("version", &version)],
        )
        .await
        .expect(303);
    assert_eq!(page.location.as_deref(), Some("/console/clusters/web/services/api"));
    let api = acme.get("/v1/clusters/web/services/api").await.expect(200);
    assert_eq!(api["task_definition"], "hello:2", "{api}");
    let service = browser.get("/console/clusters/web/services/api").await.expect(200);
    assert!(service.html.contains("hello:2</td>") || service.html.contains("hello:2 "), "{}", service.html);
    let page =
        browser.post("/console/clusters/web/services/api/deploy", &service, &[("task_definition", "nosuch:9")]).await;
    assert_eq!(page.status.as_u16(), 404, "{}", page.html);

    let host_page = browser.get(&format!("/console/clusters/web/hosts/{host_id}")).await.expect(200);
    assert!(host_page.html.contains("Drain"), "{}", host_page.html);
    browser.post(&format!("/console/clusters/web/hosts/{host_id}/drain"), &host_page, &[]).await.expect(303);
    let h = acme.get(&format!("/v1/clusters/web/hosts/{host_id}")).await.expect(200);
    assert_eq!(h["status"], "DRAINING", "{h}");
    let host_page = browser.get(&format!("/console/clusters/web/hosts/{host_id}")).await.expect(200);
    assert!(!host_page.html.contains("aria-label=\"Drain host"), "no drain button on a draining host");
    s.stop().await;
}

/// Another account's cluster, task or host is a 404 page that shows nothing of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_accounts_resources_are_not_found() {
    let s = TestServer::start(Backend::Postgres).await;
    let (_acme, host_id, task) = acme_with_a_task(&s).await;

    let globex = s.tenant("globex").await;
    globex.create_cluster("web").await;
    let other = ConsoleClient::signed_in(&s, &globex).await;
    for path in [
        format!("/console/clusters/web/tasks/{task}"),
        format!("/console/clusters/web/tasks/{task}/logs"),
        format!("/console/clusters/web/hosts/{host_id}"),
        "/console/task-definitions/hello".to_owned(),
    ] {
        let page = other.get(&path).await;
        assert_eq!(page.status.as_u16(), 404, "{path}: {}", page.html);
        assert!(!page.html.contains("busybox") && !page.html.contains("PENDING"), "{path} leaks: {}", page.html);
    }
    let listed = other.get("/console/clusters/web/tasks").await.expect(200);
    assert!(!listed.html.contains(&task), "another account's task is not listed");
    s.stop().await;
}

/// The operator suspends an account from the console; its sessions end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_suspends_and_reactivates_an_account() {
    let s = TestServer::start(Backend::Postgres).await;
    let acme = s.tenant("acme").await;
    let tenant = ConsoleClient::signed_in(&s, &acme).await;
    let home = tenant.get("/console").await.expect(200);
    assert!(!home.html.contains("/console/accounts"), "a tenant has no Accounts page link");
    tenant.get("/console/accounts").await.expect(403);

    let operator = ConsoleClient::signed_in(&s, &s.operator).await;
    let accounts = operator.get("/console/accounts").await.expect(200);
    assert!(accounts.html.contains("acme"), "{}", accounts.html);
    let acme_id = acme.get("/v1/accounts/acme").await;
    let acme_id = if acme_id.status.as_u16() == 200 {
        acme_id.body["id"].as_str().map(str::to_owned)
    } else {
        s.operator.get("/v1/accounts/acme").await.expect(200)["id"].as_str().map(str::to_owned)
    }
    .expect("account id");
    let form = format!("/console/accounts/{acme_id}/status");
    operator.post(&form, &accounts, &[("action", "suspend"), ("reason", "unpaid invoice")]).await.expect(303);
    let account = s.operator.get("/v1/accounts/acme").await.expect(200);
    assert_eq!(
        (account["status"].as_str(), account["status_reason"].as_str()),
        (Some("SUSPENDED"), Some("unpaid invoice"))
    );
    // The suspended account's console session ends.
    let page = tenant.get("/console").await.expect(303);
    assert!(page.location.as_deref().is_some_and(|l| l.starts_with("/console/sign-in")), "{:?}", page.location);
    let (id, secret) = key_of(&acme);
    let mut again = ConsoleClient::new(&s);
    let page = again.sign_in(&id, &secret).await;
    assert_eq!(page.status.as_u16(), 401, "{}", page.html);
    assert!(page.html.contains("suspended"), "{}", page.html);

    let accounts = operator.get("/console/accounts").await.expect(200);
    operator.post(&form, &accounts, &[("action", "reactivate")]).await.expect(303);
    assert_eq!(s.operator.get("/v1/accounts/acme").await.expect(200)["status"], "ACTIVE");
    tenant.get("/console").await.expect(200);
    operator.post(&form, &accounts, &[("action", "delete")]).await.expect(422);
    s.stop().await;
}

/// Lists page by 100, with a link to the next page that keeps the filters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_task_list_pages_and_filters() {
    let s = TestServer::start(Backend::Postgres).await;
    let acme = s.tenant("acme").await;
    acme.create_cluster("web").await;
    register_hello(&acme, 64).await;
    for _ in 0..15 {
        acme.post("/v1/clusters/web/tasks", json!({"task_definition": "hello", "count": 10, "queue": true}))
            .await
            .expect(201);
    }
    let browser = ConsoleClient::signed_in(&s, &acme).await;
    let rows = |html: &str| html.matches("data-label=\"Task\"").count();
    let first = browser.get("/console/clusters/web/tasks?status=PROVISIONING").await.expect(200);
    assert_eq!(rows(&first.html), 100);
    let at = first.html.find("/console/clusters/web/tasks?status=PROVISIONING&amp;next=").expect("a next-page link");
    let link = &first.html[at..];
    let link = link[..link.find('"').expect("end")].replace("&amp;", "&");
    let second = browser.get(&link).await.expect(200);
    assert_eq!(rows(&second.html), 50);
    assert!(!second.html.contains("Next page"));
    let none = browser.get("/console/clusters/web/tasks?status=RUNNING").await.expect(200);
    assert_eq!(rows(&none.html), 0);
    let bad = browser.get("/console/clusters/web/tasks?status=SLEEPING").await.expect(422);
    assert!(bad.html.contains("status"), "{}", bad.html);
    let overview = browser.get("/console/clusters/web").await.expect(200);
    assert!(overview.html.contains("PROVISIONING</span> 150"), "counts by status: {}", overview.html);
    s.stop().await;
}
