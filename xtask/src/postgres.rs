//! A private PostgreSQL for one test run: its own data directory, port and
//! socket directory, loopback only, durability off (the data is thrown away).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::system::{find_binary, is_root};

const RUN_DIR_PREFIX: &str = "berth-test-pg-";

pub fn extra_bin_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    dirs.sort();
    dirs.reverse();
    dirs
}

pub struct Postgres {
    dir: PathBuf,
    port: u16,
    pg_ctl: PathBuf,
    run_as: Option<String>,
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// PostgreSQL refuses to run as root: run it as the `postgres` user then.
fn command(run_as: &Option<String>, program: &Path) -> Command {
    match run_as {
        Some(user) => {
            let mut c = Command::new("runuser");
            c.args(["-u", user, "--"]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

impl Postgres {
    pub fn start() -> Result<Postgres> {
        let bins = extra_bin_dirs();
        let initdb = find_binary("initdb", &bins).context("initdb not found")?;
        let pg_ctl = find_binary("pg_ctl", &bins).context("pg_ctl not found")?;
        cleanup_stale(&pg_ctl);
        let run_as = if is_root() { Some("postgres".to_owned()) } else { None };
        if let Some(user) = &run_as
            && !Command::new("id").arg(user).output().map(|o| o.status.success()).unwrap_or(false)
        {
            let ok = Command::new("useradd").args(["--system", "--no-create-home", user]).status()?.success();
            if !ok {
                bail!("cannot create the {user} user to run PostgreSQL as");
            }
        }
        let dir = std::env::temp_dir().join(format!("{RUN_DIR_PREFIX}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sock"))?;
        if let Some(user) = &run_as {
            let ok = Command::new("chown").args(["-R", &format!("{user}:")]).arg(&dir).status()?.success();
            if !ok {
                bail!("cannot hand {} to {user}", dir.display());
            }
        }
        let data = dir.join("data");
        let out = command(&run_as, &initdb)
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"])
            .output()
            .context("running initdb")?;
        if !out.status.success() {
            bail!("initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let port = free_port()?;
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=400 -c shared_buffers=128MB",
            dir.join("sock").display()
        );
        let pg = Postgres { dir: dir.clone(), port, pg_ctl: pg_ctl.clone(), run_as: run_as.clone() };
        let out = command(&run_as, &pg_ctl)
            .arg("-D")
            .arg(&data)
            .args(["-o", &options, "-l"])
            .arg(dir.join("postgres.log"))
            .args(["-w", "-t", "60", "start"])
            .output()
            .context("running pg_ctl start")?;
        if !out.status.success() {
            let log = std::fs::read_to_string(dir.join("postgres.log")).unwrap_or_default();
            bail!("PostgreSQL did not start: {}\n{log}", String::from_utf8_lossy(&out.stderr));
        }
        eprintln!("xtask: PostgreSQL running on 127.0.0.1:{port} (data in {})", data.display());
        Ok(pg)
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        stop(&self.pg_ctl, &self.run_as, &self.dir);
    }
}

fn stop(pg_ctl: &Path, run_as: &Option<String>, dir: &Path) {
    let data = dir.join("data");
    if data.join("postmaster.pid").exists() {
        let _ = command(run_as, pg_ctl).arg("-D").arg(&data).args(["-m", "immediate", "-w", "stop"]).output();
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Stops and removes instances left by runs that were killed.
fn cleanup_stale(pg_ctl: &Path) {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    let run_as = if is_root() { Some("postgres".to_owned()) } else { None };
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(RUN_DIR_PREFIX).and_then(|p| p.parse::<u32>().ok()) else { continue };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            eprintln!("xtask: removing the PostgreSQL left by an interrupted run ({name})");
            stop(pg_ctl, &run_as, &entry.path());
        }
    }
}
