//! The `berth` binary itself: bootstrap credentials from `berth server` and
//! `berth dev` (written once, owner-only, secret never in the output).

use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

fn wait_for(path: &Path, child: &mut Child) {
    let start = Instant::now();
    while !path.exists() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("berth exited early with {status}");
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{} never appeared", path.display());
        std::thread::sleep(Duration::from_millis(50));
    }
    // The file is complete once it has its last line.
    let start = Instant::now();
    while !std::fs::read_to_string(path).unwrap_or_default().contains("region") {
        assert!(start.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Stops the child and returns everything it printed.
fn stop(mut child: Child) -> String {
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let _ = child.wait();
    let mut out = String::new();
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut out);
    }
    out
}

fn value(text: &str, key: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("no {key} in {text}"))
        .to_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

#[test]
fn server_bootstraps_an_empty_database_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let creds = dir.path().join("admin-credentials");
    let db = format!("sqlite://{}", dir.path().join("berth.db").display());
    let keys = Command::new(env!("CARGO_BIN_EXE_berth")).arg("generate-master-key").output().expect("generate");
    let keys = String::from_utf8(keys.stdout).expect("utf8").trim().to_owned();
    assert!(keys.contains(':'), "{keys}");
    let start = || {
        Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["server", "--database-url", &db, "--listen", &format!("127.0.0.1:{}", free_port())])
            .arg("--bootstrap-credentials-file")
            .arg(&creds)
            .env("BERTH_MASTER_KEYS", &keys)
            .env("RUST_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn berth server")
    };
    let mut child = start();
    wait_for(&creds, &mut child);
    let output = stop(child);
    let text = std::fs::read_to_string(&creds).expect("read");
    assert_eq!(mode(&creds), 0o600);
    let secret = value(&text, "secret_access_key");
    let key_id = value(&text, "access_key_id");
    assert!(text.starts_with("[default]\n") && value(&text, "endpoint").starts_with("http://127.0.0.1:"));
    assert!(output.contains(&creds.display().to_string()), "the path is printed: {output}");
    assert!(output.contains(&key_id));
    assert!(!output.contains(&secret), "the secret must never be printed or logged");

    // A second start finds accounts and writes nothing.
    let mut child = start();
    std::thread::sleep(Duration::from_secs(2));
    assert!(child.try_wait().expect("wait").is_none(), "the second start keeps running");
    let output = stop(child);
    assert_eq!(std::fs::read_to_string(&creds).expect("read"), text, "written once");
    assert!(!output.contains(&secret));
}

#[test]
fn server_refuses_to_start_without_a_master_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["server", "--database-url", &format!("sqlite://{}", dir.path().join("b.db").display())])
        .env_remove("BERTH_MASTER_KEYS")
        .env_remove("BERTH_MASTER_KEY_FILE")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no master key") && err.contains("generate-master-key"), "{err}");
}

#[test]
fn dev_writes_credentials_and_the_default_profile() {
    let home = tempfile::tempdir().expect("tempdir");
    let data = home.path().join("data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["dev", "--no-agent", "--data-dir"])
        .arg(&data)
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .env("HOME", home.path())
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("BERTH_MASTER_KEYS")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn berth dev");
    let creds = data.join("admin-credentials");
    wait_for(&creds, &mut child);
    let profile = home.path().join(".config/berth/credentials");
    let start = Instant::now();
    while !std::fs::read_to_string(&profile).unwrap_or_default().contains("region") {
        assert!(start.elapsed() < Duration::from_secs(10), "no CLI profile written");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    let output = stop(child);
    let text = std::fs::read_to_string(&creds).expect("read");
    let secret = value(&text, "secret_access_key");
    assert_eq!(mode(&creds), 0o600);
    assert_eq!(mode(&profile), 0o600);
    assert_eq!(mode(&data.join("master.key")), 0o600);
    assert_eq!(mode(&data), 0o700);
    let profile_text = std::fs::read_to_string(&profile).expect("profile");
    assert_eq!(value(&profile_text, "secret_access_key"), secret);
    assert!(output.contains("endpoint:") && output.contains(&creds.display().to_string()), "{output}");
    assert!(output.contains("console:") && output.contains("/console"), "{output}");
    assert!(!output.contains(&secret));
}

/// `berth dev` runs a host agent on containerd (here the private one `cargo
/// xtask test` starts) and says so.
#[test]
fn dev_runs_a_host_agent_on_containerd() {
    let socket = std::env::var("BERTH_TEST_CONTAINERD_SOCKET")
        .expect("BERTH_TEST_CONTAINERD_SOCKET is not set: run the tests with `cargo xtask test`");
    let home = tempfile::tempdir().expect("tempdir");
    let data = home.path().join("data");
    let child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["dev", "--no-profile", "--containerd-socket", &socket, "--data-dir"])
        .arg(&data)
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .env("HOME", home.path())
        .env_remove("BERTH_MASTER_KEYS")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn berth dev");
    // The agent registered its host (its identity is kept for the next start).
    let identity = data.join("agent/identity.json");
    let start = Instant::now();
    while !identity.exists() && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let output = stop(child);
    assert!(identity.exists(), "no host registered; output:\n{output}");
    assert!(output.contains("host agent:  host ") && output.contains("cluster \"default\""), "{output}");
}
