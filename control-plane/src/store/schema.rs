//! Table and column names, for building statements with sea-query.

use sea_query::Iden;

#[derive(Iden, Clone, Copy)]
pub enum Accounts {
    Table,
    Id,
    Name,
    Status,
    EventSeq,
    IsOperator,
    StatusReason,
    CreatedAt,
    UpdatedAt,
    Version,
}

#[derive(Iden, Clone, Copy)]
pub enum Clusters {
    Table,
    Id,
    AccountId,
    Name,
    Status,
    Tags,
    CreatedAt,
    UpdatedAt,
    Version,
    PoolPriority,
}

#[derive(Iden, Clone, Copy)]
pub enum TaskDefinitionFamilies {
    Table,
    AccountId,
    Name,
    LatestRevision,
    CreatedAt,
}

#[derive(Iden, Clone, Copy)]
pub enum TaskDefinitions {
    Table,
    Id,
    AccountId,
    Family,
    Revision,
    Status,
    Definition,
    Cpu,
    Memory,
    Tags,
    RegisteredAt,
    DeregisteredAt,
    Version,
}

#[derive(Iden, Clone, Copy)]
pub enum Tasks {
    Table,
    Id,
    AccountId,
    ClusterId,
    TaskDefinitionId,
    Family,
    Revision,
    DesiredStatus,
    LastStatus,
    HostId,
    StartedBy,
    Overrides,
    Containers,
    Cpu,
    Memory,
    StopCode,
    StoppedReason,
    Tags,
    CreatedAt,
    PendingAt,
    RunningAt,
    StoppingAt,
    StoppedAt,
    UpdatedAt,
    Version,
    Placement,
    Queued,
    HostPorts,
    ReportSeq,
    PlacementSpec,
    ResourceUsage,
    ServiceId,
    DeploymentId,
    ServiceCounted,
    LaunchType,
    RequestedCpu,
    RequestedMemory,
}

#[derive(Iden, Clone, Copy)]
pub enum Services {
    Table,
    Id,
    AccountId,
    ClusterId,
    Name,
    Status,
    SchedulingStrategy,
    TaskDefinitionId,
    Family,
    Revision,
    DesiredCount,
    PlacementSpec,
    DeploymentConfiguration,
    HealthCheckGracePeriodSeconds,
    Tags,
    PrimaryDeploymentId,
    FailureStreak,
    NextLaunchAt,
    RecentEvents,
    LeaseOwner,
    LeaseExpiresAt,
    CreatedAt,
    UpdatedAt,
    Version,
    LaunchType,
}

#[derive(Iden, Clone, Copy)]
pub enum Deployments {
    Table,
    Id,
    AccountId,
    ServiceId,
    TaskDefinitionId,
    Family,
    Revision,
    State,
    FailedTasks,
    FailureThreshold,
    Cause,
    Reason,
    RollbackOf,
    CreatedAt,
    UpdatedAt,
    FinishedAt,
}

#[derive(Iden, Clone, Copy)]
pub enum QuotaUsage {
    Table,
    AccountId,
    Name,
    Used,
    WindowMinute,
}

#[derive(Iden, Clone, Copy)]
pub enum QuotaLimits {
    Table,
    AccountId,
    Name,
    MaxValue,
    UpdatedAt,
}

#[derive(Iden, Clone, Copy)]
pub enum RateLimitOverrides {
    Table,
    AccountId,
    Class,
    PerSecond,
    Burst,
    UpdatedAt,
}

#[derive(Iden, Clone, Copy)]
pub enum Replicas {
    Table,
    Id,
    StartedAt,
    LastSeenAt,
}

#[derive(Iden, Clone, Copy)]
pub enum EventOutbox {
    Table,
    Id,
    AccountId,
    EventType,
    ResourceId,
    Detail,
    CreatedAt,
}

#[derive(Iden, Clone, Copy)]
pub enum Events {
    Table,
    AccountId,
    Sequence,
    EventType,
    ResourceId,
    Detail,
    CreatedAt,
}

#[derive(Iden, Clone, Copy)]
pub enum IdempotencyRecords {
    Table,
    AccountId,
    IdempotencyKey,
    RequestHash,
    ResponseStatus,
    ResponseBody,
    CreatedAt,
}

#[derive(Iden, Clone, Copy)]
pub enum AccessKeys {
    Table,
    Id,
    AccountId,
    AccessKeyId,
    SecretCiphertext,
    MasterKeyId,
    Role,
    ClusterScope,
    Status,
    Description,
    CreatedAt,
    LastUsedAt,
    LastUsedIp,
    Version,
}

#[derive(Iden, Clone, Copy)]
pub enum SigningKeys {
    Table,
    Kid,
    Algorithm,
    PrivateCiphertext,
    MasterKeyId,
    PublicKey,
    CreatedAt,
    RetireAt,
}

#[derive(Iden, Clone, Copy)]
pub enum RegistrationTokens {
    Table,
    Id,
    AccountId,
    ClusterId,
    TokenHash,
    Description,
    ExpiresAt,
    MaxUses,
    Uses,
    Status,
    CreatedAt,
    Version,
}

#[derive(Iden, Clone, Copy)]
pub enum Hosts {
    Table,
    Id,
    AccountId,
    ClusterId,
    RegistrationTokenId,
    CredentialHash,
    Hostname,
    Status,
    CreatedAt,
    UpdatedAt,
    Version,
    CpuTotal,
    MemoryTotal,
    CpuReserved,
    MemoryReserved,
    CpuUsed,
    MemoryUsed,
    PortRangeStart,
    PortRangeEnd,
    PortsUsed,
    Attributes,
    AgentVersion,
    LastHeartbeatAt,
    AssignmentSeq,
    AssignmentAcked,
    LogsUrl,
    LogsTokenKeyId,
    LogsTokenCiphertext,
    Shared,
}

#[derive(Iden, Clone, Copy)]
pub enum HostAssignments {
    Table,
    HostId,
    Seq,
    AccountId,
    TaskId,
    DesiredStatus,
    CreatedAt,
}

#[derive(Iden, Clone, Copy)]
pub enum AuditEvents {
    Table,
    Id,
    AccountId,
    AccessKeyId,
    Action,
    Resource,
    Outcome,
    StatusCode,
    SourceIp,
    RequestId,
    CreatedAt,
}

#[derive(Iden, Clone, Copy)]
pub enum RegistryCredentials {
    Table,
    AccountId,
    Name,
    Registry,
    Username,
    PasswordKeyId,
    PasswordCiphertext,
    CreatedAt,
    UpdatedAt,
    Version,
}

#[derive(Iden, Clone, Copy)]
pub enum ManagedUsage {
    Table,
    TaskId,
    AccountId,
    ClusterName,
    TaskDefinition,
    Cpu,
    Memory,
    StartedAt,
    StoppedAt,
}
