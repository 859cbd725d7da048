//! The agent's one HTTP endpoint: a task's container logs, for the control
//! plane to serve to the tenant (`GET /v1/tasks/{task}/logs`). Only the
//! control plane calls it, with the token the agent sent in its heartbeats.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use berth_api::TaskId;
use berth_api::tasks::TaskStatus;
use serde::Deserialize;
use time::OffsetDateTime;

use crate::logs::{self, Follower, LogLine, LogQuery};
use crate::runtime::Runtime;

#[derive(Clone)]
struct LogsState {
    logs_dir: PathBuf,
    token: Arc<String>,
    runtime: Arc<dyn Runtime>,
}

/// The query the control plane passes on (see the public logs endpoint).
#[derive(Debug, Default, Deserialize)]
pub struct LogsParams {
    pub container: Option<String>,
    pub tail: Option<usize>,
    /// RFC 3339 time.
    pub since: Option<String>,
    #[serde(default)]
    pub follow: bool,
    #[serde(default)]
    pub timestamps: bool,
}

/// Serves logs on `listener` until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    logs_dir: PathBuf,
    token: String,
    runtime: Arc<dyn Runtime>,
) -> std::io::Result<()> {
    let state = LogsState { logs_dir, token: Arc::new(token), runtime };
    let app = Router::new().route("/v1/tasks/{task}/logs", get(task_logs)).with_state(state);
    axum::serve(listener, app).await
}

/// Binds the logs endpoint; port 0 picks a free one.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

fn plain(status: StatusCode, message: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], message).into_response()
}

fn render(line: &LogLine, prefix: &str, timestamps: bool) -> String {
    let mut out = String::with_capacity(line.log.len() + 48);
    if timestamps {
        out.push_str(&line.time.format(&time::format_description::well_known::Rfc3339).unwrap_or_default());
        out.push(' ');
    }
    out.push_str(prefix);
    out.push_str(&line.log);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// How long a follower waits for a task's first log file to appear.
const FIRST_LOG_WAIT: Duration = Duration::from_secs(10);

/// The names of the containers with a log in `dir`, sorted.
fn log_files(dir: &std::path::Path) -> Vec<String> {
    let mut containers: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_string_lossy().strip_suffix(".log").map(str::to_owned))
        .collect();
    containers.sort();
    containers
}

async fn task_logs(
    State(state): State<LogsState>,
    Path(task): Path<String>,
    Query(params): Query<LogsParams>,
    headers: HeaderMap,
) -> Response {
    use subtle::ConstantTimeEq as _;
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !bool::from(presented.as_bytes().ct_eq(state.token.as_bytes())) {
        return plain(StatusCode::UNAUTHORIZED, "a valid bearer token is required".into());
    }
    let Ok(task_id) = task.parse::<TaskId>() else {
        return plain(StatusCode::BAD_REQUEST, "the task id is not a UUID".into());
    };
    let since =
        match params.since.as_deref().map(|s| OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339))
        {
            Some(Err(_)) => return plain(StatusCode::BAD_REQUEST, "since must be an RFC 3339 time".into()),
            Some(Ok(t)) => Some(t),
            None => None,
        };
    let dir = state.logs_dir.join(task_id.to_string());
    let mut containers = log_files(&dir);
    // A container that has just started may not have its log yet: a
    // follower waits a little for it rather than being told there is none.
    let deadline = tokio::time::Instant::now() + FIRST_LOG_WAIT;
    while params.follow
        && tokio::time::Instant::now() < deadline
        && params.container.as_ref().map_or(containers.is_empty(), |c| !containers.contains(c))
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
        containers = log_files(&dir);
    }
    if let Some(c) = &params.container {
        if !containers.contains(c) {
            return plain(StatusCode::NOT_FOUND, format!("no logs of a container named {c:?} on this host"));
        }
        containers = vec![c.clone()];
    }
    if containers.is_empty() {
        return plain(StatusCode::NOT_FOUND, "no logs of this task on this host".into());
    }
    let prefixed = containers.len() > 1;
    let prefix = |name: &str| if prefixed { format!("[{name}] ") } else { String::new() };
    // Every container's lines, merged by time.
    let mut lines: Vec<(LogLine, String)> = Vec::new();
    for c in &containers {
        let query = LogQuery { tail: params.tail, since };
        for l in logs::read(&dir.join(format!("{c}.log")), &query) {
            lines.push((l, prefix(c)));
        }
    }
    lines.sort_by_key(|(l, _)| l.time);
    if let Some(t) = params.tail {
        let skip = lines.len().saturating_sub(t);
        lines.drain(..skip);
    }
    let head: String = lines.iter().map(|(l, p)| render(l, p, params.timestamps)).collect();
    if !params.follow {
        return ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], head).into_response();
    }
    let followers: Vec<(Follower, String)> =
        containers.iter().map(|c| (Follower::from_end(&dir.join(format!("{c}.log"))), prefix(c))).collect();
    let timestamps = params.timestamps;
    let runtime = state.runtime.clone();
    let first = futures::stream::once(async move { Ok::<_, std::convert::Infallible>(head) });
    let rest = futures::stream::unfold((followers, false), move |(mut followers, done)| {
        let runtime = runtime.clone();
        async move {
            if done {
                return None;
            }
            loop {
                tokio::time::sleep(logs::FOLLOW_POLL).await;
                let mut new: Vec<(LogLine, String)> = Vec::new();
                for (f, p) in followers.iter_mut() {
                    new.extend(f.poll().into_iter().map(|l| (l, p.clone())));
                }
                let running =
                    runtime.observed().await.iter().any(|(id, s)| *id == task_id && *s != TaskStatus::Stopped);
                if !new.is_empty() || !running {
                    new.sort_by_key(|(l, _)| l.time);
                    let text: String = new.iter().map(|(l, p)| render(l, p, timestamps)).collect();
                    // After the task ends, one last read, then the stream closes.
                    return Some((Ok(text), (followers, !running)));
                }
            }
        }
    });
    let body = Body::from_stream(futures::StreamExt::chain(first, rest));
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}
