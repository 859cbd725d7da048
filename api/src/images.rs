//! Image references, as task definitions name images and agents pull them.

use std::fmt;

/// Not a reference an agent could pull.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a valid image reference")]
pub struct InvalidImageReference(pub String);

/// `registry/repository:tag` or `registry/repository@sha256:...`, with
/// Docker's defaults (docker.io, `library/`, `latest`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ImageReference {
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl ImageReference {
    pub fn parse(s: &str) -> Result<Self, InvalidImageReference> {
        let bad = || InvalidImageReference(s.to_owned());
        if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                let hex = d.strip_prefix("sha256:").ok_or_else(bad)?;
                if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(bad());
                }
                (r, Some(d.to_owned()))
            }
            None => (s, None),
        };
        // A tag follows the last ':' that comes after the last '/'.
        let slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[slash..].rfind(':') {
            Some(i) => (&rest[..slash + i], Some(rest[slash + i + 1..].to_owned())),
            None => (rest, None),
        };
        if name.is_empty() || tag.as_deref() == Some("") {
            return Err(bad());
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, path)) if first.contains('.') || first.contains(':') || first == "localhost" => {
                (first.to_owned(), path.to_owned())
            }
            _ => ("docker.io".to_owned(), name.to_owned()),
        };
        let repository = if registry == "docker.io" && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        if repository.is_empty()
            || !repository.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/".contains(c))
        {
            return Err(bad());
        }
        let tag = if tag.is_none() && digest.is_none() { Some("latest".to_owned()) } else { tag };
        Ok(ImageReference { registry, repository, tag, digest })
    }

    /// The tag or digest to ask the registry for (the digest wins).
    pub fn reference(&self) -> &str {
        self.digest.as_deref().or(self.tag.as_deref()).unwrap_or("latest")
    }

    /// The host the registry's API is served from.
    pub fn api_host(&self) -> &str {
        if self.registry == "docker.io" { "registry-1.docker.io" } else { &self.registry }
    }

    /// Loopback registries speak plain HTTP, as Docker assumes.
    pub fn is_loopback(&self) -> bool {
        let host = match self.registry.rsplit_once(':') {
            Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
            _ => self.registry.as_str(),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        host == "localhost" || host.parse::<std::net::IpAddr>().map(|ip| ip.is_loopback()).unwrap_or(false)
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_take_dockers_defaults() {
        let r = ImageReference::parse("busybox").expect("parses");
        assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
        let r = ImageReference::parse("127.0.0.1:5000/berth/busybox:1.36").expect("parses");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.reference()),
            ("127.0.0.1:5000", "berth/busybox", "1.36")
        );
        assert!(r.is_loopback());
        let d = format!("sha256:{}", "a".repeat(64));
        let r = ImageReference::parse(&format!("localhost:5000/x@{d}")).expect("parses");
        assert_eq!(r.reference(), d);
        assert!(r.tag.is_none());
        assert!(!ImageReference::parse("ghcr.io/acme/app:1").expect("parses").is_loopback());
        for bad in ["", "a b", "x@sha256:12", "Upper/Case", "repo:"] {
            assert!(ImageReference::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
