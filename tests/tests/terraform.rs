//! The Terraform provider driven by the real `terraform` CLI (installed on
//! these machines; a test fails loudly without it) against a real Berth,
//! with the provider installed through a `filesystem_mirror` (no network).

use std::path::{Path, PathBuf};
use std::process::Command;

use berth_tests::containers::{ContainerEnv, InProcessAgent};
use berth_tests::{Auth, Backend, Client, TestServer};
use serde_json::Value;

/// A Terraform working directory with the provider in a private mirror.
struct Tf {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

struct Ran {
    code: i32,
    out: String,
}

impl Ran {
    fn ok(self) -> String {
        assert_eq!(self.code, 0, "terraform failed:\n{}", self.out);
        self.out
    }
}

impl Tf {
    fn new(endpoint: &str, client: &Client) -> Tf {
        let terraform = which("terraform").expect("the terraform CLI is not on PATH: these tests need it");
        assert!(terraform.exists());
        let provider = PathBuf::from(
            std::env::var("BERTH_TEST_TF_PROVIDER_BIN").expect("BERTH_TEST_TF_PROVIDER_BIN: run with cargo xtask test"),
        );
        let dir = tempfile::tempdir().expect("dir");
        // A fresh version per run: a mirror's checksum for a version must never change.
        let version = format!(
            "0.1.{}",
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time").as_millis()
        );
        let target = dir.path().join(format!("mirror/registry.terraform.io/berth/berth/{version}/linux_amd64"));
        std::fs::create_dir_all(&target).expect("mirror dir");
        std::fs::copy(&provider, target.join(format!("terraform-provider-berth_v{version}")))
            .expect("copy the provider");
        let rc = dir.path().join("terraform.rc");
        std::fs::write(
            &rc,
            format!(
                "provider_installation {{\n  filesystem_mirror {{\n    path = \"{}\"\n    include = [\"registry.terraform.io/berth/*\"]\n  }}\n}}\n",
                dir.path().join("mirror").display()
            ),
        )
        .expect("terraform.rc");
        std::fs::create_dir_all(dir.path().join("work")).expect("work dir");
        let Auth::SigV4 { access_key_id, secret, region } = client.auth.clone() else { panic!("a signing client") };
        let env = vec![
            ("TF_CLI_CONFIG_FILE".to_owned(), rc.display().to_string()),
            ("TF_IN_AUTOMATION".to_owned(), "1".to_owned()),
            ("CHECKPOINT_DISABLE".to_owned(), "1".to_owned()),
            ("BERTH_ENDPOINT".to_owned(), endpoint.to_owned()),
            ("BERTH_ACCESS_KEY_ID".to_owned(), access_key_id),
            ("BERTH_SECRET_ACCESS_KEY".to_owned(), secret),
            ("BERTH_REGION".to_owned(), region),
            ("HOME".to_owned(), dir.path().display().to_string()),
            ("PLUGIN_LOG_FILE".to_owned(), dir.path().join("provider.log").display().to_string()),
        ];
        Tf { dir, env }
    }

    fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    fn write(&self, main_tf: &str) {
        std::fs::write(self.work().join("main.tf"), main_tf).expect("main.tf");
    }

    async fn run(&self, args: &[&str]) -> Ran {
        let mut cmd = Command::new("terraform");
        cmd.args(args).current_dir(self.work()).env("TF_INPUT", "0");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let out = tokio::task::spawn_blocking(move || cmd.output().expect("run terraform")).await.expect("join");
        Ran {
            code: out.status.code().unwrap_or(-1),
            out: format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        }
    }

    async fn apply(&self) -> String {
        self.run(&["apply", "-auto-approve", "-no-color"]).await.ok()
    }

    /// `plan -detailed-exitcode`: 0 = no changes, 2 = changes.
    async fn plan(&self) -> Ran {
        self.plan_with(&[]).await
    }

    async fn plan_with(&self, vars: &[&str]) -> Ran {
        let mut args = vec!["plan", "-no-color", "-detailed-exitcode"];
        args.extend(vars);
        self.run(&args).await
    }

    async fn outputs(&self) -> Value {
        serde_json::from_str(&self.run(&["output", "-json"]).await.ok()).expect("outputs")
    }
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).map(|d| d.join(name)).find(|p| p.exists())
}

fn config(
    cluster: &str,
    td_memory: u32,
    token_desc: &str,
    key_desc: &str,
    account: &str,
    service: &str,
    extra: &str,
) -> String {
    format!(
        r#"
terraform {{
  required_providers {{
    berth = {{ source = "berth/berth", version = ">= 0.1.0" }}
  }}
}}
provider "berth" {{}}

resource "berth_cluster" "c" {{
  name = "{cluster}"
  {cluster_tags}
}}
resource "berth_task_definition" "td" {{
  family = "tf-web"
  container_definitions = jsonencode([{{ name = "app", image = "127.0.0.1:5000/busybox:1", memory = {td_memory}, command = ["sleep", "3600"] }}])
}}
resource "berth_registration_token" "t" {{
  cluster     = berth_cluster.c.name
  description = "{token_desc}"
}}
resource "berth_access_key" "k" {{
  role        = "read-only"
  description = "{key_desc}"
  {key_active}
}}
resource "berth_account" "a" {{
  name = "{account}"
}}
resource "berth_account_quota" "q" {{
  account = berth_account.a.name
  name    = "services"
  limit   = {quota}
}}
resource "berth_service" "s" {{
  cluster         = berth_cluster.c.name
  name            = "{service}"
  task_definition = berth_task_definition.td.id
  desired_count   = 0
  {grace}
  placement_constraint {{
    type = "distinct_host"
  }}
}}
data "berth_cluster" "c" {{
  name = berth_cluster.c.id
}}
data "berth_task_definition" "td" {{
  family = berth_task_definition.td.family
}}
data "berth_hosts" "h" {{
  cluster = berth_cluster.c.name
}}
output "cluster_id" {{ value = data.berth_cluster.c.id }}
output "latest" {{ value = data.berth_task_definition.td.id }}
output "hosts" {{ value = length(data.berth_hosts.h.hosts) }}
output "token" {{
  value     = berth_registration_token.t.token
  sensitive = true
}}
output "secret" {{
  value     = berth_access_key.k.secret_access_key
  sensitive = true
}}
"#,
        cluster_tags = if extra.contains("in-place") {
            r#"tags = { env = "test", tier = "2" }"#
        } else {
            r#"tags = { env = "test" }"#
        },
        key_active = if extra.contains("in-place") { "active = false" } else { "" },
        quota = if extra.contains("in-place") { 7 } else { 5 },
        grace = if extra.contains("in-place") { "health_check_grace_period_seconds = 5" } else { "" },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_resource_through_its_lifecycle() {
    let s = TestServer::start(Backend::Postgres).await;
    let op = s.operator.clone();
    let tf = Tf::new(&format!("http://{}", s.addr), &op);
    tf.write(&config("tf-a", 32, "one", "ci", "tf-tenant", "svc", ""));
    tf.run(&["init", "-no-color"]).await.ok();

    // Create: defaults show in the plan; then everything exists.
    let plan = tf.plan().await;
    assert_eq!(plan.code, 2, "{}", plan.out);
    assert!(plan.out.contains("network_mode") && plan.out.contains("\"bridge\""), "defaults shown:\n{}", plan.out);
    assert!(plan.out.contains("deployment_maximum_percent") && plan.out.contains("= 200"), "{}", plan.out);
    tf.apply().await;
    let cluster = op.get("/v1/clusters/tf-a").await.expect(200);
    assert_eq!(cluster["tags"]["env"], "test");
    let out = tf.outputs().await;
    assert_eq!(out["cluster_id"]["value"], cluster["id"]);
    assert_eq!(out["latest"]["value"], "tf-web:1");
    assert!(out["token"]["value"].as_str().is_some_and(|t| t.len() > 20), "the token is in state");
    let secret = out["secret"]["value"].as_str().expect("secret").to_owned();
    op.get("/v1/clusters/tf-a/services/svc").await.expect(200);
    op.get("/v1/accounts/tf-tenant").await.expect(200);
    let quotas = op.get("/v1/accounts/tf-tenant/quotas").await.expect(200);
    let q = quotas["quotas"]
        .as_array()
        .expect("q")
        .iter()
        .find(|q| q["name"] == "services")
        .expect("services quota")
        .clone();
    assert_eq!((q["limit"].as_i64(), q["source"].as_str()), (Some(5), Some("account")));
    let state = tf.run(&["show", "-json"]).await.ok();
    assert!(state.contains(&secret), "the secret is kept in state");
    let shown = tf.run(&["show", "-no-color"]).await.ok();
    assert!(!shown.contains(&secret) && shown.contains("(sensitive value)"), "and marked sensitive");

    // No perpetual diff.
    let again = tf.plan().await;
    assert_eq!(again.code, 0, "a second plan shows no changes:\n{}", again.out);

    // In-place updates.
    tf.write(&config("tf-a", 32, "one", "ci", "tf-tenant", "svc", "in-place"));
    let plan = tf.plan().await;
    assert_eq!(plan.code, 2);
    assert!(plan.out.contains("update in-place") && !plan.out.contains("must be replaced"), "{}", plan.out);
    tf.apply().await;
    assert_eq!(op.get("/v1/clusters/tf-a").await.expect(200)["tags"]["tier"], "2");
    assert_eq!(op.get("/v1/clusters/tf-a/services/svc").await.expect(200)["health_check_grace_period_seconds"], 5);
    assert_eq!(tf.plan().await.code, 0, "converged");

    // Forced replacement: a new revision, token, key, account and service.
    tf.write(&config("tf-b", 48, "two", "ci2", "tf-tenant2", "svc2", "in-place"));
    let plan = tf.plan().await;
    for addr in [
        "berth_cluster.c",
        "berth_task_definition.td",
        "berth_registration_token.t",
        "berth_access_key.k",
        "berth_account.a",
        "berth_service.s",
    ] {
        assert!(plan.out.contains(&format!("# {addr} must be replaced")), "{addr} is replaced:\n{}", plan.out);
    }
    assert!(plan.out.contains("# forces replacement"), "{}", plan.out);
    tf.apply().await;
    op.get("/v1/clusters/tf-a").await.expect_error(404, "ResourceNotFound");
    op.get("/v1/clusters/tf-b/services/svc2").await.expect(200);
    assert_eq!(op.get("/v1/task-definitions/tf-web/revisions/1").await.expect(200)["status"], "INACTIVE");
    assert_eq!(
        op.get("/v1/task-definitions/tf-web/revisions/2").await.expect(200)["container_definitions"][0]["memory"],
        48
    );
    assert_eq!(op.get("/v1/accounts/tf-tenant").await.expect(200)["status"], "SUSPENDED");
    assert_eq!(tf.outputs().await["latest"]["value"], "tf-web:2");
    assert_eq!(tf.plan().await.code, 0, "converged");

    // Import: forget everything, import it back, and the plan is empty.
    let ids: Vec<(&str, String)> = {
        let state: Value = serde_json::from_str(&tf.run(&["show", "-json"]).await.ok()).expect("state");
        let resources = state["values"]["root_module"]["resources"].as_array().expect("resources").clone();
        let attr = |addr: &str, key: &str| {
            resources
                .iter()
                .find(|r| r["address"] == addr)
                .and_then(|r| r["values"][key].as_str())
                .expect("attribute")
                .to_owned()
        };
        vec![
            ("berth_cluster.c", "tf-b".to_owned()),
            ("berth_task_definition.td", "tf-web:2".to_owned()),
            ("berth_registration_token.t", format!("tf-b/{}", attr("berth_registration_token.t", "id"))),
            ("berth_access_key.k", attr("berth_access_key.k", "id")),
            ("berth_account.a", "tf-tenant2".to_owned()),
            ("berth_account_quota.q", "tf-tenant2/services".to_owned()),
            ("berth_service.s", "tf-b/svc2".to_owned()),
        ]
    };
    for (addr, _) in &ids {
        tf.run(&["state", "rm", addr]).await.ok();
    }
    for (addr, id) in &ids {
        let r = tf.run(&["import", "-no-color", addr, id]).await.ok();
        assert!(r.contains("Import successful"), "{addr}: {r}");
    }
    let after = tf.plan().await;
    // The token and secret exist only for the apply that made them: imported, they stay unknown to state.
    assert_eq!(after.code, 0, "nothing to change after import:\n{}", after.out);
    let missing = tf.run(&["import", "-no-color", "berth_cluster.c", "nope"]).await;
    assert_ne!(missing.code, 0);
    assert!(
        missing.out.contains("Resource already managed") || missing.out.contains("non-existent"),
        "{}",
        missing.out
    );

    // import {} blocks with generated configuration.
    op.post("/v1/clusters", serde_json::json!({"name": "made-by-hand", "tags": {"k": "v"}})).await.expect(201);
    std::fs::write(tf.work().join("import.tf"), "import {\n  to = berth_cluster.hand\n  id = \"made-by-hand\"\n}\n")
        .expect("import.tf");
    let generated = tf.run(&["plan", "-no-color", "-generate-config-out=generated.tf"]).await;
    assert!(generated.code == 0 || generated.code == 2, "{}", generated.out);
    let hcl = std::fs::read_to_string(tf.work().join("generated.tf")).expect("generated.tf");
    assert!(hcl.contains("name") && hcl.contains("made-by-hand"), "{hcl}");
    let applied = tf.apply().await;
    assert!(applied.contains("1 imported"), "{applied}");

    // Out-of-band deletion: each is planned again and re-created.
    op.delete("/v1/clusters/tf-b/services/svc2?force=true").await.expect(200);
    let key = ids.iter().find(|(a, _)| *a == "berth_access_key.k").map(|(_, id)| id.clone()).expect("key");
    op.delete(&format!("/v1/access-keys/{key}")).await;
    op.post("/v1/task-definitions/tf-web/revisions/2/deregister", serde_json::json!({})).await.expect(200);
    let plan = tf.plan().await;
    assert_eq!(plan.code, 2);
    for addr in ["berth_service.s", "berth_access_key.k", "berth_task_definition.td"] {
        assert!(plan.out.contains(&format!("# {addr} will be created")), "{addr}:\n{}", plan.out);
    }
    tf.apply().await;
    op.get("/v1/clusters/tf-b/services/svc2").await.expect(200);
    assert_eq!(tf.outputs().await["latest"]["value"], "tf-web:3");
    assert_eq!(tf.plan().await.code, 0, "converged");

    // API errors land on the attribute.
    std::fs::remove_file(tf.work().join("generated.tf")).expect("rm");
    std::fs::remove_file(tf.work().join("import.tf")).expect("rm");
    tf.run(&["state", "rm", "berth_cluster.hand"]).await.ok();
    std::fs::write(tf.work().join("bad.tf"), "resource \"berth_cluster\" \"bad\" {\n  name = \"has space\"\n}\n")
        .expect("bad.tf");
    let bad = tf.run(&["apply", "-auto-approve", "-no-color"]).await;
    assert_ne!(bad.code, 0);
    assert!(bad.out.contains("Creating the cluster failed") && bad.out.contains("ValidationError"), "{}", bad.out);
    assert!(
        bad.out.contains("with berth_cluster.bad") && bad.out.contains("on bad.tf line 2"),
        "on the name attribute:\n{}",
        bad.out
    );
    std::fs::write(
        tf.work().join("bad.tf"),
        "resource \"berth_task_definition\" \"bad\" {\n  family = \"x\"\n  container_definitions = \"{}\"\n}\n",
    )
    .expect("bad.tf");
    let bad = tf.plan().await;
    assert_eq!(bad.code, 1);
    assert!(bad.out.contains("Invalid container_definitions") && bad.out.contains("line 3"), "{}", bad.out);
    std::fs::remove_file(tf.work().join("bad.tf")).expect("rm");

    // Destroy.
    tf.run(&["destroy", "-auto-approve", "-no-color"]).await.ok();
    op.get("/v1/clusters/tf-b").await.expect_error(404, "ResourceNotFound");
    assert_eq!(op.get("/v1/accounts/tf-tenant2").await.expect(200)["status"], "SUSPENDED");
    let q = op.get("/v1/accounts/tf-tenant2/quotas").await.expect(200);
    assert!(q["quotas"].as_array().expect("q").iter().all(|q| q["source"] == "default"), "quota reset: {q}");
    s.stop().await;
}

/// The example in terraform/examples/service, with real containers: it
/// reaches its desired count, scales, and destroys cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_example_runs_a_service_of_real_containers() {
    let env = ContainerEnv::from_env();
    let s = TestServer::start(Backend::Postgres).await;
    let tenant = s.tenant("acme").await;
    let tf = Tf::new(&format!("http://{}", s.addr), &tenant);
    let example =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../terraform/examples/service/main.tf"))
            .expect("example");
    tf.write(&example);
    tf.run(&["init", "-no-color"]).await.ok();
    let image = format!("-var=image={}", env.image);
    // The cluster first: a host joins it, then the rest can run.
    tf.run(&["apply", "-auto-approve", "-no-color", &image, "-target=berth_cluster.demo"]).await.ok();
    let agent = InProcessAgent::start(&s, &tenant, "demo", &env).await;
    let applied = tf.run(&["apply", "-auto-approve", "-no-color", &image]).await.ok();
    assert!(applied.contains("Apply complete"), "{applied}");
    let running = |n: usize| {
        let tenant = tenant.clone();
        async move {
            let tasks = tenant.get("/v1/clusters/demo/tasks?last_status=RUNNING").await.expect(200);
            let ids: Vec<String> = tasks["tasks"]
                .as_array()
                .expect("tasks")
                .iter()
                .map(|t| t["id"].as_str().expect("id").to_owned())
                .collect();
            assert_eq!(ids.len(), n, "{tasks:#}");
            ids
        }
    };
    // wait_for_steady_state: when apply returns, the tasks run.
    for id in running(2).await {
        assert_eq!(env.container_status(&id, 0).await.expect("in containerd").0, "RUNNING");
    }
    let out = tf.outputs().await;
    assert_eq!(out["hosts"]["value"].as_array().map(Vec::len), Some(1), "{out}");
    let again = tf.plan_with(&[&image]).await;
    assert_eq!(again.code, 0, "no changes after apply:\n{}", again.out);

    tf.run(&["apply", "-auto-approve", "-no-color", &image, "-var=desired_count=3"]).await.ok();
    for id in running(3).await {
        assert_eq!(env.container_status(&id, 0).await.expect("in containerd").0, "RUNNING");
    }
    let all = running(3).await;
    // As in ECS, a cluster goes once its hosts are gone: the service first,
    // then the host leaves, then the rest.
    tf.run(&["destroy", "-auto-approve", "-no-color", &image, "-var=desired_count=3", "-target=berth_service.web"])
        .await
        .ok();
    for id in &all {
        assert!(env.container_status(id, 0).await.is_none(), "container of {id} removed");
    }
    let host = agent.host_id.clone();
    agent.stop().await;
    tenant
        .post(&format!("/v1/clusters/demo/hosts/{host}/deregister"), serde_json::json!({"force": true}))
        .await
        .expect(200);
    tf.run(&["destroy", "-auto-approve", "-no-color", &image, "-var=desired_count=3"]).await.ok();
    tenant.get("/v1/clusters/demo").await.expect_error(404, "ResourceNotFound");
}

/// Only a 404 drops a resource from state: when the API cannot be reached,
/// refresh fails with an error and the state keeps the resource.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_api_keeps_the_state() {
    let s = TestServer::start(Backend::Postgres).await;
    let op = s.operator.clone();
    let tf = Tf::new(&format!("http://{}", s.addr), &op);
    tf.write(
        r#"
terraform {
  required_providers {
    berth = { source = "berth/berth", version = ">= 0.1.0" }
  }
}
provider "berth" {}
resource "berth_cluster" "c" {
  name = "kept"
}
"#,
    );
    tf.run(&["init", "-no-color"]).await.ok();
    tf.apply().await;
    s.stop().await;
    let refresh = tf.run(&["apply", "-refresh-only", "-auto-approve", "-no-color"]).await;
    assert_ne!(refresh.code, 0, "{}", refresh.out);
    assert!(
        refresh.out.contains("Reading the cluster failed") && refresh.out.contains("cannot reach"),
        "{}",
        refresh.out
    );
    let listed = tf.run(&["state", "list"]).await.ok();
    assert!(listed.contains("berth_cluster.c"), "the cluster is still in state: {listed}");
}
