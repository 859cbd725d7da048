//! What the benchmarks share: percentiles, `BENCH` lines, the `ctr run --rm`
//! floor, and reading a process's memory and CPU from /proc.

use std::path::Path;
use std::time::Instant;

/// The benchmarks' long-running container command (for `sh -c`). It exits on
/// SIGTERM, which busybox `sleep` as PID 1 would ignore, so a stop does not
/// wait out the stop timeout.
pub const STOPPABLE_WORKLOAD: &str = "trap 'exit 0' TERM; while true; do sleep 1; done";

/// The `p` quantile (0-1) of sorted samples, by nearest rank.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Prints p50, p99 and the sample count of millisecond samples as `BENCH` lines.
pub fn report_ms(name: &str, mut ms: Vec<f64>) {
    ms.sort_by(f64::total_cmp);
    println!("BENCH {name} p50_ms={:.1}", percentile(&ms, 0.5));
    println!("BENCH {name} p99_ms={:.1}", percentile(&ms, 0.99));
    println!("BENCH {name} samples={}", ms.len());
}

/// `ctr` on the test containerd, in the floor measurements' own namespace.
pub fn ctr_command(socket: &Path) -> std::process::Command {
    let mut c = std::process::Command::new("ctr");
    c.arg("-a").arg(socket).args(["-n", "berth-floor"]);
    c
}

fn ctr(socket: &Path, args: &[&str]) -> std::process::Output {
    ctr_command(socket).args(args).output().expect("run ctr")
}

/// `ctr run --rm` of `image` running `/bin/true`, 20 times after one warm-up:
/// what containerd itself takes to create, start, reap and delete a
/// container, the floor every other figure is read against.
pub fn ctr_run_floor(socket: &Path, image: &str) -> Vec<f64> {
    let pulled = ctr(socket, &["images", "pull", "--plain-http", image]);
    assert!(pulled.status.success(), "ctr pull: {}", String::from_utf8_lossy(&pulled.stderr));
    let mut ms = Vec::new();
    for i in 0..21 {
        let id = format!("floor-{}-{i}", std::process::id());
        let started = Instant::now();
        let out = ctr(socket, &["run", "--rm", image, &id, "/bin/true"]);
        assert!(out.status.success(), "ctr run: {}", String::from_utf8_lossy(&out.stderr));
        // The first run warms the page cache and the shim binary.
        if i > 0 {
            ms.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    ms
}

/// A process's resident memory in MiB, from /proc (0 when it is gone).
pub fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// A process's user + system CPU seconds so far, from /proc (0 when it is gone).
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised name; utime and stime are the 14th and 15th of the line.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { return 0.0 };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / clock_ticks()
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<f64>().ok())
        .unwrap_or(100.0)
}

/// Processes whose executable's name is `name` and whose command line contains `needle`.
pub fn pids_of(name: &str, needle: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args: Vec<String> =
                cmdline.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
            args.first().is_some_and(|a0| a0.rsplit('/').next() == Some(name))
                && args.iter().any(|a| a.contains(needle))
        })
        .collect()
}
