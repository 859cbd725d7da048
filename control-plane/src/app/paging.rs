//! Opaque page tokens. A token is the position after the last item returned,
//! base64url-encoded; clients must treat it as opaque.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use berth_api::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::{AppError, AppResult};

/// A validated page request: how many items, and after which position.
pub struct PageRequest<K> {
    pub limit: u64,
    pub after: Option<K>,
}

impl<K: DeserializeOwned> PageRequest<K> {
    pub fn parse(limit: Option<u32>, next_token: Option<&str>) -> AppResult<Self> {
        let limit = match limit {
            None => DEFAULT_PAGE_SIZE,
            Some(l) if (1..=MAX_PAGE_SIZE).contains(&l) => l,
            Some(l) => {
                return Err(AppError::bad_request(
                    Some("limit"),
                    format!("limit must be between 1 and {MAX_PAGE_SIZE}, got {l}"),
                ));
            }
        };
        let after = next_token.map(decode).transpose()?;
        Ok(Self { limit: u64::from(limit), after })
    }

    /// Asks the store for one more than the page holds, to learn whether a next page exists.
    pub fn fetch_limit(&self) -> u64 {
        self.limit + 1
    }
}

fn decode<K: DeserializeOwned>(token: &str) -> AppResult<K> {
    let invalid = || AppError::bad_request(Some("next_token"), "next_token is not a token this API returned");
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    serde_json::from_slice(&bytes).map_err(|_| invalid())
}

pub fn encode<K: Serialize>(key: &K) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(key).unwrap_or_default())
}

/// Trims the extra item fetched by [`PageRequest::fetch_limit`] and returns
/// the token of the next page, if there is one.
pub fn finish<T, K: Serialize>(mut items: Vec<T>, limit: u64, key: impl Fn(&T) -> K) -> (Vec<T>, Option<String>) {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    if items.len() > limit {
        items.truncate(limit);
        let token = items.last().map(|last| encode(&key(last)));
        (items, token)
    } else {
        (items, None)
    }
}
