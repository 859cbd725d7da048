//! The CLI's credentials file: INI sections of `endpoint`, `access_key_id`,
//! `secret_access_key` and `region`, in `~/.config/berth/credentials`.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// One profile's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    pub endpoint: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub region: String,
}

impl Profile {
    fn render(&self, name: &str) -> String {
        format!(
            "[{name}]\nendpoint = {}\naccess_key_id = {}\nsecret_access_key = {}\nregion = {}\n",
            self.endpoint, self.access_key_id, self.secret_access_key, self.region
        )
    }
}

/// `$XDG_CONFIG_HOME/berth/credentials`, else `~/.config/berth/credentials`.
pub fn default_path() -> anyhow::Result<PathBuf> {
    if let Some(xdg) = std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(xdg).join("berth/credentials"));
    }
    let home = std::env::var_os("HOME").context("neither XDG_CONFIG_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".config/berth/credentials"))
}

/// Parses every section into (name, key/value pairs).
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

pub fn read_profile(path: &Path, name: &str) -> anyhow::Result<Option<Profile>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
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

/// Writes a new file holding one profile, readable by its owner only. Never overwrites.
pub fn write_new(path: &Path, name: &str, profile: &Profile) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {} (it must not exist yet)", path.display()))?;
    f.write_all(profile.render(name).as_bytes())?;
    f.sync_all()?;
    Ok(())
}

/// Sets one profile in a credentials file, keeping the others; mode 0600.
pub fn upsert(path: &Path, name: &str, profile: &Profile) -> anyhow::Result<()> {
    let existing = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut out = String::new();
    for (section, kv) in parse(&existing).into_iter().filter(|(n, _)| n != name) {
        out.push_str(&format!("[{section}]\n"));
        for (k, v) in kv {
            out.push_str(&format!("{k} = {v}\n"));
        }
        out.push('\n');
    }
    out.push_str(&profile.render(name));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    f.write_all(out.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
fn ensure_private(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        anyhow::bail!("{} is readable by others (mode {mode:o}); chmod 600 it", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsert_keeps_other_profiles_and_is_private() {
        let dir = std::env::temp_dir().join(format!("berth-cred-{}", std::process::id()));
        let path = dir.join("credentials");
        let _ = std::fs::remove_dir_all(&dir);
        let p = |k: &str| Profile {
            endpoint: "http://x".into(),
            access_key_id: k.into(),
            secret_access_key: "s".into(),
            region: "local".into(),
        };
        upsert(&path, "prod", &p("A")).expect("write");
        upsert(&path, "default", &p("B")).expect("write");
        upsert(&path, "default", &p("C")).expect("write");
        assert_eq!(read_profile(&path, "prod").expect("read"), Some(p("A")));
        assert_eq!(read_profile(&path, "default").expect("read"), Some(p("C")));
        ensure_private(&path).expect("0600");
        assert!(write_new(&path, "x", &p("D")).is_err(), "never overwrites");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
