//! What the container tests need, private to one test run: a containerd
//! with its own root, state and socket (CRI off), Debian's docker-registry
//! on a loopback port, and a test image built here from busybox-static (no
//! network) and pushed to that registry with skopeo.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::system::Need;

const RUN_DIR_PREFIX: &str = "berth-test-ctr-";

/// The CNI network the tests' agents use (bridge `berthtest0`), apart from a
/// `berth dev` on the same machine, so the harness can clear what a killed
/// run left in it without touching anything else.
pub const TEST_NETWORK: &str = "berth-berthtest0";
/// The tests' MANAGED account bridges (`tests/src/containers.rs` names them too).
const TEST_MANAGED_BRIDGE_PREFIX: &str = "berthtm";

/// The image the tests run; its tag is what `BERTH_TEST_IMAGE` names.
pub const TEST_REPOSITORY: &str = "berth/busybox";
pub const TEST_TAG: &str = "1";

/// The private registry's user (its password is made per run).
pub const PRIVATE_USER: &str = "berth-test";

pub struct Containers {
    dir: PathBuf,
    containerd: Child,
    registries: Vec<Child>,
    pub socket: PathBuf,
    pub registry_addr: String,
    /// A second registry that wants a username and password (htpasswd).
    pub private_registry_addr: String,
    pub private_password: String,
}

/// The Debian packages the container tests and benchmarks need.
pub fn needs() -> Vec<Need> {
    vec![
        // containerd-client generates its gRPC code at build time.
        Need::binary("protoc", "protobuf-compiler", &[]),
        // tf-provider (the Terraform provider) compiles tfplugin6.proto, which imports these.
        Need::file("/usr/include/google/protobuf/empty.proto", "libprotobuf-dev"),
        Need::binary("containerd", "containerd", &[]),
        Need::binary("runc", "runc", &[]),
        Need::binary("bridge", "containernetworking-plugins", &[PathBuf::from("/usr/lib/cni")]),
        Need::binary("iptables", "iptables", &[]),
        Need::binary("ip", "iproute2", &[]),
        Need::binary("docker-registry", "docker-registry", &[]),
        Need::binary("skopeo", "skopeo", &[]),
        Need::binary("busybox", "busybox-static", &[]),
        // The console's browser tests.
        Need::binary("chromium", "chromium", &[]),
        Need::binary("chromedriver", "chromium-driver", &[]),
        // bcrypt for the private registry's htpasswd file.
        Need::binary("htpasswd", "apache2-utils", &[]),
    ]
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts a server with its stderr in `<dir>/<name>.log`, for reading when it misbehaves.
fn spawn_logged(cmd: &mut Command, dir: &Path, name: &str) -> Result<Child> {
    let log = std::fs::File::create(dir.join(format!("{name}.log")))?;
    cmd.stdout(Stdio::null()).stderr(log).spawn().with_context(|| format!("starting {name}"))
}

/// Debian's docker-registry on a free loopback port, with htpasswd auth when given.
fn start_registry(dir: &Path, name: &str, htpasswd: Option<&Path>) -> Result<(Child, String)> {
    let addr = format!("127.0.0.1:{}", free_port()?);
    let auth = htpasswd
        .map(|p| format!("auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n", p.display()))
        .unwrap_or_default();
    let config = dir.join(format!("{name}.yml"));
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: {addr}\n{auth}",
            dir.join(name).display()
        ),
    )?;
    let child = spawn_logged(Command::new("docker-registry").arg("serve").arg(&config), dir, name)?;
    Ok((child, addr))
}

fn wait_until(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) -> Result<()> {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if ready() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("{what} did not come up within {} s", timeout.as_secs())
}

impl Containers {
    pub fn start() -> Result<Containers> {
        cleanup_stale();
        clear_test_network();
        let dir = std::env::temp_dir().join(format!("{RUN_DIR_PREFIX}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let socket = dir.join("containerd.sock");
        let config = format!(
            "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{sock}\"\n\
             [ttrpc]\n  address = \"{sock}.ttrpc\"\n\
             [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{opt}\"\n",
            root = dir.join("root").display(),
            state = dir.join("state").display(),
            sock = socket.display(),
            opt = dir.join("opt").display(),
        );
        std::fs::write(dir.join("containerd.toml"), config)?;
        let mut containerd = spawn_logged(
            Command::new("containerd").arg("--config").arg(dir.join("containerd.toml")),
            &dir,
            "containerd",
        )?;
        let mut registries = Vec::new();
        let private_password = format!("pw-{}-{}", std::process::id(), free_port()?);
        let started = start_registry(&dir, "registry", None).and_then(|(child, addr)| {
            registries.push(child);
            let htpasswd = dir.join("htpasswd");
            let out = Command::new("htpasswd")
                .args(["-Bbc"])
                .arg(&htpasswd)
                .args([PRIVATE_USER, private_password.as_str()])
                .output()
                .context("running htpasswd")?;
            if !out.status.success() {
                bail!("htpasswd failed: {}", String::from_utf8_lossy(&out.stderr));
            }
            let (child, private_addr) = start_registry(&dir, "private-registry", Some(&htpasswd))?;
            registries.push(child);
            Ok((addr, private_addr))
        });
        let (registry_addr, private_registry_addr) = match started {
            Ok(addrs) => addrs,
            Err(e) => {
                for mut r in registries {
                    let _ = r.kill();
                    let _ = r.wait();
                }
                stop_containerd(&dir, &mut containerd);
                return Err(e);
            }
        };
        let c = Containers {
            dir: dir.clone(),
            containerd,
            registries,
            socket: socket.clone(),
            registry_addr,
            private_registry_addr,
            private_password,
        };
        wait_until("containerd", Duration::from_secs(30), || socket.exists())?;
        for addr in [&c.registry_addr, &c.private_registry_addr] {
            wait_until("docker-registry", Duration::from_secs(30), || std::net::TcpStream::connect(addr).is_ok())?;
        }
        let layout = build_image(&dir.join("image"))?;
        push_image(&layout, &c.registry_addr, None)?;
        push_image(&layout, &c.private_registry_addr, Some(&format!("{PRIVATE_USER}:{}", c.private_password)))?;
        eprintln!(
            "xtask: containerd on {} and a registry on {} with {}/{TEST_REPOSITORY}:{TEST_TAG}",
            c.socket.display(),
            c.registry_addr,
            c.registry_addr
        );
        Ok(c)
    }

    pub fn image(&self) -> String {
        format!("{}/{TEST_REPOSITORY}:{TEST_TAG}", self.registry_addr)
    }

    /// Tells a test or benchmark run where everything is; `berth` is the
    /// binary the agents use as their containers' logger.
    pub fn export(&self, cmd: &mut Command, berth: &Path) {
        cmd.env("BERTH_TEST_CONTAINERD_SOCKET", &self.socket)
            .env("BERTH_TEST_IMAGE", self.image())
            .env("BERTH_TEST_REGISTRY", &self.registry_addr)
            .env("BERTH_TEST_PRIVATE_REGISTRY", &self.private_registry_addr)
            .env("BERTH_TEST_PRIVATE_USER", PRIVATE_USER)
            .env("BERTH_TEST_PRIVATE_PASSWORD", &self.private_password)
            .env("BERTH_TEST_BERTH_BIN", berth);
    }
}

impl Drop for Containers {
    fn drop(&mut self) {
        for r in &mut self.registries {
            let _ = r.kill();
            let _ = r.wait();
        }
        stop_containerd(&self.dir, &mut self.containerd);
        let _ = std::fs::remove_dir_all(&self.dir);
        clear_test_network();
    }
}

/// Removes the test network's port mappings (portmap's per-container
/// chains and the jumps to them) and address records that tests killed
/// before their teardown left behind; stale DNAT rules would shadow a new
/// task's mapping of the same port.
fn clear_test_network() {
    clear_test_account_networks();
    let Ok(out) = Command::new("iptables-save").args(["-t", "nat"]).output() else { return };
    let rules = String::from_utf8_lossy(&out.stdout);
    let marker = format!("dnat name: \\\"{TEST_NETWORK}\\\"");
    let mut script = String::from("*nat\n");
    let mut chains = Vec::new();
    for line in rules.lines().filter(|l| l.starts_with("-A CNI-HOSTPORT-DNAT ") && l.contains(&marker)) {
        script.push_str(&format!("-D{}\n", &line[2..]));
        if let Some(chain) = line.split(" -j ").nth(1) {
            chains.push(chain.trim().to_owned());
        }
    }
    if chains.is_empty() {
        let _ = std::fs::remove_dir_all(Path::new("/var/lib/cni/networks").join(TEST_NETWORK));
        return;
    }
    for chain in &chains {
        script.push_str(&format!("-F {chain}\n-X {chain}\n"));
    }
    script.push_str("COMMIT\n");
    let restored =
        Command::new("iptables-restore").arg("--noflush").stdin(Stdio::piped()).spawn().and_then(|mut child| {
            use std::io::Write as _;
            if let Some(mut stdin) = child.stdin.take() {
                stdin.write_all(script.as_bytes())?;
            }
            child.wait()
        });
    match restored {
        Ok(s) if s.success() => eprintln!("xtask: removed {} stale port mapping(s) of {TEST_NETWORK}", chains.len()),
        _ => eprintln!("xtask: could not remove the stale port mappings of {TEST_NETWORK}"),
    }
    let _ = std::fs::remove_dir_all(Path::new("/var/lib/cni/networks").join(TEST_NETWORK));
}

/// Forgets the tests' per-account networks of MANAGED tasks (every run makes
/// new accounts, and a host gives out 256 account networks), with their
/// address records; the bridges themselves are reused by number.
fn clear_test_account_networks() {
    let dir = Path::new("/var/lib/cni/networks");
    let _ = std::fs::remove_file(dir.join(format!("{TEST_MANAGED_BRIDGE_PREFIX}-accounts.json")));
    if let Ok(entries) = std::fs::read_dir(dir) {
        let prefix = format!("berth-{TEST_MANAGED_BRIDGE_PREFIX}");
        for e in entries.flatten().filter(|e| e.file_name().to_string_lossy().starts_with(&prefix)) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Kills what the tests' containers left running (containers and shims
/// outlive containerd), stops containerd, and unmounts what it mounted.
/// This is the harness cleaning up after failed tests, so it may use `ctr`.
fn stop_containerd(dir: &Path, containerd: &mut Child) {
    let socket = dir.join("containerd.sock");
    let ctr = |args: &[&str]| Command::new("ctr").arg("-a").arg(&socket).args(args).output();
    let lines = |out: std::io::Result<std::process::Output>| -> Vec<String> {
        out.map(|o| String::from_utf8_lossy(&o.stdout).lines().filter(|l| !l.is_empty()).map(str::to_owned).collect())
            .unwrap_or_default()
    };
    // Every namespace: tests use their own besides `berth`.
    for ns in lines(ctr(&["namespaces", "ls", "-q"])) {
        let ids = lines(ctr(&["-n", &ns, "tasks", "ls", "-q"]));
        for id in &ids {
            let _ = ctr(&["-n", &ns, "tasks", "kill", "-a", "-s", "SIGKILL", id]);
        }
        if !ids.is_empty() {
            std::thread::sleep(Duration::from_millis(500));
        }
        for id in &ids {
            let _ = ctr(&["-n", &ns, "tasks", "rm", "-f", id]);
        }
    }
    let _ = Command::new("pkill")
        .args(["-TERM", "-f", &format!("containerd-shim.*-address {}", socket.display())])
        .status();
    let _ = containerd.kill();
    let _ = containerd.wait();
    unmount_under(dir);
}

fn unmount_under(dir: &Path) {
    let Ok(mounts) = std::fs::read_to_string("/proc/mounts") else { return };
    let prefix = dir.display().to_string();
    let mut targets: Vec<&str> =
        mounts.lines().filter_map(|l| l.split_whitespace().nth(1)).filter(|t| t.starts_with(&prefix)).collect();
    targets.sort_by_key(|t| std::cmp::Reverse(t.len()));
    for t in targets {
        let _ = Command::new("umount").arg("-l").arg(t).status();
    }
}

/// Removes what runs interrupted before us left behind.
fn cleanup_stale() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(RUN_DIR_PREFIX).and_then(|p| p.parse::<u32>().ok()) else { continue };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            eprintln!("xtask: removing the containerd left by an interrupted run ({name})");
            let _ =
                Command::new("pkill").args(["-KILL", "-f", &format!("-address {}", entry.path().display())]).status();
            unmount_under(&entry.path());
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn sha256_file(path: &Path) -> Result<String> {
    let out = Command::new("sha256sum").arg(path).output().context("running sha256sum")?;
    if !out.status.success() {
        bail!("sha256sum {} failed", path.display());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.split_whitespace().next().unwrap_or_default().to_owned())
}

/// Writes `bytes` as a blob of an OCI layout; returns its digest and size.
fn put_blob(layout: &Path, bytes: &[u8]) -> Result<(String, usize)> {
    let tmp = layout.join("blob.tmp");
    std::fs::write(&tmp, bytes)?;
    let hex = sha256_file(&tmp)?;
    std::fs::rename(&tmp, layout.join("blobs/sha256").join(&hex))?;
    Ok((format!("sha256:{hex}"), bytes.len()))
}

/// A one-layer image: busybox-static with its applets linked, a passwd
/// file, and a page for httpd, as an OCI layout (returned).
fn build_image(work: &Path) -> Result<PathBuf> {
    let rootfs = work.join("rootfs");
    for d in ["bin", "etc", "tmp", "www", "proc", "sys", "dev"] {
        std::fs::create_dir_all(rootfs.join(d))?;
    }
    let busybox = crate::system::find_binary("busybox", &[]).context("busybox-static is not installed")?;
    std::fs::copy(&busybox, rootfs.join("bin/busybox"))?;
    let list = Command::new(&busybox).arg("--list").output().context("busybox --list")?;
    for applet in String::from_utf8_lossy(&list.stdout).lines().filter(|a| !a.is_empty() && *a != "busybox") {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet))?;
    }
    std::fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )?;
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;
    std::fs::write(rootfs.join("www/index.html"), "hello from berth\n")?;
    let layout = work.join("layout");
    std::fs::create_dir_all(layout.join("blobs/sha256"))?;
    let layer = work.join("layer.tar");
    let ok = Command::new("tar")
        .args(["--numeric-owner", "--owner=0", "--group=0", "--sort=name", "--mtime=@0", "-C"])
        .arg(&rootfs)
        .arg("-cf")
        .arg(&layer)
        .arg(".")
        .status()?
        .success();
    if !ok {
        bail!("tar of the test image's rootfs failed");
    }
    let (layer_digest, layer_size) = put_blob(&layout, &std::fs::read(&layer)?)?;
    let config = format!(
        r#"{{"architecture":"{arch}","os":"linux","config":{{"Env":["PATH=/bin"],"Cmd":["sh"],"WorkingDir":"/"}},"rootfs":{{"type":"layers","diff_ids":["{layer_digest}"]}}}}"#,
        arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        }
    );
    let (config_digest, config_size) = put_blob(&layout, config.as_bytes())?;
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{config_size}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer_digest}","size":{layer_size}}}]}}"#
    );
    let (manifest_digest, manifest_size) = put_blob(&layout, manifest.as_bytes())?;
    std::fs::write(
        layout.join("index.json"),
        format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{manifest_digest}","size":{manifest_size},"annotations":{{"org.opencontainers.image.ref.name":"{TEST_TAG}"}}}}]}}"#
        ),
    )?;
    std::fs::write(layout.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)?;
    Ok(layout)
}

/// Pushes the layout to a registry with skopeo, with `user:password` when given.
fn push_image(layout: &Path, registry: &str, creds: Option<&str>) -> Result<()> {
    let mut skopeo = Command::new("skopeo");
    skopeo.args(["copy", "--quiet", "--dest-tls-verify=false", "--insecure-policy"]);
    if let Some(c) = creds {
        skopeo.arg(format!("--dest-creds={c}"));
    }
    let out = skopeo
        .arg(format!("oci:{}:{TEST_TAG}", layout.display()))
        .arg(format!("docker://{registry}/{TEST_REPOSITORY}:{TEST_TAG}"))
        .output()
        .context("running skopeo")?;
    if !out.status.success() {
        bail!("skopeo copy failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}
