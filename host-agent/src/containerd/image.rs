//! Images in containerd's content store, pulled by the agent: containerd 1.6
//! has no Transfer service, so the agent fetches blobs from the registry,
//! writes them through the Content service and unpacks layers itself
//! (prepare a snapshot, apply the layer through the Diff service, commit it
//! under its chain id), all under a lease and with the garbage-collection
//! labels that keep what was unpacked.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use containerd_client::services::v1::snapshots::{
    CommitSnapshotRequest, PrepareSnapshotRequest, RemoveSnapshotRequest, StatSnapshotRequest,
};
use containerd_client::services::v1::{
    ApplyRequest, CreateImageRequest, DeleteImageRequest, GetImageRequest, Image, InfoRequest, ListImagesRequest,
    ReadContentRequest, UpdateImageRequest, WriteAction, WriteContentRequest,
};
use containerd_client::types::Descriptor as CtrDescriptor;
use prost_types::FieldMask;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

use super::RuntimeError;
use super::client::{Containerd, call, call_idempotent};
use crate::registry::{
    Descriptor, ImageConfig, ImageReference, RegistryClient, RegistryCredentials, ResolvedManifest, sha256_digest,
};

const LAST_USED: &str = "berth.io/last-used";
const SIZE: &str = "berth.io/size";
const CHUNK: usize = 1 << 20;

/// When to go to the registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PullPolicy {
    Always,
    IfNotPresent,
}

/// An image ready to run: its unpacked top snapshot and its config.
#[derive(Clone, Debug)]
pub struct ReadyImage {
    pub name: String,
    pub chain_id: String,
    pub config: ImageConfig,
}

pub struct ImageStore {
    ctr: Containerd,
    http: reqwest::Client,
    insecure_registries: Vec<String>,
    /// One pull per image name at a time, so two tasks of one image share the work.
    locks: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// When each image's last-used label was last written by this agent.
    touched: std::sync::Mutex<HashMap<String, std::time::Instant>>,
}

/// The last-used label only orders images for garbage collection (which
/// keeps anything used within hours): writing it once a minute is enough,
/// and saves containerd a metadata write for every task started.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

fn pull_error(image: &str, e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::CannotPullImage(format!("{image}: {e}"))
}

impl ImageStore {
    pub fn new(ctr: Containerd, http: reqwest::Client, insecure_registries: Vec<String>) -> Self {
        ImageStore { ctr, http, insecure_registries, locks: Default::default(), touched: Default::default() }
    }

    fn lock_for(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(name.to_owned()).or_default().clone()
    }

    /// The image, pulled and unpacked if the policy says so or it is missing.
    pub async fn ensure(
        &self,
        reference: &str,
        policy: PullPolicy,
        credentials: Option<RegistryCredentials>,
    ) -> Result<ReadyImage, RuntimeError> {
        let image = ImageReference::parse(reference).map_err(|e| pull_error(reference, e))?;
        let name = image.to_string();
        // A digest names exactly one image: what is here is what was asked for.
        let local_will_do = policy == PullPolicy::IfNotPresent || image.digest.is_some();
        // Tasks of an image the host has need no lock: a hundred of them
        // starting together would otherwise check the store one at a time.
        if local_will_do && let Some(ready) = self.local(&name).await? {
            self.touch(&name).await;
            return Ok(ready);
        }
        let lock = self.lock_for(&name);
        let _held = lock.lock().await;
        // Another task may have pulled it while this one waited for the lock.
        if local_will_do && let Some(ready) = self.local(&name).await? {
            self.touch(&name).await;
            return Ok(ready);
        }
        let mut registry = RegistryClient::new(self.http.clone(), &image, &self.insecure_registries, credentials);
        let resolved = registry.resolve("linux", go_arch()).await.map_err(|e| pull_error(reference, e))?;
        self.store(&name, &mut registry, resolved).await.map_err(|e| match e {
            RuntimeError::CannotPullImage(_) => e,
            other => pull_error(reference, other),
        })
    }

    /// What is stored under `name`, if it is complete and unpacked.
    async fn local(&self, name: &str) -> Result<Option<ReadyImage>, RuntimeError> {
        let got =
            call("get image", self.ctr.images().get(self.ctr.req(GetImageRequest { name: name.to_owned() }))).await;
        let image = match got {
            Ok(r) => r.into_inner().image,
            Err(e) if e.code() == Some(Code::NotFound) => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(target) = image.and_then(|i| i.target) else { return Ok(None) };
        let Ok(manifest_bytes) = self.read_blob(&target.digest).await else { return Ok(None) };
        let Ok(manifest) = serde_json::from_slice::<crate::registry::Manifest>(&manifest_bytes) else {
            return Ok(None);
        };
        let Ok(config_bytes) = self.read_blob(&manifest.config.digest).await else { return Ok(None) };
        let Ok(config) = serde_json::from_slice::<ImageConfig>(&config_bytes) else { return Ok(None) };
        let Some(chain_id) = chain_ids(&config.rootfs.diff_ids).pop() else { return Ok(None) };
        let stat = call(
            "stat snapshot",
            self.ctr.snapshots().stat(
                self.ctr.req(StatSnapshotRequest { snapshotter: self.ctr.snapshotter.clone(), key: chain_id.clone() }),
            ),
        )
        .await;
        match stat {
            Ok(_) => Ok(Some(ReadyImage { name: name.to_owned(), chain_id, config })),
            Err(e) if e.code() == Some(Code::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn store(
        &self,
        name: &str,
        registry: &mut RegistryClient,
        resolved: ResolvedManifest,
    ) -> Result<ReadyImage, RuntimeError> {
        let lease = format!("berth-pull-{}", uuid_like());
        self.ctr.take_lease(&lease, Duration::from_secs(3600)).await?;
        let result = self.store_leased(name, registry, resolved, &lease).await;
        self.ctr.release_lease(&lease).await;
        result
    }

    async fn store_leased(
        &self,
        name: &str,
        registry: &mut RegistryClient,
        resolved: ResolvedManifest,
        lease: &str,
    ) -> Result<ReadyImage, RuntimeError> {
        let manifest = &resolved.manifest;
        // The config first: its diff ids name the snapshots the layers become.
        let config_bytes = registry.blob(&manifest.config.digest).await.map_err(|e| pull_error(name, e))?;
        let config_bytes = config_bytes.bytes().await.map_err(|e| pull_error(name, e))?.to_vec();
        if sha256_digest(&config_bytes) != manifest.config.digest {
            return Err(pull_error(name, "the config blob does not match its digest"));
        }
        let config: ImageConfig = serde_json::from_slice(&config_bytes)
            .map_err(|e| pull_error(name, format!("unreadable image config: {e}")))?;
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(pull_error(name, "the config's diff ids do not match the manifest's layers"));
        }
        let chain = chain_ids(&config.rootfs.diff_ids);
        let top = chain.last().cloned().ok_or_else(|| pull_error(name, "the image has no layers"))?;

        for layer in &manifest.layers {
            if !self.has_blob(&layer.digest).await? {
                let body = registry.blob(&layer.digest).await.map_err(|e| pull_error(name, e))?;
                self.write_blob(lease, layer, HashMap::new(), Body::Response(body)).await?;
                crate::failpoint::hit(crate::failpoint::MID_PULL);
            }
        }
        let config_labels =
            HashMap::from([(format!("containerd.io/gc.ref.snapshot.{}", self.ctr.snapshotter), top.clone())]);
        self.write_blob(lease, &manifest.config, config_labels, Body::Bytes(config_bytes)).await?;
        let mut manifest_labels =
            HashMap::from([("containerd.io/gc.ref.content.config".to_owned(), manifest.config.digest.clone())]);
        for (i, l) in manifest.layers.iter().enumerate() {
            manifest_labels.insert(format!("containerd.io/gc.ref.content.l.{i}"), l.digest.clone());
        }
        self.write_blob(lease, &resolved.descriptor, manifest_labels, Body::Bytes(resolved.bytes.clone())).await?;

        let mut parent = String::new();
        for (i, (layer, chain_id)) in manifest.layers.iter().zip(&chain).enumerate() {
            self.unpack_layer(lease, layer, &config.rootfs.diff_ids[i], chain_id, &parent).await?;
            parent = chain_id.clone();
        }

        let size: i64 = manifest.layers.iter().map(|l| l.size).sum::<i64>() + manifest.config.size;
        let image = Image {
            name: name.to_owned(),
            labels: HashMap::from([(LAST_USED.to_owned(), now_seconds()), (SIZE.to_owned(), size.to_string())]),
            target: Some(ctr_descriptor(&resolved.descriptor)),
            created_at: None,
            updated_at: None,
        };
        let created = call(
            "create image",
            self.ctr.images().create(
                self.ctr.leased(CreateImageRequest { image: Some(image.clone()), source_date_epoch: None }, lease),
            ),
        )
        .await;
        match created {
            Ok(_) => {}
            Err(e) if e.code() == Some(Code::AlreadyExists) => {
                call(
                    "update image",
                    self.ctr.images().update(self.ctr.req(UpdateImageRequest {
                        image: Some(image),
                        update_mask: None,
                        source_date_epoch: None,
                    })),
                )
                .await?;
            }
            Err(e) => return Err(e),
        }
        Ok(ReadyImage { name: name.to_owned(), chain_id: top, config })
    }

    async fn unpack_layer(
        &self,
        lease: &str,
        layer: &Descriptor,
        diff_id: &str,
        chain_id: &str,
        parent: &str,
    ) -> Result<(), RuntimeError> {
        let snapshotter = self.ctr.snapshotter.clone();
        let exists = call(
            "stat snapshot",
            self.ctr
                .snapshots()
                .stat(self.ctr.req(StatSnapshotRequest { snapshotter: snapshotter.clone(), key: chain_id.to_owned() })),
        )
        .await;
        match exists {
            Ok(_) => return Ok(()),
            Err(e) if e.code() == Some(Code::NotFound) => {}
            Err(e) => return Err(e),
        }
        let key = format!("extract-{}-{chain_id}", uuid_like());
        let mounts = call(
            "prepare snapshot",
            self.ctr.snapshots().prepare(self.ctr.leased(
                PrepareSnapshotRequest {
                    snapshotter: snapshotter.clone(),
                    key: key.clone(),
                    parent: parent.to_owned(),
                    labels: HashMap::new(),
                },
                lease,
            )),
        )
        .await?
        .into_inner()
        .mounts;
        let applied = call(
            "apply layer",
            self.ctr.diff().apply(self.ctr.req(ApplyRequest {
                diff: Some(ctr_descriptor(layer)),
                mounts,
                payloads: HashMap::new(),
                sync_fs: false,
            })),
        )
        .await;
        let outcome = match applied {
            Ok(r) if r.get_ref().applied.as_ref().is_some_and(|d| d.digest == diff_id) => {
                let committed = call(
                    "commit snapshot",
                    self.ctr.snapshots().commit(self.ctr.leased(
                        CommitSnapshotRequest {
                            snapshotter: snapshotter.clone(),
                            name: chain_id.to_owned(),
                            key: key.clone(),
                            labels: HashMap::new(),
                        },
                        lease,
                    )),
                )
                .await;
                match committed {
                    Ok(_) => return Ok(()),
                    // Another pull unpacked the same layer first.
                    Err(e) if e.code() == Some(Code::AlreadyExists) => Ok(()),
                    Err(e) => Err(e),
                }
            }
            Ok(_) => Err(RuntimeError::CannotPullImage(format!(
                "layer {} does not unpack to its diff id {diff_id}",
                layer.digest
            ))),
            Err(e) => Err(e),
        };
        let _ = call_idempotent(
            "remove snapshot",
            self.ctr.snapshots().remove(self.ctr.req(RemoveSnapshotRequest { snapshotter, key })),
        )
        .await;
        outcome
    }

    async fn has_blob(&self, digest: &str) -> Result<bool, RuntimeError> {
        match call("content info", self.ctr.content().info(self.ctr.req(InfoRequest { digest: digest.to_owned() })))
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some(Code::NotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn read_blob(&self, digest: &str) -> Result<Vec<u8>, RuntimeError> {
        let mut stream = call(
            "read content",
            self.ctr.content().read(self.ctr.req(ReadContentRequest { digest: digest.to_owned(), offset: 0, size: 0 })),
        )
        .await?
        .into_inner();
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|status| RuntimeError::Containerd { what: "read content".into(), status })?;
            out.extend_from_slice(&chunk.data);
        }
        Ok(out)
    }

    /// Writes a blob through the Content service (containerd checks the
    /// digest on commit); a blob already there only gets the labels.
    async fn write_blob(
        &self,
        lease: &str,
        desc: &Descriptor,
        labels: HashMap<String, String>,
        body: Body,
    ) -> Result<(), RuntimeError> {
        match self.try_write_blob(lease, desc, labels.clone(), body).await {
            // Another agent on this containerd is writing the same blob: wait for it.
            Err(e) if e.code() == Some(Code::Unavailable) && e.to_string().contains("locked") => {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
                while tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    if self.has_blob(&desc.digest).await? {
                        return self.label_blob(&desc.digest, labels).await;
                    }
                }
                Err(e)
            }
            other => other,
        }
    }

    async fn label_blob(&self, digest: &str, labels: HashMap<String, String>) -> Result<(), RuntimeError> {
        if labels.is_empty() {
            return Ok(());
        }
        let paths = labels.keys().map(|k| format!("labels.{k}")).collect();
        call(
            "label content",
            self.ctr.content().update(self.ctr.req(containerd_client::services::v1::UpdateRequest {
                info: Some(containerd_client::services::v1::Info {
                    digest: digest.to_owned(),
                    labels,
                    ..Default::default()
                }),
                update_mask: Some(FieldMask { paths }),
            })),
        )
        .await?;
        Ok(())
    }

    async fn try_write_blob(
        &self,
        lease: &str,
        desc: &Descriptor,
        labels: HashMap<String, String>,
        body: Body,
    ) -> Result<(), RuntimeError> {
        if self.has_blob(&desc.digest).await? {
            return self.label_blob(&desc.digest, labels).await;
        }
        let lock = self.lock_for(&desc.digest);
        let _held = lock.lock().await;
        let (tx, rx) = mpsc::channel::<WriteContentRequest>(4);
        let reference = format!("berth-{}", desc.digest);
        let (total, expected) = (desc.size, desc.digest.clone());
        let producer = tokio::spawn(async move {
            let mut offset: i64 = 0;
            let send = |data: Vec<u8>, offset: i64, action: WriteAction, labels: HashMap<String, String>| {
                let tx = tx.clone();
                let message = WriteContentRequest {
                    action: action as i32,
                    r#ref: reference.clone(),
                    total,
                    expected: expected.clone(),
                    offset,
                    data,
                    labels,
                };
                async move { tx.send(message).await.map_err(|_| "containerd closed the write".to_owned()) }
            };
            match body {
                Body::Bytes(bytes) => {
                    for chunk in bytes.chunks(CHUNK) {
                        send(chunk.to_vec(), offset, WriteAction::Write, HashMap::new()).await?;
                        offset += i64::try_from(chunk.len()).unwrap_or(0);
                    }
                }
                Body::Response(mut resp) => {
                    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
                        send(chunk.to_vec(), offset, WriteAction::Write, HashMap::new()).await?;
                        offset += i64::try_from(chunk.len()).unwrap_or(0);
                    }
                }
            }
            if offset != total {
                return Err(format!("got {offset} bytes, expected {total}"));
            }
            send(Vec::new(), offset, WriteAction::Commit, labels).await
        });
        let responses =
            call("write content", self.ctr.content().write(self.ctr.leased(ReceiverStream::new(rx), lease))).await;
        let drained = match responses {
            Ok(r) => {
                let mut stream = r.into_inner();
                let mut result = Ok(());
                while let Some(item) = stream.next().await {
                    if let Err(status) = item {
                        result = Err(status);
                        break;
                    }
                }
                result
            }
            Err(e) => {
                producer.abort();
                // Another pull (another agent on this containerd) wrote it first.
                return if e.code() == Some(Code::AlreadyExists) { Ok(()) } else { Err(e) };
            }
        };
        let produced = producer.await.map_err(|e| RuntimeError::CannotPullImage(e.to_string()))?;
        produced.map_err(|e| RuntimeError::CannotPullImage(format!("{}: {e}", desc.digest)))?;
        match drained {
            Ok(()) => Ok(()),
            Err(status) if status.code() == Code::AlreadyExists => Ok(()),
            Err(status) => Err(RuntimeError::Containerd { what: "write content".into(), status }),
        }
    }

    /// Marks the image as used now, for garbage collection by age.
    pub async fn touch(&self, name: &str) {
        {
            let mut touched = self.touched.lock().unwrap_or_else(|p| p.into_inner());
            let now = std::time::Instant::now();
            if touched.get(name).is_some_and(|at| now.duration_since(*at) < TOUCH_EVERY) {
                return;
            }
            touched.insert(name.to_owned(), now);
        }
        let image = Image {
            name: name.to_owned(),
            labels: HashMap::from([(LAST_USED.to_owned(), now_seconds())]),
            ..Default::default()
        };
        let _ = call(
            "touch image",
            self.ctr.images().update(self.ctr.req(UpdateImageRequest {
                image: Some(image),
                update_mask: Some(FieldMask { paths: vec![format!("labels.{LAST_USED}")] }),
                source_date_epoch: None,
            })),
        )
        .await;
    }

    /// Removes images no task uses: those unused for longer than `max_age`,
    /// then the least recently used until the rest fit in `budget_bytes`.
    /// containerd's garbage collector then frees their content and snapshots.
    pub async fn collect_garbage(
        &self,
        in_use: &std::collections::HashSet<String>,
        max_age: Duration,
        budget_bytes: u64,
    ) -> Result<Vec<String>, RuntimeError> {
        let images =
            call("list images", self.ctr.images().list(self.ctr.req(ListImagesRequest { filters: vec![] }))).await?;
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let mut candidates: Vec<(i64, u64, String)> = images
            .into_inner()
            .images
            .into_iter()
            .map(|i| {
                let used = i.labels.get(LAST_USED).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
                let size = i.labels.get(SIZE).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
                (used, size, i.name)
            })
            .collect();
        candidates.sort();
        let mut total: u64 = candidates.iter().map(|c| c.1).sum();
        let mut removed = Vec::new();
        for (used, size, name) in candidates {
            if in_use.contains(&name) {
                continue;
            }
            let too_old = now - used > i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX);
            if !too_old && total <= budget_bytes {
                continue;
            }
            call_idempotent(
                "delete image",
                self.ctr.images().delete(self.ctr.req(DeleteImageRequest {
                    name: name.clone(),
                    sync: true,
                    target: None,
                })),
            )
            .await?;
            total = total.saturating_sub(size);
            removed.push(name);
        }
        Ok(removed)
    }
}

enum Body {
    Bytes(Vec<u8>),
    Response(reqwest::Response),
}

fn ctr_descriptor(d: &Descriptor) -> CtrDescriptor {
    CtrDescriptor {
        media_type: d.media_type.clone(),
        digest: d.digest.clone(),
        size: d.size,
        annotations: HashMap::new(),
    }
}

/// The chain ids of an image's layers: the first is its diff id, each next
/// one the digest of "<previous chain id> <diff id>".
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => sha256_digest(format!("{prev} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

/// The architecture in Go's (and so OCI's) spelling.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

fn now_seconds() -> String {
    OffsetDateTime::now_utc().unix_timestamp().to_string()
}

fn uuid_like() -> String {
    let n: u64 = rand::random();
    format!("{n:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_oci_definition() {
        let a = format!("sha256:{}", "a".repeat(64));
        let b = format!("sha256:{}", "b".repeat(64));
        let chain = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(chain[0], a);
        assert_eq!(chain[1], sha256_digest(format!("{a} {b}").as_bytes()));
    }
}
