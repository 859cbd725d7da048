//! Installing what the tests need from Debian's packages.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Result, bail};

/// A binary the tests need, and the Debian package that provides it.
pub struct Need {
    pub binary: &'static str,
    pub package: &'static str,
    pub extra_dirs: Vec<PathBuf>,
}

impl Need {
    pub fn binary(binary: &'static str, package: &'static str, extra_dirs: &[PathBuf]) -> Need {
        Need { binary, package, extra_dirs: extra_dirs.to_vec() }
    }

    /// A file the package installs (headers, data), by absolute path.
    pub fn file(path: &'static str, package: &'static str) -> Need {
        Need { binary: path, package, extra_dirs: Vec::new() }
    }

    fn present(&self) -> bool {
        if self.binary.starts_with('/') {
            Path::new(self.binary).exists()
        } else {
            find_binary(self.binary, &self.extra_dirs).is_some()
        }
    }
}

pub fn find_binary(name: &str, extra_dirs: &[PathBuf]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).chain(extra_dirs.iter().cloned()).map(|d| d.join(name)).find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata().map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

pub fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

/// Installs the packages of missing binaries with apt-get when root, or
/// says exactly what to install otherwise.
pub fn ensure_packages(needs: &[Need]) -> Result<()> {
    let missing: Vec<&str> = needs.iter().filter(|n| !n.present()).map(|n| n.package).collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        bail!("the tests need these Debian packages: sudo apt-get install -y {}", missing.join(" "));
    }
    eprintln!("xtask: installing {}", missing.join(" "));
    let update = Command::new("apt-get").args(["update", "-q"]).status()?;
    if !update.success() {
        bail!("apt-get update failed");
    }
    let install = Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()?;
    if !install.success() {
        bail!("apt-get install {} failed", missing.join(" "));
    }
    Ok(())
}

pub fn has_nextest() -> bool {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["nextest", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Installs Python modules the tests use (independent signers for interop tests) with pip.
pub fn ensure_python_modules(modules: &[(&str, &str)]) -> Result<()> {
    for (module, package) in modules {
        let present =
            Command::new("python3").args(["-c", &format!("import {module}")]).output().map(|o| o.status.success());
        match present {
            Ok(true) => continue,
            Err(_) => bail!("python3 is needed for the interop tests: apt-get install -y python3 python3-pip"),
            Ok(false) => {}
        }
        eprintln!("xtask: installing the Python package {package}");
        let ok = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", package])
            .status()?
            .success();
        if !ok {
            bail!("pip install {package} failed; install it by hand: python3 -m pip install {package}");
        }
    }
    Ok(())
}
