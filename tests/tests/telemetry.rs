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

mod collector {
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
    use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
    use tokio::sync::mpsc;

    /// A minimal OTLP trace collector: forwards every exported request to a channel.
    pub struct Collector(pub mpsc::UnboundedSender<ExportTraceServiceRequest>);

    #[tonic::async_trait]
    impl TraceService for Collector {
        async fn export(
            &self,
            request: tonic::Request<ExportTraceServiceRequest>,
        ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
            let _ = self.0.send(request.into_inner());
            Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
        }
    }

    pub async fn start() -> (String, mpsc::UnboundedReceiver<ExportTraceServiceRequest>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind collector");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(Collector(tx)))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await;
        });
        (format!("http://{addr}"), rx)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_spans_reach_an_otlp_collector() {
    let (endpoint, mut received) = collector::start().await;
    let telemetry = berth_control_plane::telemetry::init_with(Default::default(), Some(&endpoint));
    let s = TestServer::start(Backend::Sqlite).await;
    let c = s.tenant("acme").await;
    c.create_cluster("traced").await;
    c.get("/v1/clusters/traced").await.expect(200);
    s.stop().await;
    // Shutting the provider down flushes the batch to the collector.
    tokio::task::spawn_blocking(move || drop(telemetry)).await.expect("flush");
    let mut routes = Vec::new();
    while let Ok(req) = received.try_recv() {
        for rs in req.resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| r.attributes.iter())
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref())
                .map(|v| format!("{:?}", v.value));
            assert!(service.is_some_and(|s| s.contains("berth")), "spans carry service.name=berth");
            for ss in rs.scope_spans {
                for span in ss.spans.into_iter().filter(|s| s.name == "request") {
                    for kv in span.attributes.into_iter().filter(|kv| kv.key == "route") {
                        routes.push(format!("{:?}", kv.value.and_then(|v| v.value)));
                    }
                }
            }
        }
    }
    assert!(routes.iter().any(|r| r.contains("/v1/clusters/{cluster}")), "request spans with their route: {routes:?}");
    assert!(routes.iter().any(|r| r.contains("\"/v1/clusters\"")), "request spans with their route: {routes:?}");
}
