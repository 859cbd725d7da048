//! A small W3C WebDriver client for the console's browser tests, over
//! Debian's chromedriver and a headless Chromium.
//!
//! Written here rather than taken from fantoccini: that crate pulls in the
//! `webdriver` crate (with ICU segmentation data, http 0.2 and a second
//! hyper stack), minutes of build on these 2-core machines for the dozen
//! calls the tests make. The protocol is plain JSON over HTTP.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

/// The WebDriver spec's key for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver and one browser session; both end when this is dropped.
pub struct Browser {
    driver: Child,
    http: reqwest::Client,
    session: String,
    base: String,
    /// Where screenshots go.
    pub artifacts: PathBuf,
}

#[derive(Clone, Debug)]
pub struct Element(String);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a 1280 px wide window.
    pub async fn start(artifacts: &Path) -> Browser {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver (Debian's chromium-driver; `cargo xtask test` installs it)");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("http client");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = http.get(format!("{base}/status")).send().await
                && r.status().is_success()
            {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().expect("profile dir").keep();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,900", "--no-first-run", "--disable-extensions",
                         format!("--user-data-dir={}", profile.display())]
            }
        }}});
        let resp: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("session body");
        let session = resp["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {resp}")).to_owned();
        std::fs::create_dir_all(artifacts).expect("artifacts dir");
        Browser { driver, http, session, base, artifacts: artifacts.to_owned() }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut rb = self.http.request(method.clone(), &url);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let resp = rb.send().await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{method} {path}: {status} {v}");
        v["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url}))).await;
    }

    pub async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None).await.as_str().unwrap_or_default().to_owned()
    }

    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        let v =
            self.call(reqwest::Method::POST, "/elements", Some(json!({"using": "css selector", "value": css}))).await;
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e[ELEMENT].as_str().map(|id| Element(id.to_owned())))
            .collect()
    }

    /// The first element matching `css`; fails the test if there is none.
    pub async fn find(&self, css: &str) -> Element {
        match self.find_all(css).await.into_iter().next() {
            Some(e) => e,
            None => panic!("no element matches {css:?} on {}: {}", self.url().await, self.source().await),
        }
    }

    pub async fn click(&self, e: &Element) {
        self.call(reqwest::Method::POST, &format!("/element/{}/click", e.0), Some(json!({}))).await;
    }

    /// Clicks what `css` matches and waits until the page it leads to has loaded.
    pub async fn submit(&self, css: &str) {
        self.execute("window.berthOldPage = true;").await;
        let e = self.find(css).await;
        self.click(&e).await;
        self.wait_for_new_page().await;
    }

    /// Waits until the document that was marked is replaced by a loaded one.
    pub async fn wait_for_new_page(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let loaded = self.execute("return !window.berthOldPage && document.readyState === 'complete';").await;
            if loaded == Value::Bool(true) {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "no new page loaded; at {}", self.url().await);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Clears a field and types `text` into it, as a user would.
    pub async fn fill(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{}/clear", e.0), Some(json!({}))).await;
        self.call(reqwest::Method::POST, &format!("/element/{}/value", e.0), Some(json!({"text": text}))).await;
    }

    pub async fn text(&self, css: &str) -> String {
        let e = self.find(css).await;
        self.call(reqwest::Method::GET, &format!("/element/{}/text", e.0), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub async fn source(&self) -> String {
        self.call(reqwest::Method::GET, "/source", None).await.as_str().unwrap_or_default().to_owned()
    }

    pub async fn execute(&self, script: &str) -> Value {
        self.call(reqwest::Method::POST, "/execute/sync", Some(json!({"script": script, "args": []}))).await
    }

    /// Accepts the `confirm()` a button opened.
    pub async fn accept_alert(&self) {
        self.call(reqwest::Method::POST, "/alert/accept", Some(json!({}))).await;
    }

    pub async fn resize(&self, width: u32, height: u32) {
        self.call(reqwest::Method::POST, "/window/rect", Some(json!({"width": width, "height": height}))).await;
    }

    /// Saves a PNG of the page as `<artifacts>/<name>.png`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        use base64::Engine as _;
        let png = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap_or_default()).expect("png");
        assert!(bytes.starts_with(b"\x89PNG"), "a PNG screenshot");
        let path = self.artifacts.join(format!("{name}.png"));
        std::fs::write(&path, bytes).expect("write screenshot");
        path
    }

    /// Reloads `url` until `css`'s text satisfies `check`, or fails after `secs`.
    pub async fn wait_for_text(&self, url: &str, css: &str, secs: u64, check: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            self.goto(url).await;
            let found = self.find_all(css).await;
            let text = match found.first() {
                Some(e) => self
                    .call(reqwest::Method::GET, &format!("/element/{}/text", e.0), None)
                    .await
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                None => String::new(),
            };
            if check(&text) {
                return text;
            }
            assert!(std::time::Instant::now() < deadline, "timed out waiting on {url} for {css}; last text: {text:?}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Waits, without reloading, until `css`'s text satisfies `check` (for
    /// what the page's script updates live).
    pub async fn wait_live(&self, css: &str, secs: u64, check: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let text = self.text(css).await;
            if check(&text) {
                return text;
            }
            if std::time::Instant::now() >= deadline {
                panic!("timed out waiting for {css}; last text: {text:?}; page: {}", self.source().await);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ending the session closes Chromium; then chromedriver goes.
        let url = format!("{}/session/{}", self.base, self.session);
        let _ = std::thread::spawn(move || {
            let _ = std::process::Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-X", "DELETE", "--max-time", "10", &url])
                .status();
        })
        .join();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
