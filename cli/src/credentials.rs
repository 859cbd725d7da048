//! The CLI's credentials file: INI sections of `endpoint`, `access_key_id`,
//! `secret_access_key` and `region`, in `~/.config/berth/credentials`.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::Context;

pub use berth_sdk::profile::{Profile, parse};

/// `$XDG_CONFIG_HOME/berth/credentials`, else `~/.config/berth/credentials`.
pub fn default_path() -> anyhow::Result<PathBuf> {
    berth_sdk::profile::default_path().context("neither XDG_CONFIG_HOME nor HOME is set")
}

pub fn read_profile(path: &Path, name: &str) -> anyhow::Result<Option<Profile>> {
    berth_sdk::profile::read_profile(path, name).with_context(|| format!("reading {}", path.display()))
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
