//! Types shared by many resources.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// User-defined key/value labels on a resource (at most 50; keys up to 128
/// characters, values up to 256, as AWS allows).
pub type Tags = BTreeMap<String, String>;

/// Query parameters of every list call.
#[derive(Clone, Debug, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// Items per page, 1 to 100 (default 50).
    pub limit: Option<u32>,
    /// The `next_token` of the previous page.
    pub next_token: Option<String>,
}

/// Tags as they appear in request bodies.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TagsUpdate {
    pub tags: Tags,
}
