//! Typed identifiers. Every resource id is a UUIDv7 (time-ordered, so listing
//! by id is listing by creation time), wrapped in its own type so that a
//! `TaskId` can never be passed where a `ClusterId` is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

macro_rules! typed_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
        #[serde(transparent)]
        #[schema(value_type = String, format = Uuid)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new, time-ordered id.
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

typed_id!(
    /// An account (tenant). Every other resource belongs to exactly one.
    AccountId
);
typed_id!(
    /// A cluster: a named group of hosts, tasks and services.
    ClusterId
);
typed_id!(
    /// One immutable revision of a task-definition family.
    TaskDefinitionId
);
typed_id!(
    /// A task: one run of a task definition.
    TaskId
);
typed_id!(
    /// A host registered by an agent.
    HostId
);
typed_id!(
    /// A service: a desired count of tasks kept running.
    ServiceId
);
typed_id!(
    /// One deployment of a service: a task-definition revision rolled out.
    DeploymentId
);
typed_id!(
    /// An access key.
    AccessKeyId
);
