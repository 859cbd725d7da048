//! Reading a file of a container's root filesystem without mounting it:
//! the snapshotter's mounts name the directories (overlayfs: the upper
//! directory, then the lower ones top first; native: one bind source), and
//! the first that has the file is the one the container sees.

use std::path::PathBuf;

use containerd_client::types::Mount;

/// The directories of the root filesystem, topmost first.
fn layers(mounts: &[Mount]) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for m in mounts {
        match m.r#type.as_str() {
            "overlay" => {
                for o in &m.options {
                    if let Some(upper) = o.strip_prefix("upperdir=") {
                        dirs.insert(0, PathBuf::from(upper));
                    } else if let Some(lower) = o.strip_prefix("lowerdir=") {
                        dirs.extend(lower.split(':').map(PathBuf::from));
                    }
                }
            }
            "bind" | "rbind" | "none" => dirs.push(PathBuf::from(&m.source)),
            _ => {}
        }
    }
    dirs
}

/// The file at `path` (relative, like `etc/passwd`) as the container would see it.
pub fn read(mounts: &[Mount], path: &str) -> Option<String> {
    layers(mounts).into_iter().find_map(|dir| std::fs::read_to_string(dir.join(path)).ok())
}

/// Looks a name up in a passwd or group file: `name:x:id:...`; Some((id, gid)) for passwd.
fn lookup(file: &str, name: &str) -> Option<(u32, Option<u32>)> {
    file.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == name).then_some(())?;
        let _password = fields.next()?;
        let id = fields.next()?.parse().ok()?;
        let gid = fields.next().and_then(|g| g.parse().ok());
        Some((id, gid))
    })
}

/// `user`, `uid`, `user:group` or `uid:gid`, with names looked up in the
/// image's `/etc/passwd` and `/etc/group`, as Docker does.
pub fn resolve_user(user: &str, passwd: Option<&str>, group: Option<&str>) -> Result<(u32, u32), String> {
    let (u, g) = user.split_once(':').unwrap_or((user, ""));
    let (uid, primary_gid) = match u.parse::<u32>() {
        Ok(uid) => (
            uid,
            passwd
                .and_then(|p| {
                    p.lines().find_map(|l| {
                        let f: Vec<&str> = l.split(':').collect();
                        (f.get(2)?.parse::<u32>().ok()? == uid).then(|| f.get(3)?.parse().ok())?
                    })
                })
                .unwrap_or(uid),
        ),
        Err(_) if u.is_empty() => (0, 0),
        Err(_) => {
            let (uid, gid) = passwd
                .and_then(|p| lookup(p, u))
                .ok_or_else(|| format!("user {u:?} is not in the image's /etc/passwd"))?;
            (uid, gid.unwrap_or(uid))
        }
    };
    let gid = match g {
        "" => primary_gid,
        g => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => group
                .and_then(|f| lookup(f, g))
                .map(|(gid, _)| gid)
                .ok_or_else(|| format!("group {g:?} is not in the image's /etc/group"))?,
        },
    };
    Ok((uid, gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str =
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\napp:x:1000:100::/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nusers:x:100:\nnogroup:x:65534:\n";

    #[test]
    fn names_resolve_through_the_images_files() {
        let r = |u: &str| resolve_user(u, Some(PASSWD), Some(GROUP));
        assert_eq!(r(""), Ok((0, 0)));
        assert_eq!(r("nobody"), Ok((65534, 65534)));
        assert_eq!(r("app"), Ok((1000, 100)), "a user's primary group from passwd");
        assert_eq!(r("1000"), Ok((1000, 100)), "a known uid also gets its primary group");
        assert_eq!(r("4242"), Ok((4242, 4242)), "an unknown uid stands for itself");
        assert_eq!(r("app:nogroup"), Ok((1000, 65534)));
        assert_eq!(r("1000:7"), Ok((1000, 7)));
        assert!(r("ghost").is_err_and(|e| e.contains("ghost")));
        assert!(r("app:ghosts").is_err_and(|e| e.contains("ghosts")));
        assert!(resolve_user("app", None, None).is_err(), "no passwd file: names cannot resolve");
    }

    #[test]
    fn the_upper_layer_wins() {
        let dir = std::env::temp_dir().join(format!("berth-rootfs-{}", std::process::id()));
        for (layer, text) in [("upper", "upper\n"), ("lower1", "lower1\n"), ("lower2", "lower2\n")] {
            std::fs::create_dir_all(dir.join(layer).join("etc")).expect("dir");
            if layer != "upper" {
                std::fs::write(dir.join(layer).join("etc/passwd"), text).expect("write");
            }
        }
        let mounts = vec![Mount {
            r#type: "overlay".into(),
            source: "overlay".into(),
            target: String::new(),
            options: vec![
                format!("workdir={}", dir.join("work").display()),
                format!("upperdir={}", dir.join("upper").display()),
                format!("lowerdir={}:{}", dir.join("lower1").display(), dir.join("lower2").display()),
            ],
        }];
        assert_eq!(read(&mounts, "etc/passwd").as_deref(), Some("lower1\n"));
        std::fs::write(dir.join("upper/etc/passwd"), "upper\n").expect("write");
        assert_eq!(read(&mounts, "etc/passwd").as_deref(), Some("upper\n"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
