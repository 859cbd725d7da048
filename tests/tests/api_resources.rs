//! Clusters, task definitions and tasks through the real HTTP API.

use berth_tests::{Backend, TestServer, on_both_backends};
use serde_json::json;

async fn cluster_lifecycle(backend: Backend) {
    let s = TestServer::start(backend).await;
    let c = s.tenant("acme").await;
    let created = c.post("/v1/clusters", json!({"name": "prod", "tags": {"team": "web"}})).await;
    assert_eq!(created.header("etag"), Some("\"1\""));
    let created = created.expect(201);
    assert_eq!(created["name"], "prod");
    assert_eq!(created["status"], "ACTIVE");
    assert_eq!(created["tags"]["team"], "web");
    assert_eq!(created["active_tasks_count"], 0);

    // By name and by id.
    assert_eq!(c.get("/v1/clusters/prod").await.expect(200)["id"], created["id"]);
    let by_id = c.get(&format!("/v1/clusters/{}", created["id"].as_str().expect("id"))).await.expect(200);
    assert_eq!(by_id["name"], "prod");

    c.post("/v1/clusters", json!({"name": "prod"})).await.expect_error(409, "ResourceAlreadyExists");

    let updated = c.patch("/v1/clusters/prod", json!({"tags": {"team": "api"}})).await;
    assert_eq!(updated.header("etag"), Some("\"2\""));
    let updated = updated.expect(200);
    assert_eq!(updated["tags"], json!({"team": "api"}));
    assert_eq!(updated["version"], 2);

    c.delete("/v1/clusters/prod").await.expect(204);
    c.get("/v1/clusters/prod").await.expect_error(404, "ResourceNotFound");
    c.delete("/v1/clusters/prod").await.expect_error(404, "ResourceNotFound");
    // The name is free again.
    c.create_cluster("prod").await;
    s.stop().await;
}

async fn cluster_delete_is_refused_while_tasks_run(backend: Backend) {
    let s = TestServer::start(backend).await;
    let c = s.tenant("acme").await;
    c.create_cluster("prod").await;
    c.register("web").await;
    let run = c.post("/v1/clusters/prod/tasks", json!({"task_definition": "web", "queue": true})).await.expect(201);
    let task = run["tasks"][0]["id"].as_str().expect("task id").to_owned();
    assert_eq!(c.get("/v1/clusters/prod").await.expect(200)["active_tasks_count"], 1);
    c.create_cluster("idle").await;
    let listed = c.get("/v1/clusters").await.expect(200);
    let counts: Vec<(&str, i64)> = listed["clusters"]
        .as_array()
        .expect("clusters")
        .iter()
        .map(|c| (c["name"].as_str().expect("name"), c["active_tasks_count"].as_i64().expect("count")))
        .collect();
    assert_eq!(counts, [("prod", 1), ("idle", 0)], "each cluster counts its own tasks: {listed}");
    let refused = c.delete("/v1/clusters/prod").await.expect_error(409, "ResourceInUse");
    assert!(refused["message"].as_str().expect("message").contains("1 task"), "{refused}");
    c.post(&format!("/v1/clusters/prod/tasks/{task}/stop"), json!({})).await.expect(200);
    c.delete("/v1/clusters/prod").await.expect(204);
    s.stop().await;
}

async fn task_definition_revisions(backend: Backend) {
    let s = TestServer::start(backend).await;
    let c = s.tenant("acme").await;
    let r1 = c.register("web").await;
    let r2 = c.register("web").await;
    assert_eq!(r1["revision"], 1);
    assert_eq!(r2["revision"], 2);
    assert_eq!(r2["status"], "ACTIVE");
    assert_eq!(r2["container_definitions"][0]["essential"], true, "defaults are filled in");
    c.register("api").await;

    let families = c.get("/v1/task-definitions").await.expect(200);
    let names: Vec<&str> = families["families"]
        .as_array()
        .expect("families")
        .iter()
        .map(|f| f["family"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["api", "web"]);
    assert_eq!(families["families"][1]["latest_revision"], 2);

    assert_eq!(c.get("/v1/task-definitions/web").await.expect(200)["revision"], 2);
    assert_eq!(c.get("/v1/task-definitions/web:1").await.expect(200)["revision"], 1);
    assert_eq!(c.get("/v1/task-definitions/web/revisions/1").await.expect(200)["id"], r1["id"]);
    c.get("/v1/task-definitions/web/revisions/3").await.expect_error(404, "ResourceNotFound");
    c.get("/v1/task-definitions/web/revisions/zero").await.expect_error(404, "ResourceNotFound");
    c.get("/v1/task-definitions/nope").await.expect_error(404, "ResourceNotFound");
    c.get("/v1/task-definitions/nope/revisions").await.expect_error(404, "ResourceNotFound");

    // Deregister the latest: the family's latest ACTIVE falls back to revision 1.
    let d = c.post("/v1/task-definitions/web/revisions/2/deregister", json!({})).await.expect(200);
    assert_eq!(d["status"], "INACTIVE");
    assert!(d["deregistered_at"].is_string());
    assert_eq!(c.get("/v1/task-definitions/web").await.expect(200)["revision"], 1);
    // Still readable, and deregistering again changes nothing.
    assert_eq!(c.get("/v1/task-definitions/web/revisions/2").await.expect(200)["status"], "INACTIVE");
    let again = c.post("/v1/task-definitions/web/revisions/2/deregister", json!({})).await.expect(200);
    assert_eq!(again["version"], d["version"]);
    // An INACTIVE revision cannot start tasks.
    c.create_cluster("prod").await;
    let refused = c
        .post("/v1/clusters/prod/tasks", json!({"task_definition": "web:2"}))
        .await
        .expect_error(422, "ValidationError");
    assert_eq!(refused["field"], "task_definition");

    // Only INACTIVE revisions can be deleted; revision numbers are never reused.
    c.delete("/v1/task-definitions/web/revisions/1").await.expect_error(409, "InvalidStateTransition");
    c.delete("/v1/task-definitions/web/revisions/2").await.expect(204);
    c.get("/v1/task-definitions/web/revisions/2").await.expect_error(404, "ResourceNotFound");
    assert_eq!(c.register("web").await["revision"], 3);
    let revs = c.get("/v1/task-definitions/web/revisions").await.expect(200);
    let numbers: Vec<i64> =
        revs["task_definitions"].as_array().expect("list").iter().map(|r| r["revision"].as_i64().expect("n")).collect();
    assert_eq!(numbers, [1, 3]);
    s.stop().await;
}

async fn task_definition_in_use_cannot_be_deleted(backend: Backend) {
    let s = TestServer::start(backend).await;
    let c = s.tenant("acme").await;
    c.create_cluster("prod").await;
    c.register("web").await;
    c.post("/v1/clusters/prod/tasks", json!({"task_definition": "web:1", "queue": true})).await.expect(201);
    // A PROVISIONING task is "not STOPPED": the revision is in use even after deregistering.
    c.post("/v1/task-definitions/web/revisions/1/deregister", json!({})).await.expect(200);
    c.delete("/v1/task-definitions/web/revisions/1").await.expect_error(409, "ResourceInUse");
    s.stop().await;
}

async fn run_list_get_and_stop_tasks(backend: Backend) {
    let s = TestServer::start(backend).await;
    let c = s.tenant("acme").await;
    c.create_cluster("prod").await;
    c.register("web").await;
    let run = c
        .post(
            "/v1/clusters/prod/tasks",
            json!({"task_definition": "web", "queue": true, "count": 3, "started_by": "job-7", "tags": {"k": "v"},
                   "overrides": {"container_overrides": [{"name": "app", "memory": 128, "environment": {"MODE": "x"}}]}}),
        )
        .await
        .expect(201);
    let tasks = run["tasks"].as_array().expect("tasks");
    assert_eq!(tasks.len(), 3);
    assert_eq!(run["failures"], json!([]));
    for t in tasks {
        assert_eq!(t["last_status"], "PROVISIONING");
        assert_eq!(t["desired_status"], "RUNNING");
        assert_eq!(t["task_definition"], "web:1");
        assert_eq!(t["cluster"], "prod");
        assert_eq!(t["memory"], 128, "the override replaces the container's memory");
        assert_eq!(t["containers"][0]["name"], "app");
        assert_eq!(t["containers"][0]["last_status"], "PROVISIONING");
        assert_eq!(t["overrides"]["container_overrides"][0]["environment"]["MODE"], "x");
    }
    c.post("/v1/clusters/prod/tasks", json!({"task_definition": "web", "queue": true, "started_by": "other"}))
        .await
        .expect(201);

    let id = tasks[0]["id"].as_str().expect("id");
    let got = c.get(&format!("/v1/clusters/prod/tasks/{id}")).await;
    assert_eq!(got.header("etag"), Some("\"1\""));
    assert_eq!(got.expect(200)["id"], id);

    let listed = c.get("/v1/clusters/prod/tasks?started_by=job-7").await.expect(200);
    assert_eq!(listed["tasks"].as_array().expect("tasks").len(), 3);
    let listed = c.get("/v1/clusters/prod/tasks?family=web&last_status=PROVISIONING").await.expect(200);
    assert_eq!(listed["tasks"].as_array().expect("tasks").len(), 4);

    // Stopping an unplaced task stops it at once, with the reason recorded.
    let stopped =
        c.post(&format!("/v1/clusters/prod/tasks/{id}/stop"), json!({"reason": "done here"})).await.expect(200);
    assert_eq!(stopped["last_status"], "STOPPED");
    assert_eq!(stopped["desired_status"], "STOPPED");
    assert_eq!(stopped["stop_code"], "UserInitiated");
    assert_eq!(stopped["stopped_reason"], "done here");
    assert_eq!(stopped["containers"][0]["last_status"], "STOPPED");
    assert!(stopped["stopped_at"].is_string());
    // Stopping again changes nothing (same version); an empty body is fine.
    let again = c.request(reqwest::Method::POST, &format!("/v1/clusters/prod/tasks/{id}/stop"));
    let again = c.send(again).await.expect(200);
    assert_eq!(again["version"], stopped["version"]);
    assert_eq!(again["stopped_reason"], "done here");

    let stopped_list = c.get("/v1/clusters/prod/tasks?desired_status=STOPPED").await.expect(200);
    assert_eq!(stopped_list["tasks"].as_array().expect("tasks").len(), 1);
    c.get("/v1/clusters/prod/tasks/not-a-task").await.expect_error(404, "ResourceNotFound");
    c.get(&format!("/v1/clusters/prod/tasks/{}", uuid::Uuid::now_v7())).await.expect_error(404, "ResourceNotFound");
    c.post("/v1/clusters/prod/tasks", json!({"task_definition": "web", "count": 11}))
        .await
        .expect_error(422, "ValidationError");
    c.post("/v1/clusters/prod/tasks", json!({"task_definition": "web", "count": 0}))
        .await
        .expect_error(422, "ValidationError");
    let bad = c
        .post(
            "/v1/clusters/prod/tasks",
            json!({"task_definition": "web", "overrides": {"container_overrides": [{"name": "ghost"}]}}),
        )
        .await
        .expect_error(422, "ValidationError");
    assert_eq!(bad["field"], "overrides.container_overrides[0].name");
    c.post("/v1/clusters/nope/tasks", json!({"task_definition": "web"})).await.expect_error(404, "ResourceNotFound");
    s.stop().await;
}

async fn events_record_every_change_in_order(backend: Backend) {
    let s = TestServer::start(backend).await;
    let c = s.tenant("acme").await;
    c.create_cluster("prod").await;
    c.register("web").await;
    let run = c.post("/v1/clusters/prod/tasks", json!({"task_definition": "web", "queue": true})).await.expect(201);
    let id = run["tasks"][0]["id"].as_str().expect("id").to_owned();
    c.post(&format!("/v1/clusters/prod/tasks/{id}/stop"), json!({})).await.expect(200);
    let all = c.get("/v1/events").await.expect(200);
    let types: Vec<&str> =
        all["events"].as_array().expect("events").iter().map(|e| e["type"].as_str().expect("type")).collect();
    // The first event is the admin key the operator made for this account.
    assert_eq!(
        types,
        [
            "access_key.created",
            "cluster.created",
            "task_definition.registered",
            "task.state_changed",
            "task.state_changed"
        ]
    );
    let seqs: Vec<i64> =
        all["events"].as_array().expect("events").iter().map(|e| e["sequence"].as_i64().expect("seq")).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    assert_eq!(all["cursor"], 5);
    assert_eq!(all["events"][4]["detail"]["last_status"], "STOPPED");
    let after = c.get("/v1/events?after=3&types=task.state_changed").await.expect(200);
    assert_eq!(after["events"].as_array().expect("events").len(), 2);
    let none = c.get("/v1/events?after=5").await.expect(200);
    assert_eq!(none["events"], json!([]));
    assert_eq!(none["cursor"], 5);
    s.stop().await;
}

on_both_backends!(
    cluster_lifecycle,
    cluster_delete_is_refused_while_tasks_run,
    task_definition_revisions,
    task_definition_in_use_cannot_be_deleted,
    run_list_get_and_stop_tasks,
    events_record_every_change_in_order,
);

/// A cluster whose hosts were all deregistered can be deleted: the hosts'
/// records go with it (a regression the Terraform tests found).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_with_only_deregistered_hosts_can_be_deleted() {
    let s = berth_tests::TestServer::start(berth_tests::Backend::Postgres).await;
    let c = s.tenant("acme").await;
    c.create_cluster("prod").await;
    let host = c.add_host("prod", 1024, 1024, serde_json::json!({})).await;
    let id = host["host_id"].as_str().expect("host").to_owned();
    c.delete("/v1/clusters/prod").await.expect_error(409, "ResourceInUse");
    c.post(&format!("/v1/clusters/prod/hosts/{id}/deregister"), serde_json::json!({})).await.expect(200);
    let r = c.delete("/v1/clusters/prod").await;
    assert_eq!(r.status.as_u16(), 204, "{}", r.body);
    c.get("/v1/clusters/prod").await.expect_error(404, "ResourceNotFound");
    s.stop().await;
}
