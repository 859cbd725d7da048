//! A connection to containerd: one gRPC channel, every call in the agent's
//! namespace, every call but the waits bounded by a timeout.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use containerd_client::services::v1::containers_client::ContainersClient;
use containerd_client::services::v1::content_client::ContentClient;
use containerd_client::services::v1::diff_client::DiffClient;
use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::services::v1::introspection_client::IntrospectionClient;
use containerd_client::services::v1::leases_client::LeasesClient;
use containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
use containerd_client::services::v1::tasks_client::TasksClient;
use containerd_client::services::v1::version_client::VersionClient;
use containerd_client::services::v1::{CreateRequest, DeleteRequest, PluginsRequest};
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

use super::RuntimeError;

/// Most calls finish in milliseconds; Task.Create spawns a shim and runc, and
/// can hang on a misbehaving logger, so everything gets a bound.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Asks [`Containerd::connect`] to pick the snapshotter.
pub const AUTO_SNAPSHOTTER: &str = "auto";

#[derive(Clone)]
pub struct Containerd {
    channel: Channel,
    namespace: MetadataValue<tonic::metadata::Ascii>,
    pub namespace_name: String,
    pub snapshotter: String,
}

impl Containerd {
    /// Connects to the socket; the channel reconnects by itself when containerd restarts.
    pub async fn connect(socket: &Path, namespace: &str, snapshotter: &str) -> Result<Self, RuntimeError> {
        let channel = tokio::time::timeout(Duration::from_secs(10), containerd_client::connect(socket))
            .await
            .map_err(|_| RuntimeError::Unavailable(format!("connecting to {} timed out", socket.display())))?
            .map_err(|e| RuntimeError::Unavailable(format!("cannot connect to {}: {e}", socket.display())))?;
        let namespace_value = MetadataValue::try_from(namespace)
            .map_err(|_| RuntimeError::Config(format!("{namespace:?} is not a valid containerd namespace")))?;
        let mut c = Containerd {
            channel,
            namespace: namespace_value,
            namespace_name: namespace.to_owned(),
            snapshotter: snapshotter.to_owned(),
        };
        c.version().await?;
        if snapshotter == AUTO_SNAPSHOTTER {
            c.snapshotter = c.usable_snapshotter().await?;
        }
        Ok(c)
    }

    /// overlayfs when containerd could load it (the backing filesystem
    /// supports it), else native, which works everywhere but copies layers.
    async fn usable_snapshotter(&self) -> Result<String, RuntimeError> {
        let plugins = call(
            "list snapshotters",
            IntrospectionClient::new(self.channel.clone())
                .plugins(Request::new(PluginsRequest { filters: vec!["type==io.containerd.snapshotter.v1".into()] })),
        )
        .await?
        .into_inner()
        .plugins;
        let ready = |id: &str| plugins.iter().any(|p| p.id == id && p.init_err.is_none());
        match ["overlayfs", "native"].into_iter().find(|id| ready(id)) {
            Some(id) => Ok(id.to_owned()),
            None => {
                Err(RuntimeError::Unavailable("containerd has neither the overlayfs nor the native snapshotter".into()))
            }
        }
    }

    /// containerd's version, which also proves the socket answers.
    pub async fn version(&self) -> Result<String, RuntimeError> {
        let v = call("version", VersionClient::new(self.channel.clone()).version(Request::new(()))).await?;
        Ok(v.into_inner().version)
    }

    /// A request in the agent's namespace.
    pub fn req<T>(&self, message: T) -> Request<T> {
        let mut r = Request::new(message);
        r.metadata_mut().insert("containerd-namespace", self.namespace.clone());
        r
    }

    /// A request whose new objects a lease protects from garbage collection until it is released.
    pub fn leased<T>(&self, message: T, lease: &str) -> Request<T> {
        let mut r = self.req(message);
        if let Ok(v) = MetadataValue::try_from(lease) {
            r.metadata_mut().insert("containerd-lease", v);
        }
        r
    }

    /// Takes a lease: what is created under it ([`Containerd::leased`]) is
    /// safe from the garbage collector until [`Containerd::release_lease`],
    /// or until `ttl` passes if the agent dies first.
    pub async fn take_lease(&self, id: &str, ttl: Duration) -> Result<(), RuntimeError> {
        let expire = time::OffsetDateTime::now_utc() + ttl;
        let labels = std::collections::HashMap::from([(
            "containerd.io/gc.expire".to_owned(),
            expire.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        )]);
        let created =
            call("create lease", self.leases().create(self.req(CreateRequest { id: id.to_owned(), labels }))).await;
        match created {
            Ok(_) => Ok(()),
            // Left by an agent that died holding it: take it over.
            Err(e) if e.code() == Some(Code::AlreadyExists) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Releases a lease; a failure only delays the garbage collector until the lease expires.
    pub async fn release_lease(&self, id: &str) {
        let released = call_idempotent(
            "delete lease",
            self.leases().delete(self.req(DeleteRequest { id: id.to_owned(), sync: false })),
        )
        .await;
        if let Err(e) = released {
            tracing::debug!(lease = id, error = %e, "could not release a lease; it will expire");
        }
    }

    pub fn containers(&self) -> ContainersClient<Channel> {
        ContainersClient::new(self.channel.clone())
    }
    pub fn content(&self) -> ContentClient<Channel> {
        ContentClient::new(self.channel.clone()).max_decoding_message_size(64 << 20)
    }
    pub fn diff(&self) -> DiffClient<Channel> {
        DiffClient::new(self.channel.clone())
    }
    pub fn images(&self) -> ImagesClient<Channel> {
        ImagesClient::new(self.channel.clone())
    }
    pub fn leases(&self) -> LeasesClient<Channel> {
        LeasesClient::new(self.channel.clone())
    }
    pub fn snapshots(&self) -> SnapshotsClient<Channel> {
        SnapshotsClient::new(self.channel.clone())
    }
    pub fn tasks(&self) -> TasksClient<Channel> {
        TasksClient::new(self.channel.clone())
    }
}

/// Runs one call under [`CALL_TIMEOUT`], naming it in the error.
pub async fn call<T>(
    what: &str,
    fut: impl Future<Output = Result<tonic::Response<T>, Status>>,
) -> Result<tonic::Response<T>, RuntimeError> {
    match tokio::time::timeout(CALL_TIMEOUT, fut).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(status)) => Err(RuntimeError::Containerd { what: what.to_owned(), status }),
        Err(_) => Err(RuntimeError::Timeout(what.to_owned())),
    }
}

/// Like [`call`], where NotFound means there was nothing to do.
pub async fn call_idempotent<T>(
    what: &str,
    fut: impl Future<Output = Result<tonic::Response<T>, Status>>,
) -> Result<(), RuntimeError> {
    match call(what, fut).await {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some(Code::NotFound) => Ok(()),
        Err(e) => Err(e),
    }
}
