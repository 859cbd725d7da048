//! The console in a real headless Chromium (Debian's chromium and
//! chromedriver), against a real control plane, PostgreSQL, containerd and
//! registry: what a user clicks through, start to end. Screenshots of each
//! main page land in `target/tmp/console-screenshots/`.

use berth_tests::TestServer;
use berth_tests::browser::Browser;
use berth_tests::console::key_of;
use berth_tests::containers::{ContainerEnv, InProcessAgent};
use serde_json::json;

/// Inputs, selects and text areas without a label or an aria-label.
const UNLABELLED: &str = "return [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]\
    .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).map(e => e.outerHTML);";

async fn assert_labelled(b: &Browser, page: &str) {
    let unlabelled = b.execute(UNLABELLED).await;
    assert_eq!(unlabelled, json!([]), "every field on {page} has a label");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_runs_a_task_and_scales_a_service_in_the_browser() {
    let env = ContainerEnv::from_env();
    let s = TestServer::start(berth_tests::Backend::Postgres).await;
    let acme = s.tenant("acme").await;
    let (key_id, secret) = key_of(&acme);
    let base = format!("http://{}", s.addr);
    let b = Browser::start(&std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots")).await;

    // Signing in: the console sends a visitor without a session to the form.
    b.goto(&format!("{base}/console")).await;
    assert!(b.url().await.contains("/console/sign-in"), "sent to sign in: {}", b.url().await);
    assert_labelled(&b, "sign-in").await;
    b.fill("#access_key_id", &key_id).await;
    b.fill("#secret_access_key", "not the secret").await;
    b.submit("form button[type=submit]").await;
    assert!(b.text("#sign-in-error").await.contains("wrong"), "a wrong secret is refused");
    b.screenshot("sign-in").await;
    b.fill("#access_key_id", &key_id).await;
    b.fill("#secret_access_key", &secret).await;
    b.submit("form button[type=submit]").await;
    assert_eq!(b.url().await, format!("{base}/console"));

    // Creating a cluster, and a real agent joining it.
    b.fill("#new-cluster", "web").await;
    b.submit("form.row button[type=submit]").await;
    assert_eq!(b.url().await, format!("{base}/console/clusters/web"));
    let agent = InProcessAgent::start(&s, &acme, "web", &env).await;

    // Registering a task definition from its JSON.
    b.goto(&format!("{base}/console/task-definitions")).await;
    assert_labelled(&b, "task definitions").await;
    let definition = json!({
        "family": "hello",
        "container_definitions": [{
            "name": "main", "image": env.image, "memory": 64,
            "command": ["sh", "-c", "trap 'exit 0' TERM; echo hello from berth; i=0; \
                         while true; do i=$((i+1)); echo tick $i; sleep 1 & wait $!; done"]
        }]
    });
    b.fill("#td-json", &serde_json::to_string_pretty(&definition).expect("json")).await;
    b.submit("form.stack button[type=submit]").await;
    assert!(b.url().await.ends_with("/console/task-definitions/hello?to=1"), "{}: {}", b.url().await, b.source().await);
    assert!(b.source().await.contains("echo hello from berth"), "the revision is shown");

    // Running it: it reaches RUNNING, and its logs stream in live.
    b.goto(&format!("{base}/console/clusters/web/tasks")).await;
    assert_labelled(&b, "tasks").await;
    b.fill("#run-td", "hello").await;
    b.submit("form.stack button[type=submit]").await;
    let task_url = b.url().await;
    let task_id = task_url.rsplit('/').next().expect("task id").to_owned();
    assert!(task_url.starts_with(&format!("{base}/console/clusters/web/tasks/")), "{task_url}");
    b.wait_for_text(&task_url, "#task-status", 90, |t| t.starts_with("Status RUNNING")).await;
    let logs = b.wait_live("#logs", 30, |t| t.contains("tick 3")).await;
    assert!(logs.contains("hello from berth"), "{logs}");
    let api_task = acme.get(&format!("/v1/clusters/web/tasks/{task_id}")).await.expect(200);
    assert_eq!(api_task["last_status"], "RUNNING", "the API agrees: {api_task}");
    assert!(b.source().await.contains(&agent.host_id), "the placement names the host");
    b.screenshot("task").await;

    // The cluster page shows the host's resources and the running task.
    b.goto(&format!("{base}/console/clusters/web")).await;
    assert!(b.source().await.contains("RUNNING</span> 1"), "one RUNNING task counted");
    b.screenshot("cluster").await;
    b.goto(&format!("{base}/console")).await;
    b.screenshot("overview").await;
    b.goto(&format!("{base}/console/clusters/web/hosts/{}", agent.host_id)).await;
    assert!(b.source().await.contains(&task_id), "the host lists its task");
    b.screenshot("host").await;

    // Scaling a service from its page.
    acme.post("/v1/clusters/web/services", json!({"name": "api", "task_definition": "hello", "desired_count": 1}))
        .await
        .expect(201);
    let service_url = format!("{base}/console/clusters/web/services/api");
    b.goto(&service_url).await;
    assert_labelled(&b, "service").await;
    b.fill("#desired-count", "2").await;
    b.submit("form[action$='/scale'] button").await;
    assert_eq!(b.url().await, service_url);
    acme.wait_for("/v1/clusters/web/services/api", "two running", 90, |v| v["running_count"] == 2).await;
    let counts = b.wait_for_text(&service_url, "#service-counts", 30, |t| t.contains("Running\n2")).await;
    assert!(counts.contains("Desired\n2"), "{counts}");
    b.screenshot("service").await;

    // A second revision, and the difference between the two.
    let mut v2 = definition.clone();
    v2["container_definitions"][0]["memory"] = json!(96);
    acme.post("/v1/task-definitions", v2).await.expect(201);
    b.goto(&format!("{base}/console/task-definitions/hello")).await;
    let diff = b.text("pre.diff").await;
    assert!(
        diff.contains("- ")
            && diff.contains("\"memory\": 64")
            && diff.contains("+ ")
            && diff.contains("\"memory\": 96"),
        "{diff}"
    );
    b.screenshot("task-definition").await;

    // Events arrive live; quotas show usage.
    b.goto(&format!("{base}/console/events")).await;
    b.wait_live("#events-status", 10, |t| t.starts_with("Live")).await;
    acme.create_cluster("later").await;
    b.wait_live("#events", 20, |t| t.contains("cluster.created")).await;
    b.screenshot("events").await;
    b.goto(&format!("{base}/console/quotas")).await;
    assert!(b.source().await.contains("running_tasks") || b.source().await.contains("tasks"), "quotas listed");
    b.screenshot("quotas").await;

    // Stopping the task, confirming in the dialog.
    b.goto(&task_url).await;
    b.execute("window.berthOldPage = true;").await;
    b.click(&b.find("form[action$='/stop'] button").await).await;
    b.accept_alert().await;
    b.wait_for_new_page().await;
    b.wait_for_text(&task_url, "#task-status", 60, |t| t.starts_with("Status STOPPED")).await;

    // A phone-width screen: nothing scrolls sideways.
    b.resize(390, 844).await;
    for page in ["/console", "/console/clusters/web", &format!("/console/clusters/web/tasks/{task_id}")] {
        b.goto(&format!("{base}{page}")).await;
        let fits = b.execute("return document.documentElement.scrollWidth <= window.innerWidth + 1;").await;
        assert_eq!(fits, json!(true), "{page} fits a phone-width screen");
    }
    b.screenshot("cluster-phone").await;
    b.resize(1280, 900).await;

    // Signing out ends the session in this browser.
    b.goto(&format!("{base}/console")).await;
    b.submit("form[action='/console/sign-out'] button").await;
    assert!(b.url().await.contains("/console/sign-in"), "{}", b.url().await);
    b.goto(&format!("{base}/console/clusters/web")).await;
    assert!(b.url().await.contains("/console/sign-in"), "signed out: {}", b.url().await);

    // A read-only key sees the same pages without a single action.
    let reader = acme.new_key("read-only", None).await;
    let (reader_id, reader_secret) = key_of(&reader);
    b.fill("#access_key_id", &reader_id).await;
    b.fill("#secret_access_key", &reader_secret).await;
    b.submit("form button[type=submit]").await;
    assert!(b.url().await.ends_with("/console/clusters/web"), "back where it was sent from: {}", b.url().await);
    for page in [
        "/console".to_owned(),
        "/console/clusters/web".to_owned(),
        "/console/clusters/web/tasks".to_owned(),
        format!("/console/clusters/web/tasks/{task_id}"),
        "/console/clusters/web/services/api".to_owned(),
        "/console/task-definitions".to_owned(),
    ] {
        b.goto(&format!("{base}{page}")).await;
        assert!(b.find_all("main form[method=post]").await.is_empty(), "no action forms on {page} for a read-only key");
    }
    b.goto(&service_url).await;
    b.screenshot("service-read-only").await;

    acme.patch("/v1/clusters/web/services/api", json!({"desired_count": 0})).await.expect(200);
    acme.wait_for("/v1/clusters/web/services/api", "no tasks", 90, |v| {
        v["running_count"] == 0 && v["pending_count"] == 0
    })
    .await;
    drop(b);
    agent.stop().await;
    s.stop().await;
}
