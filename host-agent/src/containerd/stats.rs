//! A container's CPU and memory use, read from its cgroup (v1, as on Debian
//! 12 here, or v2), at `/<namespace>/<container-id>` like the spec sets.

use std::path::PathBuf;

/// Cumulative CPU time in nanoseconds and memory in use in bytes (page
/// cache that can be dropped left out, as `docker stats` does).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sample {
    pub cpu_nanos: u64,
    pub memory_bytes: u64,
}

fn read_u64(path: PathBuf) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn stat_field(path: PathBuf, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
}

/// None when the container has no cgroup (it is gone, or not started).
pub fn sample(namespace: &str, id: &str) -> Option<Sample> {
    let root = PathBuf::from("/sys/fs/cgroup");
    let rel = format!("{namespace}/{id}");
    // cgroup v1: one hierarchy per controller (cpuacct may share a mount with cpu).
    let v1_memory = root.join("memory").join(&rel);
    if v1_memory.exists() {
        let usage = read_u64(v1_memory.join("memory.usage_in_bytes"))?;
        let inactive = stat_field(v1_memory.join("memory.stat"), "total_inactive_file").unwrap_or(0);
        let cpu = ["cpuacct", "cpu,cpuacct"]
            .iter()
            .find_map(|m| read_u64(root.join(m).join(&rel).join("cpuacct.usage")))
            .unwrap_or(0);
        return Some(Sample { cpu_nanos: cpu, memory_bytes: usage.saturating_sub(inactive) });
    }
    // cgroup v2: one hierarchy.
    let v2 = root.join(&rel);
    let usage = read_u64(v2.join("memory.current"))?;
    let inactive = stat_field(v2.join("memory.stat"), "inactive_file").unwrap_or(0);
    let cpu_micros = stat_field(v2.join("cpu.stat"), "usage_usec").unwrap_or(0);
    Some(Sample { cpu_nanos: cpu_micros * 1000, memory_bytes: usage.saturating_sub(inactive) })
}

/// CPU units (1024 = one core) used between two samples `elapsed_nanos` apart.
pub fn cpu_units(before: u64, after: u64, elapsed_nanos: u128) -> u32 {
    if elapsed_nanos == 0 {
        return 0;
    }
    let used = u128::from(after.saturating_sub(before));
    u32::try_from(used * 1024 / elapsed_nanos).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_units_are_cores_times_1024() {
        // Half a core over one second.
        assert_eq!(cpu_units(1_000_000_000, 1_500_000_000, 1_000_000_000), 512);
        // Two cores busy.
        assert_eq!(cpu_units(0, 2_000_000_000, 1_000_000_000), 2048);
        assert_eq!(cpu_units(5, 3, 1_000), 0, "a counter that went back (a restart) reads as idle");
    }
}
