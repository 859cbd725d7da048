//! JWT sessions: issue, use, expiry, key rotation, pinned algorithm, and
//! ending sessions by deactivating their key.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use berth_control_plane::auth::session::Claims;
use berth_control_plane::store;
use berth_tests::{Auth, Backend, TestServer};
use serde_json::json;
use time::Duration;

fn b64(v: &serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_work_until_their_key_is_deactivated() {
    let s = TestServer::start(Backend::Postgres).await;
    let admin = s.tenant("acme").await;
    let op = admin.new_key("operator", None).await;
    let session = op.session().await;
    // The token works on the API, with the key's role.
    session.create_cluster("prod").await;
    session.post("/v1/access-keys", json!({"role": "admin"})).await.expect_error(403, "AccessDenied");
    // A session cannot make another session.
    session.post("/v1/sessions", json!({})).await.expect_error(403, "AccessDenied");
    let created = op.post("/v1/sessions", json!({"duration_seconds": 600})).await.expect(201);
    assert_eq!(created["token_type"], "Bearer");
    op.post("/v1/sessions", json!({"duration_seconds": 10})).await.expect_error(422, "ValidationError");

    // Deactivating the key ends its sessions at the next request.
    let Auth::SigV4 { access_key_id, .. } = &op.auth else { panic!() };
    admin.post(&format!("/v1/access-keys/{access_key_id}/deactivate"), json!({})).await.expect(200);
    session.get("/v1/clusters").await.expect_error(401, "InvalidToken");
    admin.post(&format!("/v1/access-keys/{access_key_id}/reactivate"), json!({})).await.expect(200);
    session.get("/v1/clusters").await.expect(200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_and_forged_tokens_are_refused() {
    let s = TestServer::start(Backend::Sqlite).await;
    let admin = s.tenant("acme").await;
    let Auth::SigV4 { access_key_id, .. } = admin.auth.clone() else { panic!() };
    let account = s.operator.get("/v1/accounts/acme").await.expect(200)["id"].as_str().expect("id").to_owned();
    let claims = || Claims {
        iss: String::new(),
        sub: access_key_id.clone(),
        acc: account.clone(),
        role: "admin".into(),
        clusters: None,
        iat: 0,
        exp: 0,
        jti: "t".into(),
    };
    let sessions = &s.app.auth().sessions;
    let (expired, _) = sessions.issue(s.app.db(), claims(), Duration::seconds(-5)).await.expect("issue");
    admin.with_auth(Auth::Bearer(expired)).get("/v1/clusters").await.expect_error(401, "InvalidToken");

    let (good, _) = sessions.issue(s.app.db(), claims(), Duration::minutes(5)).await.expect("issue");
    admin.with_auth(Auth::Bearer(good.clone())).get("/v1/clusters").await.expect(200);
    let parts: Vec<&str> = good.split('.').collect();
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).expect("b64")).expect("json");
    assert_eq!(header["alg"], "EdDSA");
    let kid = header["kid"].as_str().expect("kid").to_owned();

    // alg: none, with the real claims and no signature.
    let none = format!("{}.{}.", b64(&json!({"alg": "none", "typ": "JWT", "kid": kid})), parts[1]);
    // HS256 keyed with the public key (the classic algorithm confusion).
    let jwks = s.anonymous().get("/.well-known/jwks.json").await.expect(200);
    let x = jwks["keys"][0]["x"].as_str().expect("x").to_owned();
    let hs_header = b64(&json!({"alg": "HS256", "typ": "JWT", "kid": kid}));
    let signing_input = format!("{hs_header}.{}", parts[1]);
    let mac = hmac_sha256(x.as_bytes(), signing_input.as_bytes());
    let hs256 = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(mac));
    // ES256 header on the real signature, and a tampered payload.
    let es256 = format!("{}.{}.{}", b64(&json!({"alg": "ES256", "typ": "JWT", "kid": kid})), parts[1], parts[2]);
    let mut payload: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("json");
    payload["role"] = json!("admin");
    payload["acc"] = json!(uuid::Uuid::now_v7().to_string());
    let tampered = format!("{}.{}.{}", parts[0], b64(&payload), parts[2]);
    for (what, token) in [("none", none), ("HS256", hs256), ("ES256", es256), ("tampered", tampered)] {
        let r = admin.with_auth(Auth::Bearer(token)).get("/v1/clusters").await;
        assert_eq!(r.status.as_u16(), 401, "{what} token: {}", r.body);
        assert_eq!(r.body["code"], "InvalidToken", "{what}");
    }
    s.stop().await;
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let inner: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let outer: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let ih = Sha256::digest([inner.as_slice(), data].concat());
    Sha256::digest([outer.as_slice(), ih.as_slice()].concat()).to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_keys_rotate_and_old_tokens_verify_until_retired() {
    let s = TestServer::start(Backend::Postgres).await;
    let admin = s.tenant("acme").await;
    let old = admin.session().await;
    let old_kid = kid_of(&old);
    let new_kid = s.app.auth().sessions.rotate(s.app.db()).await.expect("rotate");
    assert_ne!(old_kid, new_kid);
    let new = admin.session().await;
    assert_eq!(kid_of(&new), new_kid, "new sessions are signed with the newest key");
    old.get("/v1/clusters").await.expect(200);
    new.get("/v1/clusters").await.expect(200);
    let jwks = s.anonymous().get("/.well-known/jwks.json").await.expect(200);
    let kids: Vec<&str> =
        jwks["keys"].as_array().expect("keys").iter().map(|k| k["kid"].as_str().expect("kid")).collect();
    assert!(kids.contains(&old_kid.as_str()) && kids.contains(&new_kid.as_str()), "{kids:?}");
    assert!(jwks["keys"].as_array().expect("keys").iter().all(|k| k["alg"] == "EdDSA" && k["kty"] == "OKP"));

    // Retiring the old key ends the tokens it signed, on every replica (keys live in the database).
    let mut tx = s.app.db().begin_write().await.expect("tx");
    store::signing_keys::retire(&mut tx, &old_kid, store::now()).await.expect("retire");
    tx.commit().await.expect("commit");
    // Each replica reloads its keys at least every KEY_RELOAD_INTERVAL; do it now rather than wait.
    s.app.auth().sessions.refresh(s.app.db()).await.expect("reload");
    old.get("/v1/clusters").await.expect_error(401, "InvalidToken");
    new.get("/v1/clusters").await.expect(200);
    s.stop().await;
}

fn kid_of(c: &berth_tests::Client) -> String {
    let Auth::Bearer(t) = &c.auth else { panic!("bearer client") };
    let header = t.split('.').next().expect("header");
    let v: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).expect("b64")).expect("json");
    v["kid"].as_str().expect("kid").to_owned()
}
