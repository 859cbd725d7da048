//! Driving the web console over plain HTTP, as a browser without scripts
//! would: a session cookie, forms with their CSRF token. The browser tests
//! (`tests/tests/console_browser.rs`) do the same in a real Chromium.

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

use crate::{Auth, Client, TestServer};

/// A page or a form's answer.
pub struct Page {
    pub status: StatusCode,
    pub location: Option<String>,
    pub set_cookie: Option<String>,
    pub html: String,
}

impl Page {
    /// The value of the first `<input name=NAME value=...>` on the page.
    pub fn input(&self, name: &str) -> Option<String> {
        let pattern = format!("name=\"{name}\" value=\"");
        let at = self.html.find(&pattern)?;
        let rest = &self.html[at + pattern.len()..];
        rest.find('"').map(|end| rest[..end].to_owned())
    }

    /// Asserts the status, showing the page on mismatch.
    pub fn expect(self, status: u16) -> Page {
        assert_eq!(self.status.as_u16(), status, "unexpected status; page: {}", self.html);
        self
    }
}

/// A browser's view of the console: no redirects followed, cookies by hand.
pub struct ConsoleClient {
    base: String,
    http: reqwest::Client,
    pub cookie: Option<String>,
}

/// The access key id and secret a signing client uses.
pub fn key_of(c: &Client) -> (String, String) {
    match &c.auth {
        Auth::SigV4 { access_key_id, secret, .. } => (access_key_id.clone(), secret.clone()),
        _ => panic!("not a signing client"),
    }
}

impl ConsoleClient {
    pub fn new(server: &TestServer) -> ConsoleClient {
        Self::at(&format!("http://{}", server.addr))
    }

    /// A console at this base URL (`http://host:port`).
    pub fn at(base: &str) -> ConsoleClient {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("http client");
        ConsoleClient { base: base.to_owned(), http, cookie: None }
    }

    /// Signs in with the client's key through the sign-in form.
    pub async fn signed_in(server: &TestServer, as_: &Client) -> ConsoleClient {
        let mut c = ConsoleClient::new(server);
        let (id, secret) = key_of(as_);
        let page = c.sign_in(&id, &secret).await.expect(303);
        assert!(c.cookie.is_some(), "no session cookie: {:?}", page.set_cookie);
        c
    }

    pub async fn sign_in(&mut self, access_key_id: &str, secret: &str) -> Page {
        let body = serde_urlencoded::to_string([("access_key_id", access_key_id), ("secret_access_key", secret)])
            .expect("form");
        let page = self.send(self.http.post(format!("{}/console/sign-in", self.base)), Some(body)).await;
        if let Some(c) = &page.set_cookie {
            self.cookie = c.split(';').next().map(str::to_owned);
        }
        page
    }

    pub async fn get(&self, path: &str) -> Page {
        self.send(self.http.get(format!("{}{path}", self.base)), None).await
    }

    /// Posts a form with the CSRF token of `from` (a page of this session).
    pub async fn post(&self, path: &str, from: &Page, fields: &[(&str, &str)]) -> Page {
        let csrf = from.input("csrf").expect("the page has a CSRF token");
        let mut pairs: Vec<(&str, &str)> = vec![("csrf", &csrf)];
        pairs.extend_from_slice(fields);
        self.post_raw(path, &pairs).await
    }

    /// Posts exactly these fields.
    pub async fn post_raw(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let body = serde_urlencoded::to_string(fields).expect("form");
        self.send(self.http.post(format!("{}{path}", self.base)), Some(body)).await
    }

    async fn send(&self, mut rb: reqwest::RequestBuilder, form: Option<String>) -> Page {
        if let Some(c) = &self.cookie {
            rb = rb.header(COOKIE, c);
        }
        if let Some(body) = form {
            rb = rb.header("content-type", "application/x-www-form-urlencoded").body(body);
        }
        let resp = rb.send().await.expect("console request");
        let header =
            |h| resp.headers().get(h).and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok()).map(str::to_owned);
        let (location, set_cookie) = (header(LOCATION), header(SET_COOKIE));
        Page { status: resp.status(), location, set_cookie, html: resp.text().await.expect("body") }
    }
}
