//! The placement engine: strategies, constraints, failures, ports, determinism.

use std::collections::{BTreeMap, HashMap};

use berth_api::HostId;
use berth_placement::engine::Resource;
use berth_placement::{Constraint, Expr, Host, HostState, Reason, Spec, Strategy, TaskNeeds, explain, place};

fn host(cpu: u32, memory: u32, attrs: &[(&str, &str)]) -> Host {
    Host {
        id: HostId::generate(),
        state: HostState::Active,
        attributes: attrs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        cpu_free: cpu,
        memory_free: memory,
        ports_used: vec![],
        dynamic_ports: (32768, 32800),
    }
}

fn needs(cpu: u32, memory: u32) -> TaskNeeds {
    TaskNeeds { cpu, memory, ..Default::default() }
}

fn spec(strategies: Vec<Strategy>, constraints: Vec<Constraint>) -> Spec {
    Spec { strategies, constraints }
}

/// How many tasks went to each host index.
fn spread_of(plan: &berth_placement::Plan, n: usize) -> Vec<u32> {
    let mut v = vec![0; n];
    for p in plan.placed() {
        v[p.host_index] += 1;
    }
    v
}

#[test]
fn binpack_fills_the_fullest_host_first() {
    let hosts = vec![host(4096, 4096, &[]), host(4096, 1024, &[]), host(4096, 2048, &[])];
    let plan = place(&hosts, &[], &needs(0, 512), 4, &spec(vec![Strategy::Binpack(Resource::Memory)], vec![]), 1);
    let order: Vec<usize> = plan.placed().map(|p| p.host_index).collect();
    // The 1024 host takes two, then the 2048 host (least left), and so on.
    assert_eq!(order, [1, 1, 2, 2]);
    let plan = place(&hosts, &[], &needs(1000, 0), 2, &spec(vec![Strategy::Binpack(Resource::Cpu)], vec![]), 1);
    assert!(plan.placed().all(|p| p.host_index == plan.tasks[0].as_ref().map(|p| p.host_index).unwrap_or(99)));
}

#[test]
fn spread_by_host_and_by_attribute() {
    let hosts: Vec<Host> = (0..4).map(|i| host(8192, 8192, &[("zone", if i < 3 { "a" } else { "b" })])).collect();
    let by_host = place(&hosts, &[], &needs(10, 10), 8, &spec(vec![Strategy::Spread("host.id".into())], vec![]), 7);
    assert_eq!(spread_of(&by_host, 4), [2, 2, 2, 2]);
    let by_zone = place(&hosts, &[], &needs(10, 10), 6, &spec(vec![Strategy::Spread("zone".into())], vec![]), 7);
    let counts = spread_of(&by_zone, 4);
    assert_eq!(counts[..3].iter().sum::<u32>(), 3, "zone a gets half: {counts:?}");
    assert_eq!(counts[3], 3, "zone b (one host) gets the other half: {counts:?}");
    // Existing tasks of the group count: host 0 already has 3, so new ones go elsewhere.
    let plan =
        place(&hosts, &[3, 0, 0, 0], &needs(10, 10), 3, &spec(vec![Strategy::Spread("host.id".into())], vec![]), 7);
    assert_eq!(spread_of(&plan, 4), [0, 1, 1, 1]);
}

#[test]
fn strategies_are_ordered_tie_breakers() {
    // Spread by zone first, then binpack on memory within the zone.
    let hosts = vec![
        host(8192, 4096, &[("zone", "a")]),
        host(8192, 1024, &[("zone", "a")]),
        host(8192, 8192, &[("zone", "b")]),
    ];
    let s = spec(vec![Strategy::Spread("zone".into()), Strategy::Binpack(Resource::Memory)], vec![]);
    let plan = place(&hosts, &[], &needs(1, 256), 2, &s, 3);
    let order: Vec<usize> = plan.placed().map(|p| p.host_index).collect();
    assert!(order.contains(&2), "one task per zone: {order:?}");
    assert!(order.contains(&1), "within zone a, the fuller host: {order:?}");
}

#[test]
fn random_is_seeded() {
    let hosts: Vec<Host> = (0..50).map(|_| host(100_000, 100_000, &[])).collect();
    let s = spec(vec![Strategy::Random], vec![]);
    let a: Vec<usize> = place(&hosts, &[], &needs(1, 1), 40, &s, 42).placed().map(|p| p.host_index).collect();
    let b: Vec<usize> = place(&hosts, &[], &needs(1, 1), 40, &s, 42).placed().map(|p| p.host_index).collect();
    let c: Vec<usize> = place(&hosts, &[], &needs(1, 1), 40, &s, 43).placed().map(|p| p.host_index).collect();
    assert_eq!(a, b, "same seed, same plan");
    assert_ne!(a, c, "another seed, another plan");
    let distinct: std::collections::BTreeSet<usize> = a.iter().copied().collect();
    assert!(distinct.len() > 20, "random placement uses many hosts: {}", distinct.len());
}

#[test]
fn constraints() {
    let hosts = vec![
        host(8192, 8192, &[("os", "linux"), ("zone", "a")]),
        host(8192, 8192, &[("os", "linux"), ("zone", "b")]),
        host(8192, 8192, &[("os", "windows"), ("zone", "a")]),
    ];
    let linux = Constraint::MemberOf(Expr::parse("os == linux").expect("parse"));
    let plan = place(&hosts, &[], &needs(1, 1), 4, &spec(vec![], vec![linux.clone()]), 1);
    assert!(plan.placed().all(|p| p.host_index != 2));

    let plan = place(&hosts, &[], &needs(1, 1), 4, &spec(vec![], vec![Constraint::DistinctHost]), 1);
    assert_eq!(plan.placed().count(), 3);
    let failure = plan.tasks[3].as_ref().expect_err("no fourth host");
    assert_eq!(failure.rejected, BTreeMap::from([(Reason::DistinctHost, 3)]));

    let max = Constraint::MaxPer { attribute: "zone".into(), max: 1 };
    let plan = place(&hosts, &[], &needs(1, 1), 3, &spec(vec![], vec![max]), 1);
    assert_eq!(plan.placed().count(), 2, "one per zone");
    let failure = plan.tasks[2].as_ref().expect_err("zones full");
    assert_eq!(failure.rejected, BTreeMap::from([(Reason::MaxPer, 3)]));
    let per_host = Constraint::MaxPer { attribute: "host.id".into(), max: 2 };
    let plan = place(&hosts, &[2, 0, 1], &needs(1, 1), 3, &spec(vec![], vec![per_host]), 1);
    assert_eq!(spread_of(&plan, 3), [0, 2, 1]);
}

#[test]
fn failures_count_hosts_per_reason() {
    let mut hosts = vec![
        host(100, 8192, &[]),                   // too little CPU
        host(8192, 100, &[]),                   // too little memory
        host(8192, 8192, &[("os", "windows")]), // wrong attribute
        host(8192, 8192, &[]),
        host(8192, 8192, &[]),
        host(8192, 8192, &[]),
        host(8192, 8192, &[]),
    ];
    hosts[3].state = HostState::Draining;
    hosts[4].state = HostState::Disconnected;
    hosts[5].state = HostState::Lost;
    hosts[6].ports_used = vec![80];
    hosts[2].attributes.insert("os".into(), "windows".into());
    let task = TaskNeeds { cpu: 512, memory: 512, static_ports: vec![80], dynamic_ports: 0 };
    let linux = Constraint::MemberOf(Expr::parse("not os == windows").expect("parse"));
    let plan = place(&hosts, &[], &task, 1, &spec(vec![], vec![linux.clone()]), 1);
    let failure = plan.tasks[0].as_ref().expect_err("nothing fits");
    assert_eq!(
        failure.rejected,
        BTreeMap::from([
            (Reason::Cpu, 1),
            (Reason::Memory, 1),
            (Reason::Attribute, 1),
            (Reason::Draining, 1),
            (Reason::Agent, 2),
            (Reason::Ports, 1),
        ])
    );
    assert_eq!(
        failure.describe(),
        "1 host lacked CPU, 1 host lacked memory, 1 host lacked ports, 1 host did not match the member_of constraint, \
         2 hosts had no connected agent, 1 host was draining"
    );
    let why = explain(&hosts, &[], &task, &spec(vec![], vec![linux]));
    assert_eq!(why[0], Some(Reason::Cpu));
    assert_eq!(why[6], Some(Reason::Ports));
    assert!(
        place(&[], &[], &task, 1, &Spec::default(), 1).tasks[0]
            .as_ref()
            .expect_err("empty")
            .describe()
            .contains("no hosts")
    );
}

#[test]
fn resources_are_consumed_and_never_overcommitted() {
    let hosts = vec![host(1024, 1024, &[]), host(1024, 1024, &[])];
    let plan = place(&hosts, &[], &needs(300, 300), 8, &Spec::default(), 5);
    assert_eq!(plan.placed().count(), 6, "three fit on each host");
    let per_host = spread_of(&plan, 2);
    assert_eq!(per_host, [3, 3]);
    assert!(
        plan.tasks[6..].iter().all(|t| t.as_ref().expect_err("full").rejected == BTreeMap::from([(Reason::Cpu, 2)]))
    );
}

#[test]
fn dynamic_and_static_ports() {
    let mut h = host(8192, 8192, &[]);
    h.dynamic_ports = (40000, 40004);
    h.ports_used = vec![40001, 22];
    let hosts = vec![h];
    let task = TaskNeeds { cpu: 1, memory: 1, static_ports: vec![8080], dynamic_ports: 2 };
    let plan = place(&hosts, &[], &task, 2, &Spec::default(), 1);
    let first = plan.tasks[0].as_ref().expect("placed");
    assert_eq!(first.dynamic_ports, [40000, 40002]);
    // The second task needs 8080 too: taken.
    assert_eq!(plan.tasks[1].as_ref().expect_err("port taken").rejected, BTreeMap::from([(Reason::Ports, 1)]));
    let dyn_only = TaskNeeds { cpu: 1, memory: 1, static_ports: vec![], dynamic_ports: 2 };
    let plan = place(&hosts, &[], &dyn_only, 3, &Spec::default(), 1);
    let got: Vec<Vec<u16>> = plan.placed().map(|p| p.dynamic_ports.clone()).collect();
    assert_eq!(got, [vec![40000, 40002], vec![40003, 40004]], "and the range runs out");
    assert!(plan.tasks[2].is_err());
}

#[test]
fn a_thousand_hosts_spread_evenly() {
    let hosts: Vec<Host> = (0..1000).map(|i| host(4096, 4096, &[("zone", ["a", "b", "c", "d"][i % 4])])).collect();
    let s = spec(vec![Strategy::Spread("zone".into()), Strategy::Spread("host.id".into())], vec![]);
    let plan = place(&hosts, &[], &needs(10, 10), 2000, &s, 9);
    let mut zones: HashMap<&str, u32> = HashMap::new();
    for p in plan.placed() {
        *zones.entry(hosts[p.host_index].attributes["zone"].as_str()).or_default() += 1;
    }
    assert!(zones.values().all(|n| *n == 500), "{zones:?}");
    assert!(spread_of(&plan, 1000).iter().all(|n| *n == 2));
}

/// The indexed binpack path must choose exactly what the full scan chooses.
/// A spread over an attribute no host has adds an all-zero key, which forces
/// the scan without changing the order, so the two plans must be identical.
#[test]
fn indexed_binpack_decides_like_the_scan() {
    let mut rng = 0x1234_5678_9abc_def0u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for round in 0..20 {
        let hosts: Vec<Host> = (0..300)
            .map(|i| {
                let mut h = host(
                    (next() % 8192) as u32,
                    (next() % 16384) as u32,
                    &[("zone", ["a", "b", "c"][i % 3]), ("os", if next() % 5 == 0 { "windows" } else { "linux" })],
                );
                if next() % 13 == 0 {
                    h.state = HostState::Draining;
                }
                h.dynamic_ports = (30000, 30000 + (next() % 8) as u16);
                h
            })
            .collect();
        let existing: Vec<u32> = (0..300).map(|_| (next() % 3) as u32).collect();
        let constraints = vec![
            Constraint::MemberOf(Expr::parse("os == linux").expect("parse")),
            Constraint::MaxPer { attribute: "host.id".into(), max: 4 },
        ];
        for resource in [Resource::Memory, Resource::Cpu] {
            let task = TaskNeeds {
                cpu: (next() % 700) as u32,
                memory: (next() % 1500) as u32,
                static_ports: vec![],
                dynamic_ports: 1,
            };
            let indexed = spec(vec![Strategy::Binpack(resource)], constraints.clone());
            let scanned = spec(
                vec![Strategy::Binpack(resource), Strategy::Spread("no-such-attribute".into())],
                constraints.clone(),
            );
            let a = place(&hosts, &existing, &task, 1500, &indexed, round);
            let b = place(&hosts, &existing, &task, 1500, &scanned, round);
            assert_eq!(a.tasks, b.tasks, "round {round}, {resource:?}");
            assert!(a.placed().count() > 50, "the test places a fair number: {}", a.placed().count());
            assert!(a.tasks.iter().any(|t| t.is_err()), "and runs the cluster full");
        }
    }
}
