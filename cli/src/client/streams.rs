//! `berth logs` and `berth events`: reading, and following with -f.

use std::io::Write as _;
use std::time::Duration;

use berth_api::events::{ListEventsQuery, StreamEventsQuery};
use berth_api::tasks::TaskLogsQuery;
use clap::Args;
use futures::StreamExt as _;

use super::output::{self, Col, Output, text, time};
use super::resources::ClusterArg;
use super::{CliError, CliResult, ClientArgs};

/// Flags of `berth logs`.
#[derive(Args, Debug)]
pub struct LogsArgs {
    /// The task's id.
    pub task: String,
    /// Keep printing new lines until the task stops.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Only the last N lines.
    #[arg(long)]
    pub tail: Option<u32>,
    /// Only this container (default: all, each line prefixed with its name).
    #[arg(long)]
    pub container: Option<String>,
    /// Only lines written at or after this time (RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// Start each line with when it was written.
    #[arg(long, short = 't')]
    pub timestamps: bool,
}

pub async fn logs(args: &ClientArgs, cl: &ClusterArg, a: LogsArgs) -> CliResult {
    let c = args.connect()?;
    let q = TaskLogsQuery {
        container: a.container,
        tail: a.tail,
        since: a.since,
        follow: a.follow.then_some(true),
        timestamps: a.timestamps.then_some(true),
    };
    let mut stream = Box::pin(c.get_task_logs(&cl.cluster, &a.task, &q).await?);
    let mut out = std::io::stdout().lock();
    while let Some(chunk) = stream.next().await {
        out.write_all(&chunk?)?;
        out.flush()?;
    }
    Ok(())
}

/// Flags of `berth events`.
#[derive(Args, Debug)]
pub struct EventsArgs {
    /// Keep printing events as they happen (server-sent events, resumed
    /// from the last one seen if the connection drops).
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Only events of these types (repeatable), e.g. task.state_changed.
    #[arg(long = "type")]
    pub types: Vec<String>,
    /// Only events after this sequence number.
    #[arg(long)]
    pub after: Option<i64>,
    #[arg(long)]
    pub limit: Option<u32>,
}

const EVENT: &[Col] = &[
    Col("SEQ", |v| text(&v["sequence"])),
    Col("TIME", |v| time(&v["time"])),
    Col("TYPE", |v| text(&v["type"])),
    Col("RESOURCE", |v| text(&v["resource_id"])),
    Col("DETAIL", |v| summary(&v["detail"])),
];

fn summary(detail: &serde_json::Value) -> String {
    if let Some(m) = detail["message"].as_str() {
        return m.to_owned();
    }
    detail
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| format!("{k}={}", text(v)))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

pub async fn events(args: &ClientArgs, a: EventsArgs) -> CliResult {
    let c = args.connect()?;
    let types = (!a.types.is_empty()).then(|| a.types.join(","));
    if !a.follow {
        let q = ListEventsQuery { after: a.after, types, limit: a.limit, wait: None };
        return output::list(args.output, &c.list_events(&q).await?, "events", EVENT);
    }
    let mut last = a.after;
    loop {
        let q = StreamEventsQuery { after: last, types: types.clone() };
        let mut stream = match c.stream_events(&q, None).await {
            Ok(s) => Box::pin(s),
            Err(e @ berth_sdk::Error::Api(_)) => return Err(CliError::Sdk(e)),
            Err(e) => {
                eprintln!("berth: {e}; reconnecting");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        while let Some(event) = stream.next().await {
            let event = match event {
                Ok(e) => e,
                Err(_) => break,
            };
            last = Some(event.sequence);
            match args.output {
                // One JSON object per line: easy to pipe.
                Output::Json => println!("{}", serde_json::to_string(&event).map_err(|e| CliError::Io(e.to_string()))?),
                Output::Yaml => output::structured(
                    Output::Yaml,
                    &serde_json::to_value(&event).map_err(|e| CliError::Io(e.to_string()))?,
                )?,
                Output::Table => {
                    let v = serde_json::to_value(&event).map_err(|e| CliError::Io(e.to_string()))?;
                    println!(
                        "{:>6} {} {:<24} {} {}",
                        text(&v["sequence"]),
                        time(&v["time"]),
                        text(&v["type"]),
                        text(&v["resource_id"]),
                        summary(&v["detail"])
                    );
                }
            }
        }
        // The server ended the stream (a restart, a deploy): resume after the last event.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
