//! Project automation.
//!
//! - `cargo xtask test [ARGS...]`: install what the tests need (Debian packages), start a
//!   private PostgreSQL, check formatting and lints, run every test, stop PostgreSQL.
//! - `cargo xtask openapi`: write `openapi/berth.json` from the code.
//! - `cargo xtask bench`: run the benchmarks.

mod containers;
mod postgres;
mod system;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

fn main() {
    if let Err(e) = run() {
        eprintln!("xtask: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let cmd = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    match cmd.as_str() {
        "test" => test(&rest),
        "openapi" => openapi(),
        "bench" => bench(&rest),
        _ => {
            eprintln!("usage: cargo xtask <test [--no-lint] [nextest args...] | openapi | bench>");
            std::process::exit(2);
        }
    }
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

/// Where cargo puts what it builds.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace_root().join("target"), PathBuf::from)
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(workspace_root());
    c
}

fn status(mut cmd: Command, what: &str) -> Result<()> {
    eprintln!("xtask: {what}");
    let status = cmd.status().with_context(|| format!("running {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

fn test(args: &[String]) -> Result<()> {
    let started = std::time::Instant::now();
    let lint = !args.iter().any(|a| a == "--no-lint");
    let passthrough: Vec<&String> = args.iter().filter(|a| *a != "--no-lint").collect();

    let mut needs = vec![
        system::Need::binary("initdb", "postgresql", &postgres::extra_bin_dirs()),
        system::Need::binary("curl", "curl", &[]),
    ];
    needs.extend(containers::needs());
    system::ensure_packages(&needs)?;
    system::ensure_python_modules(&[("botocore", "botocore")])?;

    if lint {
        let mut fmt = cargo();
        fmt.args(["fmt", "--all", "--check"]);
        status(fmt, "cargo fmt --check")?;
        let mut clippy = cargo();
        clippy.args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]);
        status(clippy, "cargo clippy")?;
    }

    // Build first, so the database is not kept waiting through a cold build.
    let nextest = system::has_nextest();
    let mut build = cargo();
    if nextest {
        build.args(["nextest", "run", "--workspace", "--no-run"]);
    } else {
        build.args(["test", "--workspace", "--no-run"]);
    }
    status(build, "building tests")?;
    // The agent's container logger is the berth binary (`berth log-driver`).
    let mut berth = cargo();
    berth.args(["build", "--package", "berth", "--package", "terraform-provider-berth"]);
    status(berth, "building the berth binary and the Terraform provider")?;

    let pg = postgres::Postgres::start()?;
    let ctr = containers::Containers::start()?;
    let mut tests = cargo();
    if nextest {
        tests.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
    } else {
        tests.args(["test", "--workspace", "--no-fail-fast"]);
    }
    tests.args(passthrough);
    tests.env("BERTH_TEST_POSTGRES_URL", pg.url());
    ctr.export(&mut tests, &target_dir().join("debug/berth"));
    tests.env("BERTH_TEST_TF_PROVIDER_BIN", target_dir().join("debug/terraform-provider-berth"));
    let result = status(tests, "running tests");
    drop(ctr);
    drop(pg);
    eprintln!("xtask: test run took {:.0} s", started.elapsed().as_secs_f64());
    result
}

fn openapi() -> Result<()> {
    let out = workspace_root().join("openapi/berth.json");
    let output = cargo()
        .args(["run", "--quiet", "--package", "berth", "--", "openapi"])
        .output()
        .context("running berth openapi")?;
    if !output.status.success() {
        bail!("berth openapi failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    std::fs::write(&out, &output.stdout).with_context(|| format!("writing {}", out.display()))?;
    eprintln!("xtask: wrote {}", out.display());
    Ok(())
}

/// What a benchmark needs running besides itself.
#[derive(Clone, Copy, PartialEq, Eq)]
enum BenchNeeds {
    Nothing,
    /// PostgreSQL and the release `berth` binary.
    Server,
    /// That, and a private containerd and registry with the test image.
    Containers,
    /// That, and Debian's docker.io for the peer (run only when named).
    Peers,
}

/// Benchmarks by name; each prints `BENCH <name> <metric>=<value>` lines.
/// (name, package, bench target, what it needs).
const BENCHES: &[(&str, &str, &str, BenchNeeds)] = &[
    ("placement", "berth-placement", "placement", BenchNeeds::Nothing),
    ("e2e", "berth-tests", "e2e", BenchNeeds::Server),
    ("containers", "berth-tests", "containers", BenchNeeds::Containers),
    ("peers", "berth-tests", "peers", BenchNeeds::Peers),
];

/// `cargo xtask bench [NAME[.PART]...]`: every benchmark, or the named ones
/// (`e2e.heartbeats` runs only that part of `e2e`).
fn bench(args: &[String]) -> Result<()> {
    // The peer comparison installs a second container engine and takes minutes: only when named.
    let wanted: Vec<String> = if args.is_empty() {
        BENCHES.iter().filter(|b| b.3 != BenchNeeds::Peers).map(|b| b.0.to_owned()).collect()
    } else {
        args.to_vec()
    };
    for arg in wanted {
        let (name, part) = arg.split_once('.').map_or((arg.as_str(), None), |(n, p)| (n, Some(p)));
        let Some(&(_, package, target, needs)) = BENCHES.iter().find(|b| b.0 == name) else {
            bail!("unknown benchmark {name:?}; known: {}", BENCHES.iter().map(|b| b.0).collect::<Vec<_>>().join(", "));
        };
        let mut cmd = cargo();
        cmd.args(["bench", "--quiet", "--package", package, "--bench", target]);
        if let Some(p) = part {
            cmd.args(["--", p]);
        }
        let mut packages = vec![system::Need::binary("initdb", "postgresql", &postgres::extra_bin_dirs())];
        if matches!(needs, BenchNeeds::Containers | BenchNeeds::Peers) {
            packages.extend(containers::needs());
        }
        if needs == BenchNeeds::Peers {
            packages.push(system::Need::binary("dockerd", "docker.io", &[]));
        }
        let _pg = if needs != BenchNeeds::Nothing {
            system::ensure_packages(&packages)?;
            let mut build = cargo();
            build.args(["build", "--release", "--package", "berth"]);
            status(build, "building the release berth binary")?;
            let mut compile = cargo();
            compile.args(["bench", "--no-run", "--quiet", "--package", package, "--bench", target]);
            status(compile, &format!("building benchmark {name}"))?;
            let pg = postgres::Postgres::start()?;
            cmd.env("BERTH_TEST_POSTGRES_URL", pg.url());
            cmd.env("BERTH_BIN", target_dir().join("release/berth"));
            Some(pg)
        } else {
            None
        };
        let _ctr = if matches!(needs, BenchNeeds::Containers | BenchNeeds::Peers) {
            let ctr = containers::Containers::start()?;
            ctr.export(&mut cmd, &target_dir().join("release/berth"));
            Some(ctr)
        } else {
            None
        };
        status(cmd, &format!("benchmark {arg}"))?;
    }
    Ok(())
}
