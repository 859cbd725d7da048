//! The event log as a long-poll and as server-sent events that resume
//! exactly from a cursor.

use std::time::{Duration, SystemTime};

use berth_tests::{Auth, Backend, Client, TestServer, on_both_backends, sign_request};
use serde_json::{Value, json};

/// Opens the SSE stream and collects `n` events (id, type, data).
async fn read_sse(c: &Client, query: &str, last_event_id: Option<i64>, n: usize) -> Vec<(i64, String, Value)> {
    let mut rb = c.request(reqwest::Method::GET, &format!("/v1/events/stream{query}"));
    if let Some(id) = last_event_id {
        rb = rb.header("last-event-id", id.to_string());
    }
    let mut req = rb.build().expect("request");
    let Auth::SigV4 { access_key_id, secret, region } = &c.auth else { panic!("signing client") };
    sign_request(&mut req, access_key_id, secret, region, SystemTime::now());
    let mut resp = c.http.execute(req).await.expect("stream");
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers()["content-type"].to_str().expect("ct").starts_with("text/event-stream"));
    let mut buf = String::new();
    let mut out = Vec::new();
    while out.len() < n {
        let chunk = tokio::time::timeout(Duration::from_secs(20), resp.chunk())
            .await
            .expect("an event in time")
            .expect("chunk");
        let Some(chunk) = chunk else { break };
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            let (mut id, mut kind, mut data) = (None, String::new(), String::new());
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().parse::<i64>().ok();
                } else if let Some(v) = line.strip_prefix("event:") {
                    kind = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim());
                }
            }
            if let Some(id) = id {
                out.push((id, kind, serde_json::from_str(&data).expect("json data")));
            }
        }
    }
    out
}

async fn long_poll_and_sse_resume(backend: Backend) {
    let s = TestServer::start(backend).await;
    let c = s.tenant("acme").await;
    let start = c.get("/v1/events").await.expect(200)["cursor"].as_i64().expect("cursor");

    // Long-poll: the call waits and answers with the event made meanwhile.
    let c2 = c.clone();
    let maker = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        c2.create_cluster("one").await;
    });
    let got = c.get(&format!("/v1/events?after={start}&wait=10")).await.expect(200);
    maker.await.expect("join");
    assert_eq!(got["events"][0]["type"], "cluster.created");
    assert_eq!(got["events"][0]["detail"]["name"], "one");
    c.get("/v1/events?wait=31").await.expect_error(400, "BadRequest");

    // SSE from a cursor: past events first, then live ones.
    let c3 = c.clone();
    let live = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        c3.create_cluster("two").await;
        c3.create_cluster("three").await;
    });
    let events = read_sse(&c, &format!("?after={start}&types=cluster.created"), None, 3).await;
    live.await.expect("join");
    let names: Vec<&str> = events.iter().map(|(_, _, d)| d["detail"]["name"].as_str().expect("name")).collect();
    assert_eq!(names, ["one", "two", "three"]);
    assert!(events.iter().all(|(_, kind, _)| kind == "cluster.created"));
    assert!(events.windows(2).all(|w| w[0].0 < w[1].0), "ids increase");

    // A client that reconnects with Last-Event-ID gets exactly what followed.
    c.create_cluster("four").await;
    let resumed = read_sse(&c, "?types=cluster.created", Some(events[1].0), 2).await;
    let names: Vec<&str> = resumed.iter().map(|(_, _, d)| d["detail"]["name"].as_str().expect("name")).collect();
    assert_eq!(names, ["three", "four"]);
    s.stop().await;
}

on_both_backends!(long_poll_and_sse_resume);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_account_sees_none_of_the_stream() {
    let s = TestServer::start(Backend::Sqlite).await;
    let a = s.tenant("acme").await;
    let b = s.tenant("globex").await;
    let b_start = b.get("/v1/events").await.expect(200)["cursor"].as_i64().expect("cursor");
    a.create_cluster("secret-project").await;
    b.create_cluster("own").await;
    let events = read_sse(&b, &format!("?after={b_start}"), None, 1).await;
    assert_eq!(events[0].2["detail"], json!({"name": "own"}));
    s.stop().await;
}
