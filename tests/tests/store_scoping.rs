//! Every store query scoped to account A sees only A's rows, and a read
//! transaction sees one snapshot, on both backends.

use berth_api::task_definitions::{ContainerDefinition, NetworkMode, RegisterTaskDefinitionRequest};
use berth_api::tasks::TaskOverrides;
use berth_api::{AccountId, ClusterId, Tags, TaskDefinitionId, TaskId};
use berth_control_plane::store::tasks::{NewTask, TaskFilter};
use berth_control_plane::store::{self, AccountScope, Db};
use berth_tests::{Backend, TestDb, on_both_backends};

fn definition(family: &str) -> RegisterTaskDefinitionRequest {
    RegisterTaskDefinitionRequest {
        family: family.into(),
        container_definitions: vec![ContainerDefinition {
            name: "app".into(),
            image: "busybox".into(),
            cpu: None,
            memory: Some(64),
            memory_reservation: None,
            command: None,
            entry_point: None,
            environment: Default::default(),
            port_mappings: vec![],
            essential: true,
            stop_timeout: None,
            working_directory: None,
            user: None,
            health_check: None,
            depends_on: vec![],
            ulimits: vec![],
            labels: Default::default(),
            readonly_root_filesystem: false,
            pull_policy: None,
            pids_limit: None,
            restart_policy: None,
            repository_credentials: None,
            privileged: false,
            linux_parameters: None,
            mount_points: vec![],
        }],
        cpu: None,
        memory: None,
        network_mode: NetworkMode::Bridge,
        volumes: vec![],
        restart_policy: None,
        tags: Tags::new(),
        client_token: None,
    }
}

/// Creates an account with one cluster (named like every other account's),
/// one family (same name too), one task and one event.
async fn populate(db: &Db, name: &str) -> (AccountScope, ClusterId, TaskDefinitionId, TaskId) {
    let mut tx = db.begin_write().await.expect("tx");
    let now = store::now();
    let account = AccountId::generate();
    store::accounts::insert(&mut tx, account, name, false, now).await.expect("account");
    let scope = AccountScope::new(account);
    let cluster = ClusterId::generate();
    let tags = Tags::new();
    store::clusters::insert(
        &mut tx,
        scope,
        store::clusters::NewCluster { id: cluster, name: "shared-name", tags: &tags, now, pool_priority: None },
    )
    .await
    .expect("cluster");
    let td = TaskDefinitionId::generate();
    store::task_definitions::register(&mut tx, scope, td, &definition("web"), now).await.expect("td");
    let task = TaskId::generate();
    store::tasks::insert(
        &mut tx,
        scope,
        NewTask {
            id: task,
            cluster_id: cluster,
            task_definition_id: td,
            family: "web",
            revision: 1,
            started_by: Some("me"),
            overrides: &TaskOverrides::default(),
            containers: &[],
            cpu: 0,
            memory: 64,
            tags: &tags,
            now,
            placed: None,
            queued: true,
            placement_spec: None,
            service: None,
            launch_type: Default::default(),
            requested: None,
        },
    )
    .await
    .expect("task");
    store::events::append(&mut tx, scope, "task.state_changed", &task.to_string(), serde_json::json!({}), now)
        .await
        .expect("event");
    tx.commit().await.expect("commit");
    (scope, cluster, td, task)
}

async fn scoped_queries_never_cross_accounts(backend: Backend) {
    let t = TestDb::new(backend).await;
    let (a, a_cluster, a_td, a_task) = populate(&t.db, "account-a").await;
    let (b, b_cluster, b_td, b_task) = populate(&t.db, "account-b").await;
    // Events wait in the outbox until the sequencer numbers them, per account.
    let mut tx = t.db.begin_write().await.expect("tx");
    assert_eq!(store::events::sequence_pending(&mut tx, 1000).await.expect("sequence"), 2);
    tx.commit().await.expect("commit");
    let mut tx = t.db.begin_read().await.expect("tx");

    for (scope, own_cluster, other_cluster, own_td, other_td, own_task, other_task) in
        [(a, a_cluster, b_cluster, a_td, b_td, a_task, b_task), (b, b_cluster, a_cluster, b_td, a_td, b_task, a_task)]
    {
        let clusters = store::clusters::list(&mut tx, scope, None, None, 100).await.expect("list");
        assert_eq!(clusters.iter().map(|c| c.cluster_id()).collect::<Vec<_>>(), vec![own_cluster]);
        assert!(clusters.iter().all(|c| c.account_id == scope.account_id().0));
        assert!(store::clusters::get_by_id(&mut tx, scope, other_cluster).await.expect("get").is_none());
        let by_name = store::clusters::get_by_name(&mut tx, scope, "shared-name").await.expect("get").expect("own");
        assert_eq!(by_name.cluster_id(), own_cluster);

        let families = store::task_definitions::list_families(&mut tx, scope, None, 100).await.expect("families");
        assert_eq!(families.len(), 1);
        assert!(store::task_definitions::get_by_id(&mut tx, scope, other_td).await.expect("get").is_none());
        let own = store::task_definitions::get_by_id(&mut tx, scope, own_td).await.expect("get").expect("own");
        assert_eq!(own.revision, 1, "each account numbers its own revisions");
        let revisions = store::task_definitions::list_revisions(&mut tx, scope, "web", None, 100).await.expect("revs");
        assert_eq!(revisions.iter().map(|r| r.id).collect::<Vec<_>>(), vec![own_td.0]);

        // Even with the other account's cluster id, a scoped task query finds nothing.
        let tasks =
            store::tasks::list(&mut tx, scope, other_cluster, &TaskFilter::default(), None, 100).await.expect("tasks");
        assert!(tasks.is_empty());
        let tasks =
            store::tasks::list(&mut tx, scope, own_cluster, &TaskFilter::default(), None, 100).await.expect("tasks");
        assert_eq!(tasks.iter().map(|t| t.task_id()).collect::<Vec<_>>(), vec![own_task]);
        assert!(store::tasks::get(&mut tx, scope, other_cluster, other_task).await.expect("get").is_none());
        assert!(store::tasks::get(&mut tx, scope, own_cluster, other_task).await.expect("get").is_none());
        assert_eq!(store::tasks::count_active_in_cluster(&mut tx, scope, other_cluster).await.expect("count"), 0);

        let events = store::events::list(&mut tx, scope, 0, &[], 100).await.expect("events");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].sequence, 1, "each account has its own event sequence");
        assert_eq!(events[0].resource_id, own_task.to_string());
    }
}

async fn conditional_writes_need_the_right_scope(backend: Backend) {
    let t = TestDb::new(backend).await;
    let (a, a_cluster, a_td, _) = populate(&t.db, "account-a").await;
    let (b, _, _, _) = populate(&t.db, "account-b").await;
    let mut tx = t.db.begin_write().await.expect("tx");
    let now = store::now();
    assert!(!store::clusters::update_tags(&mut tx, b, a_cluster, 1, &Tags::new(), now).await.expect("update"));
    assert!(!store::clusters::delete(&mut tx, b, a_cluster, 1).await.expect("delete"));
    assert!(!store::task_definitions::deregister(&mut tx, b, a_td, 1, now).await.expect("deregister"));
    assert!(store::task_definitions::deregister(&mut tx, a, a_td, 1, now).await.expect("deregister"));
    tx.commit().await.expect("commit");
    let mut tx = t.db.begin_read().await.expect("tx");
    assert!(store::clusters::get_by_id(&mut tx, a, a_cluster).await.expect("get").is_some());
}

/// A handler that reads twice inside `begin_read` (a service, then its
/// tasks) must not see a commit land between the two reads.
async fn a_read_transaction_sees_one_snapshot(backend: Backend) {
    let t = TestDb::new(backend).await;
    let (a, _, _, _) = populate(&t.db, "account-a").await;
    let mut read = t.db.begin_read().await.expect("tx");
    let before = store::clusters::list(&mut read, a, None, None, 100).await.expect("list");
    assert_eq!(before.len(), 1);

    let mut write = t.db.begin_write().await.expect("tx");
    let tags = Tags::new();
    let now = store::now();
    let new = store::clusters::NewCluster {
        id: ClusterId::generate(),
        name: "second",
        tags: &tags,
        now,
        pool_priority: None,
    };
    store::clusters::insert(&mut write, a, new).await.expect("cluster");
    write.commit().await.expect("commit");

    let during = store::clusters::list(&mut read, a, None, None, 100).await.expect("list");
    assert_eq!(during.len(), 1, "a commit after the read transaction's first statement stays invisible to it");
    read.rollback().await.expect("rollback");
    let mut read = t.db.begin_read().await.expect("tx");
    let after = store::clusters::list(&mut read, a, None, None, 100).await.expect("list");
    assert_eq!(after.len(), 2, "the next read transaction sees the commit");
}

on_both_backends!(
    scoped_queries_never_cross_accounts,
    conditional_writes_need_the_right_scope,
    a_read_transaction_sees_one_snapshot
);
