//! The placement algorithm.
//!
//! Each task is placed in turn against the cluster state as changed by the
//! tasks placed before it. For each task the engine scans every host once:
//! a host must be ACTIVE, match the precomputed `member_of` constraints, have
//! the CPU, memory and ports, and satisfy `distinct_host` and `max_per`.
//! Among feasible hosts it takes the smallest key, where each strategy adds a
//! component in order (binpack: what would remain; spread: tasks of the group
//! already in that attribute value) and a seeded hash breaks remaining ties.
//! State is kept as flat arrays so a scan of 10,000 hosts stays in the tens of
//! microseconds.

use std::collections::{BTreeMap, HashMap};

use berth_api::HostId;

use crate::expr::Expr;

/// A host's state as the scheduler sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostState {
    Active,
    Draining,
    Disconnected,
    Lost,
}

#[derive(Clone, Debug)]
pub struct Host {
    pub id: HostId,
    pub state: HostState,
    /// `os`, `arch`, `hostname`, user attributes...; `host.id` is implied.
    pub attributes: BTreeMap<String, String>,
    pub cpu_free: u32,
    pub memory_free: u32,
    /// Host ports in use, in any order.
    pub ports_used: Vec<u16>,
    /// The range dynamic host ports are taken from (inclusive).
    pub dynamic_ports: (u16, u16),
}

/// What one task needs from a host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskNeeds {
    pub cpu: u32,
    pub memory: u32,
    /// Fixed host ports.
    pub static_ports: Vec<u16>,
    /// How many host ports to take from the dynamic range.
    pub dynamic_ports: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    Cpu,
    Memory,
}

#[derive(Clone, Debug)]
pub enum Strategy {
    /// Fill the host with the least of the resource left.
    Binpack(Resource),
    /// Even out the group's tasks over the values of an attribute (`host.id` for hosts).
    Spread(String),
    Random,
}

#[derive(Clone, Debug)]
pub enum Constraint {
    /// At most one task of the group per host.
    DistinctHost,
    /// Only hosts whose attributes match the expression.
    MemberOf(Expr),
    /// At most `max` tasks of the group per value of the attribute (`host.id` for hosts).
    MaxPer { attribute: String, max: u32 },
}

#[derive(Clone, Debug, Default)]
pub struct Spec {
    pub strategies: Vec<Strategy>,
    pub constraints: Vec<Constraint>,
}

impl Spec {
    /// Whether deciding needs how many of the group's tasks each host runs
    /// (so a caller can skip counting them for binpack and random).
    pub fn uses_group_counts(&self) -> bool {
        self.strategies.iter().any(|s| matches!(s, Strategy::Spread(_)))
            || self.constraints.iter().any(|c| matches!(c, Constraint::DistinctHost | Constraint::MaxPer { .. }))
    }
}

/// Why a host was not chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    Cpu,
    Memory,
    Ports,
    /// A `member_of` expression did not match.
    Attribute,
    /// The host's agent is disconnected or lost.
    Agent,
    Draining,
    DistinctHost,
    MaxPer,
}

impl Reason {
    /// The name used in API failures, as ECS names them.
    pub fn as_str(&self) -> &'static str {
        match self {
            Reason::Cpu => "RESOURCE:CPU",
            Reason::Memory => "RESOURCE:MEMORY",
            Reason::Ports => "RESOURCE:PORTS",
            Reason::Attribute => "ATTRIBUTE",
            Reason::Agent => "AGENT",
            Reason::Draining => "DRAINING",
            Reason::DistinctHost => "CONSTRAINT:DISTINCT_HOST",
            Reason::MaxPer => "CONSTRAINT:MAX_PER",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    pub host: HostId,
    /// Index into the hosts given to [`place`].
    pub host_index: usize,
    /// The dynamic host ports taken, in order.
    pub dynamic_ports: Vec<u16>,
}

/// No host could take the task: how many hosts were rejected for each reason
/// (each host counted once, for the first reason found).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Unplaced {
    pub rejected: BTreeMap<Reason, u32>,
}

impl Unplaced {
    /// `5 hosts lacked memory, 2 were draining`.
    pub fn describe(&self) -> String {
        if self.rejected.is_empty() {
            return "the cluster has no hosts".into();
        }
        self.rejected
            .iter()
            .map(|(r, n)| {
                let one = *n == 1;
                let what = match r {
                    Reason::Cpu => "lacked CPU",
                    Reason::Memory => "lacked memory",
                    Reason::Ports => "lacked ports",
                    Reason::Attribute => "did not match the member_of constraint",
                    Reason::Agent => "had no connected agent",
                    Reason::Draining if one => "was draining",
                    Reason::Draining => "were draining",
                    Reason::DistinctHost => "already ran a task of the group",
                    Reason::MaxPer if one => "was at the max_per limit",
                    Reason::MaxPer => "were at the max_per limit",
                };
                format!("{n} host{} {what}", if *n == 1 { "" } else { "s" })
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// One entry per task, in order.
    pub tasks: Vec<Result<Placement, Unplaced>>,
}

impl Plan {
    pub fn placed(&self) -> impl Iterator<Item = &Placement> {
        self.tasks.iter().filter_map(|t| t.as_ref().ok())
    }
}

const HOST_ID_ATTRIBUTE: &str = "host.id";

/// Per-attribute interning: each host's value as a small integer, so group
/// counts per value are an array lookup.
struct Interned {
    value_of_host: Vec<u32>,
    /// Group tasks per value id; `u32::MAX` value id = the host lacks the attribute.
    count: Vec<u32>,
}

impl Interned {
    fn new(hosts: &[Host], attribute: &str, group_on_host: &[u32]) -> Interned {
        if attribute == HOST_ID_ATTRIBUTE {
            return Interned { value_of_host: (0..hosts.len() as u32).collect(), count: group_on_host.to_vec() };
        }
        let mut ids: HashMap<&str, u32> = HashMap::new();
        let mut value_of_host = Vec::with_capacity(hosts.len());
        for h in hosts {
            let id = match h.attributes.get(attribute) {
                Some(v) => {
                    let next = ids.len() as u32;
                    *ids.entry(v.as_str()).or_insert(next)
                }
                None => u32::MAX,
            };
            value_of_host.push(id);
        }
        let mut count = vec![0u32; ids.len()];
        for (i, v) in value_of_host.iter().enumerate() {
            if *v != u32::MAX {
                count[*v as usize] += group_on_host[i];
            }
        }
        Interned { value_of_host, count }
    }

    fn count_at(&self, host: usize) -> u32 {
        match self.value_of_host[host] {
            u32::MAX => 0,
            v => self.count[v as usize],
        }
    }

    fn add(&mut self, host: usize) {
        let v = self.value_of_host[host];
        if v != u32::MAX {
            self.count[v as usize] += 1;
        }
    }
}

struct State<'a> {
    hosts: &'a [Host],
    cpu: Vec<u32>,
    memory: Vec<u32>,
    ports: Vec<Vec<u16>>,
    /// Free ports left in each host's dynamic range.
    dynamic_free: Vec<u32>,
    group_on_host: Vec<u32>,
    /// Precomputed: state and member_of, which do not change while placing.
    static_reject: Vec<Option<Reason>>,
    spreads: Vec<Interned>,
    max_per: Vec<(Interned, u32)>,
    distinct: bool,
}

impl<'a> State<'a> {
    fn new(hosts: &'a [Host], existing_group: &[u32], spec: &Spec) -> State<'a> {
        let group_on_host: Vec<u32> = (0..hosts.len()).map(|i| existing_group.get(i).copied().unwrap_or(0)).collect();
        let member_of: Vec<&Expr> = spec
            .constraints
            .iter()
            .filter_map(|c| if let Constraint::MemberOf(e) = c { Some(e) } else { None })
            .collect();
        let static_reject = hosts
            .iter()
            .map(|h| match h.state {
                HostState::Draining => Some(Reason::Draining),
                HostState::Disconnected | HostState::Lost => Some(Reason::Agent),
                HostState::Active => {
                    if member_of.is_empty() {
                        None
                    } else {
                        let mut attrs = h.attributes.clone();
                        attrs.insert(HOST_ID_ATTRIBUTE.into(), h.id.to_string());
                        (!member_of.iter().all(|e| e.matches(&attrs))).then_some(Reason::Attribute)
                    }
                }
            })
            .collect();
        let spreads = spec
            .strategies
            .iter()
            .filter_map(
                |s| if let Strategy::Spread(a) = s { Some(Interned::new(hosts, a, &group_on_host)) } else { None },
            )
            .collect();
        let max_per = spec
            .constraints
            .iter()
            .filter_map(|c| match c {
                Constraint::MaxPer { attribute, max } => Some((Interned::new(hosts, attribute, &group_on_host), *max)),
                _ => None,
            })
            .collect();
        let ports = hosts
            .iter()
            .map(|h| {
                let mut p = h.ports_used.clone();
                p.sort_unstable();
                p.dedup();
                p
            })
            .collect();
        let dynamic_free = hosts
            .iter()
            .zip(&ports)
            .map(|(h, used): (&Host, &Vec<u16>)| {
                let (lo, hi) = h.dynamic_ports;
                if hi < lo {
                    return 0;
                }
                let taken = used.iter().filter(|p| (lo..=hi).contains(*p)).count() as u32;
                u32::from(hi - lo) + 1 - taken
            })
            .collect();
        State {
            hosts,
            cpu: hosts.iter().map(|h| h.cpu_free).collect(),
            memory: hosts.iter().map(|h| h.memory_free).collect(),
            ports,
            dynamic_free,
            group_on_host,
            static_reject,
            spreads,
            max_per,
            distinct: spec.constraints.iter().any(|c| matches!(c, Constraint::DistinctHost)),
        }
    }

    /// Why host `i` cannot take the task now, if it cannot.
    fn reject(&self, i: usize, task: &TaskNeeds) -> Option<Reason> {
        if let Some(r) = self.static_reject[i] {
            return Some(r);
        }
        if self.cpu[i] < task.cpu {
            return Some(Reason::Cpu);
        }
        if self.memory[i] < task.memory {
            return Some(Reason::Memory);
        }
        if !task.static_ports.is_empty() && task.static_ports.iter().any(|p| self.ports[i].binary_search(p).is_ok()) {
            return Some(Reason::Ports);
        }
        if self.dynamic_free[i] < u32::from(task.dynamic_ports) {
            return Some(Reason::Ports);
        }
        if self.distinct && self.group_on_host[i] > 0 {
            return Some(Reason::DistinctHost);
        }
        if self
            .max_per
            .iter()
            .any(|(interned, max)| interned.value_of_host[i] != u32::MAX && interned.count_at(i) >= *max)
        {
            return Some(Reason::MaxPer);
        }
        None
    }

    fn commit(&mut self, i: usize, task: &TaskNeeds) -> Vec<u16> {
        self.cpu[i] -= task.cpu;
        self.memory[i] -= task.memory;
        let mut taken = Vec::with_capacity(task.dynamic_ports as usize);
        let (lo, hi) = self.hosts[i].dynamic_ports;
        let mut candidate = lo;
        while taken.len() < task.dynamic_ports as usize && candidate <= hi {
            if self.ports[i].binary_search(&candidate).is_err() && !task.static_ports.contains(&candidate) {
                taken.push(candidate);
            }
            if candidate == u16::MAX {
                break;
            }
            candidate += 1;
        }
        for p in task.static_ports.iter().chain(taken.iter()) {
            if let Err(pos) = self.ports[i].binary_search(p) {
                self.ports[i].insert(pos, *p);
                if (lo..=hi).contains(p) {
                    self.dynamic_free[i] -= 1;
                }
            }
        }
        self.group_on_host[i] += 1;
        for s in &mut self.spreads {
            s.add(i);
        }
        for (m, _) in &mut self.max_per {
            m.add(i);
        }
        taken
    }
}

/// A cheap, well-mixed hash for seeded tie-breaking (splitmix64).
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const MAX_KEYS: usize = 4;

/// (free resource, rank, host index), ordered.
type BinpackIndex = std::collections::BTreeSet<(u32, u64, u32)>;

/// Places tasks one at a time against evolving state (what [`place`] does in
/// a loop; useful to time single decisions).
pub struct Placer<'a> {
    state: State<'a>,
    /// A seeded random rank per host that breaks ties: equal hosts are taken in
    /// a shuffled order rather than by position, at the cost of one load.
    rank: Vec<u64>,
    /// Rejections that hold for the rest of this placer's life: free resources only
    /// shrink and groups only grow while placing, so a host that cannot take a task
    /// with these needs never will. Reset when the needs change.
    known_reject: Vec<Option<Reason>>,
    known_for: Option<TaskNeeds>,
    /// For a spec of binpack alone: hosts ordered by (free resource, rank), so the
    /// best host is the first feasible one from the task's need upward.
    binpack_index: Option<(Resource, BinpackIndex)>,
    strategies: Vec<&'a Strategy>,
    seed: u64,
    decision: u64,
}

impl<'a> Placer<'a> {
    /// `existing_group[i]` is how many tasks of the same group (service, or
    /// family for standalone tasks) already run on `hosts[i]`; it feeds
    /// spread, distinct_host and max_per.
    pub fn new(hosts: &'a [Host], existing_group: &[u32], spec: &'a Spec, seed: u64) -> Placer<'a> {
        Placer {
            state: State::new(hosts, existing_group, spec),
            rank: (0..hosts.len() as u64).map(|i| mix(seed ^ i.rotate_left(17))).collect(),
            known_reject: Vec::new(),
            known_for: None,
            binpack_index: None,
            strategies: spec.strategies.iter().take(MAX_KEYS - 1).collect(),
            seed,
            decision: 0,
        }
    }

    /// Chooses a host for one task and commits it to the in-memory state.
    // Several per-host arrays are indexed by the same host index in the scan.
    #[allow(clippy::needless_range_loop)]
    pub fn next(&mut self, task: &TaskNeeds) -> Result<Placement, Unplaced> {
        if self.known_for.as_ref() != Some(task) {
            self.known_reject = self.state.static_reject.clone();
            self.known_for = Some(task.clone());
            self.binpack_index = match self.strategies.as_slice() {
                [Strategy::Binpack(r)] => Some((*r, self.build_index(*r))),
                _ => None,
            };
        }
        if self.binpack_index.is_some() {
            return self.next_binpack(task);
        }
        let state = &mut self.state;
        let known = &mut self.known_reject;
        let salt = mix(self.seed ^ self.decision.wrapping_mul(0xA24B_AED4_963E_E407));
        self.decision += 1;
        let mut best: Option<(usize, [u64; MAX_KEYS])> = None;
        // The plan wants the smallest key among feasible hosts. Keys are a few
        // array loads; feasibility costs more. So compute the key first and check
        // feasibility only for a host that would become the new best.
        for i in 0..state.hosts.len() {
            if known[i].is_some() {
                continue;
            }
            let mut key = [0u64; MAX_KEYS];
            let mut spread_n = 0;
            for (k, s) in self.strategies.iter().enumerate() {
                key[k] = match s {
                    Strategy::Binpack(Resource::Memory) => u64::from(state.memory[i].saturating_sub(task.memory)),
                    Strategy::Binpack(Resource::Cpu) => u64::from(state.cpu[i].saturating_sub(task.cpu)),
                    Strategy::Spread(_) => {
                        let c = state.spreads[spread_n].count_at(i);
                        spread_n += 1;
                        u64::from(c)
                    }
                    Strategy::Random => mix(salt ^ i as u64),
                };
                // Most hosts lose on the first key already: stop there.
                if k == 0 && best.as_ref().is_some_and(|(_, b)| key[0] > b[0]) {
                    break;
                }
            }
            if best.as_ref().is_some_and(|(_, b)| key[0] > b[0]) {
                continue;
            }
            key[self.strategies.len()] = self.rank[i];
            if best.as_ref().is_some_and(|(_, b)| key >= *b) {
                continue;
            }
            match state.reject(i, task) {
                None => best = Some((i, key)),
                Some(r) => known[i] = Some(r),
            }
        }
        match best {
            Some((i, _)) => {
                let dynamic_ports = state.commit(i, task);
                Ok(Placement { host: state.hosts[i].id, host_index: i, dynamic_ports })
            }
            None => {
                let mut rejected = BTreeMap::new();
                for i in 0..state.hosts.len() {
                    if let Some(r) = known[i].or_else(|| state.reject(i, task)) {
                        *rejected.entry(r).or_insert(0) += 1;
                    }
                }
                Err(Unplaced { rejected })
            }
        }
    }
}

impl Placer<'_> {
    fn free_of(&self, r: Resource, i: usize) -> u32 {
        match r {
            Resource::Cpu => self.state.cpu[i],
            Resource::Memory => self.state.memory[i],
        }
    }

    fn build_index(&self, r: Resource) -> BinpackIndex {
        (0..self.state.hosts.len())
            .filter(|i| self.known_reject[*i].is_none())
            .map(|i| (self.free_of(r, i), self.rank[i], i as u32))
            .collect()
    }

    /// Binpack alone: walk the index from the task's need upward; the first
    /// feasible host is the one with the least left. Hosts found infeasible
    /// leave the index for good (see `known_reject`).
    fn next_binpack(&mut self, task: &TaskNeeds) -> Result<Placement, Unplaced> {
        let Some((resource, mut index)) = self.binpack_index.take() else {
            return Err(Unplaced::default());
        };
        let need = match resource {
            Resource::Cpu => task.cpu,
            Resource::Memory => task.memory,
        };
        let mut chosen = None;
        let mut dropped = Vec::new();
        for &(free, rank, i) in index.range((need, 0, 0)..) {
            match self.state.reject(i as usize, task) {
                None => {
                    chosen = Some((free, rank, i));
                    break;
                }
                Some(r) => {
                    self.known_reject[i as usize] = Some(r);
                    dropped.push((free, rank, i));
                }
            }
        }
        for d in dropped {
            index.remove(&d);
        }
        let result = match chosen {
            Some(entry) => {
                let i = entry.2 as usize;
                index.remove(&entry);
                let dynamic_ports = self.state.commit(i, task);
                index.insert((self.free_of(resource, i), entry.1, entry.2));
                Ok(Placement { host: self.state.hosts[i].id, host_index: i, dynamic_ports })
            }
            None => {
                let mut rejected = BTreeMap::new();
                for i in 0..self.state.hosts.len() {
                    if let Some(r) = self.known_reject[i].or_else(|| self.state.reject(i, task)) {
                        *rejected.entry(r).or_insert(0) += 1;
                    }
                }
                Err(Unplaced { rejected })
            }
        };
        self.decision += 1;
        self.binpack_index = Some((resource, index));
        result
    }
}

/// Places `count` tasks with the same needs; see [`Placer::new`] for `existing_group`.
pub fn place(hosts: &[Host], existing_group: &[u32], task: &TaskNeeds, count: usize, spec: &Spec, seed: u64) -> Plan {
    let mut placer = Placer::new(hosts, existing_group, spec, seed);
    Plan { tasks: (0..count).map(|_| placer.next(task)).collect() }
}

/// For a dry run: for every host, whether it could take one task and why not.
pub fn explain(hosts: &[Host], existing_group: &[u32], task: &TaskNeeds, spec: &Spec) -> Vec<Option<Reason>> {
    let state = State::new(hosts, existing_group, spec);
    (0..hosts.len()).map(|i| state.reject(i, task)).collect()
}
