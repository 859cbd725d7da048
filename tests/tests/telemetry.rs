//! With an OTLP endpoint where no collector listens, the server serves
//! normally and its exporter shuts down without hanging.

use berth_tests::{Backend, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_without_a_collector_changes_nothing() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let telemetry = berth_control_plane::telemetry::init_with(Default::default(), Some(&endpoint));
    let s = TestServer::start(Backend::Sqlite).await;
    let c = s.tenant("acme").await;
    for i in 0..20 {
        c.create_cluster(&format!("c{i}")).await;
    }
    assert_eq!(c.get("/v1/clusters").await.expect(200)["clusters"].as_array().expect("list").len(), 20);
    s.stop().await;
    let shutdown = tokio::task::spawn_blocking(move || drop(telemetry));
    tokio::time::timeout(std::time::Duration::from_secs(30), shutdown)
        .await
        .expect("the exporter shut down instead of hanging")
        .expect("join");
}
