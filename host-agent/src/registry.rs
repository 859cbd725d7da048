//! A client for OCI and Docker registries (the distribution API): image
//! references, manifests, blobs and the token and basic authentication
//! schemes. containerd 1.6 has no Transfer service, so pulling is the
//! agent's job; this module fetches, [`crate::containerd::image`] stores.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
pub use berth_api::images::ImageReference;
use serde::Deserialize;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{registry}: {message}")]
    Registry { registry: String, message: String },
    #[error("{registry}: {source}")]
    Transport { registry: String, source: reqwest::Error },
}

/// A username and password (or token) for one registry.
#[derive(Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
pub struct RegistryCredentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for RegistryCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryCredentials").field("username", &self.username).finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq, Eq)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    pub size: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq, Eq)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Manifest {
    #[serde(rename = "mediaType", default)]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

#[derive(Clone, Debug, Deserialize)]
struct Index {
    manifests: Vec<Descriptor>,
}

/// The parts of an image's config the agent uses.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ImageConfig {
    #[serde(default)]
    pub config: ImageRunConfig,
    #[serde(default)]
    pub rootfs: RootFs,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct ImageRunConfig {
    #[serde(rename = "Env", default)]
    pub env: Option<Vec<String>>,
    #[serde(rename = "Cmd", default)]
    pub cmd: Option<Vec<String>>,
    #[serde(rename = "Entrypoint", default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(rename = "WorkingDir", default)]
    pub working_dir: Option<String>,
    #[serde(rename = "User", default)]
    pub user: Option<String>,
    #[serde(rename = "StopSignal", default)]
    pub stop_signal: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct RootFs {
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

/// A manifest resolved for this platform, with its raw bytes (kept
/// byte-for-byte: the digest is over them).
pub struct ResolvedManifest {
    pub descriptor: Descriptor,
    pub bytes: Vec<u8>,
    pub manifest: Manifest,
}

/// Fetches from one registry, remembering the bearer token it was given.
pub struct RegistryClient {
    http: reqwest::Client,
    image: ImageReference,
    scheme: &'static str,
    credentials: Option<RegistryCredentials>,
    authorization: Option<String>,
}

impl RegistryClient {
    pub fn new(
        http: reqwest::Client,
        image: &ImageReference,
        insecure_registries: &[String],
        credentials: Option<RegistryCredentials>,
    ) -> Self {
        let plain = image.is_loopback() || insecure_registries.iter().any(|r| r == &image.registry);
        RegistryClient {
            http,
            image: image.clone(),
            scheme: if plain { "http" } else { "https" },
            credentials,
            authorization: None,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}://{}/v2/{}/{path}", self.scheme, self.image.api_host(), self.image.repository)
    }

    fn err(&self, message: impl Into<String>) -> RegistryError {
        RegistryError::Registry { registry: self.image.registry.clone(), message: message.into() }
    }

    fn transport(&self, source: reqwest::Error) -> RegistryError {
        RegistryError::Transport { registry: self.image.registry.clone(), source }
    }

    /// GET with the current authorization; on a 401, answers the challenge once and retries.
    async fn get(&mut self, url: &str, accept: &str) -> Result<reqwest::Response, RegistryError> {
        for attempt in 0..2 {
            let mut req = self.http.get(url).header(reqwest::header::ACCEPT, accept);
            if let Some(a) = &self.authorization {
                req = req.header(reqwest::header::AUTHORIZATION, a);
            }
            let resp = req.send().await.map_err(|e| self.transport(e))?;
            if resp.status() == reqwest::StatusCode::UNAUTHORIZED && attempt == 0 {
                let challenge = resp
                    .headers()
                    .get(reqwest::header::WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
                    .ok_or_else(|| self.err("401 Unauthorized without a WWW-Authenticate challenge"))?;
                self.authorization = Some(self.answer(&challenge).await?);
                continue;
            }
            if !resp.status().is_success() {
                let status = resp.status();
                let body = resp.text().await.unwrap_or_default();
                return Err(self.err(registry_message(status, &body)));
            }
            return Ok(resp);
        }
        Err(self.err("authentication failed"))
    }

    async fn answer(&self, challenge: &str) -> Result<String, RegistryError> {
        let (scheme, params) = challenge.split_once(' ').unwrap_or((challenge, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            let c = self.credentials.as_ref().ok_or_else(|| {
                self.err("401 Unauthorized: the registry wants credentials; name a registry credential in the container's repository_credentials")
            })?;
            return Ok(basic(c));
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(self.err(format!("unsupported authentication scheme {scheme}")));
        }
        let params = challenge_params(params);
        let realm = params
            .iter()
            .find(|(k, _)| k == "realm")
            .map(|(_, v)| v.clone())
            .ok_or_else(|| self.err("bearer challenge without a realm"))?;
        let mut url = reqwest::Url::parse(&realm).map_err(|e| self.err(format!("bad token realm {realm:?}: {e}")))?;
        let query: Vec<(&str, String)> = params
            .iter()
            .filter(|(k, _)| k == "service" || k == "scope")
            .map(|(k, v)| (k.as_str(), v.clone()))
            .chain(
                (!params.iter().any(|(k, _)| k == "scope"))
                    .then(|| ("scope", format!("repository:{}:pull", self.image.repository))),
            )
            .collect();
        for (k, v) in &query {
            url.query_pairs_mut().append_pair(k, v);
        }
        let mut req = self.http.get(url);
        if let Some(c) = &self.credentials {
            req = req.header(reqwest::header::AUTHORIZATION, basic(c));
        }
        let resp = req.send().await.map_err(|e| self.transport(e))?;
        if !resp.status().is_success() {
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            return Err(self.err(format!("token request refused: {}", registry_message(status, &body))));
        }
        #[derive(Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let t: Token = resp.json().await.map_err(|e| self.transport(e))?;
        let token = t.token.or(t.access_token).ok_or_else(|| self.err("token response without a token"))?;
        Ok(format!("Bearer {token}"))
    }

    /// The manifest for `os`/`arch`, following an index if the reference names one.
    pub async fn resolve(&mut self, os: &str, arch: &str) -> Result<ResolvedManifest, RegistryError> {
        let accept = [OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST].join(", ");
        let mut reference = self.image.reference().to_owned();
        for _ in 0..2 {
            let resp = self.get(&self.url(&format!("manifests/{reference}")), &accept).await?;
            let media_type = resp
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned())
                .unwrap_or_default();
            let bytes = resp.bytes().await.map_err(|e| self.transport(e))?.to_vec();
            let digest = sha256_digest(&bytes);
            if reference.starts_with("sha256:") && reference != digest {
                return Err(self.err(format!("manifest digest is {digest}, expected {reference}")));
            }
            let media_type = if media_type.is_empty() || media_type == "application/json" {
                serde_json::from_slice::<serde_json::Value>(&bytes)
                    .ok()
                    .and_then(|v| v.get("mediaType").and_then(|m| m.as_str()).map(str::to_owned))
                    .unwrap_or_else(|| OCI_MANIFEST.to_owned())
            } else {
                media_type
            };
            if media_type == OCI_INDEX || media_type == DOCKER_LIST {
                let index: Index =
                    serde_json::from_slice(&bytes).map_err(|e| self.err(format!("unreadable index: {e}")))?;
                let chosen = index
                    .manifests
                    .iter()
                    .find(|m| m.platform.as_ref().is_some_and(|p| p.os == os && p.architecture == arch))
                    .ok_or_else(|| self.err(format!("the image has no {os}/{arch} manifest")))?;
                reference = chosen.digest.clone();
                continue;
            }
            let manifest: Manifest =
                serde_json::from_slice(&bytes).map_err(|e| self.err(format!("unreadable manifest: {e}")))?;
            let size = i64::try_from(bytes.len()).unwrap_or(i64::MAX);
            return Ok(ResolvedManifest {
                descriptor: Descriptor { media_type, digest, size, platform: None },
                bytes,
                manifest,
            });
        }
        Err(self.err("an index pointed at another index"))
    }

    /// A blob as a response whose body the caller streams.
    pub async fn blob(&mut self, digest: &str) -> Result<reqwest::Response, RegistryError> {
        self.get(&self.url(&format!("blobs/{digest}")), "*/*").await
    }

    pub fn registry(&self) -> &str {
        &self.image.registry
    }
}

fn basic(c: &RegistryCredentials) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", c.username, c.password)))
}

/// The registry's own words, from its JSON error body when it sent one.
fn registry_message(status: reqwest::StatusCode, body: &str) -> String {
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<ErrorItem>,
    }
    #[derive(Deserialize)]
    struct ErrorItem {
        code: Option<String>,
        message: Option<String>,
    }
    let detail = serde_json::from_str::<Errors>(body)
        .ok()
        .map(|e| {
            e.errors
                .into_iter()
                .map(|i| format!("{}: {}", i.code.unwrap_or_default(), i.message.unwrap_or_default()))
                .collect::<Vec<_>>()
                .join("; ")
        })
        .filter(|d| !d.is_empty());
    match detail {
        Some(d) => format!("{status}: {d}"),
        None => status.to_string(),
    }
}

/// `realm="...",service="...",scope="..."` into pairs.
fn challenge_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else { break };
        let key = key.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => (quoted, ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            }
        };
        out.push((key, value.to_owned()));
        rest = remaining.trim_start_matches(',').trim();
    }
    out
}

pub fn sha256_digest(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// An HTTP client for registries: generous for large layers, bounded for dead peers.
pub fn http() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder().connect_timeout(Duration::from_secs(10)).read_timeout(Duration::from_secs(60)).build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_parse() {
        let p = challenge_params(
            r#"realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull""#,
        );
        assert_eq!(p[0], ("realm".into(), "https://auth.example/token".into()));
        assert_eq!(p[2], ("scope".into(), "repository:a/b:pull".into()));
    }
}
