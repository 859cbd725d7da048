//! Table and column names, for building statements with sea-query.

use sea_query::Iden;

#[derive(Iden, Clone, Copy)]
pub enum Accounts {
    Table,
    Id,
    Name,
    Status,
    EventSeq,
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
