//! Task-definition operations and the validation of a definition.

use std::collections::{BTreeMap, BTreeSet};

use berth_api::quotas::{QuotaExceeded, QuotaName};
use berth_api::task_definitions::{
    ContainerDefinition, DependencyCondition, ListTaskDefinitionFamiliesResponse, ListTaskDefinitionsResponse,
    NetworkMode, RegisterTaskDefinitionRequest, TaskDefinition, TaskDefinitionFamily, TaskDefinitionStatus,
};
use berth_api::{Page, TaskDefinitionId};
use serde_json::json;

use super::paging::{self, PageRequest};
use super::{App, AppError, AppResult, IdempotencyRequest, Limits, Written, check_version, validate};
use crate::auth::Principal;
use crate::auth::policy::{Action, authorize};
use crate::store::task_definitions::{FamilyRow, TaskDefinitionRow};
use crate::store::{self, AccountScope, Tx};

pub(crate) fn to_wire(row: TaskDefinitionRow) -> AppResult<TaskDefinition> {
    let status = match row.status.as_str() {
        "ACTIVE" => TaskDefinitionStatus::Active,
        "INACTIVE" => TaskDefinitionStatus::Inactive,
        other => return Err(AppError::Internal(format!("task definition has unknown status {other:?}"))),
    };
    let def = row.definition.0;
    Ok(TaskDefinition {
        id: TaskDefinitionId(row.id),
        family: row.family,
        revision: row.revision,
        status,
        container_definitions: def.container_definitions,
        cpu: def.cpu,
        memory: def.memory,
        network_mode: def.network_mode,
        volumes: def.volumes,
        restart_policy: def.restart_policy,
        tags: row.tags.0,
        registered_at: row.registered_at,
        deregistered_at: row.deregistered_at,
        version: row.version,
    })
}

fn family_to_wire(row: FamilyRow) -> TaskDefinitionFamily {
    TaskDefinitionFamily {
        family: row.name,
        latest_revision: row.latest_revision,
        latest_active_revision: row.latest_active_revision,
        created_at: row.created_at,
    }
}

/// Parses `family` or `family:revision`.
pub(crate) fn parse_reference(field: &str, reference: &str) -> AppResult<(String, Option<i64>)> {
    let (family, revision) = match reference.split_once(':') {
        None => (reference, None),
        Some((family, rev)) => {
            let rev = rev.parse::<i64>().ok().filter(|r| *r > 0).ok_or_else(|| {
                AppError::validation(field, format!("{rev:?} is not a revision number (expected family:N, N >= 1)"))
            })?;
            (family, Some(rev))
        }
    };
    validate::name(field, family)?;
    Ok((family.to_owned(), revision))
}

/// Resolves a reference to a revision: the given one, or the latest ACTIVE.
pub(crate) async fn resolve(
    tx: &mut Tx,
    scope: AccountScope,
    family: &str,
    revision: Option<i64>,
) -> AppResult<TaskDefinitionRow> {
    let row = match revision {
        Some(rev) => store::task_definitions::get_revision(tx, scope, family, rev).await?,
        None => store::task_definitions::latest_active(tx, scope, family).await?,
    };
    row.ok_or_else(|| match revision {
        Some(rev) => AppError::not_found("task definition", format!("{family}:{rev}")),
        None => AppError::not_found("task definition", format!("{family} (no ACTIVE revision)")),
    })
}

const ULIMIT_NAMES: [&str; 15] = [
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// Checks a definition field by field; the first problem found is reported
/// with the path of the field it is about.
pub fn validate_definition(def: &RegisterTaskDefinitionRequest, limits: &Limits) -> AppResult<()> {
    validate::name("family", &def.family)?;
    validate::tags("tags", &def.tags)?;
    let containers = &def.container_definitions;
    if containers.is_empty() {
        return Err(AppError::validation("container_definitions", "a task definition needs at least one container"));
    }
    if containers.len() > limits.max_containers_per_task_definition {
        return Err(AppError::validation(
            "container_definitions",
            format!(
                "a task definition may have at most {} containers, got {}",
                limits.max_containers_per_task_definition,
                containers.len()
            ),
        ));
    }
    let mut volumes = BTreeSet::new();
    for (i, v) in def.volumes.iter().enumerate() {
        validate::name(&format!("volumes[{i}].name"), &v.name)?;
        if !volumes.insert(v.name.as_str()) {
            return Err(AppError::validation(
                format!("volumes[{i}].name"),
                format!("volume {:?} is named twice", v.name),
            ));
        }
        if let Some(host) = &v.host
            && (!host.source_path.starts_with('/') || host.source_path.contains('\0') || host.source_path.len() > 4096)
        {
            return Err(AppError::validation(
                format!("volumes[{i}].host.source_path"),
                "source_path must be an absolute path on the host",
            ));
        }
    }
    if let Some(policy) = &def.restart_policy
        && policy.max_restarts.is_some_and(|m| m > 1000)
    {
        return Err(AppError::validation("restart_policy.max_restarts", "max_restarts must be 0-1000"));
    }
    let names: BTreeSet<&str> = containers.iter().map(|c| c.name.as_str()).collect();
    let mut seen = BTreeSet::new();
    let mut host_ports = BTreeSet::new();
    for (i, c) in containers.iter().enumerate() {
        let at = |f: &str| format!("container_definitions[{i}].{f}");
        validate::name(&at("name"), &c.name)?;
        if !seen.insert(c.name.as_str()) {
            return Err(AppError::validation(at("name"), format!("container name {:?} is used twice", c.name)));
        }
        validate_container(c, def, &names, &mut host_ports, &at)?;
        for (j, m) in c.mount_points.iter().enumerate() {
            let field = at(&format!("mount_points[{j}]"));
            if !volumes.contains(m.source_volume.as_str()) {
                return Err(AppError::validation(
                    format!("{field}.source_volume"),
                    format!("the task definition has no volume named {:?}", m.source_volume),
                ));
            }
            if !m.container_path.starts_with('/') || m.container_path == "/" || m.container_path.contains('\0') {
                return Err(AppError::validation(
                    format!("{field}.container_path"),
                    "container_path must be an absolute path other than /",
                ));
            }
        }
        if let Some(caps) = c.linux_parameters.as_ref().and_then(|l| l.capabilities.as_ref()) {
            for (list, names) in [("add", &caps.add), ("drop", &caps.drop)] {
                if let Some((j, bad)) = names
                    .iter()
                    .enumerate()
                    .find(|(_, n)| !berth_api::task_definitions::LINUX_CAPABILITIES.contains(&n.as_str()))
                {
                    return Err(AppError::validation(
                        at(&format!("linux_parameters.capabilities.{list}[{j}]")),
                        format!("{bad:?} is not a Linux capability (write it without CAP_, e.g. NET_ADMIN)"),
                    ));
                }
            }
        }
    }
    if !containers.iter().any(|c| c.essential) {
        return Err(AppError::validation("container_definitions", "at least one container must be essential"));
    }
    validate_dependency_cycles(containers)?;
    let container_cpu: u64 = containers.iter().map(|c| u64::from(c.cpu.unwrap_or(0))).sum();
    if let Some(cpu) = def.cpu {
        if cpu == 0 || cpu > MAX_CPU_UNITS {
            return Err(AppError::validation("cpu", format!("cpu must be 1-{MAX_CPU_UNITS} units")));
        }
        if u64::from(cpu) < container_cpu {
            return Err(AppError::validation(
                "cpu",
                format!("task cpu {cpu} is less than its containers' total {container_cpu}"),
            ));
        }
    }
    let container_memory: u64 =
        containers.iter().map(|c| u64::from(c.memory.or(c.memory_reservation).unwrap_or(0))).sum();
    match def.memory {
        Some(memory) => {
            if !(MIN_MEMORY_MIB..=MAX_MEMORY_MIB).contains(&memory) {
                return Err(AppError::validation(
                    "memory",
                    format!("memory must be {MIN_MEMORY_MIB}-{MAX_MEMORY_MIB} MiB"),
                ));
            }
            if u64::from(memory) < container_memory {
                return Err(AppError::validation(
                    "memory",
                    format!("task memory {memory} MiB is less than its containers' total {container_memory} MiB"),
                ));
            }
        }
        None => {
            if let Some(i) = containers.iter().position(|c| c.memory.is_none() && c.memory_reservation.is_none()) {
                return Err(AppError::validation(
                    format!("container_definitions[{i}].memory"),
                    "without task-level memory, every container needs memory or memory_reservation",
                ));
            }
        }
    }
    Ok(())
}

pub const MAX_CPU_UNITS: u32 = 1024 * 192;
pub const MIN_MEMORY_MIB: u32 = 6;
pub const MAX_MEMORY_MIB: u32 = 1024 * 1024;

fn validate_container(
    c: &ContainerDefinition,
    def: &RegisterTaskDefinitionRequest,
    names: &BTreeSet<&str>,
    host_ports: &mut BTreeSet<(u16, berth_api::task_definitions::Protocol)>,
    at: &dyn Fn(&str) -> String,
) -> AppResult<()> {
    // The agent's own parser: a reference accepted here is one a host can pull.
    if c.image.len() > 1024 || berth_api::images::ImageReference::parse(&c.image).is_err() {
        return Err(AppError::validation(
            at("image"),
            format!(
                "image {:?} must be a reference like registry/repository:tag or repository@sha256:<64 hex digits>, \
                 lower-case, without spaces",
                c.image
            ),
        ));
    }
    if let Some(cpu) = c.cpu
        && cpu > MAX_CPU_UNITS
    {
        return Err(AppError::validation(at("cpu"), format!("cpu must be at most {MAX_CPU_UNITS} units")));
    }
    for (field, value) in [("memory", c.memory), ("memory_reservation", c.memory_reservation)] {
        if let Some(m) = value
            && !(MIN_MEMORY_MIB..=MAX_MEMORY_MIB).contains(&m)
        {
            return Err(AppError::validation(
                at(field),
                format!("{field} must be {MIN_MEMORY_MIB}-{MAX_MEMORY_MIB} MiB"),
            ));
        }
    }
    if let (Some(hard), Some(soft)) = (c.memory, c.memory_reservation)
        && soft > hard
    {
        return Err(AppError::validation(at("memory_reservation"), "memory_reservation must not exceed memory"));
    }
    for (field, list) in [("command", &c.command), ("entry_point", &c.entry_point)] {
        if let Some(list) = list
            && list.iter().any(|a| a.contains('\0'))
        {
            return Err(AppError::validation(at(field), format!("{field} arguments must not contain NUL")));
        }
    }
    for key in c.environment.keys() {
        if key.is_empty() || key.contains('=') || key.contains('\0') {
            return Err(AppError::validation(
                at(&format!("environment.{key}")),
                "environment names must be non-empty and contain no '='",
            ));
        }
    }
    for (j, p) in c.port_mappings.iter().enumerate() {
        let field = at(&format!("port_mappings[{j}]"));
        if def.network_mode == NetworkMode::None {
            return Err(AppError::validation(field, "network_mode none has no ports to map"));
        }
        if p.container_port == 0 {
            return Err(AppError::validation(format!("{field}.container_port"), "container_port must be 1-65535"));
        }
        if def.network_mode == NetworkMode::Host && p.host_port != 0 && p.host_port != p.container_port {
            return Err(AppError::validation(
                format!("{field}.host_port"),
                "with network_mode host, host_port must equal container_port (or be 0)",
            ));
        }
        let host_port = if def.network_mode == NetworkMode::Host { p.container_port } else { p.host_port };
        if host_port != 0 && !host_ports.insert((host_port, p.protocol)) {
            return Err(AppError::validation(
                format!("{field}.host_port"),
                format!("host port {host_port} is mapped twice"),
            ));
        }
    }
    if let Some(name) = &c.repository_credentials {
        validate::name(&at("repository_credentials"), name)?;
    }
    if let Some(policy) = &c.restart_policy {
        if c.essential {
            return Err(AppError::validation(
                at("restart_policy"),
                "restart_policy is for non-essential containers: an essential container's exit stops the task",
            ));
        }
        if policy.max_restarts.is_some_and(|m| m > 1000) {
            return Err(AppError::validation(at("restart_policy.max_restarts"), "max_restarts must be 0-1000"));
        }
    }
    if let Some(t) = c.stop_timeout
        && t > 120
    {
        return Err(AppError::validation(at("stop_timeout"), "stop_timeout must be at most 120 seconds"));
    }
    if let Some(dir) = &c.working_directory
        && !dir.starts_with('/')
    {
        return Err(AppError::validation(at("working_directory"), "working_directory must be an absolute path"));
    }
    if let Some(user) = &c.user
        && (user.is_empty() || user.chars().any(|ch| ch.is_whitespace()) || user.split(':').count() > 2)
    {
        return Err(AppError::validation(at("user"), "user must be user, uid, user:group or uid:gid"));
    }
    if let Some(hc) = &c.health_check {
        let field = at("health_check");
        match hc.command.first().map(String::as_str) {
            Some("CMD") if hc.command.len() >= 2 => {}
            Some("CMD-SHELL") if hc.command.len() == 2 => {}
            _ => {
                return Err(AppError::validation(
                    format!("{field}.command"),
                    "health_check.command must be [\"CMD\", arg, ...] or [\"CMD-SHELL\", \"command\"]",
                ));
            }
        }
        for (name, value, lo, hi) in [
            ("interval", hc.interval, 5, 300),
            ("timeout", hc.timeout, 2, 60),
            ("retries", hc.retries, 1, 10),
            ("start_period", hc.start_period, 0, 300),
        ] {
            if let Some(v) = value
                && !(lo..=hi).contains(&v)
            {
                return Err(AppError::validation(format!("{field}.{name}"), format!("{name} must be {lo}-{hi}")));
            }
        }
    }
    for (j, d) in c.depends_on.iter().enumerate() {
        let field = at(&format!("depends_on[{j}].container_name"));
        if d.container_name == c.name {
            return Err(AppError::validation(field, "a container cannot depend on itself"));
        }
        if !names.contains(d.container_name.as_str()) {
            return Err(AppError::validation(
                field,
                format!("no container named {:?} in this task definition", d.container_name),
            ));
        }
        if d.condition == DependencyCondition::Healthy {
            let target = def.container_definitions.iter().find(|o| o.name == d.container_name);
            if target.is_some_and(|t| t.health_check.is_none()) {
                return Err(AppError::validation(
                    at(&format!("depends_on[{j}].condition")),
                    format!("HEALTHY needs a health_check on {:?}", d.container_name),
                ));
            }
        }
    }
    for (j, u) in c.ulimits.iter().enumerate() {
        if !ULIMIT_NAMES.contains(&u.name.as_str()) {
            return Err(AppError::validation(
                at(&format!("ulimits[{j}].name")),
                format!("unknown ulimit {:?}", u.name),
            ));
        }
        if u.soft_limit > u.hard_limit {
            return Err(AppError::validation(
                at(&format!("ulimits[{j}].soft_limit")),
                "soft_limit must not exceed hard_limit",
            ));
        }
    }
    for key in c.labels.keys() {
        if key.is_empty() {
            return Err(AppError::validation(at("labels"), "label keys must be non-empty"));
        }
    }
    Ok(())
}

/// Refuses `depends_on` cycles: they would never start.
fn validate_dependency_cycles(containers: &[ContainerDefinition]) -> AppResult<()> {
    let edges: BTreeMap<&str, Vec<&str>> = containers
        .iter()
        .map(|c| (c.name.as_str(), c.depends_on.iter().map(|d| d.container_name.as_str()).collect()))
        .collect();
    // 0 = unvisited, 1 = on the current path, 2 = done.
    fn visit<'a>(n: &'a str, edges: &BTreeMap<&'a str, Vec<&'a str>>, state: &mut BTreeMap<&'a str, u8>) -> bool {
        match state.get(n) {
            Some(1) => return false,
            Some(2) => return true,
            _ => {}
        }
        state.insert(n, 1);
        for m in edges.get(n).into_iter().flatten() {
            if !visit(m, edges, state) {
                return false;
            }
        }
        state.insert(n, 2);
        true
    }
    let mut state = BTreeMap::new();
    for (i, c) in containers.iter().enumerate() {
        if !visit(&c.name, &edges, &mut state) {
            return Err(AppError::validation(
                format!("container_definitions[{i}].depends_on"),
                format!("depends_on of {:?} forms a cycle", c.name),
            ));
        }
    }
    Ok(())
}

/// Registers a revision inside the caller's transaction (the request is
/// already validated): quotas, the family's counter, the event.
pub(crate) async fn register_in_tx(
    tx: &mut Tx,
    scope: AccountScope,
    defaults: &super::quotas::QuotaDefaults,
    req: &RegisterTaskDefinitionRequest,
) -> AppResult<TaskDefinitionRow> {
    super::registry_credentials::check_named(tx, scope, &req.container_definitions).await?;
    let now = store::now();
    // Opened before the insert: a counter made on first use counts the rows as they were.
    let mut ledger = super::quotas::Ledger::open(tx, scope, defaults, &[QuotaName::TaskDefinitionFamilies]).await?;
    let row = store::task_definitions::register(tx, scope, TaskDefinitionId::generate(), req, now).await?;
    // Checked after the family's revision counter moved (under its row lock), so
    // concurrent registrations in one family count exactly; a refusal rolls it back.
    if row.revision == 1 {
        ledger.require(&[(QuotaName::TaskDefinitionFamilies, 1)])?;
        ledger.save(tx, scope).await?;
    }
    let mut own = store::quotas::limits(tx, scope).await?;
    let max_revisions =
        own.remove(&QuotaName::RevisionsPerFamily).unwrap_or_else(|| defaults.get(QuotaName::RevisionsPerFamily));
    if row.revision > max_revisions {
        return Err(AppError::LimitExceeded(QuotaExceeded {
            quota: QuotaName::RevisionsPerFamily,
            limit: max_revisions,
            usage: row.revision - 1,
            requested: 1,
        }));
    }
    store::events::append(
        tx,
        scope,
        "task_definition.registered",
        &row.id.to_string(),
        json!({"family": row.family, "revision": row.revision}),
        now,
    )
    .await?;
    Ok(row)
}

impl App {
    pub async fn register_task_definition(
        &self,
        principal: &Principal,
        mut req: RegisterTaskDefinitionRequest,
        idem: Option<&IdempotencyRequest>,
    ) -> AppResult<Written<TaskDefinition>> {
        authorize(principal, Action::RegisterTaskDefinition, None)?;
        validate_definition(&req, self.limits())?;
        // The client token is a property of the call, not of the definition.
        req.client_token = None;
        let size = serde_json::to_vec(&req).map(|v| v.len()).unwrap_or(usize::MAX);
        if size > self.limits().max_task_definition_bytes {
            return Err(AppError::PayloadTooLarge {
                message: format!(
                    "the task definition is {size} bytes; at most {} are allowed",
                    self.limits().max_task_definition_bytes
                ),
                field: Some("container_definitions".into()),
            });
        }
        let scope = principal.scope();
        let defaults = self.quota_defaults().clone();
        self.write(scope, idem, move |tx| {
            Box::pin(async move {
                let row = register_in_tx(tx, scope, &defaults, &req).await?;
                to_wire(row)
            })
        })
        .await
    }

    pub async fn list_task_definition_families(
        &self,
        principal: &Principal,
        page: &Page,
    ) -> AppResult<ListTaskDefinitionFamiliesResponse> {
        authorize(principal, Action::ReadTaskDefinition, None)?;
        let page = PageRequest::<String>::parse(page.limit, page.next_token.as_deref())?;
        let mut tx = self.db().begin_read().await?;
        let rows = store::task_definitions::list_families(
            &mut tx,
            principal.scope(),
            page.after.as_deref(),
            page.fetch_limit(),
        )
        .await?;
        tx.rollback().await?;
        let (rows, next_token) = paging::finish(rows, page.limit, |r| r.name.clone());
        Ok(ListTaskDefinitionFamiliesResponse { families: rows.into_iter().map(family_to_wire).collect(), next_token })
    }

    /// The latest ACTIVE revision of a family.
    pub async fn get_task_definition(&self, principal: &Principal, family: &str) -> AppResult<TaskDefinition> {
        authorize(principal, Action::ReadTaskDefinition, None)?;
        let (family, revision) = parse_reference("family", family)?;
        let mut tx = self.db().begin_read().await?;
        let row = resolve(&mut tx, principal.scope(), &family, revision).await?;
        tx.rollback().await?;
        to_wire(row)
    }

    pub async fn get_task_definition_revision(
        &self,
        principal: &Principal,
        family: &str,
        revision: i64,
    ) -> AppResult<TaskDefinition> {
        authorize(principal, Action::ReadTaskDefinition, None)?;
        let mut tx = self.db().begin_read().await?;
        let row = resolve(&mut tx, principal.scope(), family, Some(revision)).await?;
        tx.rollback().await?;
        to_wire(row)
    }

    pub async fn list_task_definition_revisions(
        &self,
        principal: &Principal,
        family: &str,
        page: &Page,
    ) -> AppResult<ListTaskDefinitionsResponse> {
        authorize(principal, Action::ReadTaskDefinition, None)?;
        let page = PageRequest::<i64>::parse(page.limit, page.next_token.as_deref())?;
        let scope = principal.scope();
        let mut tx = self.db().begin_read().await?;
        if !store::task_definitions::family_exists(&mut tx, scope, family).await? {
            return Err(AppError::not_found("task definition family", family));
        }
        let rows =
            store::task_definitions::list_revisions(&mut tx, scope, family, page.after, page.fetch_limit()).await?;
        tx.rollback().await?;
        let (rows, next_token) = paging::finish(rows, page.limit, |r| r.revision);
        let task_definitions = rows.into_iter().map(to_wire).collect::<AppResult<_>>()?;
        Ok(ListTaskDefinitionsResponse { task_definitions, next_token })
    }

    /// Marks a revision INACTIVE: it stays readable, and running tasks keep
    /// running, but no new task may use it. Deregistering an INACTIVE
    /// revision again changes nothing.
    pub async fn deregister_task_definition(
        &self,
        principal: &Principal,
        family: &str,
        revision: i64,
        if_match: Option<i64>,
        idem: Option<&IdempotencyRequest>,
    ) -> AppResult<Written<TaskDefinition>> {
        authorize(principal, Action::DeregisterTaskDefinition, None)?;
        let scope = principal.scope();
        let family = family.to_owned();
        self.write(scope, idem, move |tx| {
            Box::pin(async move {
                let row = resolve(tx, scope, &family, Some(revision)).await?;
                check_version("task definition", if_match, row.version)?;
                if row.status == "INACTIVE" {
                    return to_wire(row);
                }
                let now = store::now();
                let id = TaskDefinitionId(row.id);
                if !store::task_definitions::deregister(tx, scope, id, row.version, now).await? {
                    return Err(AppError::concurrent("task definition"));
                }
                store::events::append(
                    tx,
                    scope,
                    "task_definition.deregistered",
                    &row.id.to_string(),
                    json!({"family": row.family, "revision": row.revision}),
                    now,
                )
                .await?;
                to_wire(resolve(tx, scope, &family, Some(revision)).await?)
            })
        })
        .await
    }

    /// Deletes an INACTIVE revision that no unstopped task uses.
    pub async fn delete_task_definition(
        &self,
        principal: &Principal,
        family: &str,
        revision: i64,
        if_match: Option<i64>,
        idem: Option<&IdempotencyRequest>,
    ) -> AppResult<Written<()>> {
        authorize(principal, Action::DeleteTaskDefinition, None)?;
        let scope = principal.scope();
        let family = family.to_owned();
        self.write(scope, idem, move |tx| {
            Box::pin(async move {
                let row = resolve(tx, scope, &family, Some(revision)).await?;
                check_version("task definition", if_match, row.version)?;
                if row.status != "INACTIVE" {
                    return Err(AppError::InvalidTransition(format!(
                        "{family}:{revision} is ACTIVE; deregister it before deleting it"
                    )));
                }
                let id = TaskDefinitionId(row.id);
                let users = store::tasks::count_active_using_definition(tx, scope, id).await?;
                if users > 0 {
                    return Err(AppError::InUse(format!(
                        "{users} task(s) that are not STOPPED use {family}:{revision}"
                    )));
                }
                if !store::task_definitions::delete(tx, scope, id, row.version).await? {
                    return Err(AppError::concurrent("task definition"));
                }
                store::events::append(
                    tx,
                    scope,
                    "task_definition.deleted",
                    &row.id.to_string(),
                    json!({"family": family, "revision": revision}),
                    store::now(),
                )
                .await?;
                Ok(())
            })
        })
        .await
    }
}
