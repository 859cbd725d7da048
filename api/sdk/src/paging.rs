//! Lists as streams: every item of every page, fetched as the stream is read.

use futures::Stream;
use futures::stream::{self, TryStreamExt as _};

use berth_api::Page;
use berth_api::tasks::ListTasksQuery;

use crate::{Client, Error};

/// Pages `fetch` (given the previous page's `next_token`) until a page has none.
pub fn pages<T, F, Fut>(fetch: F) -> impl Stream<Item = Result<T, Error>>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, Option<String>), Error>>,
{
    stream::try_unfold((fetch, Some(None::<String>)), |(mut fetch, token)| async move {
        let Some(token) = token else { return Ok(None) };
        let (items, next) = fetch(token).await?;
        Ok(Some((stream::iter(items.into_iter().map(Ok)), (fetch, next.map(Some)))))
    })
    .try_flatten()
}

impl Client {
    fn page(&self, token: Option<String>) -> Page {
        Page { limit: Some(self.page_size()), next_token: token }
    }

    /// Every cluster of the account.
    pub fn clusters(&self) -> impl Stream<Item = Result<berth_api::clusters::Cluster, Error>> + '_ {
        pages(move |t| async move { self.list_clusters(&self.page(t)).await.map(|r| (r.clusters, r.next_token)) })
    }

    /// Every task of a cluster that matches the query's filters.
    pub fn tasks<'a>(
        &'a self,
        cluster: &'a str,
        filter: &'a ListTasksQuery,
    ) -> impl Stream<Item = Result<berth_api::tasks::Task, Error>> + 'a {
        pages(move |t| async move {
            let q = ListTasksQuery { limit: Some(self.page_size()), next_token: t, ..filter.clone() };
            self.list_tasks(cluster, &q).await.map(|r| (r.tasks, r.next_token))
        })
    }

    /// Every live service of a cluster.
    pub fn services<'a>(
        &'a self,
        cluster: &'a str,
    ) -> impl Stream<Item = Result<berth_api::services::Service, Error>> + 'a {
        pages(
            move |t| async move { self.list_services(cluster, &self.page(t)).await.map(|r| (r.services, r.next_token)) },
        )
    }

    /// Every host of a cluster.
    pub fn hosts<'a>(&'a self, cluster: &'a str) -> impl Stream<Item = Result<berth_api::hosts::Host, Error>> + 'a {
        pages(move |t| async move { self.list_hosts(cluster, &self.page(t)).await.map(|r| (r.hosts, r.next_token)) })
    }

    /// Every task-definition family.
    pub fn task_definition_families(
        &self,
    ) -> impl Stream<Item = Result<berth_api::task_definitions::TaskDefinitionFamily, Error>> + '_ {
        pages(move |t| async move {
            self.list_task_definition_families(&self.page(t)).await.map(|r| (r.families, r.next_token))
        })
    }

    /// Collects a stream of results into a vector, stopping at the first error.
    pub async fn collect<T>(items: impl Stream<Item = Result<T, Error>>) -> Result<Vec<T>, Error> {
        Box::pin(items).try_collect().await
    }
}
