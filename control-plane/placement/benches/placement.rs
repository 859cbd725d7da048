//! The placement engine alone, one thread: 100,000 tasks onto 10,000 hosts,
//! with binpack, and with spread plus constraints. Prints `BENCH` lines.
//!
//! Run with `cargo xtask bench placement`.

use std::time::Instant;

use berth_api::HostId;
use berth_placement::{Constraint, Expr, Host, HostState, Placer, Resource, Spec, Strategy, TaskNeeds};

const HOSTS: usize = 10_000;
const TASKS: usize = 100_000;

fn cluster() -> Vec<Host> {
    (0..HOSTS)
        .map(|i| Host {
            id: HostId::generate(),
            state: if i % 97 == 0 { HostState::Draining } else { HostState::Active },
            attributes: [
                ("os", if i % 10 == 0 { "windows" } else { "linux" }),
                ("zone", ["a", "b", "c", "d"][i % 4]),
                ("arch", "amd64"),
            ]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
            // 16 cores and 64 GiB, partly used.
            cpu_free: 16 * 1024 - (i as u32 % 8) * 512,
            memory_free: 64 * 1024 - (i as u32 % 16) * 1024,
            ports_used: vec![22],
            dynamic_ports: (32768, 60999),
        })
        .collect()
}

fn run(name: &str, spec: &Spec) {
    let hosts = cluster();
    let task = TaskNeeds { cpu: 128, memory: 256, static_ports: vec![], dynamic_ports: 1 };
    let mut placer = Placer::new(&hosts, &[], spec, 0xBE57);
    let mut micros = Vec::with_capacity(TASKS);
    let start = Instant::now();
    let mut placed = 0usize;
    for _ in 0..TASKS {
        let t = Instant::now();
        if placer.next(&task).is_ok() {
            placed += 1;
        }
        micros.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let total = start.elapsed().as_secs_f64();
    assert_eq!(placed, TASKS, "the cluster has room for every task");
    micros.sort_by(f64::total_cmp);
    let pct = |p: f64| micros[((micros.len() as f64 - 1.0) * p) as usize];
    println!("BENCH {name} placements_per_s={:.0}", TASKS as f64 / total);
    println!("BENCH {name} p50_us={:.1}", pct(0.50));
    println!("BENCH {name} p99_us={:.1}", pct(0.99));
}

fn main() {
    run(
        "placement.binpack.10k_hosts",
        &Spec { strategies: vec![Strategy::Binpack(Resource::Memory)], constraints: vec![] },
    );
    let constraints = vec![
        Constraint::MemberOf(Expr::parse("os == linux and zone in [a, b, c, d] and arch =~ '^amd'").expect("parse")),
        Constraint::MaxPer { attribute: "host.id".into(), max: 40 },
    ];
    run(
        "placement.spread_constraints.10k_hosts",
        &Spec { strategies: vec![Strategy::Spread("zone".into()), Strategy::Spread("host.id".into())], constraints },
    );
}
