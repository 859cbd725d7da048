//! One method per API operation. Each line of the table below makes both the
//! method and its entry in [`OPERATIONS`], so the list can be checked
//! against `openapi/berth.json` (a test does) and cannot claim a method
//! that does not exist.

use berth_api::Page;
use berth_api::agent::*;
use berth_api::auth::*;
use berth_api::capacity::*;
use berth_api::clusters::*;
use berth_api::events::*;
use berth_api::hosts::*;
use berth_api::quotas::*;
use berth_api::registry_credentials::*;
use berth_api::services::*;
use berth_api::task_definitions::*;
use berth_api::tasks::*;

use crate::{Call, Client, Error, Text, render_path};

/// An operation the SDK has a method for: its operationId, method and path template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Operation {
    pub id: &'static str,
    pub method: &'static str,
    pub path: &'static str,
}

macro_rules! operations {
    ($(
        $(#[$doc:meta])*
        $name:ident = $method:ident $path:literal ( $($param:ident),* )
            $(query: $query:ty,)? $(body: $body:ty,)? => $out:ty;
    )*) => {
        /// Every operation with a method on [`Client`] (the two streaming ones,
        /// `get_task_logs` and `stream_events`, are in [`crate::streams`]).
        pub const OPERATIONS: &[Operation] = &[
            $(Operation { id: stringify!($name), method: stringify!($method), path: $path },)*
            Operation { id: "get_task_logs", method: "GET", path: "/v1/clusters/{cluster}/tasks/{task}/logs" },
            Operation { id: "stream_events", method: "GET", path: "/v1/events/stream" },
        ];

        impl Client {
            $(
                $(#[$doc])*
                #[allow(clippy::too_many_arguments)]
                pub async fn $name(&self, $($param: &str,)* $(query: &$query,)? $(body: &$body,)?) -> Result<$out, Error> {
                    let path = render_path($path, &[$((stringify!($param), $param)),*]);
                    let query: Option<String> = None $(.or(Some(
                        serde_urlencoded::to_string::<&$query>(query).map_err(|e| Error::InvalidInput(e.to_string()))?
                    )))?;
                    let body: Option<Vec<u8>> = None $(.or(Some(
                        serde_json::to_vec::<$body>(body).map_err(|e| Error::InvalidInput(e.to_string()))?
                    )))?;
                    self.call(Call { method: reqwest::Method::$method, path, query, body, extra_headers: &[] }).await
                }
            )*
        }
    };
}

operations! {
    // Clusters.
    /// `POST /v1/clusters`
    create_cluster = POST "/v1/clusters" () body: CreateClusterRequest, => Cluster;
    /// `GET /v1/clusters`: one page; see [`crate::paging`] for all of them.
    list_clusters = GET "/v1/clusters" () query: Page, => ListClustersResponse;
    get_cluster = GET "/v1/clusters/{cluster}" (cluster) => Cluster;
    update_cluster = PATCH "/v1/clusters/{cluster}" (cluster) body: UpdateClusterRequest, => Cluster;
    delete_cluster = DELETE "/v1/clusters/{cluster}" (cluster) => ();

    // Task definitions.
    register_task_definition = POST "/v1/task-definitions" () body: RegisterTaskDefinitionRequest, => TaskDefinition;
    list_task_definition_families = GET "/v1/task-definitions" () query: Page, => ListTaskDefinitionFamiliesResponse;
    /// The latest ACTIVE revision of a family.
    get_task_definition = GET "/v1/task-definitions/{family}" (family) => TaskDefinition;
    list_task_definition_revisions = GET "/v1/task-definitions/{family}/revisions" (family) query: Page, => ListTaskDefinitionsResponse;
    get_task_definition_revision = GET "/v1/task-definitions/{family}/revisions/{revision}" (family, revision) => TaskDefinition;
    deregister_task_definition = POST "/v1/task-definitions/{family}/revisions/{revision}/deregister" (family, revision) => TaskDefinition;
    delete_task_definition = DELETE "/v1/task-definitions/{family}/revisions/{revision}" (family, revision) => ();

    // Tasks.
    run_task = POST "/v1/clusters/{cluster}/tasks" (cluster) body: RunTaskRequest, => RunTaskResponse;
    list_tasks = GET "/v1/clusters/{cluster}/tasks" (cluster) query: ListTasksQuery, => ListTasksResponse;
    get_task = GET "/v1/clusters/{cluster}/tasks/{task}" (cluster, task) => Task;
    stop_task = POST "/v1/clusters/{cluster}/tasks/{task}/stop" (cluster, task) body: StopTaskRequest, => Task;

    // Services.
    create_service = POST "/v1/clusters/{cluster}/services" (cluster) body: CreateServiceRequest, => Service;
    list_services = GET "/v1/clusters/{cluster}/services" (cluster) query: Page, => ListServicesResponse;
    get_service = GET "/v1/clusters/{cluster}/services/{service}" (cluster, service) => Service;
    update_service = PATCH "/v1/clusters/{cluster}/services/{service}" (cluster, service) body: UpdateServiceRequest, => Service;
    delete_service = DELETE "/v1/clusters/{cluster}/services/{service}" (cluster, service) query: DeleteServiceQuery, => Service;
    list_service_deployments = GET "/v1/clusters/{cluster}/services/{service}/deployments" (cluster, service) query: Page, => ListDeploymentsResponse;

    // Hosts and placement.
    list_hosts = GET "/v1/clusters/{cluster}/hosts" (cluster) query: Page, => ListHostsResponse;
    get_host = GET "/v1/clusters/{cluster}/hosts/{host}" (cluster, host) => Host;
    update_host_attributes = PUT "/v1/clusters/{cluster}/hosts/{host}/attributes" (cluster, host) body: UpdateHostAttributesRequest, => Host;
    drain_host = POST "/v1/clusters/{cluster}/hosts/{host}/drain" (cluster, host) => Host;
    deregister_host = POST "/v1/clusters/{cluster}/hosts/{host}/deregister" (cluster, host) body: DeregisterHostRequest, => Host;
    simulate_placement = POST "/v1/clusters/{cluster}/placement:simulate" (cluster) body: SimulatePlacementRequest, => SimulatePlacementResponse;
    create_registration_token = POST "/v1/clusters/{cluster}/registration-tokens" (cluster) body: CreateRegistrationTokenRequest, => CreatedRegistrationToken;
    list_registration_tokens = GET "/v1/clusters/{cluster}/registration-tokens" (cluster) query: Page, => ListRegistrationTokensResponse;
    revoke_registration_token = POST "/v1/clusters/{cluster}/registration-tokens/{token}/revoke" (cluster, token) => RegistrationToken;

    // Events and audit.
    /// One page of the account's events after a cursor, optionally waiting for new ones.
    list_events = GET "/v1/events" () query: ListEventsQuery, => ListEventsResponse;
    list_audit_events = GET "/v1/audit-events" () query: ListAuditEventsQuery, => ListAuditEventsResponse;

    // Access keys, sessions, registry credentials.
    create_access_key = POST "/v1/access-keys" () body: CreateAccessKeyRequest, => CreatedAccessKey;
    list_access_keys = GET "/v1/access-keys" () query: Page, => ListAccessKeysResponse;
    get_access_key = GET "/v1/access-keys/{key}" (key) => AccessKey;
    delete_access_key = DELETE "/v1/access-keys/{key}" (key) => ();
    deactivate_access_key = POST "/v1/access-keys/{key}/deactivate" (key) => AccessKey;
    reactivate_access_key = POST "/v1/access-keys/{key}/reactivate" (key) => AccessKey;
    create_session = POST "/v1/sessions" () body: CreateSessionRequest, => Session;
    create_registry_credential = POST "/v1/registry-credentials" () body: CreateRegistryCredentialRequest, => RegistryCredential;
    list_registry_credentials = GET "/v1/registry-credentials" () => ListRegistryCredentialsResponse;
    get_registry_credential = GET "/v1/registry-credentials/{credential}" (credential) => RegistryCredential;
    update_registry_credential = PUT "/v1/registry-credentials/{credential}" (credential) body: UpdateRegistryCredentialRequest, => RegistryCredential;
    delete_registry_credential = DELETE "/v1/registry-credentials/{credential}" (credential) => ();

    // Quotas and rate limits.
    list_quotas = GET "/v1/quotas" () => ListQuotasResponse;
    list_rate_limits = GET "/v1/rate-limits" () => ListRateLimitsResponse;

    // Managed capacity.
    list_task_sizes = GET "/v1/capacity/sizes" () => ListTaskSizesResponse;
    /// MANAGED vCPU-seconds and GiB-seconds in a window (the operator: of every account, with `all_accounts`).
    get_usage = GET "/v1/usage" () query: UsageQuery, => UsageResponse;
    create_capacity_pool = POST "/v1/capacity-pools" () body: CreateCapacityPoolRequest, => CapacityPool;
    list_capacity_pools = GET "/v1/capacity-pools" () => ListCapacityPoolsResponse;
    get_capacity_pool = GET "/v1/capacity-pools/{pool}" (pool) => CapacityPool;
    list_pool_hosts = GET "/v1/capacity-pools/{pool}/hosts" (pool) query: Page, => ListHostsResponse;
    update_pool_host_attributes = PUT "/v1/capacity-pools/{pool}/hosts/{host}/attributes" (pool, host) body: UpdateHostAttributesRequest, => Host;
    drain_pool_host = POST "/v1/capacity-pools/{pool}/hosts/{host}/drain" (pool, host) => Host;
    create_pool_registration_token = POST "/v1/capacity-pools/{pool}/registration-tokens" (pool) body: CreateRegistrationTokenRequest, => CreatedRegistrationToken;

    // Accounts (the operator's API).
    create_account = POST "/v1/accounts" () body: CreateAccountRequest, => Account;
    list_accounts = GET "/v1/accounts" () query: Page, => ListAccountsResponse;
    get_account = GET "/v1/accounts/{account}" (account) => Account;
    suspend_account = POST "/v1/accounts/{account}/suspend" (account) body: SuspendAccountRequest, => Account;
    reactivate_account = POST "/v1/accounts/{account}/reactivate" (account) => Account;
    create_account_admin_key = POST "/v1/accounts/{account}/access-keys" (account) => CreatedAccessKey;
    list_account_quotas = GET "/v1/accounts/{account}/quotas" (account) => ListQuotasResponse;
    put_account_quota = PUT "/v1/accounts/{account}/quotas/{name}" (account, name) body: PutQuotaRequest, => Quota;
    reset_account_quota = DELETE "/v1/accounts/{account}/quotas/{name}" (account, name) => Quota;
    list_account_rate_limits = GET "/v1/accounts/{account}/rate-limits" (account) => ListRateLimitsResponse;
    put_account_rate_limit = PUT "/v1/accounts/{account}/rate-limits/{class}" (account, class) body: PutRateLimitRequest, => RateLimit;
    reset_account_rate_limit = DELETE "/v1/accounts/{account}/rate-limits/{class}" (account, class) => RateLimit;

    // The agent protocol (docs/agent-protocol.md), for third-party agents.
    /// Anonymous: the registration token in the body is the credential.
    register_host = POST "/v1/agent/register" () body: RegisterHostRequest, => RegisteredHost;
    get_host_identity = GET "/v1/agent/hosts/{host}" (host) => HostIdentity;
    heartbeat = POST "/v1/agent/hosts/{host}/heartbeat" (host) body: HeartbeatRequest, => HeartbeatResponse;
    list_assignments = GET "/v1/agent/hosts/{host}/assignments" (host) query: AssignmentsQuery, => AssignmentsResponse;
    ack_assignments = POST "/v1/agent/hosts/{host}/assignments/ack" (host) body: AckRequest, => ();
    report_task_status = POST "/v1/agent/hosts/{host}/tasks/{task}/status" (host, task) body: TaskStatusReport, => TaskStatusReportResponse;
    report_task_statuses = POST "/v1/agent/hosts/{host}/tasks/status" (host) body: TaskStatusReportBatch, => TaskStatusReportBatchResponse;

    // The system.
    healthz = GET "/healthz" () => Text;
    readyz = GET "/readyz" () => Text;
    /// Prometheus text exposition.
    metrics = GET "/metrics" () => Text;
    /// The OpenAPI document the server serves.
    openapi = GET "/openapi.json" () => serde_json::Value;
    /// The public keys that verify session tokens.
    jwks = GET "/.well-known/jwks.json" () => JwkSet;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every operation of the checked-in OpenAPI document (which another test
    /// keeps equal to what the server generates) has an SDK method, and the
    /// SDK has none the API lacks.
    #[test]
    fn every_operation_of_the_api_has_a_method() {
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("../../../openapi/berth.json")).expect("openapi/berth.json parses");
        let mut in_doc = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                if let Some(id) = op.get("operationId").and_then(|v| v.as_str()) {
                    in_doc.push((id.to_owned(), method.to_uppercase(), path.clone()));
                }
            }
        }
        in_doc.sort();
        let mut in_sdk: Vec<(String, String, String)> =
            OPERATIONS.iter().map(|o| (o.id.to_owned(), o.method.to_owned(), o.path.to_owned())).collect();
        in_sdk.sort();
        let missing: Vec<_> = in_doc.iter().filter(|o| !in_sdk.contains(o)).collect();
        let extra: Vec<_> = in_sdk.iter().filter(|o| !in_doc.contains(o)).collect();
        assert!(missing.is_empty(), "operations without an SDK method: {missing:#?}");
        assert!(extra.is_empty(), "SDK methods the API does not have: {extra:#?}");
    }

    #[test]
    fn path_parameters_are_encoded() {
        assert_eq!(
            render_path("/v1/clusters/{cluster}/tasks/{task}", &[("cluster", "a b"), ("task", "x/y")]),
            "/v1/clusters/a%20b/tasks/x%2Fy"
        );
    }
}
