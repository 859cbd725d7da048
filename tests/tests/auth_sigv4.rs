//! SigV4 interoperability: requests signed by independent implementations
//! (Python botocore, curl, and the aws-sigv4 crate in both forms) are
//! accepted, and the same requests with one byte changed are refused.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use berth_tests::{Auth, Backend, Client, Resp, TestServer};
use reqwest::Method;
use serde_json::{Value, json};

struct Key {
    id: String,
    secret: String,
}

fn key_of(c: &Client) -> Key {
    match &c.auth {
        Auth::SigV4 { access_key_id, secret, .. } => Key { id: access_key_id.clone(), secret: secret.clone() },
        _ => panic!("signing client"),
    }
}

/// Runs tests/tools/botocore_sign.py; panics loudly if Python or botocore is missing.
fn botocore(spec: Value) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/botocore_sign.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (cargo xtask test installs botocore)");
    child.stdin.take().expect("stdin").write_all(spec.to_string().as_bytes()).expect("write");
    let out = child.wait_with_output().expect("botocore signer");
    assert!(out.status.success(), "botocore signer failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("signer output")
}

/// What botocore signs, and what is then sent (which may differ from it).
struct Attempt<'a> {
    method: &'a str,
    signed_path: &'a str,
    send_path: &'a str,
    signed_body: &'a str,
    send_body: &'a str,
    send_content_type: &'a str,
}

async fn botocore_request(c: &Client, key: &Key, a: Attempt<'_>) -> Resp {
    let Attempt { method, signed_path, send_path, signed_body, send_body, send_content_type } = a;
    let url = format!("{}{}", c.base, signed_path);
    let signed = botocore(json!({
        "method": method, "url": url, "body": signed_body,
        "headers": {"Content-Type": "application/json"},
        "access_key": key.id, "secret": key.secret, "region": "local",
    }));
    let mut rb = c.http.request(method.parse().expect("method"), format!("{}{}", c.base, send_path));
    for (k, v) in signed["headers"].as_object().expect("headers") {
        if k.eq_ignore_ascii_case("content-type") {
            continue;
        }
        rb = rb.header(k, v.as_str().expect("value"));
    }
    rb = rb.header("content-type", send_content_type).body(send_body.to_owned());
    Client::execute(&c.http, rb.build().expect("request")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn botocore_signatures_are_accepted_and_tampering_is_refused() {
    let s = TestServer::start(Backend::Postgres).await;
    let c = s.tenant("acme").await;
    let key = key_of(&c);
    let body = r#"{"name":"signed-by-botocore","tags":{"who":"python"}}"#;
    let json_ct = "application/json";
    let r = botocore_request(
        &c,
        &key,
        Attempt {
            method: "POST",
            signed_path: "/v1/clusters",
            send_path: "/v1/clusters",
            signed_body: body,
            send_body: body,
            send_content_type: json_ct,
        },
    )
    .await;
    assert_eq!(r.expect(201)["name"], "signed-by-botocore");
    let q = "/v1/clusters/signed-by-botocore/tasks?started_by=job%207&limit=5";
    let r = botocore_request(
        &c,
        &key,
        Attempt {
            method: "GET",
            signed_path: q,
            send_path: q,
            signed_body: "",
            send_body: "",
            send_content_type: json_ct,
        },
    )
    .await;
    assert_eq!(r.expect(200)["tasks"], json!([]));

    // One byte changed in the path, the query, a signed header, or the body.
    let tampered = [
        botocore_request(
            &c,
            &key,
            Attempt {
                method: "GET",
                signed_path: "/v1/clusters/signed-by-botocore",
                send_path: "/v1/clusters/signed-by-botocorf",
                signed_body: "",
                send_body: "",
                send_content_type: json_ct,
            },
        )
        .await,
        botocore_request(
            &c,
            &key,
            Attempt {
                method: "GET",
                signed_path: q,
                send_path: &q.replace("limit=5", "limit=6"),
                signed_body: "",
                send_body: "",
                send_content_type: json_ct,
            },
        )
        .await,
        botocore_request(
            &c,
            &key,
            Attempt {
                method: "POST",
                signed_path: "/v1/clusters",
                send_path: "/v1/clusters",
                signed_body: body,
                send_body: body,
                send_content_type: "application/jsoN",
            },
        )
        .await,
        botocore_request(
            &c,
            &key,
            Attempt {
                method: "POST",
                signed_path: "/v1/clusters",
                send_path: "/v1/clusters",
                signed_body: body,
                send_body: &body.replace("python", "pythoN"),
                send_content_type: json_ct,
            },
        )
        .await,
    ];
    for r in tampered {
        r.expect_error(403, "SignatureDoesNotMatch");
    }
    let list = c.get("/v1/clusters").await.expect(200);
    assert_eq!(list["clusters"].as_array().expect("list").len(), 1, "no tampered request created anything");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presigned_urls_from_botocore_and_aws_sigv4() {
    let s = TestServer::start(Backend::Sqlite).await;
    let c = s.tenant("acme").await;
    c.create_cluster("prod").await;
    let key = key_of(&c);
    let presign = |path: &str, expires: u64| {
        botocore(json!({"method": "GET", "url": format!("{}{}", c.base, path), "access_key": key.id,
                        "secret": key.secret, "region": "local", "presign_expires": expires}))["url"]
            .as_str()
            .expect("url")
            .to_owned()
    };
    let get = |url: String| {
        let http = c.http.clone();
        async move { Client::execute(&http, http.get(url).build().expect("request")).await }
    };
    let url = presign("/v1/clusters/prod?x=1", 300);
    assert!(url.contains("X-Amz-Signature="));
    assert_eq!(get(url.clone()).await.expect(200)["name"], "prod");
    get(url.replace("x=1", "x=2")).await.expect_error(403, "SignatureDoesNotMatch");
    let short = presign("/v1/clusters/prod", 1);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    get(short).await.expect_error(403, "RequestExpired");

    // The Rust signer's query form.
    let identity: Identity = Credentials::new(&key.id, &key.secret, None, None, "t").into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(Duration::from_secs(60));
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("local")
        .name("berth")
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .expect("params")
        .into();
    let url = format!("{}/v1/clusters?limit=10", c.base);
    let host = url.trim_start_matches("http://").split('/').next().expect("host").to_owned();
    let signable =
        SignableRequest::new("GET", &url, [("host", host.as_str())].into_iter(), SignableBody::UnsignedPayload)
            .expect("signable");
    let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
    let mut req = http::Request::builder().uri(&url).body(()).expect("req");
    instructions.apply_to_request_http1x(&mut req);
    let r = get(req.uri().to_string()).await.expect(200);
    assert_eq!(r["clusters"][0]["name"], "prod");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_aws_sigv4_is_accepted() {
    let s = TestServer::start(Backend::Sqlite).await;
    let c = s.tenant("acme").await;
    let key = key_of(&c);
    let run = move |args: &[&str]| {
        let out = Command::new("curl")
            .args(["-s", "--aws-sigv4", "aws:amz:local:berth", "--user", &format!("{}:{}", key.id, key.secret)])
            .args(args)
            .output()
            .expect("curl (cargo xtask test installs it)");
        serde_json::from_slice::<Value>(&out.stdout).expect("json from curl")
    };
    let base = c.base.clone();
    let created = tokio::task::spawn_blocking(move || {
        run(&["-H", "Content-Type: application/json", "-d", r#"{"name":"from-curl"}"#, &format!("{base}/v1/clusters")])
    })
    .await
    .expect("join");
    assert_eq!(created["name"], "from-curl", "{created}");
    assert_eq!(c.get("/v1/clusters/from-curl").await.expect(200)["name"], "from-curl");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_payload_only_without_a_body() {
    let s = TestServer::start(Backend::Sqlite).await;
    let c = s.tenant("acme").await;
    let key = key_of(&c);
    let send = |method: Method, path: &str, body: &str| {
        let mut req =
            c.http.request(method.clone(), format!("{}{path}", c.base)).body(body.to_owned()).build().expect("req");
        let host = format!("127.0.0.1:{}", s.addr.port());
        req.headers_mut().insert("host", host.parse().expect("host"));
        req.headers_mut().insert("x-amz-content-sha256", "UNSIGNED-PAYLOAD".parse().expect("h"));
        req.headers_mut().insert("content-type", "application/json".parse().expect("h"));
        let identity: Identity = Credentials::new(&key.id, &key.secret, None, None, "t").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("local")
            .name("berth")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .expect("params")
            .into();
        let headers: Vec<(String, String)> =
            req.headers().iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned())).collect();
        let signable = SignableRequest::new(
            method.as_str(),
            req.url().as_str(),
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::UnsignedPayload,
        )
        .expect("signable");
        let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
        for h in instructions.into_parts().0 {
            req.headers_mut().insert(
                reqwest::header::HeaderName::from_bytes(h.name().as_bytes()).expect("n"),
                h.value().parse().expect("v"),
            );
        }
        Client::execute(&c.http, req)
    };
    send(Method::GET, "/v1/clusters", "").await.expect(200);
    send(Method::POST, "/v1/clusters", r#"{"name":"x"}"#).await.expect_error(403, "IncompleteSignature");
    s.stop().await;
}
