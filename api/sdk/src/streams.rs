//! The two streamed operations: a task's logs, and the account's events as
//! server-sent events.

use bytes::Bytes;
use futures::Stream;
use futures::stream::{self, StreamExt as _};

use berth_api::events::{Event, StreamEventsQuery};
use berth_api::tasks::TaskLogsQuery;

use crate::{Call, Client, Error, render_path};

impl Client {
    /// `GET /v1/clusters/{cluster}/tasks/{task}/logs`: the logs as text
    /// chunks; with `follow`, the stream stays open until the task stops.
    pub async fn get_task_logs(
        &self,
        cluster: &str,
        task: &str,
        query: &TaskLogsQuery,
    ) -> Result<impl Stream<Item = Result<Bytes, Error>> + use<>, Error> {
        let path = render_path("/v1/clusters/{cluster}/tasks/{task}/logs", &[("cluster", cluster), ("task", task)]);
        let query = serde_urlencoded::to_string(query).map_err(|e| Error::InvalidInput(e.to_string()))?;
        let resp = self
            .send(Call { method: reqwest::Method::GET, path, query: Some(query), body: None, extra_headers: &[] })
            .await?;
        Ok(resp.bytes_stream().map(|r| r.map_err(|e| Error::Transport(e.to_string()))))
    }

    /// `GET /v1/events/stream`: events as they are appended, from `after`
    /// (or `last_event_id`, as a reconnecting client sends it).
    pub async fn stream_events(
        &self,
        query: &StreamEventsQuery,
        last_event_id: Option<i64>,
    ) -> Result<impl Stream<Item = Result<Event, Error>> + use<>, Error> {
        let query = serde_urlencoded::to_string(query).map_err(|e| Error::InvalidInput(e.to_string()))?;
        let last: Vec<(&'static str, String)> =
            last_event_id.map(|id| ("last-event-id", id.to_string())).into_iter().collect();
        let resp = self
            .send(Call {
                method: reqwest::Method::GET,
                path: "/v1/events/stream".into(),
                query: Some(query),
                body: None,
                extra_headers: &last,
            })
            .await?;
        let bytes = resp.bytes_stream().map(|r| r.map_err(|e| Error::Transport(e.to_string())));
        Ok(sse_events(bytes))
    }
}

/// Parses a text/event-stream into the events' `data` (the event as JSON),
/// ignoring comments and keep-alives.
pub fn sse_events(bytes: impl Stream<Item = Result<Bytes, Error>> + Unpin) -> impl Stream<Item = Result<Event, Error>> {
    stream::unfold((bytes, String::new(), false), |(mut bytes, mut buf, done)| async move {
        loop {
            // A complete event ends with a blank line.
            if let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                let data: Vec<&str> =
                    block.lines().filter_map(|l| l.strip_prefix("data:")).map(str::trim_start).collect();
                if data.is_empty() {
                    continue;
                }
                let parsed = serde_json::from_str::<Event>(&data.join("\n")).map_err(|e| Error::Decode(e.to_string()));
                return Some((parsed, (bytes, buf, done)));
            }
            if done {
                return None;
            }
            match bytes.next().await {
                Some(Ok(chunk)) => buf.push_str(&String::from_utf8_lossy(&chunk).replace("\r\n", "\n")),
                Some(Err(e)) => return Some((Err(e), (bytes, buf, true))),
                None => return None,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn server_sent_events_parse_across_chunks() {
        let e =
            r#"{"sequence":7,"type":"cluster.created","resource_id":"x","time":"2026-01-01T00:00:00Z","detail":{}}"#;
        let text = format!(": keep-alive\n\nid: 7\nevent: cluster.created\ndata: {e}\n\n");
        let (a, b) = text.split_at(20);
        let chunks = vec![Ok(Bytes::from(a.to_owned())), Ok(Bytes::from(b.to_owned()))];
        let events: Vec<_> = sse_events(stream::iter(chunks)).collect().await;
        assert_eq!(events.len(), 1);
        let first = events.into_iter().next().expect("one").expect("parsed");
        assert_eq!((first.sequence, first.event_type.as_str()), (7, "cluster.created"));
    }
}
