//! Health, readiness, metrics, and the OpenAPI document (checked in, current, valid).

use std::path::PathBuf;

use berth_tests::{Backend, TestServer, on_both_backends};

async fn metrics_count_requests_by_route_and_status(backend: Backend) {
    let s = TestServer::start(backend).await;
    let c = s.tenant("acme").await;
    c.create_cluster("prod").await;
    c.get("/v1/clusters/prod").await.expect(200);
    c.get("/v1/clusters/none").await.expect(404);
    let anon = s.anonymous();
    let text = anon.get("/metrics").await;
    assert!(text.header("content-type").is_some_and(|ct| ct.starts_with("text/plain")));
    let text = text.body.as_str().expect("text body").to_owned();
    let has = |needle: &str| text.lines().any(|l| l.contains(needle));
    assert!(has("berth_http_requests_total{method=\"GET\",route=\"/v1/clusters/{cluster}\",status=\"404\"}"), "{text}");
    assert!(has("berth_http_requests_total{method=\"POST\",route=\"/v1/clusters\",status=\"201\"}"), "{text}");
    assert!(
        has("berth_http_request_duration_seconds_bucket{method=\"GET\",route=\"/v1/clusters/{cluster}\""),
        "{text}"
    );
    assert!(has("berth_db_pool_connections{"), "{text}");
    assert!(has("berth_db_pool_max_connections{"), "{text}");
    assert_eq!(anon.get("/healthz").await.expect(200), "ok");
    assert_eq!(anon.get("/readyz").await.expect(200), "ready");
    s.stop().await;
}

on_both_backends!(metrics_count_requests_by_route_and_status);

fn checked_in() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../openapi/berth.json");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}; run `cargo xtask openapi`", path.display()))
}

#[test]
fn openapi_document_is_up_to_date() {
    let generated = berth_control_plane::http::openapi().to_pretty_json().expect("serialize");
    assert!(
        checked_in().trim_end() == generated.trim_end(),
        "openapi/berth.json differs from what the code generates: run `cargo xtask openapi` and commit the result"
    );
}

#[test]
fn openapi_document_is_a_valid_openapi_3_document() {
    let text = checked_in();
    let spec = oas3::from_json(&text).expect("parses as an OpenAPI 3.1 document");
    assert!(spec.openapi.starts_with("3."), "version {}", spec.openapi);
    let mut operation_ids = std::collections::BTreeSet::new();
    let mut count = 0;
    for (path, method, op) in spec.operations() {
        count += 1;
        let id = op.operation_id.clone().unwrap_or_else(|| panic!("{method} {path} has no operationId"));
        assert!(operation_ids.insert(id.clone()), "operationId {id} is used twice");
        // Every reference resolves.
        op.request_body(&spec).unwrap_or_else(|e| panic!("{id}: request body: {e}"));
        for (status, resp) in op.responses(&spec) {
            assert!(resp.description.as_deref().is_some_and(|d| !d.is_empty()), "{id} {status}: no description");
        }
        for p in op.parameters(&spec).unwrap_or_else(|e| panic!("{id}: parameters: {e}")) {
            assert!(!p.name.is_empty());
        }
    }
    assert!(count >= 19, "only {count} operations documented");
    let value: serde_json::Value = serde_json::from_str(&text).expect("json");
    let schemas = value["components"]["schemas"].as_object().expect("schemas");
    let mut refs = Vec::new();
    collect_refs(&value, &mut refs);
    for r in refs {
        let name = r.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("unexpected $ref {r}"));
        assert!(schemas.contains_key(name), "dangling $ref {r}");
    }
}

fn collect_refs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                if k == "$ref" {
                    if let Some(s) = v.as_str() {
                        out.push(s.to_owned());
                    }
                } else {
                    collect_refs(v, out);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}
