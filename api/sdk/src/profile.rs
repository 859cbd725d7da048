//! Profiles in the credentials file the CLI writes
//! (`$XDG_CONFIG_HOME/berth/credentials`, else `~/.config/berth/credentials`):
//! INI sections of `endpoint`, `access_key_id`, `secret_access_key` and
//! `region`. Shared by the CLI and the Terraform provider, so both find the
//! same credentials the same way.

use std::path::{Path, PathBuf};

/// One profile's settings.
#[derive(Clone, PartialEq, Eq)]
pub struct Profile {
    pub endpoint: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub region: String,
}

impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profile")
            .field("endpoint", &self.endpoint)
            .field("access_key_id", &self.access_key_id)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl Profile {
    /// The profile as an INI section.
    pub fn render(&self, name: &str) -> String {
        format!(
            "[{name}]\nendpoint = {}\naccess_key_id = {}\nsecret_access_key = {}\nregion = {}\n",
            self.endpoint, self.access_key_id, self.secret_access_key, self.region
        )
    }
}

/// `$XDG_CONFIG_HOME/berth/credentials`, else `~/.config/berth/credentials`.
pub fn default_path() -> Option<PathBuf> {
    if let Some(xdg) = std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(xdg).join("berth/credentials"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config/berth/credentials"))
}

/// Every section as (name, key/value pairs).
pub fn parse(text: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut sections: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            sections.push((name.trim().to_owned(), Vec::new()));
        } else if let (Some((k, v)), Some(last)) = (line.split_once('='), sections.last_mut()) {
            last.1.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    sections
}

/// A profile from a file; `None` when the file or the section is missing.
pub fn read_profile(path: &Path, name: &str) -> std::io::Result<Option<Profile>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let Some((_, kv)) = parse(&text).into_iter().find(|(n, _)| n == name) else { return Ok(None) };
    let get = |k: &str| kv.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()).unwrap_or_default();
    Ok(Some(Profile {
        endpoint: get("endpoint"),
        access_key_id: get("access_key_id"),
        secret_access_key: get("secret_access_key"),
        region: get("region"),
    }))
}
